"""EngramDB as CrewAI's memory storage: `EngramDBStorage`, a `crewai.memory.storage.backend.StorageBackend`.

    from crewai import Crew, Memory as CrewMemory
    from engramdb import Memory
    from engramdb.integrations.crewai import EngramDBStorage

    storage = EngramDBStorage(Memory("crew.db"))
    memory = CrewMemory(storage=storage, embedder=storage.embedder, llm=your_llm)
    crew = Crew(agents=[...], tasks=[...], memory=memory)

CrewAI's storage protocol searches by a query *vector*. EngramDB ranks by the query's text (BM25 + dense +
its learned ranker), so `storage.embedder` embeds with the memory's own model and remembers which text each
vector came from; `search()` turns the vector back into that text. A vector from another embedder is refused
with a clear error.

Each CrewAI record is one EngramDB memory of kind ``crewai`` (agent scope ``crewai`` by default): content as
text, importance as importance, created_at as occurred_at; scope path, categories, source, privacy, the
record's id and its own metadata are kept in metadata.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from . import missing, sync_memory

try:
    from crewai.memory.types import MemoryRecord as CrewRecord
    from crewai.memory.types import ScopeInfo
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("crewai", "crewai") from exc

__all__ = ["EngramDBStorage", "KIND"]

KIND = "crewai"
_PAGE = 1000
_SEARCH_MAX = 1000


class EngramDBStorage:
    """A CrewAI memory storage backend over an EngramDB `Memory` (or `AsyncMemory`).

    Args:
        memory: the EngramDB memory.
        agent_id: the agent scope every record carries (keeps crew memories apart from the rest).
        user_id: optional user scope for every record (e.g. one storage per end user).
        remember_queries: how many recent embedded texts to keep for turning a query vector back into text.
        audience: who recalls (an agent id, ``"purpose:<label>"`` or a dict; docs/privacy.md): ``search``, what
            the crew's agents recall, then returns only what the disclosure policies let it see (redacted text
            where a policy redacts), and is audited. Records are written under ``agent_id``, so an agent
            audience is usually that agent. The reads that list (``get_record``, ``list_records``,
            ``get_scope_info``, ``list_scopes``, ``list_categories``, ``count``) apply the same policies: a
            record the audience may not see is not listed or counted, a redacted one shows its redacted text,
            and the records ``get_record`` and ``list_records`` return are audited. ``delete``, ``reset`` and
            ``update`` act on the crew's own records and are not filtered.
    """

    def __init__(self, memory: Any, *, agent_id: str = "crewai", user_id: str | None = None,
                 remember_queries: int = 4096, audience: str | dict[str, str] | None = None) -> None:
        self.memory = sync_memory(memory)
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("agent_id must be a non-empty string")
        self.agent_id = agent_id
        self.user_id = user_id
        self.audience = audience
        self._texts: OrderedDict[bytes, str] = OrderedDict()
        self._max_texts = remember_queries
        self._lock = threading.RLock()

    # -- the embedder CrewAI must use with this storage ------------------------------------------------------
    def embedder(self, texts: list[str]) -> list[list[float]]:
        """CrewAI's embedder callable: the memory's own model; each vector's text is remembered."""
        vecs = np.asarray(self.memory.embedder.embed(list(texts)), dtype=np.float32)
        with self._lock:
            for text, vec in zip(texts, vecs, strict=True):
                self._texts[vec.tobytes()] = text
                self._texts.move_to_end(vec.tobytes())
            while len(self._texts) > self._max_texts:
                self._texts.popitem(last=False)
        return vecs.tolist()

    def _query_text(self, query_embedding: list[float]) -> str:
        key = np.asarray(query_embedding, dtype=np.float32).tobytes()
        with self._lock:
            text = self._texts.get(key)
        if text is None:
            raise ValueError(
                "EngramDBStorage searches by text: pass embedder=storage.embedder to crewai's Memory so query "
                "vectors can be traced back to their text (this vector came from another embedder)"
            )
        return text

    # -- StorageBackend ------------------------------------------------------------------------------------
    def save(self, records: list[CrewRecord]) -> None:
        for rec in records:
            self._add(rec)

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[CrewRecord, float]]:
        if limit <= 0:
            return []
        query = self._query_text(query_embedding)
        narrowing = bool(categories or metadata_filter)
        hits = self.memory.search(
            query[: self.memory.config.max_text_chars], kinds=[KIND], filters=_scope_filter(scope_prefix),
            limit=min(_SEARCH_MAX, limit * 3 if narrowing else limit), audience=self.audience, **self._scope(),
        )
        out: list[tuple[CrewRecord, float]] = []
        for hit in hits:
            rec = _to_crew(hit.memory)
            if _keep(rec, scope_prefix, categories, metadata_filter) and hit.score >= min_score:
                out.append((rec, float(hit.score)))
            if len(out) >= limit:
                break
        return out

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        wanted = set(record_ids) if record_ids else None
        cutoff = _aware(older_than) if older_than is not None else None
        gone = 0
        for mem_rec in list(self._scan(scope_prefix)):
            rec = _to_crew(mem_rec)
            if wanted is not None and rec.id not in wanted:
                continue
            if not _keep(rec, scope_prefix, categories, metadata_filter):
                continue
            if cutoff is not None and _aware(rec.created_at) >= cutoff:
                continue
            self.memory.delete(mem_rec.id)  # soft: EngramDB's history keeps it
            gone += 1
        return gone

    def update(self, record: CrewRecord) -> None:
        old = self._find(record.id)
        if old is None:
            raise KeyError(f"no crewai memory record with id {record.id!r}")
        self.memory.update(old.id, text=record.content if record.content != old.text else None,
                           metadata=_meta(record), importance=float(record.importance))

    def get_record(self, record_id: str) -> CrewRecord | None:
        found = self._find(record_id)
        if found is None:
            return None
        got = self._view([found], audit=True)
        return _to_crew(got[0]) if got else None

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[CrewRecord]:
        if limit <= 0 or offset < 0:
            return []
        found = {r.id: r for r in self._scan(scope_prefix)}
        views = sorted(self._view(list(found.values())), key=lambda r: _aware(_to_crew(r).created_at),
                       reverse=True)  # newest first, as the protocol asks
        page = views[offset : offset + limit]
        if self.audience is not None:  # what goes out is audited, as the audience received it
            self._view([found[r.id] for r in page], audit=True)
        return [_to_crew(r) for r in page]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = _norm(scope)
        recs = [_to_crew(r) for r in self._view(list(self._scan(path)))]
        times = [_aware(r.created_at) for r in recs]
        return ScopeInfo(
            path=path, record_count=len(recs), categories=sorted({c for r in recs for c in r.categories}),
            oldest_record=min(times) if times else None, newest_record=max(times) if times else None,
            child_scopes=self.list_scopes(path),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        base = _parts(parent)
        children = set()
        for r in self._view(list(self._scan(parent))):
            parts = _parts(r.metadata["crew_scope"])
            if len(parts) > len(base):
                children.add("/" + "/".join(parts[: len(base) + 1]))
        return sorted(children)

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._view(list(self._scan(scope_prefix))):
            for c in r.metadata.get("crew_categories") or []:
                counts[c] = counts.get(c, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        if self.audience is None:
            return sum(1 for _ in self._scan(scope_prefix))
        return len(self._view(list(self._scan(scope_prefix))))

    def reset(self, scope_prefix: str | None = None) -> None:
        for r in list(self._scan(scope_prefix)):
            self.memory.delete(r.id)

    async def asave(self, records: list[CrewRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(self, query_embedding: list[float], scope_prefix: str | None = None,
                      categories: list[str] | None = None, metadata_filter: dict[str, Any] | None = None,
                      limit: int = 10, min_score: float = 0.0) -> list[tuple[CrewRecord, float]]:
        return await asyncio.to_thread(self.search, query_embedding, scope_prefix, categories, metadata_filter,
                                       limit, min_score)

    async def adelete(self, scope_prefix: str | None = None, categories: list[str] | None = None,
                      record_ids: list[str] | None = None, older_than: datetime | None = None,
                      metadata_filter: dict[str, Any] | None = None) -> int:
        return await asyncio.to_thread(self.delete, scope_prefix, categories, record_ids, older_than,
                                       metadata_filter)

    # -- helpers ---------------------------------------------------------------------------------------------
    def _scope(self) -> dict[str, str | None]:
        return {"agent_id": self.agent_id, "user_id": self.user_id}

    def _add(self, rec: CrewRecord) -> None:
        if not isinstance(rec, CrewRecord):
            raise TypeError(f"expected a crewai MemoryRecord, got {type(rec).__name__}")
        self.memory.add(rec.content, kind=KIND, metadata=_meta(rec), importance=float(rec.importance),
                        timestamp=_aware(rec.created_at), **self._scope())

    def _find(self, record_id: str) -> Any:
        page = self.memory.list(kinds=[KIND], filters={"crew_id": record_id}, limit=1, **self._scope())
        return page.items[0] if page.items else None

    def _view(self, recs: list[Any], *, audit: bool = False) -> list[Any]:
        """What the audience may receive of `recs` (all of them without one); with `audit`, recorded."""
        if self.audience is None or not recs:
            return recs
        return list(self.memory.privacy.disclose_records(recs, self.audience, op="list" if audit else None))

    def _scan(self, scope_prefix: str | None) -> Iterable[Any]:
        where = _scope_filter(scope_prefix)
        offset = 0
        while True:
            page = self.memory.list(kinds=[KIND], filters=where, limit=_PAGE, offset=offset, **self._scope())
            yield from page.items
            if page.next_offset is None:
                return
            offset = page.next_offset


def _aware(when: datetime) -> datetime:
    """CrewAI stamps records with naive UTC times (datetime.utcnow); EngramDB refuses naive times."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _parts(path: str | None) -> list[str]:
    return [p for p in (path or "/").split("/") if p]


def _norm(path: str | None) -> str:
    return "/" + "/".join(_parts(path))


def _scope_filter(prefix: str | None) -> dict[str, str]:
    return {f"crew_s{i}": part for i, part in enumerate(_parts(prefix))}  # segment by segment: '/a' never '/ab'


def _meta(rec: CrewRecord) -> dict[str, Any]:
    scope = _norm(rec.scope)
    return {
        "crew_id": rec.id,
        "crew_scope": scope,
        **{f"crew_s{i}": part for i, part in enumerate(_parts(scope))},
        "crew_categories": list(rec.categories),
        "crew_source": rec.source,
        "crew_private": rec.private,
        "crew_created_at": _aware(rec.created_at).isoformat(),
        "crew_last_accessed": _aware(rec.last_accessed).isoformat(),
        "crew_metadata": dict(rec.metadata),
    }


def _naive_utc(iso: str) -> datetime:
    """Back to CrewAI's convention (naive UTC): its recency score subtracts from datetime.utcnow()."""
    return datetime.fromisoformat(iso).astimezone(UTC).replace(tzinfo=None)


def _to_crew(m: Any) -> CrewRecord:
    meta = m.metadata
    return CrewRecord(
        id=meta["crew_id"], content=m.text, scope=meta["crew_scope"], categories=meta.get("crew_categories") or [],
        metadata=meta.get("crew_metadata") or {}, importance=m.importance,
        created_at=_naive_utc(meta["crew_created_at"]), last_accessed=_naive_utc(meta["crew_last_accessed"]),
        source=meta.get("crew_source"), private=bool(meta.get("crew_private")),
    )


def _keep(rec: CrewRecord, prefix: str | None, categories: list[str] | None,
          metadata_filter: dict[str, Any] | None) -> bool:
    base = _parts(prefix)
    if _parts(rec.scope)[: len(base)] != base:
        return False
    if categories and not any(c in rec.categories for c in categories):
        return False
    return not metadata_filter or all(rec.metadata.get(k) == v for k, v in metadata_filter.items())
