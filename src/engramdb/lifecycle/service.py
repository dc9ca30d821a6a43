"""Lifecycle of memories: fact extraction and knowledge updates, facts and their history, consolidation,
forgetting, TTL expiry, decay and privacy purge (docs/lifecycle.md). `Memory` delegates to `Lifecycle`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from ..config import MemoryConfig
from ..embed.base import Embedder
from ..errors import ConfigError, NotFoundError, StoreError, ValidationError
from ..ingest.normalize import check_id
from ..model import EPISODE, FACT, MemoryRecord
from ..resources import COUNTERS, LLM_USAGE, Resources, make_filters, settings
from ..store.base import Filters
from ..timeutil import now, parse_time
from .forget import DecayPolicy

if TYPE_CHECKING:
    from ..extract.base import Extractor
    from ..llm import LLMClient
    from .consolidate import ConsolidateReport
    from .forget import PurgeReport
    from .update import KnowledgeUpdater

EXTRACT_WATERMARK = "lifecycle.extract_key"
_INLINE_GAP = 5_000  # on add, catch up at most this many keys of backlog inline; more waits for extract()


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


class Lifecycle:
    """Writes derived from episodes, and what ends memories. Collaborators: the store, the configuration,
    the embedding model and the LLM, all from `res`."""

    def __init__(self, res: Resources) -> None:
        self.res = res
        self.store = res.store
        self.consolidate_hook: Callable[[str], None] | None = None  # tests: fail at a named step

    @property
    def config(self) -> MemoryConfig:
        return self.res.config

    @property
    def llm(self) -> LLMClient | None:
        return self.res.llm

    @property
    def embedder(self) -> Embedder:
        return self.res.embedder

    # -- extraction ---------------------------------------------------------------------
    def extraction_mode(self) -> str:
        mode = (self.config.extraction or "auto").lower()
        if mode not in ("auto", "rules", "llm", "off"):
            raise ConfigError(f"extraction must be auto, rules, llm or off, got {mode!r}")
        if mode == "auto":
            return "llm" if self.llm is not None else "rules"
        if mode == "llm" and self.llm is None:
            raise ConfigError("extraction='llm' but no LLM is configured (set ENGRAMDB_LLM_BASE_URL and _MODEL)")
        return mode

    def _make_extractor(self, name: str | None = None) -> Extractor:
        name = name or self.extraction_mode()
        if name == "rules":
            from ..extract.rules import RuleExtractor

            return RuleExtractor()
        if name == "llm":
            from ..extract.llm import LLMExtractor

            if self.llm is None:
                raise ConfigError("no LLM is configured (set ENGRAMDB_LLM_BASE_URL and ENGRAMDB_LLM_MODEL)")
            return LLMExtractor(self.llm)
        raise ValidationError(f"extractor must be 'rules' or 'llm', got {name!r}")

    def _updater(self) -> KnowledgeUpdater:
        from .update import KnowledgeUpdater

        judge = self.llm if self.config.lifecycle.get("llm_judge", True) else None
        return KnowledgeUpdater(self.store, self.embedder.embed, judge=judge)

    def after_add(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Extraction step of `add`: cheap rules inline by default; an LLM failure never fails the add.

        Only the new turns (plus a small backlog, if any) are looked at: no scan of the store per add."""
        eps = [r for r in records if r.kind == EPISODE]
        if not eps or self.extraction_mode() == "off":
            return records
        store = self.store
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
        except Exception:  # the episodes are stored; extraction stays pending and is counted
            logging.getLogger("engramdb").warning("fact extraction failed; episodes kept, pending", exc_info=True)
            with contextlib.suppress(Exception):  # the add has committed: a failed count must not fail it
                self.res.bump_counters(extract_failures=1)
        return records

    def pending_extraction(self) -> int:
        """Episodes not yet through extraction."""
        mark = int(self.store.get_meta(EXTRACT_WATERMARK) or 0)
        keys = self.store.candidate_keys(Filters(kinds=[EPISODE], include_expired=True))
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
        store = self.store
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
        store = self.store
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
                self.res.bump_counters(extract_failures=1, extract_failed_episodes=len(eps))
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
            self.res.bump_counters(
                extract_runs=1,
                extract_episodes=rep.episodes,
                facts_added=len(rep.added),
                facts_merged=len(rep.merged),
                facts_superseded=len(rep.superseded),
            )
        return rep

    def rederive(self, episode: MemoryRecord) -> None:
        """After an episode's text changed: the facts it alone gave and the new text no longer gives are
        retracted (an older value they replaced reopens); the new text's facts are applied as usual."""
        from ..extract.base import norm_value
        from .cascade import follow_sources

        if self.extraction_mode() == "off":
            return
        store = self.store
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
            for f in self.store.list(flt, limit=100):
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
        f = make_filters(user_id, agent_id, None, [FACT], None, None, meta, **extra)
        return self.store.list(f, limit=limit, order="occurred_at")

    def fact_history(self, fact_id: str) -> list[MemoryRecord]:
        """The chain of values a fact went through (oldest first), following supersedes/invalidates links."""
        if not isinstance(fact_id, str) or not fact_id:
            raise ValidationError(f"fact id must be a non-empty string, got {fact_id!r}")
        store = self.store
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
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links,
        then the keyword index merged. Incremental, idempotent and safe to interrupt (see docs/lifecycle.md)."""
        from .consolidate import ConsolidateConfig, Consolidator

        cfg = settings(ConsolidateConfig, self.config.lifecycle.get("consolidate", {}), "lifecycle.consolidate")
        if self.extraction_mode() != "off" and self.pending_extraction():
            self.extract()
        c = Consolidator(self.store, self.embedder.embed, cfg, llm=self.llm, progress=progress)
        c.fail_after = self.consolidate_hook
        rep = c.run()
        # the keyword index's segments, merged into one: what each query word is looked up in (store docs).
        # Upkeep only: a store too busy for it now reports it, and the next run merges.
        try:
            self.store.merge_keyword_index()
        except StoreError as exc:
            rep.failures.append(f"keyword index merge: {exc}")
        self.res.bump_counters(consolidations=1, consolidate_failures=len(rep.failures))
        return rep

    # -- forgetting -------------------------------------------------------------------------
    def expire(self, *, at: datetime | str | None = None) -> int:
        """Soft-delete memories whose expires_at has passed (reads already hide them)."""
        from .forget import expire

        return expire(self.store, parse_time(at, field="at"))

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
        from .forget import forget_ids

        store = self.store
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
            f = make_filters(user_id, agent_id, session_id, kinds, None, before, filters, include_expired=True)
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
        from .forget import PurgeReport, collect_purge_ids, remove_ann_files

        user_id = check_id(user_id, where="user_id")
        agent_id = check_id(agent_id, where="agent_id")
        if not user_id and not agent_id:
            raise ValidationError("purge needs user_id or agent_id")
        store = self.store
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
        self.res.drop_vectors()
        rep.ann_files_removed = remove_ann_files(self.res.ann_path)
        store.compact()
        rep.bytes_after = _db_bytes(store)
        return rep

    def decay_scores(
        self, *, user_id: str | None = None, agent_id: str | None = None, limit: int = 1000
    ) -> list[tuple[str, float]]:
        """(id, decay score) for memories the decay policy covers, lowest first."""
        from .forget import applies, decay_score

        policy = self._decay_policy()
        f = make_filters(user_id, agent_id, None, policy.kinds, None, None, None)
        recs = self.store.list(f, limit=limit)
        at = now()
        scored = [(r.id, decay_score(r, policy, at)) for r in recs if applies(r, policy) or not policy.enabled]
        return sorted(scored, key=lambda p: p[1])

    def archive_decayed(self) -> int:
        """Soft-delete (action 'archive') memories under the policy's archive_below. No-op when decay is off."""
        policy = self._decay_policy()
        if not policy.enabled or policy.archive_below is None:
            return 0
        low = [i for i, s in self.decay_scores(limit=100_000) if s < policy.archive_below]
        return self.store.soft_delete(low, at=now(), action="archive") if low else 0

    def _decay_policy(self) -> DecayPolicy:
        return settings(DecayPolicy, self.config.lifecycle.get("decay", {}), "lifecycle.decay")

    def with_time_refs(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Resolve relative times ("yesterday", "last Friday", "two weeks ago") against each episode's
        occurred_at (engramdb.temporal) and store them alongside, in metadata["time_refs"]."""
        from ..temporal import resolve

        self.extraction_mode()  # a misconfiguration fails here, before anything is written
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

    def stats(self) -> dict[str, Any]:
        store = self.store
        counters = json.loads(store.get_meta(COUNTERS) or "{}")
        counters["pending_extraction"] = self.pending_extraction()
        counters["facts_current"] = store.count(Filters(kinds=[FACT], current_only=True))
        counters["facts_total"] = store.count(Filters(kinds=[FACT], include_expired=True))
        usage = json.loads(store.get_meta(LLM_USAGE) or "{}")
        llm = {"configured": self.res.llm_configured, "ops": usage}
        if self.res.llm_configured:
            llm["model"] = self.res.llm.config.model if self.res.llm else None
        return {"lifecycle": counters, "llm": llm}



def _db_bytes(store: Any) -> int:
    path = getattr(store, "path", None)
    if path == ":memory:":
        return 0
    if not path:  # a server backend (PostgreSQL) reports its own size
        return int(store.stats().get("bytes_on_disk") or 0)
    return sum(os.path.getsize(p) for p in (path, path + "-wal", path + "-shm") if os.path.exists(p))
