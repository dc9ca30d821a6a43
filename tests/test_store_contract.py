"""One contract, two backends: every test here runs against SQLite and against a real PostgreSQL 18 + pgvector.

Store-level tests pin the interface (store/base.py); Memory-level tests pin what users see. A backend that
passes both behaves like the other, which is what lets `engramdb migrate` move a store between them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.errors import NotFoundError, StoreError
from engramdb.model import HistoryEntry, MemoryRecord
from engramdb.store.base import AuditEntry, Filters, Link, Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """The name of the backend and a URL for a fresh, empty store on it."""
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'c.db'}"
    return "postgres", request.getfixturevalue("pg_url")


@pytest.fixture
def m(backend):
    mem = Memory(url=backend[1], embedder=HashingEmbedder(64))
    yield mem
    mem.close()


@pytest.fixture
def store(m):
    return m.store


def _recs(n: int, **kw) -> list[MemoryRecord]:
    base = {"user_id": "u1", "kind": "episode", "recorded_at": T0}
    return [
        MemoryRecord(text=f"memory number {i}", occurred_at=T0 + timedelta(days=i), **{**base, **kw}) for i in range(n)
    ]


def _vecs(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# -- Store interface -------------------------------------------------------------------------------------------
def test_insert_get_roundtrip_is_exact(store):
    recs = _recs(3, metadata={"topic": "x", "n": 2, "ok": True, "nested": {"a": [1, 2.5, "z"]}}, speaker="Ann")
    recs[1] = recs[1].model_copy(
        update={"valid_from": T0, "expires_at": T0 + timedelta(days=9999), "source_ids": ["a"]}
    )
    vecs = _vecs(3)
    keys = store.insert(recs, vecs, [r.text for r in recs])
    assert len(keys) == 3 and keys == sorted(keys) and len(set(keys)) == 3
    got = store.get([r.id for r in reversed(recs)])
    assert [g.id for g in got] == [r.id for r in reversed(recs)]
    for g, r in zip(got, reversed(recs), strict=True):
        assert g.model_dump() == r.model_dump()
    assert store.keys_for([r.id for r in recs]) == {r.id: k for r, k in zip(recs, keys, strict=True)}
    assert store.ids_for(keys) == {k: r.id for r, k in zip(recs, keys, strict=True)}
    got_keys, mat = store.vectors_for(keys)
    order = np.argsort(got_keys)
    assert np.array_equal(mat[order], vecs)  # bit-exact float32
    batches = list(store.iter_vectors(batch=2))
    assert [len(k) for k, _ in batches] == [2, 1]
    assert np.array_equal(np.vstack([mt for _, mt in batches]), vecs)
    assert list(store.iter_vectors(after_key=keys[-1])) == []
    assert store.index_texts([recs[0].id]) == {recs[0].id: recs[0].text}
    assert store.get(["nope"]) == [] and store.keys_for([]) == {}


def test_insert_writes_add_history_or_the_given_one(store):
    a, b = _recs(2)
    store.insert([a], None, [a.text])
    h = store.history(a.id)
    assert [(e.version, e.action) for e in h] == [(1, "add")] and h[0].after["text"] == a.text
    given = [HistoryEntry(memory_id=b.id, version=1, action="add", after={"x": 1}, at=T0)]
    store.insert([b], None, [b.text], histories=[given])
    assert store.history(b.id) == given


def test_list_count_order_and_pages(store):
    recs = _recs(5)
    store.insert(recs, _vecs(5), [r.text for r in recs])
    f = Filters(user_id="u1")
    assert store.count(f) == 5
    assert [r.id for r in store.list(f, limit=2, offset=1)] == [r.id for r in recs[1:3]]
    assert [r.id for r in store.list(f, order="-occurred_at")] == [r.id for r in reversed(recs)]
    assert [r.id for r in store.list(f, order="recorded_at")] == [r.id for r in recs]
    assert [r.id for r in store.list(f, order="-recorded_at")] == [r.id for r in reversed(recs)]
    with pytest.raises(ValueError):
        store.list(f, order="text")


@pytest.mark.parametrize(
    "filters, expected",
    [
        (Filters(user_id="u1"), [0, 1, 2]),
        (Filters(user_id="u2"), [3]),
        (Filters(agent_id="bot"), [1]),
        (Filters(session_id="s9"), [2]),
        (Filters(kinds=["fact"]), [1, 3]),
        (Filters(kinds=["fact", "episode"]), [0, 1, 2, 3]),
        (Filters(since=T0 + timedelta(days=1)), [1, 2, 3]),
        (Filters(until=T0 + timedelta(days=1)), [0]),
        (Filters(since=T0 + timedelta(days=1), until=T0 + timedelta(days=3)), [1, 2]),
        (Filters(metadata={"topic": "work"}), [0, 2]),
        (Filters(metadata={"topic": "work", "n": 1}), [0]),
        (Filters(metadata={"n": 2}), [2]),
        (Filters(metadata={"n": 2.0}), [2]),
        (Filters(metadata={"flag": True}), [1]),
        (Filters(metadata={"flag": False}), [3]),
        (Filters(metadata={"topic": None}), [1, 3]),
        (Filters(metadata={"topic": "nope"}), []),
        (Filters(ids=[]), []),
        (Filters(source_ref="dlg-7"), [3]),
        (Filters(), [0, 1, 2, 3]),
    ],
)
def test_filters_select_the_same_rows(store, filters, expected):
    recs = [
        MemoryRecord(user_id="u1", text="a", metadata={"topic": "work", "n": 1}, occurred_at=T0, recorded_at=T0),
        MemoryRecord(
            user_id="u1", agent_id="bot", kind="fact", text="b", metadata={"flag": True},
            occurred_at=T0 + timedelta(days=1), recorded_at=T0,
        ),
        MemoryRecord(
            user_id="u1", session_id="s9", text="c", metadata={"topic": "work", "n": 2},
            occurred_at=T0 + timedelta(days=2), recorded_at=T0,
        ),
        MemoryRecord(
            user_id="u2", kind="fact", text="d", metadata={"flag": False, "topic": None}, source_ref="dlg-7",
            occurred_at=T0 + timedelta(days=3), recorded_at=T0,
        ),
    ]  # fmt: skip
    store.insert(recs, _vecs(4), [r.text for r in recs])
    want = [recs[i].id for i in expected]
    assert [r.id for r in store.list(filters, limit=100)] == want
    assert store.count(filters) == len(want)
    keys = store.keys_for([r.id for r in recs])
    assert sorted(store.candidate_keys(filters).tolist()) == sorted(keys[i] for i in want)
    assert sorted(store.filter_keys(list(keys.values()), filters).tolist()) == sorted(keys[i] for i in want)
    # the scope's vectors with its keys: in key order, as vectors_for reads them, `limit` at most
    got, mat = store.scope_vectors(filters, limit=10)
    assert got.tolist() == sorted(keys[i] for i in want)
    if want:
        assert np.array_equal(mat, store.vectors_for(got.tolist())[1])
    assert len(store.scope_vectors(filters, limit=1)[0]) == min(1, len(want))
    # what ranking reads: a backend's one light query gives what the default builds from whole records
    ids = [r.id for r in recs]
    assert store.rank_meta(ids) == Store.rank_meta(store, ids)
    near = store.rank_meta_for_keys(list(keys.values()), filters)
    assert list(near.items()) == list(Store.rank_meta_for_keys(store, list(keys.values()), filters).items())
    assert [near[k][0] for k in near] == [i for i in sorted(want, key=keys.__getitem__)]
    assert {r.id for r in store.list(Filters(ids=[recs[3].id, recs[0].id]))} == {recs[0].id, recs[3].id}


def test_deleted_expired_and_as_of_are_hidden_by_default(store):
    live, gone, expired, future = _recs(4)
    expired = expired.model_copy(update={"expires_at": T0 + timedelta(days=10)})
    old_fact = MemoryRecord(
        user_id="u1", kind="fact", text="lived in Rome", recorded_at=T0, valid_from=T0, valid_to=T0 + timedelta(days=5)
    )
    backfilled = MemoryRecord(  # recorded long after it happened: as_of is valid time, not transaction time
        user_id="u1", kind="fact", text="worked at Acme", occurred_at=T0, recorded_at=T0 + timedelta(days=100),
        valid_from=T0, valid_to=T0 + timedelta(days=3),
    )  # fmt: skip
    recs = [live, gone, expired, future, old_fact, backfilled]
    store.insert(recs, None, [r.text for r in recs])
    assert store.soft_delete([gone.id], at=T0 + timedelta(days=1)) == 1
    assert store.soft_delete([gone.id], at=T0 + timedelta(days=1)) == 0  # already deleted
    at = T0 + timedelta(days=20)
    visible = {r.id for r in store.list(Filters(now=at), limit=100)}
    assert visible == {live.id, future.id, old_fact.id, backfilled.id}
    assert gone.id in {r.id for r in store.list(Filters(now=at, include_deleted=True), limit=100)}
    assert expired.id in {r.id for r in store.list(Filters(now=at, include_expired=True), limit=100)}
    assert expired.id in {r.id for r in store.list(Filters(now=T0), limit=100)}
    assert store.get([gone.id]) == [] and store.get([gone.id], include_deleted=True)[0].deleted_at is not None
    assert [e.action for e in store.history(gone.id)] == ["add", "delete"]
    assert {r.id for r in store.list(Filters(current_only=True, kinds=["fact"]))} == set()
    as_of = {r.id for r in store.list(Filters(as_of=T0 + timedelta(days=2), kinds=["fact"]))}
    assert as_of == {old_fact.id, backfilled.id}
    assert {r.id for r in store.list(Filters(as_of=T0 + timedelta(days=4), kinds=["fact"]))} == {old_fact.id}
    assert store.list(Filters(as_of=T0 + timedelta(days=6), kinds=["fact"])) == []
    assert store.list(Filters(as_of=T0 - timedelta(days=1), kinds=["fact"])) == []


def test_update_bumps_version_writes_history_and_reindexes(store):
    (rec,) = _recs(1)
    store.insert([rec], _vecs(1), [rec.text])
    new = rec.model_copy(update={"text": "zanzibar holiday", "metadata": {"k": "v"}})
    store.update(new, vector=_vecs(1, seed=5)[0], index_text="zanzibar holiday")
    (got,) = store.get([rec.id])
    assert got.version == 2 and got.text == "zanzibar holiday" and got.metadata == {"k": "v"}
    h = store.history(rec.id)
    assert [(e.version, e.action) for e in h] == [(1, "add"), (2, "update")]
    assert h[1].before["text"] == rec.text and h[1].after["text"] == "zanzibar holiday"
    assert [i for i, _ in store.keyword_search("zanzibar", Filters(), 10)] == [rec.id]
    assert store.keyword_search("memory", Filters(), 10) == []
    _, mat = store.vectors_for(list(store.keys_for([rec.id]).values()))
    assert np.array_equal(mat[0], _vecs(1, seed=5)[0])
    with pytest.raises(StoreError):
        store.update(MemoryRecord(user_id="u1", text="ghost"))


def test_keyword_search_ranks_higher_is_better_and_filters(store):
    texts = ["the cat sat on the mat", "a cat and another cat", "dogs bark loudly", "cats are graceful animals"]
    recs = [MemoryRecord(user_id="u1" if i < 3 else "u2", text=t, recorded_at=T0) for i, t in enumerate(texts)]
    store.insert(recs, None, texts)
    hits = store.keyword_search("cat", Filters(), 10)
    ids = [i for i, _ in hits]
    assert set(ids) == {recs[0].id, recs[1].id, recs[3].id}  # both stem "cats" to "cat"
    assert ids[0] == recs[1].id  # two occurrences in a short text
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True) and all(s > 0 for _, s in hits)
    assert recs[3].id not in [i for i, _ in store.keyword_search("cat", Filters(user_id="u1"), 10)]
    assert len(store.keyword_search("cat", Filters(), 1)) == 1
    assert store.keyword_search("the and of", Filters(), 10) == []
    assert store.keyword_search("", Filters(), 10) == []
    assert store.keyword_search("it's O'Brien's \"quoted\" back\\slash -- (x) OR", Filters(), 10) == []


def test_touch_counts_without_version_or_history(store):
    (rec,) = _recs(1)
    store.insert([rec], None, [rec.text])
    store.touch([rec.id, rec.id], T0 + timedelta(days=1))
    store.touch([], T0)
    (got,) = store.get([rec.id])
    assert got.access_count == 1 and got.last_accessed_at == T0 + timedelta(days=1) and got.version == 1
    assert len(store.history(rec.id)) == 1


def test_links(store):
    a, b, c = _recs(3)
    store.insert([a, b, c], None, ["a", "b", "c"])
    store.add_links([Link(a.id, b.id, "supersedes", "newer"), Link(c.id, b.id, "related", created_at=T0)])
    store.add_links([Link(a.id, b.id, "supersedes", "dup")])  # idempotent
    assert [(lk.src_id, lk.type, lk.reason) for lk in store.links(a.id, direction="out")] == [
        (a.id, "supersedes", "newer")
    ]
    assert {lk.src_id for lk in store.links(b.id, direction="in")} == {a.id, c.id}
    assert [lk.src_id for lk in store.links(b.id, type="related")] == [c.id]
    assert store.links(b.id, direction="out") == []
    assert store.links(c.id)[0].created_at == T0


def test_derived_from_and_remove_links(store):
    eps = _recs(3)
    derived = [
        MemoryRecord(user_id="u1", kind="fact", text="f1", source_ids=[eps[0].id], recorded_at=T0),
        MemoryRecord(user_id="u1", kind="fact", text="f2", source_ids=[eps[0].id, eps[1].id], recorded_at=T0),
        MemoryRecord(user_id="u2", kind="summary", text="s", source_ids=[eps[1].id], recorded_at=T0),
    ]
    store.insert([*eps, *derived], _vecs(6), ["x"] * 6)
    got = store.derived_from([eps[0].id], Filters(kinds=["fact"]))
    assert sorted(r.text for r in got) == ["f1", "f2"]
    assert sorted(r.text for r in store.derived_from([eps[1].id], Filters())) == ["f2", "s"]
    assert [r.text for r in store.derived_from([eps[1].id], Filters(user_id="u1"))] == ["f2"]
    assert store.derived_from([eps[2].id], Filters()) == [] and store.derived_from([], Filters()) == []
    store.soft_delete([derived[0].id], at=T0)
    assert [r.text for r in store.derived_from([eps[0].id], Filters())] == ["f2"]
    # the sources can change: the lookup follows the record, not what it was first written with
    moved = store.get([derived[1].id])[0].model_copy(update={"source_ids": [eps[2].id]})
    store.update(moved)
    assert [r.text for r in store.derived_from([eps[0].id], Filters())] == []
    assert [r.text for r in store.derived_from([eps[2].id, eps[1].id], Filters())] == ["f2", "s"]
    store.hard_delete([derived[2].id])
    assert [r.text for r in store.derived_from([eps[1].id], Filters(include_deleted=True))] == []
    store.add_links([Link(eps[0].id, eps[1].id, "related"), Link(eps[0].id, eps[2].id, "supersedes")])
    assert store.remove_links([eps[0].id], type="related") == 1
    assert [lk.type for lk in store.links(eps[0].id)] == ["supersedes"]


def test_hard_delete_removes_everything(store):
    a, b = _recs(2)
    store.insert([a, b], _vecs(2), [a.text, b.text])
    store.add_links([Link(a.id, b.id, "related")])
    epoch = store.get_meta("vector_epoch")
    assert store.hard_delete([a.id, "missing"]) == 1
    assert store.hard_delete([]) == 0
    assert store.get([a.id], include_deleted=True) == [] and store.history(a.id) == []
    assert store.links(b.id) == [] and store.keys_for([a.id]) == {}
    assert len(next(store.iter_vectors())[0]) == 1
    assert store.get_meta("vector_epoch") != epoch
    assert store.stats()["vectors"] == 1


def test_audit_log_append_query_page_and_delete(store):
    a, b = _recs(2)
    store.insert([a, b], None, [a.text, b.text])
    v0 = store.data_version()
    assert store.audit_query() == [] and store.audit_append([]) == 0
    entries = [
        AuditEntry(at=T0 + timedelta(hours=i), memory_id=(a.id if i % 2 else b.id), user_id="u1",
                   agent_id="bot" if i < 4 else "nurse", purpose="care" if i == 5 else None,
                   categories=["health", "finance"] if i == 1 else [], action="redact" if i == 1 else "allow",
                   op="search" if i < 3 else "context")
        for i in range(6)
    ]
    entries.append(AuditEntry(at=T0, memory_id="m-other", user_id="u2", agent_id="bot"))
    assert store.audit_append(entries) == 7
    assert store.data_version() == v0  # the log is not data: caches stay valid
    got = store.audit_query(user_id="u1")
    assert [g.at for g in got] == [e.at for e in reversed(entries[:6])]  # newest first
    seqs = [g.seq for g in got]
    assert all(isinstance(q, int) for q in seqs) and seqs == sorted(seqs, reverse=True)
    one = store.audit_query(category="health")
    assert len(one) == 1 and one[0].categories == ["finance", "health"] and one[0].action == "redact"
    assert (one[0].memory_id, one[0].user_id, one[0].agent_id, one[0].purpose, one[0].op) == (a.id, "u1", "bot",
                                                                                              None, "search")
    assert one[0].at == T0 + timedelta(hours=1) and one[0].at.tzinfo is not None
    assert [g.purpose for g in store.audit_query(purpose="care")] == ["care"]
    assert len(store.audit_query(agent_id="nurse")) == 2 and len(store.audit_query(memory_id=a.id)) == 3
    window = store.audit_query(user_id="u1", since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4))
    assert [g.at for g in window] == [T0 + timedelta(hours=3), T0 + timedelta(hours=2)]
    assert store.audit_query(user_id="u1", agent_id="bot", category="finance", limit=0) == []
    pages, cursor = [], None  # cursor pages: stable while entries are appended
    while page := store.audit_query(user_id="u1", limit=4, before_seq=cursor):
        pages += page
        cursor = page[-1].seq
        store.audit_append([AuditEntry(at=T0, memory_id=b.id, user_id="u1")])
    assert [p.seq for p in pages] == seqs
    assert store.audit_delete(agent_id="nurse", before=T0 + timedelta(hours=5)) == 1
    assert store.audit_delete(before=T0 + timedelta(minutes=30)) == 4  # the four stamped T0, any user
    assert [g.at.hour for g in store.audit_query(user_id="u1")] == [5, 3, 2, 1]
    with pytest.raises(ValueError):
        store.audit_delete()
    store.hard_delete([a.id])  # an erased memory's entries go with it
    assert store.audit_query(memory_id=a.id) == [] and len(store.audit_query(memory_id=b.id)) == 1
    assert store.audit_delete(user_id="u1") == 1 and store.audit_query() == []


def test_replace_keys_and_meta_versions(store):
    recs = _recs(2)
    store.insert(recs, _vecs(2), [r.text for r in recs])
    v0, e0 = store.data_version(), store.get_meta("vector_epoch")
    store.replace_keys([recs[0].id, "ghost"], ["rekeyed text", "x"], _vecs(2, seed=9))
    assert store.index_texts([recs[0].id])[recs[0].id] == "rekeyed text"
    assert store.get([recs[0].id])[0].version == 1 and len(store.history(recs[0].id)) == 1
    assert store.get_meta("vector_epoch") != e0 and store.data_version() > v0
    store.set_meta("k", "1")
    store.set_meta("k", "2")
    assert store.get_meta("k") == "2" and store.get_meta("absent") is None
    for keys in (["k", "absent"], ["k", "data_version"]):
        assert store.meta_values(keys) == Store.meta_values(store, keys)
    with store.transaction():
        assert store.meta_values(["k"]) == {"k": "2"}


def test_transaction_is_atomic_and_reentrant(store):
    a, b = _recs(2)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert([a], None, [a.text])
            with store.transaction():
                store.insert([b], None, [b.text])
            assert len(store.get([a.id, b.id])) == 2  # visible inside
            raise RuntimeError("boom")
    assert store.get([a.id, b.id], include_deleted=True) == []
    before = store.data_version()
    with store.transaction():
        store.insert([a], None, [a.text])
        store.add_links([Link(a.id, a.id, "self")])
    assert store.get([a.id]) and store.data_version() > before


def test_stats_and_compact(store):
    recs = _recs(3)
    store.insert(recs, _vecs(3), [r.text for r in recs])
    store.soft_delete([recs[0].id], at=T0)
    s = store.stats()
    assert (s["memories"], s["deleted"], s["vectors"], s["users"]) == (2, 1, 3, 1)
    assert s["by_kind"] == {"episode": 2} and s["history_entries"] == 4 and s["schema_version"] >= 1
    store.hard_delete([recs[0].id])
    store.compact()
    assert store.stats()["memories"] == 2


def test_vector_search_native_or_none(store, backend):
    recs = _recs(20)
    vecs = _vecs(20)
    store.insert(recs, vecs, [r.text for r in recs])
    got = store.vector_search(vecs[3], Filters(), 5)
    if backend[0] == "sqlite":
        assert got is None
        return
    keys = store.keys_for([r.id for r in recs])
    exact = np.argsort(-(vecs @ vecs[3]))[:5]
    assert [k for k, _ in got] == [keys[recs[i].id] for i in exact]
    assert got[0][1] == pytest.approx(1.0, abs=1e-5)
    store.soft_delete([recs[3].id], at=T0)
    assert keys[recs[3].id] not in [k for k, _ in store.vector_search(vecs[3], Filters(), 5)]
    assert store.vector_search(vecs[3], Filters(user_id="nobody"), 5) == []


# -- Memory level ----------------------------------------------------------------------------------------------
def test_memory_add_search_update_delete_history(m):
    recs = m.add(
        [{"speaker": "Ann", "text": "I adopted a beagle called Rex"}, {"speaker": "Bo", "text": "I work as a nurse"}],
        user_id="ann",
        timestamp="2024-05-01T10:00:00Z",
        metadata={"src": "chat"},
    )
    m.add("Totally unrelated note about taxes", user_id="bob")
    hits = m.search("beagle Rex", user_id="ann")
    assert hits[0].memory.id == recs[0].id and "bm25" in hits[0].signals and "dense" in hits[0].signals
    assert all(h.memory.user_id == "ann" for h in hits)
    assert m.search("beagle", user_id="ann", filters={"src": "other"}) == []
    nurse = [h.memory.id for h in m.search("nurse", user_id="ann", mode="bm25")]
    assert recs[1].id in nurse and recs[0].id not in nurse  # (facts derived from the turn may match too)
    assert m.search("beagle", user_id="ann", since="2025-01-01T00:00:00Z") == []
    new = m.update(recs[0].id, text="I adopted a poodle called Max")
    assert new.version == 2
    assert m.search("poodle Max", user_id="ann", mode="bm25")[0].memory.id == recs[0].id
    m.delete(recs[0].id)
    with pytest.raises(NotFoundError):
        m.get(recs[0].id)
    assert [e.action for e in m.history(recs[0].id)] == ["add", "update", "delete"]
    assert m.list(user_id="ann", kinds=["episode"]).total == 1
    assert m.get(recs[1].id).access_count >= 1  # reads are counted


def test_memory_expiry(m):
    m.add("short lived", user_id="u", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    keep = m.add("long lived", user_id="u")[0]
    assert [r.id for r in m.list(user_id="u").items] == [keep.id]
    assert [h.memory.id for h in m.search("lived", user_id="u")] == [keep.id]


def test_export_import_across_backends(m, backend, tmp_path, request):
    """Export from this backend, import into the other: records, history, links and vectors survive."""
    recs = m.add(["alpha one", "beta two", "gamma three"], user_id="u", metadata={"k": [1, {"z": None}]})
    m.update(recs[0].id, text="alpha one revised")
    m.delete(recs[1].id)
    m.store.add_links([Link(recs[2].id, recs[0].id, "related", "test", T0)])
    path = tmp_path / "dump.jsonl"
    assert m.export(path) == 3
    other_url = request.getfixturevalue("pg_url") if backend[0] == "sqlite" else f"sqlite:///{tmp_path / 'o.db'}"
    with Memory(url=other_url, embedder=HashingEmbedder(64)) as other:
        report = other.import_(path)
        assert report.imported == 3 and not report.recomputed_embeddings
        for r in recs:
            assert other.store.get([r.id], include_deleted=True) == m.store.get([r.id], include_deleted=True)
            assert other.store.history(r.id) == m.store.history(r.id)
            assert other.store.index_texts([r.id]) == m.store.index_texts([r.id])
            _, a = m.store.vectors_for(list(m.store.keys_for([r.id]).values()))
            _, b = other.store.vectors_for(list(other.store.keys_for([r.id]).values()))
            assert np.array_equal(a, b)
        assert other.store.links(recs[0].id) == m.store.links(recs[0].id)
        assert [h.memory.id for h in other.search("alpha", user_id="u")] == [
            h.memory.id for h in m.search("alpha", user_id="u")
        ]


def test_purge_removes_a_user_and_nothing_else(m):
    gone = m.add(["alice's secret diary entry", "alice likes tea"], user_id="alice")
    kept = m.add("bob likes coffee", user_id="bob")
    m.update(gone[0].id, text="alice's edited diary entry")
    m.store.add_links([Link(gone[0].id, kept[0].id, "related")])
    m.purge(user_id="alice")
    everything = Filters(include_deleted=True, include_expired=True)
    assert m.store.count(Filters(user_id="alice", include_deleted=True, include_expired=True)) == 0
    assert all(m.store.history(r.id) == [] for r in gone) and m.store.links(kept[0].id) == []
    assert m.store.keyword_search("diary secret", everything, 10) == []
    assert [h.memory.id for h in m.search("coffee", user_id="bob")][:1] == [kept[0].id]
    assert m.store.get([kept[0].id]) and m.store.stats()["vectors"] == m.store.count(everything)


def test_stats_and_model_guard(m, backend):
    m.add("hello world", user_id="u")
    s = m.stats()
    assert s["backend"] == backend[0] and s["memories"] == 1 and s["embed_dim"] == 64
    from engramdb.errors import ModelMismatchError

    with pytest.raises(ModelMismatchError):
        Memory(url=backend[1], embedder=HashingEmbedder(32)).embedder  # noqa: B018
