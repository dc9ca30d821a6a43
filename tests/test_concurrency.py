"""Several processes on one SQLite file: no lost or duplicated rows; writers queue on the busy timeout."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.errors import StoreError
from engramdb.store.base import Filters
from engramdb.store.sqlite import SQLiteStore

BATCHES = 25


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


PER_BATCH = 8


def _writer(path: str, name: str, start, out) -> None:
    """Child process: add BATCHES batches, update and delete a few of its own memories."""
    import os

    os.environ["ENGRAMDB_EXTRACTION"] = "off"
    mem = Memory(path, embedder=HashingEmbedder(64))
    start.wait(30)
    ids = []
    for b in range(BATCHES):
        recs = mem.add([f"{name} batch {b} turn {t}" for t in range(PER_BATCH)], user_id=name, session_id=f"{name}{b}")
        ids.extend(r.id for r in recs)
        if b % 5 == 0:
            mem.update(recs[0].id, text=f"{name} batch {b} turn 0, revised")
        if b % 7 == 0:
            mem.delete(recs[1].id)
    mem.close()
    out.put(ids)


def _hold_lock(path: str, seconds: float, locked) -> None:
    store = SQLiteStore(path)
    with store.transaction():
        locked.set()
        time.sleep(seconds)
    store.close()


def test_two_processes_write_at_once(tmp_path):
    path = str(tmp_path / "shared.db")
    Memory(path, embedder=HashingEmbedder(64)).close()  # create the schema first, as an app would
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, n, start, out)) for n in ("alpha", "beta")]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = [i for r in results for i in r]
    total = 2 * BATCHES * PER_BATCH
    assert len(ids) == total == len(set(ids))
    with Memory(path, embedder=HashingEmbedder(64)) as mem:
        everything = mem.store.list(Filters(include_deleted=True), limit=10_000)
        assert sorted(r.id for r in everything) == sorted(ids)  # none lost, none duplicated
        deleted = sum(1 for r in everything if r.deleted_at)
        assert deleted == 2 * len(range(0, BATCHES, 7))
        st = mem.stats()
        assert st["vectors"] == total and st["memories"] == total - deleted
        updates = 2 * len(range(0, BATCHES, 5))
        assert st["history_entries"] == total + updates + deleted
        # both writers' text is searchable, and the index sees every vector
        for who in ("alpha", "beta"):
            hits = mem.search(f"{who} batch 3 turn 2", user_id=who, limit=3)
            assert f"{who} batch 3 turn 2" in [h.memory.text for h in hits]
        assert len(mem.vectors) == total


def test_writer_waits_for_busy_timeout_then_succeeds(tmp_path):
    path = str(tmp_path / "busy.db")
    mem = Memory(path, embedder=HashingEmbedder(64))
    mem.add("before", user_id="u")
    ctx = mp.get_context("spawn")
    locked = ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, 1.5, locked))
    holder.start()
    assert locked.wait(60)
    t0 = time.perf_counter()
    mem.add("queued behind the other process", user_id="u")  # waits on the busy timeout, no error
    waited = time.perf_counter() - t0
    holder.join(30)
    assert holder.exitcode == 0 and waited > 0.5
    assert mem.stats()["memories"] == 2
    mem.close()


def test_busy_beyond_timeout_is_a_clear_error(tmp_path):
    path = str(tmp_path / "locked.db")
    a, b = SQLiteStore(path), SQLiteStore(path)
    b._conn.execute("PRAGMA busy_timeout = 50")  # a short fuse for the test; the default is 30 s
    with a.transaction():
        with pytest.raises(StoreError, match="busy or locked"):
            with b.transaction():
                pass
    a.close()
    b.close()


def test_threads_share_one_memory(fake_mem):
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                fake_mem.add(f"thread {n} item {i}", user_id=f"t{n}")
                fake_mem.search(f"item {i}", user_id=f"t{n}")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and fake_mem.stats()["memories"] == 40
