"""Lifecycle methods of `Memory`: extraction, knowledge update, facts and their history,
consolidation, forgetting, TTL expiry and privacy purge. See docs/lifecycle.md.

Mixed into `Memory`, which provides `store`, `config`, `embedder`, `_vectors` and `_ann_path`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, NotFoundError, ValidationError
from ..ingest.normalize import check_id
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

            cfg = _settings(LLMConfig, self.config.llm, "llm") if self.config.llm else LLMConfig.from_env()  # type: ignore[attr-defined]
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
        """Extraction step of `add`: cheap rules inline by default; an LLM failure never fails the add.

        Only the new turns (plus a small backlog, if any) are looked at: no scan of the store per add."""
        eps = [r for r in records if r.kind == EPISODE]
        if not eps or self._extraction_mode() == "off":
            return records
        store = self.store  # type: ignore[attr-defined]
        keys = store.keys_for([r.id for r in eps])
        if not keys:
            return records
        lo, hi = min(keys.values()), max(keys.values())
        mark = int(store.get_meta(EXTRACT_WATERMARK) or 0)
        if lo - 1 - mark > _INLINE_GAP:
            return records  # a large backlog (extraction was off): `extract()` catches up, not every add
        backlog_ids = list(store.ids_for(list(range(mark + 1, lo))).values()) if lo - 1 > mark else []
        backlog = [r for r in store.get(backlog_ids) if r.kind == EPISODE] if backlog_ids else []
        try:
            self._extract_batches(self._make_extractor(), [([*backlog, *eps], hi)])
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - the episodes are stored; extraction stays pending and is counted
            logging.getLogger("engramdb").warning("fact extraction failed; episodes kept, pending", exc_info=True)
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
        ex = self._make_extractor(extractor)
        store = self.store  # type: ignore[attr-defined]
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
        rep = self._extract_batches(ex, batches, progress=progress)
        rep.pending = self.pending_extraction()
        return rep

    def _extract_batches(
        self,
        ex: Extractor,
        batches: list[tuple[list[MemoryRecord], int | None]],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExtractReport:
        """Extract and apply batch by batch; each batch and its watermark advance commit together."""
        from ..extract import name_subjects
        from ..llm import LLMError

        rep = ExtractReport(extractor=ex.name)
        store = self.store  # type: ignore[attr-defined]
        updater = self._updater()
        total = sum(len(b) for b, _ in batches)
        done = 0
        for eps, top_key in batches:
            try:
                facts = name_subjects(ex.extract(eps), self._known_names(eps))  # "Sam lives in...", not "u42..."
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
        return rep

    def _rederive(self, episode: MemoryRecord) -> None:
        """After an episode's text changed: the facts it alone gave and the new text no longer gives are
        retracted (an older value they replaced reopens); the new text's facts are applied as usual."""
        from ..extract.base import norm_value
        from ..lifecycle.cascade import follow_sources

        if self._extraction_mode() == "off":
            return
        store = self.store  # type: ignore[attr-defined]
        ex = self._make_extractor()
        facts = ex.extract([episode])
        keep = {(norm_value(f.subject), f.attribute.casefold(), norm_value(f.value)) for f in facts}
        stale = {
            d.id
            for d in store.derived_from([episode.id], Filters(kinds=[FACT], include_expired=True))
            if (d.metadata.get("subject_key"), d.metadata.get("attribute"), d.metadata.get("value_key")) not in keep
        }
        with store.transaction():
            if stale:
                follow_sources(store, [episode.id], reason="source edited", at=now(), action="retract", only=stale)
        self._extract_batches(ex, [([episode], None)])

    def _known_names(self, eps: list[MemoryRecord]) -> dict[str, str]:
        """Subject -> the name it stated earlier ("I'm Sam"), from the current `name` facts of these scopes."""
        out: dict[str, str] = {}
        for user_id, agent_id in {(e.user_id, e.agent_id) for e in eps}:
            flt = Filters(user_id=user_id, agent_id=agent_id, kinds=[FACT], metadata={"attribute": "name"},
                          current_only=True)
            for f in self.store.list(flt, limit=100):  # type: ignore[attr-defined]
                out[str(f.metadata.get("subject", ""))] = str(f.metadata.get("value", ""))
        return out

    def _valid_times(self, eps: list[MemoryRecord]) -> dict[str, datetime]:
        """When a statement became true: the earliest resolved past time in the episode ("I moved to Berlin
        last week" -> that week's start), else its occurred_at. Future times ("next month") are not used."""
        out: dict[str, datetime] = {}
        for e in eps:
            refs = e.metadata.get("time_refs") if isinstance(e.metadata, dict) else None
            starts = []
            for ref in refs or []:
                try:
                    t = datetime.fromisoformat(ref["start"])
                except (KeyError, TypeError, ValueError):
                    continue
                if e.occurred_at is None or t <= e.occurred_at:
                    starts.append(t)
            if starts:
                out[e.id] = min(starts)
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

        subject = check_id(subject, where="subject")
        attribute = check_id(attribute, where="attribute")
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
        if not isinstance(fact_id, str) or not fact_id:
            raise ValidationError(f"fact id must be a non-empty string, got {fact_id!r}")
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

    def _replaced_values(self, fact_ids: Sequence[str]) -> dict[str, str]:
        """Fact id -> the value it superseded (the newest, when it closed several), for "before: Boston"."""
        store = self.store  # type: ignore[attr-defined]
        out: dict[str, str] = {}
        for fid in fact_ids:
            olds = store.get([lk.dst_id for lk in store.links(fid, type="supersedes", direction="out")])
            olds = [o for o in olds if not o.metadata.get("retracted")]
            if olds:
                newest = max(olds, key=lambda o: o.valid_from or o.occurred_at or datetime.min.replace(tzinfo=UTC))
                out[fid] = str(newest.metadata.get("value") or newest.text)
        return out

    # -- consolidation ---------------------------------------------------------------------
    def consolidate(self, *, progress: Callable[[str, int, int], None] | None = None) -> ConsolidateReport:
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links.
        Incremental, idempotent and safe to interrupt (see docs/lifecycle.md)."""
        from ..lifecycle.consolidate import ConsolidateConfig, Consolidator

        cfg = _settings(ConsolidateConfig, self.config.lifecycle.get("consolidate", {}), "lifecycle.consolidate")  # type: ignore[attr-defined]
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

        return _settings(DecayPolicy, self.config.lifecycle.get("decay", {}), "lifecycle.decay")  # type: ignore[attr-defined]

    # -- search hooks ------------------------------------------------------------------------
    def _retrieval_query(self, query: str) -> str:
        """The query without an event clause ("before she moved"): that clause becomes a time span, and its
        words would otherwise pull in the moving episodes themselves."""
        stripped = _EVENT_RE.sub(" ", query).strip()
        return stripped if len(stripped) >= 3 else query

    def _derived_share(self) -> float:
        share = float(self.config.lifecycle.get("derived_max_share", DERIVED_MAX_SHARE))  # type: ignore[attr-defined]
        if not 0 <= share <= 1:
            raise ConfigError("lifecycle.derived_max_share must be between 0 and 1")
        return share

    def _lifecycle_fetch(self, limit: int) -> int:
        return min(1000, max(limit * 3, limit + 20))

    def _with_time_refs(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Resolve relative times ("yesterday", "last Friday", "two weeks ago") against each episode's
        occurred_at (engramdb.temporal) and store them alongside, in metadata["time_refs"]."""
        from ..temporal import resolve

        self._extraction_mode()  # a misconfiguration fails here, before anything is written
        out = []
        for r in records:
            spans = resolve(r.text, r.occurred_at) if r.occurred_at and r.kind == EPISODE else []
            if spans and "time_refs" not in r.metadata:
                refs = [
                    {
                        "text": t.text,
                        "start": t.start.isoformat(),
                        "end": t.end.isoformat(),
                        "granularity": t.granularity,
                    }
                    for t in spans[:5]
                ]
                r = r.model_copy(update={"metadata": {**r.metadata, "time_refs": refs}})
            out.append(r)
        return out

    def _query_span(self, query: str, f: Filters) -> tuple[datetime | None, datetime | None] | None:
        """The time a query names: a date expression ("in May 2023", "last year"), or an event of the
        user's own fact history ("before she moved" -> before the last change of lives_in)."""
        m = _EVENT_RE.search(query)
        if m:
            attr = "lives_in" if m.group(2).lower().startswith(("moved", "relocated")) else "works_at"
            flt = Filters(user_id=f.user_id, agent_id=f.agent_id, kinds=[FACT], metadata={"attribute": attr})
            closed = [r.valid_to for r in self.store.list(flt, limit=1000) if r.valid_to]  # type: ignore[attr-defined]
            if closed:
                t = max(closed)
                return (None, t) if m.group(1).lower() == "before" else (t, None)
        from ..temporal import query_range

        span = query_range(query, now())
        return (span.start, span.end) if span is not None else None

    def _derived_share(self) -> float:
        share = float(self.config.lifecycle.get("derived_max_share", DERIVED_MAX_SHARE))  # type: ignore[attr-defined]
        if not 0 <= share <= 1:
            raise ConfigError("lifecycle.derived_max_share must be between 0 and 1")
        return share

    def _current_truth(self) -> bool:
        on = self.config.lifecycle.get("current_truth", True)  # type: ignore[attr-defined]
        if not isinstance(on, bool):
            raise ConfigError("lifecycle.current_truth must be true or false")
        return on

    def _time_intent(self, query: str, *, as_of: datetime | None = None, order: str = "relevance") -> str:
        """"present", "past" or "neutral" (retrieve/currency.py); "off" when current-truth ranking is off.
        With `as_of`, "as_of": the present of that date. A time order keeps history, like the past."""
        from ..retrieve.currency import time_intent

        if not self._current_truth():
            return "off"
        if as_of is not None:
            return "as_of"
        if order != "relevance":
            return "past"
        return time_intent(query)

    def _slots(self, results: list[SearchResult], query_vector: np.ndarray | None, f: Filters, at: datetime
               ) -> tuple[list[SearchResult], dict[str, Any]]:
        """The state slots the query asks about; the results plus the scope's memories closest to each slot's
        statements (a change worded unlike the question: "Officially a UX researcher as of this month"); the
        slot each of them states; and what the slots' facts say (retrieve/slots.py, retrieve/currency.py)."""
        from ..retrieve.currency import SlotValues
        from ..retrieve.slots import SLOTS, query_slots, slot_centroid, statement_slots

        emb = self.embedder  # type: ignore[attr-defined]
        if query_vector is None or emb.name.startswith("hashing"):
            return results, {}  # slots are read by meaning: a hashing embedder has none
        store = self.store  # type: ignore[attr-defined]
        attrs = [str(r.memory.metadata.get("attribute", "")) for r in results if r.memory.kind == FACT]
        slots = query_slots(emb, query_vector, attrs)
        if not slots:
            return results, {}
        values: dict[str, SlotValues] = {}
        have = {r.memory.id for r in results}
        floor = min((r.score for r in results), default=0.0)
        for slot in slots:
            names = [slot[5:]] if slot.startswith("attr:") else list(SLOTS[slot][0])
            if slot == "favorite":
                names = [a for a in dict.fromkeys(attrs) if a.startswith("favorite:")]
            current: set[str] = set()
            seen: set[str] = set()
            for a in names:
                flt = Filters(user_id=f.user_id, agent_id=f.agent_id, kinds=[FACT], metadata={"attribute": a})
                facts = store.list(flt, limit=200)
                open_ = [x for x in facts if x.is_current(at) and (x.valid_from or x.occurred_at or at) <= at]
                newest = max(open_, key=lambda x: x.valid_from or x.occurred_at or _EPOCH, default=None)
                if newest is not None:
                    current.add(str(newest.metadata.get("value")))
                seen.update(str(x.metadata.get("value")) for x in facts)
            values[slot] = SlotValues(frozenset(current), frozenset(seen - current))
            centroid = slot_centroid(emb, slot)
            if centroid is not None:
                hits = self.vectors.search(centroid, f, SLOT_EXPAND)  # type: ignore[attr-defined]
                id_of = store.ids_for([k for k, _ in hits])
                new = [id_of[k] for k, _ in hits if k in id_of and id_of[k] not in have]
                for rec in store.get(new):
                    results = [*results, SearchResult(memory=rec, score=floor, signals={"slot": 1.0})]
                    have.add(rec.id)
        eps = [r.memory.id for r in results if r.memory.kind != FACT and r.memory.role != "assistant"]
        keys = store.keys_for(eps)
        got, mat = store.vectors_for(list(keys.values()))
        id_of = {k: i for i, k in keys.items()}
        stated = statement_slots(emb, mat) if len(got) else []
        return results, {"slots": slots, "values": values,
                         "slots_of": {id_of[int(k)]: s for k, s in zip(got.tolist(), stated, strict=True)}}

    def _lifecycle_rerank(
        self,
        results: list[SearchResult],
        limit: int,
        *,
        query: str = "",
        f: Filters | None = None,
        order: str = "relevance",
        intent: str = "off",
        query_vector: np.ndarray | None = None,
    ) -> list[SearchResult]:
        """Post-retrieval steps of the lifecycle:
        - time words in the query lift memories that happened in the named time (additive, scaled to the
          candidates' score spread, `lifecycle.time_boost`);
        - an enabled decay policy with rank_weight > 0 down-ranks stale memories;
        - derived memories (facts, summaries) keep their rank but take at most `derived_max_share` of a page,
          so they cannot crowd out the episodes they came from;
        - `order="time"` (or "-time") returns the chosen results in time order (SORT-style questions)."""
        if order not in ("relevance", "time", "-time"):
            raise ValidationError("order must be relevance, time or -time")
        boost = float(self.config.lifecycle.get("time_boost", TIME_BOOST))  # type: ignore[attr-defined]
        span = self._query_span(query, f) if query and f is not None and boost and results else None
        policy = self._decay_policy()
        decay = policy.enabled and policy.rank_weight
        if span is not None or decay:
            from ..lifecycle.forget import applies, decay_score

            at = now()
            spread = (max(r.score for r in results) - min(r.score for r in results)) or 1.0
            rescored = []
            for r in results:
                score = r.score
                sig = dict(r.signals)
                if span is not None and _in_span(r.memory, span):
                    score += boost * spread
                    sig["time"] = boost * spread
                if decay and applies(r.memory, policy):  # additive, like the time lift: scores may be <= 0
                    penalty = policy.rank_weight * (1 - decay_score(r.memory, policy, at)) * spread
                    score -= penalty
                    sig["decay"] = -penalty
                rescored.append(r.model_copy(update={"score": score, "signals": sig}))
            results = sorted(rescored, key=lambda r: -r.score)
        results = _sources_first(results)
        if intent != "off" and results:
            from ..retrieve.currency import annotate, present_first, statuses

            f = f or Filters()
            at = f.as_of if intent == "as_of" and f.as_of is not None else now()  # "current" as of that date
            slots: dict[str, Any] = {}
            if intent == "as_of" or (intent == "present" and span is None):
                results, slots = self._slots(results, query_vector, f, at)
            results = annotate(results, statuses(self.store, results, f, at))  # type: ignore[attr-defined]
            if slots or intent == "neutral":  # neutral: historical memories last, no slot order (LoCoMo)
                results = present_first(results, **slots)
        share = self._derived_share()
        if share < 1.0:
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
            results = out + held
        results = results[:limit]
        if order != "relevance":
            far = datetime.max.replace(tzinfo=UTC)
            results.sort(key=lambda r: r.memory.occurred_at or far, reverse=order == "-time")
        return results

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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SLOT_EXPAND = 8  # memories closest to a slot's statements that join the list of a question about that slot
DERIVED_MAX_SHARE = 0.4  # measured in docs/lifecycle.md ("Derived memories in search")
TIME_BOOST = 0.5
_EVENT_RE = re.compile(
    r"\b(before|after|since)\s+(?:(?:she|he|they|i|we|you|[A-Z][\w-]*)\s+)?(moved|relocated|changed jobs?|"
    r"switched jobs?|started (?:working|(?:her|his|their|my|the) new job)|got (?:a |the )?(?:new )?job|quit|"
    r"left (?:her|his|their|my) job)",
    re.I,
)


