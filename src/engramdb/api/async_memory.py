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

    # -- procedural memory (explicit twins: see api/procedural.py for the signatures) --
    async def add_trajectory(self, task: Any, steps: Any = None, outcome: Any = None, **kwargs: Any) -> Any:
        return await self._run(self._sync.add_trajectory, task, steps, outcome, **kwargs)

    async def add_trajectories(self, trajectories: Any, **kwargs: Any) -> Any:
        return await self._run(self._sync.add_trajectories, trajectories, **kwargs)

    async def trajectories(self, **kwargs: Any) -> Any:
        return await self._run(self._sync.trajectories, **kwargs)

    async def learn_tips(self, **kwargs: Any) -> Any:
        return await self._run(self._sync.learn_tips, **kwargs)

    async def tips(self, task_description: str, **kwargs: Any) -> Any:
        return await self._run(self._sync.tips, task_description, **kwargs)

    async def report_outcome(self, tip_ids: Any, outcome: str, **kwargs: Any) -> Any:
        return await self._run(self._sync.report_outcome, tip_ids, outcome, **kwargs)

    async def tip_provenance(self, tip_id: str) -> dict[str, Any]:
        return await self._run(self._sync.tip_provenance, tip_id)

    async def list_tips(self, **kwargs: Any) -> Any:
        return await self._run(self._sync.list_tips, **kwargs)

    def __getattr__(self, name: str) -> Any:
        """Any other public `Memory` method (lifecycle, procedural...) as a coroutine, so the twin never lags."""
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._sync, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(attr, *args, **kwargs)

        return call

    async def close(self) -> None:
        await self._run(self._sync.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
