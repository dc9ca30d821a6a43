"""`Memory`: the synchronous public API. Everything else (CLI, REST, MCP, the
async twin, the benchmarks) goes through this class.

Three lines to long-term memory:

    from engramdb import Memory
    mem = Memory("agent.db")
    mem.add("I moved to Berlin last month", user_id="alice")
    mem.search("where does alice live?", user_id="alice")
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel

from ..config import MemoryConfig
from ..embed import check_available
from ..embed.base import Embedder
from ..errors import ConfigError, NotFoundError, ValidationError
from ..index.vector import VectorIndex
from ..ingest.normalize import check_id, check_metadata, check_text, normalize
from ..lifecycle.service import ExtractReport, ForgetReport, Lifecycle
from ..model import EPISODE, MemoryRecord, SearchResult, check_kind
from ..privacy.engine import PrivacyEngine
from ..procedural.service import ProceduralHost, Procedures
from ..resources import Resources, check_scope, is_int, make_filters
from ..retrieve.context import ContextBlock
from ..retrieve.pipeline import Retrieval
from ..store.base import LIST_ORDERS, Filters, Store
from ..timeutil import now, parse_time
from . import params as P

if TYPE_CHECKING:
    from ..lifecycle.consolidate import ConsolidateReport
    from ..lifecycle.forget import PurgeReport
    from ..llm import LLMClient, LLMConfig
    from ..procedural.engine import LearnReport
    from ..procedural.model import Guidance, Tip, Trajectory

# Rows a reindex may embed while it holds the write lock for its swap (docs/reliability.md).
REINDEX_FINAL_ROWS = 8

Progress = Callable[[int, int], None]  # (done, total)


class Page(BaseModel):
    """One page of `list`: items, and the offset of the next page (None at the end)."""

    items: list[MemoryRecord]
    total: int
    offset: int
    next_offset: int | None


def open_store(
    path: str | os.PathLike[str] | None, url: str | None, *, read_only: bool | None = None, synchronous: str = "NORMAL"
) -> tuple[Store, str | None]:
    """Pick a backend from a path or URL. Returns (store, ann sidecar path or None)."""
    if url and path:
        raise ConfigError("pass either path= or url=, not both")
    url = url or (None if path else os.environ.get("ENGRAMDB_URL"))
    if url:
        if url.startswith(("postgresql://", "postgres://")):
            from ..store.postgres import PostgresStore

            return PostgresStore(url), None
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
        else:
            raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://...")
    from ..config import default_path
    from ..store.sqlite import SQLiteStore

    path = str(path or default_path())
    return SQLiteStore(path, read_only=read_only, synchronous=synchronous), (
        None if path == ":memory:" else path + ".usearch"
    )


WARMUP_SCOPE = "__engramdb_warmup__"


class Memory:
    """Long-term memory over one store. Thread-safe; use one instance per process.

    A facade: reads go to `Retrieval` (retrieve/pipeline.py), extraction, facts and forgetting to `Lifecycle`
    (lifecycle/service.py), trajectories and tips to `Procedures` (procedural/service.py); all of them share
    one `Resources` (the store, the configuration, the model, the vector index)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        url: str | None = None,
        embedder: str | Embedder | None = None,
        config: MemoryConfig | None = None,
        allow_model_change: bool = False,
        store: Store | None = None,
        read_only: bool | None = None,
    ) -> None:
        """`read_only`: serve reads only (SQLite); None opens read-only by itself when the file or its
        directory is not writable (read-only media)."""
        cfg = config or MemoryConfig()
        if embedder is not None and not isinstance(embedder, Embedder):
            cfg = cfg.model_copy(update={"embedder": embedder})
        cfg.retrieval_config()  # bad retrieval settings fail here, before a store is opened
        check_available(embedder if isinstance(embedder, Embedder) else cfg.embedder)  # a missing extra, too
        # `store=` takes an already-open backend (the server opens one per tenant, e.g. a Postgres schema).
        self.store, ann_path = (
            (store, None)
            if store is not None
            else open_store(path, url, read_only=read_only, synchronous=cfg.sqlite_synchronous)
        )
        self._res = Resources(
            self.store,
            cfg,
            embedder=embedder if isinstance(embedder, Embedder) else None,
            ann_path=ann_path,
            allow_model_change=allow_model_change,
        )
        try:
            self._res.check_model_name()
        except BaseException:
            self.store.close()
            raise
        self._lifecycle = Lifecycle(self._res)
        self.retrieval = Retrieval(self._res)  # public: benchmarks and the ranker's training read its pieces
        self._procedures = Procedures(ProceduralHost(self._res, self.add_records, self.update))

    # -- plumbing ----------------------------------------------------------------
    @property
    def config(self) -> MemoryConfig:
        return self._res.config

    @config.setter
    def config(self, value: MemoryConfig) -> None:
        """A new configuration for this instance (every service reads it from here)."""
        self._res.config = value

    @property
    def model_name(self) -> str:
        return self._res.model_name

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (CLI reads that never embed stay fast)."""
        return self._res.embedder

    @property
    def vectors(self) -> VectorIndex:
        return self._res.vectors

    @property
    def llm(self) -> LLMClient | None:
        """The configured LLM client, or None (the default: no LLM)."""
        return self._res.llm

    def set_llm(self, llm: LLMClient | LLMConfig | None) -> None:
        """Use this LLM (or none) for extraction, update judging and summaries."""
        self._res.set_llm(llm)

    @cached_property
    def privacy(self) -> PrivacyEngine:
        """Sensitivity labels, secrets, disclosure policies, the audit log and shared spaces (docs/privacy.md)."""
        return PrivacyEngine(self)

    def warmup(self) -> None:
        """Load now what the first search or write would: the embedding model and its fast query copy (ONNX
        Runtime), the vector index, the learned ranker, the score calibration, the sensitivity prototypes and
        the fact extractor.
        Servers call it before they report ready, so no request pays for a load. It adds no memories."""
        from ..retrieve.calibrate import load_calibration
        from ..retrieve.ranker import load_ranker

        emb = self.embedder
        for _ in range(2 if emb.has_tokens else 1):  # a local model builds its query copy on its second small run
            emb.embed_tokens(["warm up"])
        _ = self.vectors
        rc = self.config.retrieval_config()
        if rc.ranker == "learned":
            load_ranker(rc.ranker_path, late=True)
            load_ranker(rc.ranker_path, late=False)
        load_calibration()
        if self.privacy.config.labels != "off":  # the sensitivity prototypes a first write would embed
            from ..privacy.labels import warm

            warm(emb)
        from ..extract.rules import RuleExtractor

        RuleExtractor()  # the fact extractor's patterns, compiled on import: a first write would pay for them
        self.search("warm up", user_id=WARMUP_SCOPE, limit=1)  # a scope nobody uses: the code paths, no results

    def close(self) -> None:
        self._res.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- write -------------------------------------------------------------------
    def add(
        self,
        messages: str | dict[str, Any] | Sequence[str | dict[str, Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        kind: str = EPISODE,
        source_ref: str | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = None,
    ) -> list[MemoryRecord]:
        """Store one or more turns as memories, in one transaction. Returns the new records."""
        P.check_call(P.AddOptions, {"user_id": user_id, "agent_id": agent_id, "session_id": session_id,
                                    "timestamp": timestamp, "metadata": metadata, "kind": kind,
                                    "source_ref": source_ref, "importance": importance, "expires_at": expires_at})
        scope = check_scope(user_id, agent_id, session_id, required=True)
        turns = normalize(messages, max_chars=self.config.max_text_chars)
        try:
            kind = check_kind(kind)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        base_meta = check_metadata(metadata)
        when = parse_time(timestamp, field="timestamp")
        expires = parse_time(expires_at, field="expires_at")
        source_ref = check_id(source_ref, where="source_ref")
        recorded = now()
        records = [
            MemoryRecord(
                **scope,
                kind=kind,
                text=t.text,
                speaker=t.speaker,
                role=t.role,
                metadata={**base_meta, **t.metadata},
                occurred_at=t.occurred_at or when or recorded,
                recorded_at=recorded,
                valid_from=(t.occurred_at or when or recorded) if kind != EPISODE else None,
                expires_at=expires,
                source_ref=t.source_ref or source_ref,  # a batch-level ref (e.g. a dialogue id) applies to every turn
                importance=0.5 if importance is None else float(importance),
            )
            for t in turns
        ]
        records = self._lifecycle.with_time_refs(records)  # resolved relative times, stored alongside
        return self._lifecycle.after_add(self.add_records(records))  # + fact extraction

    def add_records(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Insert prepared records (embedding them in batches) in one transaction."""
        if not isinstance(records, (list, tuple)) or not all(isinstance(r, MemoryRecord) for r in records):
            raise ValidationError("add_records: expected a list of MemoryRecord (use add() for text and messages)")
        if not records:
            return []
        records = self.privacy.prepare(list(records))  # secrets out, visibility checked (privacy/engine.py)
        index_texts, vecs, tokens = self._res.keys(records)  # before the transaction: a model failure writes nothing
        self.privacy.label(records, vecs)  # sensitivity labels, from the vectors just made
        with self.store.transaction():
            self._res.check_store_model()  # inside the write lock: no reindex can commit between check and insert
            self.store.insert(records, vecs, index_texts, tokens=tokens)
        return records

    def update(
        self,
        memory_id: str,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = None,
        occurred_at: datetime | str | None = None,
        valid_to: datetime | str | None = None,
        clear: Sequence[str] | None = None,
    ) -> MemoryRecord:
        """Change a memory; the old version goes to history. Returns the new version. A time left as None is
        kept; `clear` empties one: "expires_at" (the memory no longer expires), "valid_to" (a fact closed by
        mistake holds again)."""
        P.check_call(P.UpdateRequest, {"text": text, "metadata": metadata, "importance": importance,
                                       "expires_at": expires_at, "occurred_at": occurred_at, "valid_to": valid_to,
                                       "clear": clear if isinstance(clear, str) or clear is None else list(clear)},
                     max_text_chars=self.config.max_text_chars)
        rec = self._require(memory_id)  # no access count: a rejected update must change nothing
        changes: dict[str, Any] = {}
        if text is not None:
            changes["text"] = check_text(text, max_chars=self.config.max_text_chars)
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        if importance is not None:
            changes["importance"] = float(importance)
        if expires_at is not None:
            changes["expires_at"] = parse_time(expires_at, field="expires_at")
        if occurred_at is not None:
            changes["occurred_at"] = parse_time(occurred_at, field="occurred_at")
        if valid_to is not None:
            changes["valid_to"] = parse_time(valid_to, field="valid_to")
        for name in clear or ():
            changes[name] = None
        new = rec.model_copy(update=changes)
        if "text" in changes or "metadata" in changes:  # the new text's secrets and labels
            keep = "metadata" in changes and "sensitivity" in changes["metadata"]
            new = self.privacy.label(self.privacy.prepare([new], relabel=not keep, previous=rec))[0]
        vector = index_text = tokens = None
        if "text" in changes:
            index_texts, vecs, toks = self._res.keys([new])
            index_text, vector, tokens = index_texts[0], vecs[0], toks[0]
        with self.store.transaction():
            if vector is not None:
                self._res.check_store_model()
            self.store.update(new, vector=vector, index_text=index_text, tokens=tokens)
        if "text" in changes and new.kind == EPISODE:
            self._lifecycle.rederive(new)  # its facts follow the new text
        return self._require(memory_id)

    def delete(self, memory_id: str) -> None:
        """Soft-delete: the memory disappears from reads; history keeps it. What was derived from it alone
        (facts, summaries) is retracted with it, and a fact it had replaced is current again."""
        from ..lifecycle.forget import forget_ids

        self._require(memory_id)
        forget_ids(self.store, [memory_id], cascade=True, action="delete")

    # -- read --------------------------------------------------------------------
    def get(self, memory_id: str) -> MemoryRecord:
        rec = self._require(memory_id)
        if self.config.track_access:
            self.store.touch([memory_id], now())
        return rec

    def _require(self, memory_id: object) -> MemoryRecord:
        """The live record with this id, or a clear error; reads only."""
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError(f"memory id must be a non-empty string, got {memory_id!r}")
        got = self.store.get([memory_id])
        if not got:
            raise NotFoundError(f"no memory with id {memory_id!r}")
        if got[0].expires_at is not None and got[0].expires_at <= now():  # TTL: expired reads as gone
            raise NotFoundError(f"memory {memory_id!r} has expired")
        return got[0]

    def list(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        kinds: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int = 50,
        offset: int = 0,
        order: str = "occurred_at",
        count: bool = True,
        audience: str | dict[str, str] | None = None,
    ) -> Page:
        """A page of memories. `count=False` skips counting the matches (a scan of every row on a large store
        without a scope): `total` is then -1, and `next_offset` comes from reading one row past the page.
        `audience=`: as in `search`, the page holds only what the disclosure policies let it see (redacted
        where a policy redacts), each item served is audited, and `total` is -1 (a count would tell it how
        many it may not see); a page may then hold fewer than `limit` items while `next_offset` goes on."""
        if not is_int(limit) or not 1 <= limit <= P.MAX_PAGE:
            raise ValidationError(f"limit must be an integer between 1 and {P.MAX_PAGE}")
        if not is_int(offset) or not 0 <= offset <= P.MAX_OFFSET:
            raise ValidationError(f"offset must be an integer between 0 and {P.MAX_OFFSET}")
        if not isinstance(order, str):
            raise ValidationError(f"order: expected a string, got {type(order).__name__}")
        if order not in LIST_ORDERS:  # the store's TIP_ORDER is list_tips'
            raise ValidationError(f"order must be one of {sorted(LIST_ORDERS)}")
        f = make_filters(user_id, agent_id, session_id, kinds, since, until, filters)
        if audience is not None:
            count = False
        try:
            items = self.store.list(f, limit=limit + (0 if count else 1), offset=offset, order=order)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if not count:
            more = len(items) > limit
            items = items[:limit]
            nxt = offset + len(items) if more else None
            if audience is not None:
                items = self.privacy.disclose_records(items, audience, op="list")
            return Page(items=items, total=-1, offset=offset, next_offset=nxt)
        total = self.store.count(f)
        nxt = offset + len(items)
        return Page(items=items, total=total, offset=offset, next_offset=nxt if nxt < total else None)

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        kinds: Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        mode: str = "default",
        as_of: datetime | str | None = None,
        order: str = "relevance",
        threshold: float | None = None,
        audience: str | dict[str, str] | None = None,
    ) -> builtins.list[SearchResult]:
        """Hybrid search. `filters` matches metadata keys by equality; `since`/`until` bound occurred_at.

        What is true now comes first: each hit says whether it is `current` and what `superseded_by`, and a
        question about the present puts the current facts and newest statements of what it asks about first
        (docs/lifecycle.md, "The current truth"). Questions about the past also find superseded facts;
        `as_of=` answers what was valid (and said) at that time. `threshold=` drops hits scored below it.
        `audience=` (an agent id, "purpose:<label>" or both as a dict) gets only what the disclosure policies let
        it see, and each hit served is audited; None: the caller owns the data (docs/privacy.md).
        The arguments are those of `api.params.SearchQuery`, validated through it."""
        P.check_call(P.SearchQuery, {"query": query, "user_id": user_id, "agent_id": agent_id,
                                     "session_id": session_id, "limit": limit, "filters": filters, "kinds": kinds,
                                     "since": since, "until": until, "mode": mode, "as_of": as_of, "order": order,
                                     "threshold": threshold}, max_text_chars=self.config.max_text_chars)
        results = self.retrieval.search(query, user_id=user_id, agent_id=agent_id, session_id=session_id,
                                        limit=limit, filters=filters, kinds=kinds, since=since, until=until, mode=mode,
                                        as_of=as_of, order=order)
        results = P.above_threshold(results, threshold)
        return results if audience is None else self.privacy.disclose(results, audience)

    def context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        max_tokens: int = 1000,
        limit: int = 50,
        filters: dict[str, Any] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        as_of: datetime | str | None = None,
        threshold: float | None = None,
        hits: builtins.list[SearchResult] | None = None,
        audience: str | dict[str, str] | None = None,
    ) -> ContextBlock:
        """A prompt-ready block within `max_tokens`: the current facts that answer the query first, then the
        most relevant memories, oldest first. A query with no time cue is read as about the present here.

        `hits`: a list that receives the search results the block was packed from (the web UI's recall trace
        shows them beside the block without searching twice). `threshold=`: memories scored below it are left
        out. `audience=`: as in `search`, enforced before the block is packed. The other arguments are those of
        `api.params.ContextQuery`, validated through it."""
        P.check_call(P.ContextQuery, {"query": query, "user_id": user_id, "agent_id": agent_id,
                                      "session_id": session_id, "max_tokens": max_tokens, "limit": limit,
                                      "filters": filters, "since": since, "until": until, "as_of": as_of,
                                      "threshold": threshold}, max_text_chars=self.config.max_text_chars)
        if audience is not None:
            return self.privacy.context(query, audience, user_id=user_id, agent_id=agent_id, session_id=session_id,
                                        max_tokens=max_tokens, limit=limit, filters=filters, since=since,
                                        until=until, as_of=as_of, threshold=threshold, hits=hits)
        return self.retrieval.context(query, user_id=user_id, agent_id=agent_id, session_id=session_id,
                                      max_tokens=max_tokens, limit=limit, filters=filters, since=since, until=until,
                                      as_of=as_of, threshold=threshold, hits=hits)

    def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list:
        """Every change to a memory, oldest first; `limit=`: only the newest `limit` changes (still oldest
        first). A memory changed on every use (a tip counts each time it is served) can have thousands."""
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError(f"memory id must be a non-empty string, got {memory_id!r}")
        if limit is not None and (not is_int(limit) or not 1 <= limit <= P.MAX_PAGE):
            raise ValidationError(f"limit must be an integer between 1 and {P.MAX_PAGE}")
        entries = self.store.history(memory_id, limit=limit)
        if not entries:
            raise NotFoundError(f"no memory with id {memory_id!r}")
        return entries

    # -- browsing (what the web UI reads) ----------------------------------------------
    def version(self) -> int:
        """A number that changes with every write to the store, from any process: caches compare against it."""
        return self.store.data_version()

    def records(self, ids: Sequence[str], *, include_deleted: bool = False) -> builtins.list[MemoryRecord]:
        """Records by id, in the order asked (unknown ids are skipped), without counting an access: a person
        looking at a memory is not a recall."""
        if not isinstance(ids, (list, tuple)):
            raise ValidationError("ids must be a list of memory ids")
        wanted = [check_id(i, where="memory id") for i in ids]
        got = {r.id: r for r in self.store.get([i for i in wanted if i], include_deleted=include_deleted)}
        return [got[i] for i in wanted if i in got]

    def links(self, memory_id: str) -> builtins.list[dict[str, Any]]:
        """Typed edges touching a memory in both directions (supersedes, summarizes, related, ...)."""
        check_id(memory_id, where="memory id")
        return [
            {"src_id": lk.src_id, "dst_id": lk.dst_id, "type": lk.type, "reason": lk.reason,
             "created_at": lk.created_at}
            for lk in self.store.links(memory_id)
        ]

    def derived(self, memory_id: str, *, limit: int = 200) -> builtins.list[MemoryRecord]:
        """Memories derived from this one: facts, summaries and profiles of its scope that name it in
        `source_ids`, and summaries that link to it. Superseded and forgotten ones included."""
        rec = self.records([memory_id], include_deleted=True)
        if not rec:
            raise NotFoundError(f"no memory with id {memory_id!r}")
        r = rec[0]
        f = Filters(user_id=r.user_id, agent_id=r.agent_id, kinds=["fact", "summary", "profile"],
                    include_deleted=True, include_expired=True)
        out = {d.id: d for d in self.store.list(f, limit=5000, order="-recorded_at") if memory_id in d.source_ids}
        linked = [lk.src_id for lk in self.store.links(memory_id, type="summarizes", direction="in")]
        out.update({d.id: d for d in self.store.get([i for i in linked if i not in out], include_deleted=True)})
        return sorted(out.values(), key=lambda d: (d.recorded_at or now(), d.id))[:limit]

    def scopes(
        self,
        field: str = "user_id",
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> tuple[int, builtins.list[tuple[str, int]]]:
        """(how many distinct `field` values, the `limit` busiest with their memory counts) for user_id,
        agent_id or session_id, among live memories."""
        if field not in ("user_id", "agent_id", "session_id"):
            raise ValidationError("field must be user_id, agent_id or session_id")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError("limit must be an integer between 1 and 10000")
        f = make_filters(user_id, agent_id, None, kinds, None, None, None)
        return self.store.scope_counts(field, f, limit)

    def growth(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        period: str = "month",
    ) -> builtins.list[tuple[str, int]]:
        """Live memories per month ('YYYY-MM') or day of occurred_at (UTC), oldest first."""
        if period not in ("month", "day"):
            raise ValidationError("period must be month or day")
        return self.store.period_counts(make_filters(user_id, agent_id, session_id, None, None, None, None), period)

    def stats(self) -> dict[str, Any]:
        out = self.store.stats()
        out["embed_model"] = self.store.get_meta("embed_model")
        out["embed_dim"] = int(self.store.get_meta("embed_dim") or 0) or None
        out.update(self.lifecycle_stats())
        return out

    # -- maintenance -------------------------------------------------------------
    def reindex(self, *, progress: Progress | None = None, batch: int = 256) -> int:
        """Re-embed and re-key every memory with the current model (after a model change)."""
        if progress is not None and not callable(progress):
            raise ValidationError("progress must be a function (done, total) or None")
        if not is_int(batch) or not 1 <= batch <= 10_000:
            raise ValidationError("batch must be an integer between 1 and 10000")
        emb = self.embedder
        f = Filters(include_deleted=True, include_expired=True)
        total = self.store.count(f)
        done = 0
        if self.store.supports_staged_reindex:
            done = self._reindex_staged(emb, total, progress, batch)
        else:
            done = self._reindex_in_place(emb, f, total, progress, batch)
        self._res.allow_model_change = False
        self._res.drop_vectors()
        if self._res.ann_path:
            for p in (self._res.ann_path, self._res.ann_path + ".json"):
                if os.path.exists(p):
                    os.remove(p)
        return done

    def _reindex_staged(self, emb: Embedder, total: int, progress: Progress | None, batch: int) -> int:
        """New vectors go beside the live ones, one short transaction per batch, and are swapped in at the end
        (store.reindex_*): searches meanwhile use the old, complete vector space, and writers wait at most a
        batch. Rows written meanwhile are picked up by the sweep before the swap."""
        self.store.reindex_begin(emb.name)
        done, after, final = 0, 0, min(REINDEX_FINAL_ROWS, batch)
        while True:
            page = self.store.reindex_todo(after, batch)
            if page:
                index_texts, vecs, tokens = self._res.keys([r for _, r in page])
                self.store.reindex_stage([k for k, _ in page], index_texts, vecs, tokens=tokens)
                after = page[-1][0]
                done += len(page)
                if progress:
                    progress(min(done, total), total)
                if len(page) == batch and done < total:
                    continue
            # End of a sweep: a short page, or as many rows as the store had at the start (a steady writer may
            # never let a page come back empty or short). The last few rows written meanwhile are embedded inside
            # the swap's transaction; more than `final` go back to a sweep outside the lock, and `final` doubles
            # on each retry, so even a writer faster than the model cannot keep the reindex from finishing.
            # Small at first, so a concurrent writer usually waits well under 1 s.
            with self.store.transaction():
                rest = self.store.reindex_todo(0, final + 1)
                if len(rest) <= final:
                    if rest:
                        index_texts, vecs, tokens = self._res.keys([r for _, r in rest])
                        self.store.reindex_stage([k for k, _ in rest], index_texts, vecs, tokens=tokens)
                        done += len(rest)
                    if self.store.reindex_commit(emb.name, emb.dim):
                        return done
            final *= 2
            after = 0

    def _reindex_in_place(
        self, emb: Embedder, f: Filters, total: int, progress: Progress | None, batch: int
    ) -> int:
        done = 0
        with self.store.transaction():
            offset = 0
            while True:
                page = self.store.list(f, limit=batch, offset=offset, order="recorded_at")
                if not page:
                    break
                index_texts, vecs, tokens = self._res.keys(page)
                self.store.replace_keys([r.id for r in page], index_texts, vecs, tokens=tokens)
                offset += len(page)
                done += len(page)
                if progress:
                    progress(done, total)
            self.store.set_meta("embed_model", emb.name)
            self.store.set_meta("embed_dim", str(emb.dim))
        return done

    # -- export / import ---------------------------------------------------------
    def export(
        self,
        out: str | os.PathLike[str] | IO[str],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        include_embeddings: bool = True,
        include_deleted: bool = True,
    ) -> int:
        """Write memories as JSONL (one record per line, with history); returns the count."""
        from .jsonl import export_jsonl

        return export_jsonl(
            self,
            out,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            include_embeddings=include_embeddings,
            include_deleted=include_deleted,
        )

    def import_(
        self,
        src: str | os.PathLike[str] | IO[str] | Iterable[str],
        *,
        recompute_embeddings: bool = False,
        skip_bad: bool = False,
        progress: Progress | None = None,
    ):  # returns ImportReport
        """Read JSONL written by `export`. Every line is checked before anything is written; then memories are
        written in transactions of 500, each all or nothing. `skip_bad` skips invalid lines and ids already here."""
        from .jsonl import import_jsonl

        # The flags go through `api.params.ImportRequest`; the records come from a file of any size here (REST
        # caps a body's), so each line is checked by import_jsonl instead: `{}` stands in for them.
        P.check_call(P.ImportRequest, {"records": [{}], "recompute_embeddings": recompute_embeddings,
                                       "skip_bad": skip_bad})

        return import_jsonl(self, src, recompute_embeddings=recompute_embeddings, skip_bad=skip_bad, progress=progress)

    # -- lifecycle (lifecycle/service.py) -------------------------------------------
    def pending_extraction(self) -> int:
        """Episodes not yet through extraction."""
        return self._lifecycle.pending_extraction()

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
        P.check_call(P.ExtractRequest, {"episode_ids": episode_ids, "extractor": extractor})
        return self._lifecycle.extract(episode_ids=episode_ids, extractor=extractor, batch=batch, progress=progress)

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
    ) -> builtins.list[MemoryRecord]:
        """Structured facts: current ones by default; `as_of` = those valid then; `include_history` = all."""
        q = P.check_call(P.FactsQuery, {"user_id": user_id, "agent_id": agent_id, "subject": subject,
                                        "attribute": attribute, "as_of": as_of, "include_history": include_history,
                                        "limit": limit})
        return self._lifecycle.facts(user_id=user_id, agent_id=agent_id, subject=subject, attribute=attribute,
                                     as_of=as_of, include_history=include_history, limit=q.limit)

    def fact_history(self, fact_id: str) -> builtins.list[MemoryRecord]:
        """The chain of values a fact went through (oldest first), following supersedes/invalidates links."""
        return self._lifecycle.fact_history(fact_id)

    def consolidate(self, *, progress: Callable[[str, int, int], None] | None = None) -> ConsolidateReport:
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links.
        Incremental, idempotent and safe to interrupt (see docs/lifecycle.md)."""
        return self._lifecycle.consolidate(progress=progress)

    def expire(self, *, at: datetime | str | None = None) -> int:
        """Soft-delete memories whose expires_at has passed (reads already hide them)."""
        P.check_call(P.ExpireRequest, {"at": at})
        return self._lifecycle.expire(at=at)

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
        # The model has no positional id: it is one more of `ids`. A filter of only 'kind' selects by kind
        # (check_call leaves kinds to make_filters), so it is not an empty filter.
        P.check_call(P.ForgetRequest, {
            "ids": [memory_id, *(ids or [])] if memory_id is not None and not isinstance(ids, str) else ids,
            "user_id": user_id, "agent_id": agent_id, "session_id": session_id, "kinds": kinds,
            "filters": None if isinstance(filters, dict) and filters and set(filters) <= {"kind"} else filters,
            "before": before, "cascade": cascade})
        return self._lifecycle.forget(memory_id, ids=ids, user_id=user_id, agent_id=agent_id, session_id=session_id,
                                      kinds=kinds, filters=filters, before=before, cascade=cascade)

    def purge(self, *, user_id: str | None = None, agent_id: str | None = None) -> PurgeReport:
        """Hard delete EVERY trace of a user (or agent): rows, keyword index, vectors, ANN sidecar, links,
        history, derived memories (in any scope), then VACUUM and a WAL checkpoint. Irreversible."""
        return self._lifecycle.purge(user_id=user_id, agent_id=agent_id)

    def erase(
        self,
        ids: Sequence[str] | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> int:
        """Hard delete exactly these ids and/or every memory of a scope (forgotten and expired ones too), with
        their history and vectors; returns how many were erased. Irreversible. Unlike `purge` it leaves what was
        derived from them elsewhere and does not compact the file."""
        scope = check_scope(user_id, agent_id, session_id, required=False)
        if ids is None and not any(scope.values()):
            raise ValidationError("erase needs ids or a scope (user_id, agent_id, session_id)")
        if ids is not None and (isinstance(ids, str) or not isinstance(ids, Sequence)):
            raise ValidationError("ids: expected a list of memory ids")
        wanted = [i for i in (check_id(i, where="memory id") for i in ids or []) if i]
        chosen = [r.id for r in self.store.get(wanted, include_deleted=True)] if wanted else []
        if any(scope.values()):
            f = Filters(**scope, include_deleted=True, include_expired=True)
            found: list[str] = []
            while page := self.store.list(f, limit=1000, offset=len(found), order="recorded_at"):
                found.extend(r.id for r in page)
            chosen = list(dict.fromkeys(chosen + found))
        erased = 0
        with self.store.transaction():
            for i in range(0, len(chosen), 500):
                erased += self.store.hard_delete(chosen[i : i + 500])
        self._res.drop_vectors()  # the in-memory vector copy still holds them: rebuilt on next use
        return erased

    def decay_scores(
        self, *, user_id: str | None = None, agent_id: str | None = None, limit: int = 1000
    ) -> builtins.list[tuple[str, float]]:
        """(id, decay score) for memories the decay policy covers, lowest first."""
        return self._lifecycle.decay_scores(user_id=user_id, agent_id=agent_id, limit=limit)

    def archive_decayed(self) -> int:
        """Soft-delete (action 'archive') memories under the policy's archive_below. No-op when decay is off."""
        return self._lifecycle.archive_decayed()

    def lifecycle_stats(self) -> dict[str, Any]:
        """Lifecycle counters (extraction, facts, consolidation) and LLM usage."""
        return self._lifecycle.stats()

    # -- procedural memory (procedural/service.py) -------------------------------------
    def add_trajectory(
        self,
        task: str | dict[str, Any] | builtins.list[Any],
        steps: Sequence[Any] | None = None,
        outcome: str | None = None,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        metrics: dict[str, Any] | None = None,
        format: str = "auto",
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        source_ref: str | None = None,
        embed_steps: bool = False,
    ) -> Trajectory:
        """Store one trajectory. Either `task` (a string) with `steps` and `outcome`, or `task` is framework JSON
        (native dict, OpenAI/Anthropic message list, LangChain intermediate steps) and `outcome` is given here
        if the data lacks it. Returns the trajectory with its stored ids."""
        # The options are those of one run of `add_trajectories` (the run itself is parsed from task/steps).
        _check_trajectories([{}], user_id, agent_id, session_id, metadata, source_ref, embed_steps)
        return self._procedures.add_trajectory(
            task, steps, outcome, user_id=user_id, agent_id=agent_id, session_id=session_id, metrics=metrics,
            format=format, timestamp=timestamp, metadata=metadata, source_ref=source_ref, embed_steps=embed_steps)

    def add_trajectories(
        self,
        trajectories: Sequence[Trajectory | dict[str, Any] | builtins.list[Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        source_ref: str | None = None,
        embed_steps: bool = False,
    ) -> builtins.list[Trajectory]:
        """Store many trajectories in one transaction (all checked first: one bad one writes nothing).
        Headers are embedded; steps are keyword-indexed, and embedded too with `embed_steps=True`."""
        _check_trajectories(trajectories, user_id, agent_id, session_id, metadata, source_ref, embed_steps)
        return self._procedures.add_trajectories(
            trajectories, user_id=user_id, agent_id=agent_id, session_id=session_id, timestamp=timestamp,
            metadata=metadata, source_ref=source_ref, embed_steps=embed_steps)

    def trajectories(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        ids: builtins.list[str] | None = None,
        audience: str | dict[str, str] | None = None,
    ) -> builtins.list[Trajectory]:
        """Stored trajectories in scope, rebuilt with their steps and step ids. `audience=`: only the
        trajectories whose header and every step the disclosure policies let it receive in full, audited."""
        got = self._procedures.trajectories(user_id=user_id, agent_id=agent_id, session_id=session_id, ids=ids)
        return got if audience is None else self.privacy.disclose_trajectories(got, audience)

    def learn_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        min_support: int = 2,
        validator: Any = None,
        llm: Any = None,
        merge_threshold: float | None = 0.92,
    ) -> LearnReport:
        """Mine tips from every stored trajectory in scope (rules; plus `llm` if given: an engramdb.llm.LLMClient
        or a callable prompt -> JSON), validate, merge with the tips already stored, and consolidate."""
        q = P.check_call(P.LearnRequest, {"user_id": user_id, "agent_id": agent_id, "session_id": session_id,
                                          "min_support": min_support, "merge_threshold": merge_threshold})
        return self._procedures.learn_tips(
            user_id=user_id, agent_id=agent_id, session_id=session_id, min_support=q.min_support, validator=validator,
            llm=llm, merge_threshold=merge_threshold)

    def tips(
        self,
        task_description: str,
        *,
        tools: Sequence[str] | None = None,
        errors: Sequence[str] | None = None,
        limit: int = 5,
        types: Sequence[str] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        track: bool = True,
        audience: str | dict[str, str] | None = None,
    ) -> Guidance:
        """Tips for a new task, by task similarity, the tools at hand and the errors being seen; `.text` is a
        prompt-ready block and `.tip_ids` what to pass to `report_outcome`. Counts each tip as served.
        `audience=`: only tips the disclosure policies let it receive in full are ranked and served (a tip a
        policy would redact is withheld: its lesson is in its fields too), and each one served is audited."""
        q = P.check_call(P.TipsQuery, {"task_description": task_description, "tools": tools, "errors": errors,
                                       "limit": limit, "types": types, "user_id": user_id, "agent_id": agent_id,
                                       "session_id": session_id}, max_text_chars=self.config.max_text_chars)
        keep = None if audience is None else self.privacy.tip_filter(audience)
        guidance = self._procedures.tips(
            task_description, tools=tools, errors=errors, limit=q.limit, types=types, user_id=user_id,
            agent_id=agent_id, session_id=session_id, track=track, keep=keep)
        if audience is not None:
            self.privacy.audit_ids(guidance.tip_ids, audience, "tips")
        return guidance

    def report_outcome(self, tip_ids: Sequence[str], outcome: str, *, validator: Any = None) -> builtins.list[Tip]:
        """Close the loop: what happened on the task the tips were served for (success, failure or partial).
        Tips whose utility falls are retired when the validator agrees. Returns the updated tips."""
        from ..procedural.model import normalize_outcome

        try:  # Python also takes the aliases ('failed', True...); what none of them is gets the model's message
            spelled = normalize_outcome(outcome)
        except ValueError:
            spelled = outcome
        P.check_call(P.OutcomeRequest, {"tip_ids": tip_ids, "outcome": spelled})
        return self._procedures.report_outcome(tip_ids, outcome, validator=validator)

    def tip_provenance(self, tip_id: str) -> dict[str, Any]:
        """The tip, the exact step episodes it was drawn from, and their trajectories."""
        return self._procedures.tip_provenance(tip_id)

    def list_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        status: str | None = "active",
        tip_type: str | None = None,
        order: str = "recorded_at",
        limit: int | None = None,
        offset: int = 0,
        audience: str | dict[str, str] | None = None,
    ) -> builtins.list[Tip]:
        """Stored tips in scope: active ones by default, `status="retired"` or None for both; `tip_type=` one
        type (strategy, recovery, optimization, warning). `order`: "recorded_at" (oldest first), "-recorded_at"
        or "-utility" (most useful first: utility, then support, then text). `limit`/`offset`: one page (every
        tip when `limit` is None); `count_tips` counts the same selection. `audience=`: as in `tips`, only those
        it may receive in full, audited (a page may then hold fewer than `limit`)."""
        if limit is not None and (not is_int(limit) or not 1 <= limit <= P.MAX_PAGE):
            raise ValidationError(f"limit must be an integer between 1 and {P.MAX_PAGE}")
        if not is_int(offset) or not 0 <= offset <= P.MAX_OFFSET:
            raise ValidationError(f"offset must be an integer between 0 and {P.MAX_OFFSET}")
        got = self._procedures.list_tips(user_id=user_id, agent_id=agent_id, session_id=session_id, status=status,
                                         tip_type=tip_type, order=order, limit=limit, offset=offset)
        if audience is None:
            return got
        ok = self.privacy.audit_ids([t.id for t in got if t.id], audience, "tips")
        return [t for t in got if t.id in ok]

    def count_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        status: str | None = "active",
        tip_type: str | None = None,
    ) -> int:
        """How many tips `list_tips` would list with the same arguments (one count query, no tip is read)."""
        return self._procedures.count_tips(user_id=user_id, agent_id=agent_id, session_id=session_id,
                                           status=status, tip_type=tip_type)


def _check_trajectories(trajectories: Any, user_id: str | None, agent_id: str | None, session_id: str | None,
                        metadata: Any, source_ref: str | None, embed_steps: bool) -> None:
    """Through `api.params.TrajectoriesRequest`, which has no `timestamp` (procedural/engine.py parses it) and
    takes JSON: a `Trajectory` object stands in as `{}`, its fields were checked when it was made."""
    from ..procedural.model import Trajectory

    runs = ([{} if isinstance(t, Trajectory) else t for t in trajectories]
            if isinstance(trajectories, (list, tuple)) else trajectories)
    P.check_call(P.TrajectoriesRequest, {"trajectories": runs, "user_id": user_id, "agent_id": agent_id,
                                         "session_id": session_id, "metadata": metadata, "source_ref": source_ref,
                                         "embed_steps": embed_steps})


