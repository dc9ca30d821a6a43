"""`Memory`: the synchronous public API. Everything else (CLI, REST, MCP, the
async twin, the benchmarks) goes through this class.

Three lines to long-term memory:

    from engramdb import Memory
    mem = Memory("agent.db")
    mem.add("I moved to Berlin last month", user_id="alice")
    mem.search("where does alice live?", user_id="alice")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import IO, Any

from pydantic import BaseModel

from ..config import MemoryConfig
from ..embed import make_embedder
from ..embed.base import Embedder
from ..embed.packs import canonical_name
from ..errors import ConfigError, ModelMismatchError, NotFoundError, ValidationError
from ..index.vector import VectorIndex
from ..ingest.keys import compute_keys
from ..ingest.normalize import check_id, check_metadata, check_text, normalize
from ..model import EPISODE, MemoryRecord, SearchResult, check_kind
from ..retrieve.context import ContextBlock, assemble, mark_said_before
from ..retrieve.search import Retriever
from ..retrieve.tokens import get_counter
from ..store.base import Filters, Store
from ..timeutil import now, parse_time
from .lifecycle import LifecycleMixin
from .procedural import ProceduralMixin

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


class Memory(LifecycleMixin, ProceduralMixin):
    """Long-term memory over one store. Thread-safe; use one instance per process."""

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
        self.config = config or MemoryConfig()
        if embedder is not None and not isinstance(embedder, Embedder):
            self.config = self.config.model_copy(update={"embedder": embedder})
        self.config.retrieval_config()  # bad retrieval settings fail here, before a store is opened
        # `store=` takes an already-open backend (the server opens one per tenant, e.g. a Postgres schema).
        self.store, self._ann_path = (
            (store, None)
            if store is not None
            else open_store(path, url, read_only=read_only, synchronous=self.config.sqlite_synchronous)
        )
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._vectors: VectorIndex | None = None
        self._allow_model_change = allow_model_change
        try:
            self._check_model_name()
        except BaseException:
            self.store.close()
            raise

    # -- plumbing ----------------------------------------------------------------
    @property
    def model_name(self) -> str:
        if self._embedder is not None:
            return self._embedder.name
        spec = self.config.embedder
        return canonical_name(spec)

    def _check_model_name(self) -> None:
        stored = self.store.get_meta("embed_model")
        # canonical names on both sides: a store made as 'sentence-transformers/all-mpnet-base-v2' opens as
        # 'all-mpnet-base-v2'
        if stored and canonical_name(stored) != canonical_name(self.model_name) and not self._allow_model_change:
            raise ModelMismatchError(
                f"this store was embedded with {stored!r} (dim {self.store.get_meta('embed_dim')}), "
                f"but it was opened with {self.model_name!r}. Open it with the same model, or re-embed "
                f"everything: engramdb reindex --model {self.model_name}"
            )

    def _check_store_model(self) -> None:
        """The store's model, read now: another process may have re-indexed it to another model since this one
        opened (same dimension or not). Mixing two vector spaces is refused, never done silently."""
        stored = self.store.get_meta("embed_model")
        if stored and canonical_name(stored) != canonical_name(self.embedder.name):
            raise ModelMismatchError(
                f"this store is now embedded with {stored!r} (re-indexed since it was opened here?), "
                f"but this Memory embeds with {self.embedder.name!r}; reopen it with {stored!r}"
            )

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (CLI reads that never embed stay fast)."""
        if self._embedder is None:
            self._embedder = make_embedder(self.config.embedder)
        emb = self._embedder
        stored_dim = self.store.get_meta("embed_dim")
        if stored_dim is None:
            with self.store.transaction():
                self.store.set_meta("embed_model", emb.name)
                self.store.set_meta("embed_dim", str(emb.dim))
        elif int(stored_dim) != emb.dim and not self._allow_model_change:
            raise ModelMismatchError(
                f"this store holds {stored_dim}-d vectors but {emb.name!r} makes {emb.dim}-d ones; "
                f"run: engramdb reindex --model {emb.name}"
            )
        return emb

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = VectorIndex(
                self.store,
                self.embedder.dim,
                ann_path=self._ann_path,
                exact_max=self.config.exact_max,
                model_name=self.embedder.name,
            )
        return self._vectors

    def _keys(self, records: list[MemoryRecord]) -> tuple[list[str], Any, list[Any]]:
        """Index texts, vectors and token vectors for records written together (ingest.keys decides what they
        hold)."""
        rc = self.config.retrieval_config()
        return compute_keys(records, self.embedder, self.store, context=rc.context_keys, dates=rc.date_keys,
                            tokens=rc.late_interaction)  # off: searches will not read them, so none are stored

    def _retriever(self) -> Retriever:
        self._check_store_model()  # a query embedded with another model than the stored vectors ranks noise
        return Retriever(self.store, self.vectors, self.embedder, self.config.retrieval_config())

    def close(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
        self.store.close()

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
        scope = _scope(user_id, agent_id, session_id, required=True)
        turns = normalize(messages, max_chars=self.config.max_text_chars)
        try:
            kind = check_kind(kind)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        base_meta = check_metadata(metadata)
        when = parse_time(timestamp, field="timestamp")
        expires = parse_time(expires_at, field="expires_at")
        source_ref = check_id(source_ref, where="source_ref")
        if importance is not None and (not _is_number(importance) or not 0 <= importance <= 1):
            raise ValidationError("importance must be a number between 0 and 1")
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
        records = self._with_time_refs(records)  # resolved relative times, stored alongside (api/lifecycle.py)
        return self._after_add(self.add_records(records))  # + fact extraction (api/lifecycle.py)

    def add_records(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Insert prepared records (embedding them in batches) in one transaction."""
        if not records:
            return []
        index_texts, vecs, tokens = self._keys(records)  # before the transaction: a model failure writes nothing
        with self.store.transaction():
            self._check_store_model()  # inside the write lock: no reindex can commit between check and insert
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
    ) -> MemoryRecord:
        """Change a memory; the old version goes to history. Returns the new version."""
        rec = self._require(memory_id)  # no access count: a rejected update must change nothing
        changes: dict[str, Any] = {}
        if text is not None:
            changes["text"] = check_text(text, max_chars=self.config.max_text_chars)
        if metadata is not None:
            changes["metadata"] = check_metadata(metadata)
        if importance is not None:
            if not _is_number(importance) or not 0 <= importance <= 1:
                raise ValidationError("importance must be a number between 0 and 1")
            changes["importance"] = float(importance)
        if expires_at is not None:
            changes["expires_at"] = parse_time(expires_at, field="expires_at")
        if occurred_at is not None:
            changes["occurred_at"] = parse_time(occurred_at, field="occurred_at")
        if valid_to is not None:
            changes["valid_to"] = parse_time(valid_to, field="valid_to")
        if not changes:
            raise ValidationError("update: nothing to change")
        new = rec.model_copy(update=changes)
        vector = index_text = tokens = None
        if "text" in changes:
            index_texts, vecs, toks = self._keys([new])
            index_text, vector, tokens = index_texts[0], vecs[0], toks[0]
        with self.store.transaction():
            if vector is not None:
                self._check_store_model()
            self.store.update(new, vector=vector, index_text=index_text, tokens=tokens)
        if "text" in changes and new.kind == EPISODE:
            self._rederive(new)  # its facts follow the new text (api/lifecycle.py)
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
    ) -> Page:
        """A page of memories. `count=False` skips counting the matches (a scan of every row on a large store
        without a scope): `total` is then -1, and `next_offset` comes from reading one row past the page."""
        if not _is_int(limit) or not 1 <= limit <= 10_000:
            raise ValidationError("limit must be an integer between 1 and 10000")
        if not _is_int(offset) or not 0 <= offset <= MAX_OFFSET:
            raise ValidationError(f"offset must be an integer between 0 and {MAX_OFFSET}")
        if not isinstance(order, str):
            raise ValidationError(f"order: expected a string, got {type(order).__name__}")
        f = self._filters(user_id, agent_id, session_id, kinds, since, until, filters)
        try:
            items = self.store.list(f, limit=limit + (0 if count else 1), offset=offset, order=order)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if not count:
            more = len(items) > limit
            items = items[:limit]
            return Page(items=items, total=-1, offset=offset, next_offset=offset + len(items) if more else None)
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
    ) -> list[SearchResult]:
        """Hybrid search. `filters` matches metadata keys by equality; `since`/`until` bound occurred_at.

        What is true now comes first: each hit says whether it is `current` and what `superseded_by`, and a
        question about the present puts the current facts and newest statements of what it asks about first
        (docs/lifecycle.md, "The current truth"). Questions about the past also find superseded facts;
        `as_of=` answers what was valid (and said) at that time."""
        return self._search(query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
                            filters=filters, kinds=kinds, since=since, until=until, mode=mode, as_of=as_of,
                            order=order)

    def _search(self, query: str, *, user_id: str | None, agent_id: str | None, session_id: str | None,
                limit: int, filters: dict[str, Any] | None, kinds: Sequence[str] | None,
                since: datetime | str | None, until: datetime | str | None, mode: str,
                as_of: datetime | str | None, order: str, answer_now: bool = False) -> list[SearchResult]:
        """`search`; `answer_now`: a question with no time cue is read as about the present (context blocks
        are read by an agent answering now; plain search keeps such questions' ranking)."""
        query = check_text(query, where="query", max_chars=self.config.max_text_chars)
        if not _is_int(limit) or not 1 <= limit <= 1000:
            raise ValidationError("limit must be an integer between 1 and 1000")
        when = parse_time(as_of, field="as_of")
        # the current-truth order is part of the default pipeline; the baseline modes stay plain
        intent = self._time_intent(query, as_of=when, order=order) if mode == "default" else "off"
        if answer_now and intent == "neutral":
            intent = "present"
        # superseded facts answer questions about the past (and time-ordered lists); otherwise only open ones
        validity = {"as_of": when} if when is not None else {} if intent == "past" else {"current_only": True}
        f = self._filters(user_id, agent_id, session_id, kinds, since, until, filters, **validity)
        try:
            fetch = self._lifecycle_fetch(limit)  # derived-memory quota and time words re-rank a wider list
            retriever = self._retriever()
            results = retriever.search(self._retrieval_query(query), f, fetch, mode=mode)
            results = self._lifecycle_rerank(results, limit, query=query, f=f, order=order, intent=intent,
                                             query_vector=retriever.query_vector)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc
        if self.config.track_access and results:
            self.store.touch([r.memory.id for r in results], now())
        return results

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
        hits: list[SearchResult] | None = None,
    ) -> ContextBlock:
        """A prompt-ready block within `max_tokens`: the current facts that answer the query first, then the
        most relevant memories, oldest first. A query with no time cue is read as about the present here.

        `hits`: a list that receives the search results the block was packed from (the web UI's recall trace
        shows them beside the block without searching twice)."""
        if not _is_int(max_tokens) or max_tokens < 16:
            raise ValidationError("max_tokens must be an integer of at least 16")
        results = self._search(query, user_id=user_id, agent_id=agent_id, session_id=session_id, limit=limit,
                               filters=filters, kinds=None, since=since, until=until, mode="default", as_of=as_of,
                               order="relevance", answer_now=True)
        if hits is not None:
            hits.extend(results)
        lead = [r for r in results if r.signals.get("current_fact")]  # set by the current-truth order
        before = self._replaced_values([r.memory.id for r in lead])
        results = mark_said_before(results, lead, before)
        when = parse_time(as_of, field="as_of")
        header = f"Facts as of {when:%Y-%m-%d}:" if when is not None else "Current facts:"
        return assemble(results, get_counter(self.config.tokenizer), max_tokens, facts=lead, before=before,
                        facts_header=header)

    def history(self, memory_id: str) -> list:
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError(f"memory id must be a non-empty string, got {memory_id!r}")
        entries = self.store.history(memory_id)
        if not entries:
            raise NotFoundError(f"no memory with id {memory_id!r}")
        return entries

    # -- browsing (what the web UI reads) ----------------------------------------------
    def version(self) -> int:
        """A number that changes with every write to the store, from any process: caches compare against it."""
        return self.store.data_version()

    def records(self, ids: Sequence[str], *, include_deleted: bool = False) -> list[MemoryRecord]:
        """Records by id, in the order asked (unknown ids are skipped), without counting an access: a person
        looking at a memory is not a recall."""
        wanted = [check_id(i, where="memory id") for i in ids]
        got = {r.id: r for r in self.store.get([i for i in wanted if i], include_deleted=include_deleted)}
        return [got[i] for i in wanted if i in got]

    def links(self, memory_id: str) -> list[dict[str, Any]]:
        """Typed edges touching a memory in both directions (supersedes, summarizes, related, ...)."""
        check_id(memory_id, where="memory id")
        return [
            {"src_id": lk.src_id, "dst_id": lk.dst_id, "type": lk.type, "reason": lk.reason,
             "created_at": lk.created_at}
            for lk in self.store.links(memory_id)
        ]

    def derived(self, memory_id: str, *, limit: int = 200) -> list[MemoryRecord]:
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
    ) -> tuple[int, list[tuple[str, int]]]:
        """(how many distinct `field` values, the `limit` busiest with their memory counts) for user_id,
        agent_id or session_id, among live memories."""
        if field not in ("user_id", "agent_id", "session_id"):
            raise ValidationError("field must be user_id, agent_id or session_id")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValidationError("limit must be an integer between 1 and 10000")
        f = self._filters(user_id, agent_id, None, kinds, None, None, None)
        return self.store.scope_counts(field, f, limit)

    def growth(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        period: str = "month",
    ) -> list[tuple[str, int]]:
        """Live memories per month ('YYYY-MM') or day of occurred_at (UTC), oldest first."""
        if period not in ("month", "day"):
            raise ValidationError("period must be month or day")
        return self.store.period_counts(self._filters(user_id, agent_id, session_id, None, None, None, None), period)

    def stats(self) -> dict[str, Any]:
        out = self.store.stats()
        out["embed_model"] = self.store.get_meta("embed_model")
        out["embed_dim"] = int(self.store.get_meta("embed_dim") or 0) or None
        out.update(self.lifecycle_stats())
        return out

    # -- maintenance -------------------------------------------------------------
    def reindex(self, *, progress: Progress | None = None, batch: int = 256) -> int:
        """Re-embed and re-key every memory with the current model (after a model change)."""
        emb = self.embedder
        f = Filters(include_deleted=True, include_expired=True)
        total = self.store.count(f)
        done = 0
        if self.store.supports_staged_reindex:
            done = self._reindex_staged(emb, total, progress, batch)
        else:
            done = self._reindex_in_place(emb, f, total, progress, batch)
        self._allow_model_change = False
        self._vectors = None
        if self._ann_path:
            for p in (self._ann_path, self._ann_path + ".json"):
                if os.path.exists(p):
                    os.remove(p)
        return done

    def _reindex_staged(self, emb: Embedder, total: int, progress: Progress | None, batch: int) -> int:
        """New vectors go beside the live ones, one short transaction per batch, and are swapped in at the end
        (store.reindex_*): searches meanwhile use the old, complete vector space, and writers wait at most a
        batch. Rows written meanwhile are picked up by the sweep before the swap."""
        self.store.reindex_begin(emb.name)
        done, after = 0, 0
        while True:
            page = self.store.reindex_todo(after, batch)
            if page:
                index_texts, vecs, tokens = self._keys([r for _, r in page])
                self.store.reindex_stage([k for k, _ in page], index_texts, vecs, tokens=tokens)
                after = page[-1][0]
                done += len(page)
                if progress:
                    progress(min(done, total), total)
                continue
            # The last rows written meanwhile are embedded inside the swap's transaction, so a steady writer cannot
            # keep the reindex from finishing; if many came in, sweep again outside the lock first.
            with self.store.transaction():
                rest = self.store.reindex_todo(0, batch)
                if len(rest) < batch:
                    if rest:
                        index_texts, vecs, tokens = self._keys([r for _, r in rest])
                        self.store.reindex_stage([k for k, _ in rest], index_texts, vecs, tokens=tokens)
                        done += len(rest)
                    if self.store.reindex_commit(emb.name, emb.dim):
                        return done
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
                index_texts, vecs, tokens = self._keys(page)
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
    ):  # noqa: ANN201 - returns ImportReport
        """Read JSONL written by `export`. Every line is checked before anything is written; then memories are
        written in transactions of 500, each all or nothing. `skip_bad` skips invalid lines and ids already here."""
        from .jsonl import import_jsonl

        return import_jsonl(self, src, recompute_embeddings=recompute_embeddings, skip_bad=skip_bad, progress=progress)

    # -- helpers -----------------------------------------------------------------
    def _filters(
        self,
        user_id: str | None,
        agent_id: str | None,
        session_id: str | None,
        kinds: Sequence[str] | None,
        since: datetime | str | None,
        until: datetime | str | None,
        filters: dict[str, Any] | None,
        **extra: Any,
    ) -> Filters:
        scope = _scope(user_id, agent_id, session_id, required=False)
        meta = dict(check_metadata(filters, where="filters"))
        kind_filter = meta.pop("kind", None)
        if kind_filter is not None:
            kinds = [*(kinds or []), kind_filter] if isinstance(kind_filter, str) else list(kind_filter)
        if kinds is not None:
            if isinstance(kinds, str):
                kinds = [kinds]
            if not isinstance(kinds, (list, tuple)):
                raise ValidationError(f"kinds: expected a kind or a list of kinds, got {type(kinds).__name__}")
            for k in kinds:
                try:
                    check_kind(k)
                except ValueError as exc:
                    raise ValidationError(str(exc)) from exc
        return Filters(
            **scope,
            kinds=kinds,
            since=parse_time(since, field="since"),
            until=parse_time(until, field="until"),
            metadata=meta,
            **extra,
        )


MAX_OFFSET = 2**62  # far past any store, and inside SQLite's 64-bit integers once limit is added


def _is_int(value: object) -> bool:
    """An integer, not a bool (True is an int to Python, never a count to a caller)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scope(user_id: object, agent_id: object, session_id: object, *, required: bool) -> dict[str, str | None]:
    scope = {
        "user_id": check_id(user_id, where="user_id"),
        "agent_id": check_id(agent_id, where="agent_id"),
        "session_id": check_id(session_id, where="session_id"),
    }
    if required and not any(scope.values()):
        raise ValidationError("a scope is required: pass user_id, agent_id or session_id")
    return scope
