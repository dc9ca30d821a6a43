"""`AsyncMemory`: the async twin of `Memory`, over the same core.

Each call runs the sync implementation in a worker thread, so an event loop is never blocked by SQLite or the
embedding model. Signatures and docstrings mirror `Memory` exactly: this file is generated from it by
`python tools/gen_async.py` (a test fails when it is out of date).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .memory import Memory

if TYPE_CHECKING:
    import builtins
    import os
    from collections.abc import Callable, Iterable, Sequence
    from datetime import datetime
    from typing import IO, Any

    from ..config import MemoryConfig
    from ..embed.base import Embedder
    from ..lifecycle.consolidate import ConsolidateReport
    from ..lifecycle.forget import PurgeReport
    from ..lifecycle.service import ExtractReport, ForgetReport
    from ..llm import LLMClient, LLMConfig
    from ..model import MemoryRecord, SearchResult
    from ..procedural.engine import LearnReport
    from ..procedural.model import Guidance, Tip, Trajectory
    from ..retrieve.context import ContextBlock
    from ..store.base import Store
    from .memory import Page, Progress

T = TypeVar("T")


class AsyncMemory:
    """`Memory`, with every public method a coroutine."""

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
        """Open a `Memory` (same arguments) to run in worker threads."""
        self._sync = Memory(
            path,
            url=url,
            embedder=embedder,
            config=config,
            allow_model_change=allow_model_change,
            store=store,
            read_only=read_only,
        )

    @property
    def sync(self) -> Memory:
        """The underlying synchronous `Memory` (same store, same caches)."""
        return self._sync

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def add(
        self,
        messages: str | dict[str, Any] | Sequence[str | dict[str, Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        kind: str = "episode",
        source_ref: str | None = None,
        importance: float | None = None,
        expires_at: datetime | str | None = None,
    ) -> list[MemoryRecord]:
        """Store one or more turns as memories, in one transaction. Returns the new records."""
        return await self._run(
            self._sync.add,
            messages,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            timestamp=timestamp,
            metadata=metadata,
            kind=kind,
            source_ref=source_ref,
            importance=importance,
            expires_at=expires_at,
        )

    async def add_records(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """Insert prepared records (embedding them in batches) in one transaction."""
        return await self._run(self._sync.add_records, records)

    async def add_trajectories(
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
        return await self._run(
            self._sync.add_trajectories,
            trajectories,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            timestamp=timestamp,
            metadata=metadata,
            source_ref=source_ref,
            embed_steps=embed_steps,
        )

    async def add_trajectory(
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
        return await self._run(
            self._sync.add_trajectory,
            task,
            steps,
            outcome,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            metrics=metrics,
            format=format,
            timestamp=timestamp,
            metadata=metadata,
            source_ref=source_ref,
            embed_steps=embed_steps,
        )

    async def archive_decayed(self) -> int:
        """Soft-delete (action 'archive') memories under the policy's archive_below. No-op when decay is off."""
        return await self._run(self._sync.archive_decayed)

    async def consolidate(self, *, progress: Callable[[str, int, int], None] | None = None) -> ConsolidateReport:
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links.
        Incremental, idempotent and safe to interrupt (see docs/lifecycle.md)."""
        return await self._run(self._sync.consolidate, progress=progress)

    async def context(
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
        return await self._run(
            self._sync.context,
            query,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            max_tokens=max_tokens,
            limit=limit,
            filters=filters,
            since=since,
            until=until,
            as_of=as_of,
            threshold=threshold,
            hits=hits,
            audience=audience,
        )

    async def count_tips(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        status: str | None = "active",
        tip_type: str | None = None,
    ) -> int:
        """How many tips `list_tips` would list with the same arguments (one count query, no tip is read)."""
        return await self._run(
            self._sync.count_tips,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            status=status,
            tip_type=tip_type,
        )

    async def decay_scores(
        self, *, user_id: str | None = None, agent_id: str | None = None, limit: int = 1000
    ) -> builtins.list[tuple[str, float]]:
        """(id, decay score) for memories the decay policy covers, lowest first."""
        return await self._run(self._sync.decay_scores, user_id=user_id, agent_id=agent_id, limit=limit)

    async def delete(self, memory_id: str) -> None:
        """Soft-delete: the memory disappears from reads; history keeps it. What was derived from it alone
        (facts, summaries) is retracted with it, and a fact it had replaced is current again."""
        return await self._run(self._sync.delete, memory_id)

    async def derived(self, memory_id: str, *, limit: int = 200) -> builtins.list[MemoryRecord]:
        """Memories derived from this one: facts, summaries and profiles of its scope that name it in
        `source_ids`, and summaries that link to it. Superseded and forgotten ones included."""
        return await self._run(self._sync.derived, memory_id, limit=limit)

    async def erase(
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
        return await self._run(self._sync.erase, ids, user_id=user_id, agent_id=agent_id, session_id=session_id)

    async def expire(self, *, at: datetime | str | None = None) -> int:
        """Soft-delete memories whose expires_at has passed (reads already hide them)."""
        return await self._run(self._sync.expire, at=at)

    async def export(
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
        return await self._run(
            self._sync.export,
            out,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            include_embeddings=include_embeddings,
            include_deleted=include_deleted,
        )

    async def extract(
        self,
        *,
        episode_ids: Sequence[str] | None = None,
        extractor: str | None = None,
        batch: int = 64,
        progress: Callable[[int, int], None] | None = None,
    ) -> ExtractReport:
        """Extract facts from pending episodes (or re-extract `episode_ids`; idempotent) and apply them as
        bi-temporal knowledge updates. A failed batch stays pending and is counted in `stats()`."""
        return await self._run(
            self._sync.extract, episode_ids=episode_ids, extractor=extractor, batch=batch, progress=progress
        )

    async def fact_history(self, fact_id: str) -> builtins.list[MemoryRecord]:
        """The chain of values a fact went through (oldest first), following supersedes/invalidates links."""
        return await self._run(self._sync.fact_history, fact_id)

    async def facts(
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
        return await self._run(
            self._sync.facts,
            user_id=user_id,
            agent_id=agent_id,
            subject=subject,
            attribute=attribute,
            as_of=as_of,
            include_history=include_history,
            limit=limit,
        )

    async def forget(
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
        return await self._run(
            self._sync.forget,
            memory_id,
            ids=ids,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            kinds=kinds,
            filters=filters,
            before=before,
            cascade=cascade,
        )

    async def get(self, memory_id: str) -> MemoryRecord:
        return await self._run(self._sync.get, memory_id)

    async def growth(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        period: str = "month",
    ) -> builtins.list[tuple[str, int]]:
        """Live memories per month ('YYYY-MM') or day of occurred_at (UTC), oldest first."""
        return await self._run(
            self._sync.growth, user_id=user_id, agent_id=agent_id, session_id=session_id, period=period
        )

    async def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list:
        """Every change to a memory, oldest first; `limit=`: only the newest `limit` changes (still oldest
        first). A memory changed on every use (a tip counts each time it is served) can have thousands."""
        return await self._run(self._sync.history, memory_id, limit=limit)

    async def import_(
        self,
        src: str | os.PathLike[str] | IO[str] | Iterable[str],
        *,
        recompute_embeddings: bool = False,
        skip_bad: bool = False,
        progress: Progress | None = None,
    ) -> Any:
        """Read JSONL written by `export`. Every line is checked before anything is written; then memories are
        written in transactions of 500, each all or nothing. `skip_bad` skips invalid lines and ids already here."""
        return await self._run(
            self._sync.import_, src, recompute_embeddings=recompute_embeddings, skip_bad=skip_bad, progress=progress
        )

    async def learn_tips(
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
        return await self._run(
            self._sync.learn_tips,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            min_support=min_support,
            validator=validator,
            llm=llm,
            merge_threshold=merge_threshold,
        )

    async def lifecycle_stats(self) -> dict[str, Any]:
        """Lifecycle counters (extraction, facts, consolidation) and LLM usage."""
        return await self._run(self._sync.lifecycle_stats)

    async def links(self, memory_id: str) -> builtins.list[dict[str, Any]]:
        """Typed edges touching a memory in both directions (supersedes, summarizes, related, ...)."""
        return await self._run(self._sync.links, memory_id)

    async def list(
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
        return await self._run(
            self._sync.list,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            kinds=kinds,
            since=since,
            until=until,
            filters=filters,
            limit=limit,
            offset=offset,
            order=order,
            count=count,
            audience=audience,
        )

    async def list_tips(
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
        return await self._run(
            self._sync.list_tips,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            status=status,
            tip_type=tip_type,
            order=order,
            limit=limit,
            offset=offset,
            audience=audience,
        )

    async def pending_extraction(self) -> int:
        """Episodes not yet through extraction."""
        return await self._run(self._sync.pending_extraction)

    async def purge(self, *, user_id: str | None = None, agent_id: str | None = None) -> PurgeReport:
        """Hard delete EVERY trace of a user (or agent): rows, keyword index, vectors, ANN sidecar, links,
        history, derived memories (in any scope), then VACUUM and a WAL checkpoint. Irreversible."""
        return await self._run(self._sync.purge, user_id=user_id, agent_id=agent_id)

    async def records(self, ids: Sequence[str], *, include_deleted: bool = False) -> builtins.list[MemoryRecord]:
        """Records by id, in the order asked (unknown ids are skipped), without counting an access: a person
        looking at a memory is not a recall."""
        return await self._run(self._sync.records, ids, include_deleted=include_deleted)

    async def reindex(self, *, progress: Progress | None = None, batch: int = 256) -> int:
        """Re-embed and re-key every memory with the current model (after a model change)."""
        return await self._run(self._sync.reindex, progress=progress, batch=batch)

    async def report_outcome(
        self, tip_ids: Sequence[str], outcome: str, *, validator: Any = None
    ) -> builtins.list[Tip]:
        """Close the loop: what happened on the task the tips were served for (success, failure or partial).
        Tips whose utility falls are retired when the validator agrees. Returns the updated tips."""
        return await self._run(self._sync.report_outcome, tip_ids, outcome, validator=validator)

    async def scopes(
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
        return await self._run(self._sync.scopes, field, user_id=user_id, agent_id=agent_id, kinds=kinds, limit=limit)

    async def search(
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
        return await self._run(
            self._sync.search,
            query,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            limit=limit,
            filters=filters,
            kinds=kinds,
            since=since,
            until=until,
            mode=mode,
            as_of=as_of,
            order=order,
            threshold=threshold,
            audience=audience,
        )

    async def set_llm(self, llm: LLMClient | LLMConfig | None) -> None:
        """Use this LLM (or none) for extraction, update judging and summaries."""
        return await self._run(self._sync.set_llm, llm)

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._sync.stats)

    async def tip_provenance(self, tip_id: str) -> dict[str, Any]:
        """The tip, the exact step episodes it was drawn from, and their trajectories."""
        return await self._run(self._sync.tip_provenance, tip_id)

    async def tips(
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
        return await self._run(
            self._sync.tips,
            task_description,
            tools=tools,
            errors=errors,
            limit=limit,
            types=types,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            track=track,
            audience=audience,
        )

    async def trajectories(
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
        return await self._run(
            self._sync.trajectories,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            ids=ids,
            audience=audience,
        )

    async def update(
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
        return await self._run(
            self._sync.update,
            memory_id,
            text=text,
            metadata=metadata,
            importance=importance,
            expires_at=expires_at,
            occurred_at=occurred_at,
            valid_to=valid_to,
            clear=clear,
        )

    async def version(self) -> int:
        """A number that changes with every write to the store, from any process: caches compare against it."""
        return await self._run(self._sync.version)

    async def warmup(self) -> None:
        """Load now what the first search or write would: the embedding model and its fast query copy (ONNX
        Runtime), the vector index, the learned ranker, the score calibration, the sensitivity prototypes and
        the fact extractor.
        Servers call it before they report ready, so no request pays for a load. It adds no memories."""
        return await self._run(self._sync.warmup)

    async def close(self) -> None:
        await self._run(self._sync.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