def _settings(model: type, data: Any, where: str) -> Any:
    """A settings model from config, or ConfigError naming the bad field (never a pydantic traceback)."""
    from pydantic import ValidationError as PydanticError

    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of settings")
    try:
        return model(**data)
    except PydanticError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from exc


def _sources_first(results: list[SearchResult]) -> list[SearchResult]:
    """A derived memory never outranks its own source turn: it moves to just after the source (the turn is
    the evidence; the fact or summary is the reading of it)."""
    pos = {r.memory.id: i for i, r in enumerate(results)}
    after: dict[str, list[SearchResult]] = {}
    out: list[SearchResult] = []
    for i, r in enumerate(results):
        later = [pos[s] for s in r.memory.source_ids if pos.get(s, -1) > i] if r.memory.kind in _DERIVED else []
        if later:
            after.setdefault(results[min(later)].memory.id, []).append(r)
            continue
        out.append(r)
        out.extend(after.pop(r.memory.id, []))
    return out


def _in_span(rec: MemoryRecord, span: tuple[datetime | None, datetime | None]) -> bool:
    lo, hi = span
    times = [rec.occurred_at] if rec.occurred_at else []
    for ref in (rec.metadata.get("time_refs") or []) if isinstance(rec.metadata, dict) else []:
        try:
            times.append(datetime.fromisoformat(ref["start"]))
        except (KeyError, TypeError, ValueError):
            continue
    return any((lo is None or t >= lo) and (hi is None or t < hi) for t in times)


def _db_bytes(store: Any) -> int:
    path = getattr(store, "path", None)
    if path == ":memory:":
        return 0
    if not path:  # a server backend (PostgreSQL) reports its own size
        return int(store.stats().get("bytes_on_disk") or 0)
    return sum(os.path.getsize(p) for p in (path, path + "-wal", path + "-shm") if os.path.exists(p))
