"""AsyncMemory: the async twin runs the same core without blocking the event loop."""

from __future__ import annotations

import asyncio
import io

import pytest

from engramdb import AsyncMemory
from engramdb.embed import HashingEmbedder
from engramdb.errors import NotFoundError, ValidationError


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


async def test_async_round_trip(tmp_path, embedder):
    async with AsyncMemory(tmp_path / "a.db", embedder=embedder) as mem:
        recs = await mem.add(
            [{"speaker": "Li", "text": "I keep bees on my roof.", "timestamp": "2024-06-01T08:00:00Z"}], user_id="li"
        )
        hits = await mem.search("what does Li keep on the roof?", user_id="li")
        assert hits[0].memory.id == recs[0].id
        assert (await mem.get(recs[0].id)).text == "I keep bees on my roof."
        new = await mem.update(recs[0].id, text="I keep bees and hens on my roof.")
        assert new.version == 2
        page = await mem.list(user_id="li")
        assert page.total == 1
        block = await mem.context("bees", user_id="li", max_tokens=50)
        assert "bees" in block.text
        await mem.delete(recs[0].id)
        assert [h.action for h in await mem.history(recs[0].id)] == ["add", "update", "delete"]
        buf = io.StringIO()
        assert await mem.export(buf) == 1
        assert (await mem.stats())["deleted"] == 1
        with pytest.raises(NotFoundError):
            await mem.get(recs[0].id)
        with pytest.raises(ValidationError):
            await mem.add("", user_id="li")


async def test_concurrent_calls_share_one_store(tmp_path):
    async with AsyncMemory(tmp_path / "c.db", embedder=HashingEmbedder(64)) as mem:
        adds = [mem.add([f"note {i} part {j}" for j in range(5)], user_id=f"u{i % 3}") for i in range(20)]
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        batches = await asyncio.gather(*adds)
        searches = await asyncio.gather(*(mem.search("note part", user_id=f"u{i}") for i in range(3)))
        t.cancel()
        assert ticks > 0  # the loop kept running while the work happened in threads
        ids = [r.id for b in batches for r in b]
        assert len(ids) == 100 == len(set(ids))
        assert (await mem.stats())["memories"] == 100
        assert all(searches)
        # methods added by mixins (lifecycle, procedural...) are awaitable too
        assert callable(mem.reindex)
        with pytest.raises(AttributeError):
            mem.no_such_method  # noqa: B018
