"""SQLite store: schema, transactions, filters, history, deletes (unit level, no model)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engramdb.errors import StoreError, ValidationError
from engramdb.model import MemoryRecord
from engramdb.store import sqlite_schema
from engramdb.store.base import Filters
from engramdb.store.sqlite import SQLiteStore
from engramdb.timeutil import now

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rec(i: int, **kw) -> MemoryRecord:
    base = dict(
        user_id=f"u{i % 2}", text=f"text {i} about topic{i % 3}", occurred_at=T0 + timedelta(days=i), recorded_at=now()
    )
    base.update(kw)
    return MemoryRecord(**base)


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "s.db")
    yield s
    s.close()


def put(store, recs):
    vecs = np.eye(len(recs), 8, dtype=np.float32)
    return store.insert(recs, vecs, [r.text for r in recs])


def test_schema_wal_and_version(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.LATEST
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table')")}
    assert {"memories", "vectors", "history", "links", "meta", "memories_fts"} <= tables
    conn.close()
    # reopening migrates nothing and keeps data
    put(store, [rec(1)])
    again = SQLiteStore(tmp_path / "s.db")
    assert again.count(Filters()) == 1
    again.close()


def test_newer_schema_and_garbage_file_are_refused(tmp_path):
    p = tmp_path / "future.db"
    conn = sqlite3.connect(p)
    conn.execute(f"PRAGMA user_version = {sqlite_schema.LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(p)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a usable"):
        SQLiteStore(junk)


def test_transaction_rolls_back_everything(store):
    put(store, [rec(0)])
    before = store.stats()
    with pytest.raises(RuntimeError):
        with store.transaction():
            put(store, [rec(1), rec(2)])
            store.set_meta("x", "y")
            raise RuntimeError("boom")
    assert store.stats() == before and store.get_meta("x") is None
    # a duplicate id in the middle of a batch: a clear error, and the rows before it are not kept
    dup = rec(3)
    with pytest.raises(StoreError, match="nothing written"):
        put(store, [rec(4), dup, dup.model_copy()])
    assert store.stats() == before


def test_filters(store):
    recs = [rec(i, kind="fact" if i % 4 == 0 else "episode", metadata={"n": i, "even": i % 2 == 0}) for i in range(12)]
    recs[5] = recs[5].model_copy(update={"expires_at": now() - timedelta(hours=1)})
    recs[6] = recs[6].model_copy(update={"session_id": "s6", "source_ref": "dlg-6"})
    put(store, recs)
    ids = lambda f: {r.id for r in store.list(f, limit=100)}  # noqa: E731
    assert ids(Filters(user_id="u0")) == {r.id for r in recs if r.user_id == "u0"}
    assert ids(Filters(kinds=["fact"])) == {recs[i].id for i in (0, 4, 8)}
    assert ids(Filters(since=T0 + timedelta(days=3), until=T0 + timedelta(days=6))) == {recs[3].id, recs[4].id}
    assert ids(Filters(metadata={"n": 7})) == {recs[7].id}
    assert ids(Filters(metadata={"even": True, "n": 2})) == {recs[2].id}
    assert ids(Filters(metadata={"missing": None})) == {r.id for r in recs if r.id != recs[5].id}
    assert ids(Filters(session_id="s6")) == ids(Filters(source_ref="dlg-6")) == {recs[6].id}
    assert recs[5].id not in ids(Filters())  # expired
    assert recs[5].id in ids(Filters(include_expired=True))
    assert ids(Filters(ids=[])) == set()
    assert store.count(Filters(user_id="u1")) == len(ids(Filters(user_id="u1")))
    with pytest.raises(ValidationError):
        Filters(metadata={"bad key!": 1})
    with pytest.raises(ValidationError):
        Filters(metadata={"k": [1, 2]})


def test_list_pagination_and_order(store):
    put(store, [rec(i) for i in range(7)])
    f = Filters()
    pages = [store.list(f, limit=3, offset=o) for o in (0, 3, 6)]
    flat = [r.id for p in pages for r in p]
    assert len(flat) == 7 and len(set(flat)) == 7
    assert [r.occurred_at for p in pages for r in p] == sorted(r.occurred_at for p in pages for r in p)
    newest = store.list(f, limit=1, order="-occurred_at")[0]
    assert newest.occurred_at == T0 + timedelta(days=6)
    with pytest.raises(ValueError):
        store.list(f, order="bogus")


def test_history_records_update_and_delete(store):
    (r,) = [rec(1)]
    put(store, [r])
    store.update(r.model_copy(update={"text": "changed"}), index_text="changed")
    store.soft_delete([r.id], at=now())
    h = store.history(r.id)
    assert [e.action for e in h] == ["add", "update", "delete"]
    assert [e.version for e in h] == [1, 2, 3]
    assert h[0].before is None and h[0].after["text"] == r.text
    assert h[1].before["text"] == r.text and h[1].after["text"] == "changed"
    assert h[2].before["deleted_at"] is None and h[2].after["deleted_at"] is not None
    assert all(e.at.tzinfo is not None for e in h)
    assert store.get([r.id]) == [] and store.get([r.id], include_deleted=True)[0].version == 3
    assert store.soft_delete([r.id], at=now()) == 0  # already deleted: nothing, no history
    assert len(store.history(r.id)) == 3


def test_keyword_search_and_hard_delete(store):
    recs = [rec(0, text="the red bicycle is fast"), rec(1, text="a blue car"), rec(2, text="red wine tasting")]
    put(store, recs)
    hits = store.keyword_search("red bicycle", Filters(), 10)
    assert hits[0][0] == recs[0].id and {h[0] for h in hits} == {recs[0].id, recs[2].id}
    assert store.keyword_search("the of and", Filters(), 10) == []  # stopwords only
    epoch = store.get_meta("vector_epoch")
    assert store.hard_delete([recs[0].id]) == 1
    assert store.get_meta("vector_epoch") != epoch
    assert store.keyword_search("bicycle", Filters(), 10) == []
    assert store.history(recs[0].id) == [] and store.stats()["vectors"] == 2


def test_data_version_moves_on_every_write(store):
    v0 = store.data_version()
    put(store, [rec(0)])
    v1 = store.data_version()
    r = store.list(Filters())[0]
    store.update(r.model_copy(update={"importance": 0.9}))
    assert v0 < v1 < store.data_version()


def test_stats(store):
    put(store, [rec(0), rec(1, kind="fact")])
    st = store.stats()
    assert st["memories"] == 2 and st["by_kind"] == {"episode": 1, "fact": 1} and st["users"] == 2
    assert st["bytes_on_disk"] > 0 and st["history_entries"] == 2


def test_an_empty_file_is_refused_unless_another_process_is_creating_the_store(tmp_path):
    import threading

    from engramdb.errors import StoreError
    from engramdb.store.sqlite import SQLiteStore, _initialised_soon

    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="empty file"):
        SQLiteStore(empty)
    assert empty.stat().st_size == 0  # refused, not turned into a store
    # a new store being created by another process: the file fills within the wait, or has a journal already
    filling = tmp_path / "filling.db"
    filling.write_bytes(b"")
    threading.Timer(0.2, lambda: filling.write_bytes(b"SQLite format 3\x00")).start()
    assert _initialised_soon(str(filling), wait_s=3.0)
    journaled = tmp_path / "journaled.db"
    journaled.write_bytes(b"")
    (tmp_path / "journaled.db-journal").write_bytes(b"")
    assert _initialised_soon(str(journaled), wait_s=0.0)
    assert not _initialised_soon(str(empty), wait_s=0.1)


def test_decoded_record_is_what_model_construct_builds():
    """The store's decoder writes out pydantic's `model_construct`: equal records, the same field order and set
    fields, and a record that validates, copies and dumps like one built the usual way."""
    from engramdb.store import codec

    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    full = MemoryRecord(user_id="u", agent_id="a", session_id="s", kind="fact", text="Sam moved to Lyon", speaker="Sam",
                        role="user", metadata={"attribute": "city", "n": 2}, occurred_at=at, recorded_at=at,
                        valid_from=at, valid_to=at, expires_at=at, deleted_at=at, source_ids=["x", "y"],
                        source_ref="D1:2", importance=0.8, access_count=3, last_accessed_at=at, version=4)
    for rec in (full, MemoryRecord(text="plain")):
        row = codec.record_to_row(rec)
        values = [row[c] for c in codec.COLUMNS]
        got = codec.values_to_record(values)
        data = dict(zip(codec.COLUMNS, values, strict=True))
        for t in codec.TIME_FIELDS:
            data[t] = codec.from_store(data[t])
        data["metadata"] = json.loads(data["metadata"])
        data["source_ids"] = json.loads(data["source_ids"])
        want = MemoryRecord.model_construct(**data)
        assert got == want == rec
        assert list(got.__dict__) == list(want.__dict__) and got.model_fields_set == want.model_fields_set
        assert got.model_dump_json() == want.model_dump_json()
        assert got.model_copy(update={"version": 9}).version == 9 and got.version == rec.version
        assert MemoryRecord.model_validate(got.model_dump()) == rec


def test_keyword_search_soon_gives_the_same_hits_on_a_worker_and_in_a_transaction(store):
    put(store, [rec(i, text=f"topic{i % 3} bicycle number {i}") for i in range(12)])
    want = store.keyword_search("bicycle topic1", Filters(user_id="u1"), 5)
    assert want and store.keyword_search_soon("bicycle topic1", Filters(user_id="u1"), 5)() == want
    with store.transaction():  # the thread holds the store: it searches itself (a worker would wait forever)
        assert store.keyword_search_soon("bicycle topic1", Filters(user_id="u1"), 5)() == want
        assert store.read_soon(lambda: store.keyword_search("bicycle topic1", Filters(user_id="u1"), 5))() == want
