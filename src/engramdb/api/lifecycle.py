"""Lifecycle methods of `Memory`: extraction, knowledge update, facts and their history,
consolidation, forgetting, TTL expiry and privacy purge. See docs/lifecycle.md.

Mixed into `Memory`, which provides `store`, `config`, `embedder`, `_vectors` and `_ann_path`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, NotFoundError, ValidationError
from ..model import EPISODE, FACT, MemoryRecord, SearchResult
from ..store.base import Filters
from ..timeutil import now, parse_time

if TYPE_CHECKING:
    from ..extract.base import Extractor
    from ..lifecycle.consolidate import ConsolidateReport
    from ..lifecycle.forget import PurgeReport
    from ..llm import LLMClient, LLMConfig

EXTRACT_WATERMARK = "lifecycle.extract_key"
COUNTERS = "lifecycle.counters"
LLM_USAGE = "lifecycle.llm_usage"
_INLINE_GAP = 5_000  # on add, catch up at most this many keys of backlog inline; more waits for extract()
_DERIVED = ("fact", "summary", "profile")


class ExtractReport(BaseModel):
    extractor: str
    episodes: int = 0
    facts_found: int = 0
    added: list[str] = Field(default_factory=list)
    merged: list[str] = Field(default_factory=list)
    superseded: list[str] = Field(default_factory=list)
    skipped: int = 0
    failed_episodes: int = 0  # left pending (e.g. the LLM failed); raw episodes are kept, retried next time
    errors: list[str] = Field(default_factory=list)
    pending: int = 0  # episodes still waiting for extraction afterwards


class ForgetReport(BaseModel):
    forgotten: list[str]
    cascaded: int = 0


class LifecycleMixin:
    _llm_client: LLMClient | None = None
    _llm_ready: bool = False

    # -- LLM ---------------------------------------------------------------------------
    @property
    def llm(self) -> LLMClient | None:
        """The configured LLM client, or None (the default: no LLM)."""
        if not self._llm_ready:
            from ..llm import LLMClient, LLMConfig

            cfg = LLMConfig(**self.config.llm) if self.config.llm else LLMConfig.from_env()  # type: ignore[attr-defined]
            self._llm_client = LLMClient(cfg, on_usage=self._record_llm_usage) if cfg else None
            self._llm_ready = True
        return self._llm_client

    def set_llm(self, llm: LLMClient | LLMConfig | None) -> None:
        """Use this LLM (or none) for extraction, update judging and summaries."""
        from ..llm import LLMClient, LLMConfig

        if isinstance(llm, LLMConfig):
            llm = LLMClient(llm, on_usage=self._record_llm_usage)
        elif isinstance(llm, LLMClient) and llm._on_usage is None:
            llm._on_usage = self._record_llm_usage
        self._llm_client = llm
        self._llm_ready = True

    def _record_llm_usage(self, op: str, delta: Any) -> None:
        # Persisted (counts only, no text) so `engramdb stats` in another process sees failures and cost.
        with self.store.transaction():  # type: ignore[attr-defined]
            data = json.loads(self.store.get_meta(LLM_USAGE) or "{}")  # type: ignore[attr-defined]
            u = data.setdefault(op, {})
            for k in ("calls", "ok", "failures", "retries", "repairs", "prompt_tokens", "completion_tokens"):
                u[k] = int(u.get(k, 0)) + int(getattr(delta, k))
            u["cost_usd"] = round(float(u.get("cost_usd", 0.0)) + float(delta.cost_usd), 6)
            u["seconds"] = round(float(u.get("seconds", 0.0)) + float(delta.seconds), 3)
            self.store.set_meta(LLM_USAGE, json.dumps(data, sort_keys=True))  # type: ignore[attr-defined]

    def _bump_counters(self, **deltas: int) -> None:
        with self.store.transaction():  # type: ignore[attr-defined]
            data = json.loads(self.store.get_meta(COUNTERS) or "{}")  # type: ignore[attr-defined]
            for k, v in deltas.items():
                data[k] = int(data.get(k, 0)) + int(v)
            self.store.set_meta(COUNTERS, json.dumps(data, sort_keys=True))  # type: ignore[attr-defined]

    # -- extraction ---------------------------------------------------------------------
    def _extraction_mode(self) -> str:
        mode = (self.config.extraction or "auto").lower()  # type: ignore[attr-defined]
        if mode not in ("auto", "rules", "llm", "off"):
            raise ConfigError(f"extraction must be auto, rules, llm or off, got {mode!r}")
        if mode == "auto":
            return "llm" if self.llm is not None else "rules"
        if mode == "llm" and self.llm is None:
            raise ConfigError("extraction='llm' but no LLM is configured (set ENGRAMDB_LLM_BASE_URL and _MODEL)")
        return mode

    def _make_extractor(self, name: str | None = None) -> Extractor:
        name = name or self._extraction_mode()
        if name == "rules":
            from ..extract.rules import RuleExtractor

            return RuleExtractor()
        if name == "llm":
            from ..extract.llm import LLMExtractor

            if self.llm is None:
                raise ConfigError("no LLM is configured (set ENGRAMDB_LLM_BASE_URL and ENGRAMDB_LLM_MODEL)")
            return LLMExtractor(self.llm)
        raise ValidationError(f"extractor must be 'rules' or 'llm', got {name!r}")

    def _updater(self):  # noqa: ANN202
        from ..lifecycle.update import KnowledgeUpdater

        judge = self.llm if self.config.lifecycle.get("llm_judge", True) else None  # type: ignore[attr-defined]
        return KnowledgeUpdater(self.store, self.embedder.embed, judge=judge)  # type: ignore[attr-defined]

    def _after_add(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Extraction step of `add`: cheap rules inline by default; an LLM failure never fails the add."""
        if not any(r.kind == EPISODE for r in records) or self._extraction_mode() == "off":
            return records
        keys = self.store.keys_for([r.id for r in records])  # type: ignore[attr-defined]
        lo = min(keys.values()) if keys else 0
        mark = int(self.store.get_meta(EXTRACT_WATERMARK) or 0)  # type: ignore[attr-defined]
        if lo - 1 - mark > _INLINE_GAP:
            return records  # a large backlog (extraction was off): `extract()` catches up, not every add
        try:
            self.extract()
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - the episodes are stored; extraction stays pending and is counted
            self._bump_counters(extract_failures=1)
        return records

    def pending_extraction(self) -> int:
        """Episodes not yet through extraction."""
        mark = int(self.store.get_meta(EXTRACT_WATERMARK) or 0)  # type: ignore[attr-defined]
        keys = self.store.candidate_keys(Filters(kinds=[EPISODE], include_expired=True))  # type: ignore[attr-defined]
        return int((keys > mark).sum())

    def extract(
        self,
        *,
        episode_ids: Sequence[str] | None = None,
        extractor: str | None = None,
        batch: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExtractReport:
        """Extract facts from pending episodes (or re-extract `episode_ids`; idempotent) and apply them as
        bi-temporal knowledge updates. A failed batch stays pending and is counted in `stats()`."""
        from ..llm import LLMError

        ex = self._make_extractor(extractor)
        rep = ExtractReport(extractor=ex.name)
        store = self.store  # type: ignore[attr-defined]
        updater = self._updater()
        if episode_ids is not None:
            eps = [e for e in store.get(list(episode_ids)) if e.kind == EPISODE]
            if len(eps) != len(set(episode_ids)):
                raise NotFoundError("some episode ids do not exist (or are not episodes)")
            batches: list[tuple[list[MemoryRecord], int | None]] = [
                (eps[i : i + batch], None) for i in range(0, len(eps), batch)
            ]
        else:
            mark = int(store.get_meta(EXTRACT_WATERMARK) or 0)
            keys = np.sort(store.candidate_keys(Filters(kinds=[EPISODE], include_expired=True)))
            keys = keys[keys > mark]
            batches = []
            for i in range(0, len(keys), batch):
                chunk = [int(k) for k in keys[i : i + batch]]
                ids = store.ids_for(chunk)
                batches.append((store.get([ids[k] for k in chunk if k in ids]), chunk[-1]))
        total = sum(len(b) for b, _ in batches)
        done = 0
        for eps, top_key in batches:
            try:
                facts = ex.extract(eps)
                valid_times = self._valid_times(eps)

                def advance(report: Any, top_key: int | None = top_key) -> None:
                    if top_key is None:
                        return
                    added = store.keys_for(report.added) if report.added else {}
                    store.set_meta(EXTRACT_WATERMARK, str(max([top_key, *added.values()])))

                r = updater.apply(
                    facts, {e.id: e for e in eps}, extractor=ex.name, valid_times=valid_times, in_transaction=advance
                )
            except LLMError as exc:
                rep.failed_episodes += len(eps)
                rep.errors.append(str(exc)[:300])
                self._bump_counters(extract_failures=1, extract_failed_episodes=len(eps))
                break  # keep order: later batches wait, so the watermark never skips a failed episode
            rep.episodes += len(eps)
            rep.facts_found += len(facts)
            rep.added += r.added
            rep.merged += r.merged
            rep.superseded += r.superseded
            rep.skipped += r.skipped
            done += len(eps)
            if progress:
                progress(done, total)
        if rep.episodes or rep.failed_episodes:
            self._bump_counters(
                extract_runs=1,
                extract_episodes=rep.episodes,
                facts_added=len(rep.added),
                facts_merged=len(rep.merged),
                facts_superseded=len(rep.superseded),
            )
        rep.pending = self.pending_extraction()
        return rep

    def _valid_times(self, eps: list[MemoryRecord]) -> dict[str, datetime]:
        """When a statement became true: a resolved time expression stored on the episode, else occurred_at."""
        out: dict[str, datetime] = {}
        for e in eps:
            t = e.metadata.get("event_time") if isinstance(e.metadata, dict) else None
            if isinstance(t, str):
                try:
                    parsed = parse_time(t, field="event_time")
                except ValidationError:
                    parsed = None
                if parsed is not None:
                    out[e.id] = parsed
        return out

    # -- facts ---------------------------------------------------------------------------
    def facts(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        subject: str | None = None,
        attribute: str | None = None,
        as_of: datetime | str | None = None,
        include_history: bool = False,
        limit: int = 1000,
    ) -> list[MemoryRecord]:
        """Structured facts: current ones by default; `as_of` = those valid then; `include_history` = all."""
        from ..extract.base import norm_value

        meta: dict[str, Any] = {}
        if subject:
            meta["subject_key"] = norm_value(subject)
        if attribute:
            meta["attribute"] = attribute.casefold()
        extra: dict[str, Any] = {}
        if as_of is not None:
            extra["as_of"] = parse_time(as_of, field="as_of")
        elif not include_history:
            extra["current_only"] = True
        f = self._filters(user_id, agent_id, None, [FACT], None, None, meta, **extra)  # type: ignore[attr-defined]
        return self.store.list(f, limit=limit, order="occurred_at")  # type: ignore[attr-defined]

    def fact_history(self, fact_id: str) -> list[MemoryRecord]:
        """The chain of values a fact went through (oldest first), following supersedes/invalidates links."""
        store = self.store  # type: ignore[attr-defined]
        if not store.get([fact_id], include_deleted=True):
            raise NotFoundError(f"no memory with id {fact_id!r}")
        seen = {fact_id}
        todo = [fact_id]
        while todo:
            cur = todo.pop()
            for lk in store.links(cur, type="supersedes"):
                for other in (lk.src_id, lk.dst_id):
                    if other not in seen:
                        seen.add(other)
                        todo.append(other)
        recs = store.get(sorted(seen), include_deleted=True)
        return sorted(recs, key=lambda r: (r.valid_from or r.occurred_at or now(), r.id))

    # -- consolidation ---------------------------------------------------------------------
    def consolidate(self, *, progress: Callable[[str, int, int], None] | None = None) -> ConsolidateReport:
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links.
        Incremental, idempotent and safe to interrupt (see docs/lifecycle.md)."""
        from ..lifecycle.consolidate import ConsolidateConfig, Consolidator

        cfg = ConsolidateConfig(**self.config.lifecycle.get("consolidate", {}))  # type: ignore[attr-defined]
        if self._extraction_mode() != "off" and self.pending_extraction():
            self.extract()
        c = Consolidator(self.store, self.embedder.embed, cfg, llm=self.llm, progress=progress)  # type: ignore[attr-defined]
        c.fail_after = getattr(self, "_consolidate_hook", None)
        rep = c.run()
        self._bump_counters(consolidations=1, consolidate_failures=len(rep.failures))
        return rep

    # -- forgetting -------------------------------------------------------------------------
    def expire(self, *, at: datetime | str | None = None) -> int:
        """Soft-delete memories whose expires_at has passed (reads already hide them)."""
        from ..lifecycle.forget import expire

        return expire(self.store, parse_time(at, field="at"))  # type: ignore[attr-defined]

    def forget(
        self,
        memory_id: str | None = None,
        *,
        ids: Sequence[str] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        kinds: Sequence[str] | None = None,
        filters: dict[str, Any] | None = None,
        before: datetime | str | None = None,
        cascade: bool = True,
    ) -> ForgetReport:
        """Soft delete (history keeps it) by id, ids, or filters/scope; `cascade` also forgets memories
        derived only from forgotten ones. Use `purge` to erase for privacy."""
        from ..lifecycle.forget import forget_ids

        store = self.store  # type: ignore[attr-defined]
        chosen: list[str] = []
        if memory_id is not None or ids is not None:
            want = ([memory_id] if memory_id is not None else []) + list(ids or [])
            got = {r.id for r in store.get(want)}
            missing = [i for i in want if i not in got]
            if missing:
                raise NotFoundError(f"no memory with id {missing[0]!r}")
            chosen = want
        else:
            if not (user_id or agent_id or session_id or kinds or filters or before):
                raise ValidationError("forget needs an id, ids, or at least one filter (user_id, session_id, ...)")
            f = self._filters(user_id, agent_id, session_id, kinds, None, before, filters, include_expired=True)  # type: ignore[attr-defined]
            offset = 0
            while True:
                page = store.list(f, limit=1000, offset=offset)
                if not page:
                    break
                chosen += [r.id for r in page]
                offset += len(page)
        if not chosen:
            return ForgetReport(forgotten=[])
        out = forget_ids(store, chosen, cascade=cascade)
        return ForgetReport(forgotten=out, cascaded=len(out) - len(chosen))

    def purge(self, *, user_id: str | None = None, agent_id: str | None = None) -> PurgeReport:
        """Hard delete EVERY trace of a user (or agent): rows, keyword index, vectors, ANN sidecar, links,
        history, derived memories (in any scope), then VACUUM and a WAL checkpoint. Irreversible."""
        from ..ingest.normalize import check_id
        from ..lifecycle.forget import PurgeReport, collect_purge_ids, remove_ann_files

        user_id = check_id(user_id, where="user_id")
        agent_id = check_id(agent_id, where="agent_id")
        if not user_id and not agent_id:
            raise ValidationError("purge needs user_id or agent_id")
        store = self.store  # type: ignore[attr-defined]
        rep = PurgeReport(user_id=user_id, agent_id=agent_id, bytes_before=_db_bytes(store))
        ids, derived = collect_purge_ids(store, user_id, agent_id)
        with store.transaction():
            for i in range(0, len(ids), 500):
                rep.memories += store.hard_delete(ids[i : i + 500])
            # Keys of purged rows can be reused by SQLite: pull the watermarks back so new rows are seen.
            last = store.list(Filters(include_deleted=True, include_expired=True), limit=1, order="-recorded_at")
            top = store.keys_for([last[0].id]).get(last[0].id, 0) if last else 0
            for key in (EXTRACT_WATERMARK, "lifecycle.consolidate_key"):
                if int(store.get_meta(key) or 0) > top:
                    store.set_meta(key, str(top))
        rep.derived_elsewhere = derived
        # The in-memory vector copy and the ANN sidecar still hold the vectors: drop both, rebuilt on demand.
        self._vectors = None  # type: ignore[attr-defined]
        rep.ann_files_removed = remove_ann_files(getattr(self, "_ann_path", None))
        store.compact()
        rep.bytes_after = _db_bytes(store)
        return rep

    def decay_scores(
        self, *, user_id: str | None = None, agent_id: str | None = None, limit: int = 1000
    ) -> list[tuple[str, float]]:
        """(id, decay score) for memories the decay policy covers, lowest first."""
        from ..lifecycle.forget import applies, decay_score

        policy = self._decay_policy()
        f = self._filters(user_id, agent_id, None, policy.kinds, None, None, None)  # type: ignore[attr-defined]
        recs = self.store.list(f, limit=limit)  # type: ignore[attr-defined]
        at = now()
        scored = [(r.id, decay_score(r, policy, at)) for r in recs if applies(r, policy) or not policy.enabled]
        return sorted(scored, key=lambda p: p[1])

    def archive_decayed(self) -> int:
        """Soft-delete (action 'archive') memories under the policy's archive_below. No-op when decay is off."""
        policy = self._decay_policy()
        if not policy.enabled or policy.archive_below is None:
            return 0
        low = [i for i, s in self.decay_scores(limit=100_000) if s < policy.archive_below]
        return self.store.soft_delete(low, at=now(), action="archive") if low else 0  # type: ignore[attr-defined]

    def _decay_policy(self):  # noqa: ANN202
        from ..lifecycle.forget import DecayPolicy

        return DecayPolicy(**self.config.lifecycle.get("decay", {}))  # type: ignore[attr-defined]

    # -- search hooks ------------------------------------------------------------------------
    def _derived_share(self) -> float:
        share = float(self.config.lifecycle.get("derived_max_share", DERIVED_MAX_SHARE))  # type: ignore[attr-defined]
        if not 0 <= share <= 1:
            raise ConfigError("lifecycle.derived_max_share must be between 0 and 1")
        return share

    def _lifecycle_fetch(self, limit: int) -> int:
        policy = self._decay_policy()
        if self._derived_share() >= 1.0 and not (policy.enabled and policy.rank_weight):
            return limit
        return min(1000, max(limit * 3, limit + 20))

    def _lifecycle_rerank(self, results: list[SearchResult], limit: int) -> list[SearchResult]:
        """Derived memories (facts, summaries) keep their rank but take at most `derived_max_share` of a page,
        so they cannot crowd out the episodes they came from; an enabled decay policy with rank_weight > 0
        down-ranks stale memories."""
        policy = self._decay_policy()
        if policy.enabled and policy.rank_weight:
            from ..lifecycle.forget import applies, decay_score

            at = now()
            rescored = []
            for r in results:
                score = r.score
                if applies(r.memory, policy):
                    score *= 1 - policy.rank_weight + policy.rank_weight * decay_score(r.memory, policy, at)
                rescored.append(r.model_copy(update={"score": score}))
            results = sorted(rescored, key=lambda r: -r.score)
        share = self._derived_share()
        if share >= 1.0:
            return results[:limit]
        cap = int(limit * share) if limit * share >= 1 else (1 if share > 0 else 0)
        out: list[SearchResult] = []
        held: list[SearchResult] = []
        n_derived = 0
        for r in results:
            if r.memory.kind in _DERIVED:
                if n_derived >= cap:
                    held.append(r)  # over the quota: only used if episodes run out
                    continue
                n_derived += 1
            out.append(r)
        return (out + held)[:limit]

    def lifecycle_stats(self) -> dict[str, Any]:
        store = self.store  # type: ignore[attr-defined]
        counters = json.loads(store.get_meta(COUNTERS) or "{}")
        counters["pending_extraction"] = self.pending_extraction()
        counters["facts_current"] = store.count(Filters(kinds=[FACT], current_only=True))
        counters["facts_total"] = store.count(Filters(kinds=[FACT], include_expired=True))
        usage = json.loads(store.get_meta(LLM_USAGE) or "{}")
        llm = {"configured": self._llm_client is not None, "ops": usage}
        if self._llm_client is not None:
            llm["model"] = self._llm_client.config.model
        return {"lifecycle": counters, "llm": llm}


DERIVED_MAX_SHARE = 0.4  # measured in docs/lifecycle.md ("Derived memories in search")


def _db_bytes(store: Any) -> int:
    path = getattr(store, "path", None)
    if not path or path == ":memory:":
        return 0
    return sum(os.path.getsize(p) for p in (path, path + "-wal", path + "-shm") if os.path.exists(p))
