"""`AsyncMemory`: the async twin of `Memory`, over the same core.

Each call runs the sync implementation in a worker thread, so an event loop is
never blocked by SQLite or the embedding model. Signatures mirror `Memory`.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from ..model import MemoryRecord, SearchResult
from ..retrieve.context import ContextBlock
from .memory import Memory, Page


class AsyncMemory:
    def __init__(self, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        self._sync = Memory(path, **kwargs)

    @property
    def sync(self) -> Memory:
        """The underlying synchronous `Memory` (same store, same caches)."""
        return self._sync

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def add(self, messages: Any, **kwargs: Any) -> list[MemoryRecord]:
        return await self._run(self._sync.add, messages, **kwargs)

    async def search(self, query: str, **kwargs: Any) -> list[SearchResult]:
        return await self._run(self._sync.search, query, **kwargs)

    async def context(self, query: str, **kwargs: Any) -> ContextBlock:
        return await self._run(self._sync.context, query, **kwargs)

    async def get(self, memory_id: str) -> MemoryRecord:
        return await self._run(self._sync.get, memory_id)

    async def list(self, **kwargs: Any) -> Page:
        return await self._run(self._sync.list, **kwargs)

    async def update(self, memory_id: str, **kwargs: Any) -> MemoryRecord:
        return await self._run(self._sync.update, memory_id, **kwargs)

    async def delete(self, memory_id: str) -> None:
        return await self._run(self._sync.delete, memory_id)

    async def history(self, memory_id: str) -> list:
        return await self._run(self._sync.history, memory_id)

    async def export(self, out: Any, **kwargs: Any) -> int:
        return await self._run(self._sync.export, out, **kwargs)

    async def import_(self, src: Any, **kwargs: Any) -> Any:
        return await self._run(self._sync.import_, src, **kwargs)

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._sync.stats)

    async def reindex(self, **kwargs: Any) -> int:
        return await self._run(self._sync.reindex, **kwargs)

    async def close(self) -> None:
        await self._run(self._sync.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
