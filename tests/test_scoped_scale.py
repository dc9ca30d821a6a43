"""Search cost that follows the scope: the user-clustered keyword index scores exactly as FTS5's bm25() did,
old stores migrate, and past `resident_max` vectors are read from the database and patched from its change log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engramdb.bench.ann import make_queries, make_vectors
from engramdb.bench.scale import synthetic_texts
from engramdb.errors import StoreError
from engramdb.index.vector import VectorIndex
from engramdb.model import MemoryRecord
from engramdb.store import codec, sqlite_schema
from engramdb.store import sqlite as sqlite_mod
from engramdb.store.base import Filters
from engramdb.store.codec import keyword_terms
from engramdb.store.sqlite import SQLiteStore, user_bucket
from engramdb.timeutil import now

DIM = 384
USERS = ["ana", "bo", "Zoë ☃", "user/4", "u5"]


def _records(n: int) -> list[MemoryRecord]:
    texts = synthetic_texts(n, seed=5)
    return [
        MemoryRecord(user_id=USERS[i % len(USERS)] if i % 7 else None, text=t, recorded_at=now())
        for i, t in enumerate(texts)
    ]


def _reference(texts: dict[int, str]) -> sqlite3.Connection:
    """A plain one-column FTS5 table over the same texts: what bm25() scores without any clustering."""
    ref = sqlite3.connect(":memory:")
    ref.execute("CREATE VIRTUAL TABLE f USING fts5(t, tokenize='porter unicode61 remove_diacritics 2')")
    ref.executemany("INSERT INTO f(rowid, t) VALUES (?, ?)", list(texts.items()))
    return ref


def _expected(ref: sqlite3.Connection, query: str, keep: set[int], ids: dict[int, str], k: int) -> list[tuple]:
    match = " OR ".join('"' + t + '"' for t in keyword_terms(query))
    rows = ref.execute("SELECT rowid, -bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f), rowid", (match,)).fetchall()
    return [(ids[key], s) for key, s in rows if key in keep][:k]


@pytest.mark.parametrize("in_index_max", [0, 10**9], ids=["scored-in-python", "bm25-in-index"])
def test_scoped_and_unscoped_keyword_scores_match_fts5(tmp_path: Path, monkeypatch, in_index_max: int) -> None:
    monkeypatch.setattr(sqlite_mod, "BM25_IN_INDEX_MAX", in_index_max)
    store = SQLiteStore(tmp_path / "k.db")
    recs = _records(600)
    store.insert(recs, None, [r.text for r in recs])
    keys = store.keys_for([r.id for r in recs])
    ids = {keys[r.id]: r.id for r in recs}
    ref = _reference({keys[r.id]: r.text for r in recs})
    for i, query in enumerate(synthetic_texts(25, seed=9)):
        user = USERS[i % len(USERS)]
        mine = {keys[r.id] for r in recs if r.user_id == user}
        got = store.keyword_search(query, Filters(user_id=user), 20)
        want = _expected(ref, query, mine, ids, 20)
        assert [g[0] for g in got] == [w[0] for w in want]
        assert np.allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-9)
        got_all = store.keyword_search(query, Filters(), 20)
        assert [g[0] for g in got_all] == [w[0] for w in _expected(ref, query, set(ids), ids, 20)]
    store.close()


def test_scoped_scores_count_phrases_of_several_tokens(tmp_path: Path, monkeypatch) -> None:
    """Words the index splits in two ("I've", "O'Brien", "e_mail") count as phrases inside highlight()'s marks,
    overlapping and repeated instances too: the same scores as bm25()."""
    monkeypatch.setattr(sqlite_mod, "BM25_IN_INDEX_MAX", 0)
    store = SQLiteStore(tmp_path / "c.db")
    texts = ["I've been to O'Brien's place, I've said", "i ve ve i've e_mail", "the e mail from O Brien",
             "ve ve ve", "I've I've I've", "nothing here", "Brien o'brien obrien", "mail e_mail_e mail",
             "a mail_box by the mail", "mail mail mail box"]
    recs = [MemoryRecord(user_id="ana", text=t, recorded_at=now()) for t in texts]
    store.insert(recs, None, texts)
    keys = store.keys_for([r.id for r in recs])
    ids = {keys[r.id]: r.id for r in recs}
    ref = _reference({keys[r.id]: r.text for r in recs})
    for query in ["I've", "ve I've", "O'Brien's e_mail", "i've ve e_mail mail O'Brien brien", "mail mail_box"]:
        got = store.keyword_search(query, Filters(user_id="ana"), 20)
        want = _expected(ref, query, set(ids), ids, 20)
        assert [g[0] for g in got] == [w[0] for w in want], query
        assert np.allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-9), query
    store.close()


def test_scoped_search_after_writes_and_user_change(tmp_path: Path) -> None:
    """Deleting, changing a text and moving a memory to another user keep the clustered index right."""
    store = SQLiteStore(tmp_path / "w.db")
    recs = _records(100)
    store.insert(recs, None, [r.text for r in recs])
    target = next(r for r in recs if r.user_id == "ana")
    moved = target.model_copy(update={"user_id": "bo"})
    store.update(moved, index_text="zebra crossing tonight")
    assert store.keyword_search("zebra", Filters(user_id="ana"), 5) == []
    assert [h[0] for h in store.keyword_search("zebra", Filters(user_id="bo"), 5)] == [target.id]
    store.hard_delete([target.id])
    assert store.keyword_search("zebra", Filters(user_id="bo"), 5) == []
    integrity = store._conn.execute(  # FTS5's own check of index against content
        "INSERT INTO memories_fts(memories_fts, rank) VALUES ('integrity-check', 1)"
    )
    assert integrity is not None
    store.close()


def test_v2_store_migrates_to_the_clustered_index(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_mod, "BM25_IN_INDEX_MAX", 0)
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in sqlite_schema.MIGRATIONS[:2]:
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    texts = synthetic_texts(50, seed=2)
    for i, text in enumerate(texts):
        conn.execute(
            "INSERT INTO memories(id, user_id, kind, text, index_text, recorded_at) VALUES (?, ?, 'episode', ?, ?, ?)",
            (f"m{i}", USERS[i % 3], text, text, "2024-01-01T00:00:00.000000Z"),
        )
    conn.close()
    store = SQLiteStore(path)
    assert store.stats()["schema_version"] == sqlite_schema.LATEST
    bad = store._q("SELECT COUNT(*) FROM memories WHERE fts_key != engramdb_bucket(user_id) * 1099511627776 + key")
    assert bad[0][0] == 0
    ref = _reference({i + 1: t for i, t in enumerate(texts)})
    ids = {i + 1: f"m{i}" for i in range(len(texts))}
    for query in synthetic_texts(10, seed=4):
        mine = {i + 1 for i in range(len(texts)) if USERS[i % 3] == "bo"}
        got = [h[0] for h in store.keyword_search(query, Filters(user_id="bo"), 10)]
        assert got == [w[0] for w in _expected(ref, query, mine, ids, 10)]
    store.close()


def test_bucket_is_stable_and_spreads() -> None:
    assert user_bucket(None) == 0
    assert user_bucket("ana") == user_bucket("ana")
    assert len({user_bucket(f"user{i}") for i in range(1000)}) > 990


@pytest.fixture
def paged(tmp_path: Path):
    """600 memories over 6 users; an index that holds at most 100 vectors in memory (so none), and ANN past 200."""
    store = SQLiteStore(tmp_path / "p.db")
    vecs = make_vectors(600, DIM, seed=3, data="lowrank")
    recs = [MemoryRecord(user_id=f"u{i % 6}", text=f"m {i}", recorded_at=now()) for i in range(600)]
    store.insert(recs, vecs, [r.text for r in recs])
    index = VectorIndex(store, DIM, ann_path=str(tmp_path / "p.db.usearch"), exact_max=200, resident_max=100,
                        model_name="m")  # fmt: skip
    yield store, index, recs, vecs
    store.close()


def test_paged_index_holds_no_matrix_and_agrees_with_exact(paged) -> None:
    store, index, recs, vecs = paged
    qs = make_queries(10, DIM, seed=3, data="lowrank")
    index.refresh()
    assert index.paged and index._mat.size == 0
    for q in qs:
        scoped = index.search(q, Filters(user_id="u2"), 5)
        assert index.last_path == "exact"
        keys = store.candidate_keys(Filters(user_id="u2"))
        _, mat = store.vectors_for(keys.tolist())
        truth = keys[np.argsort(-(mat @ q))[:5]]
        assert [k for k, _ in scoped] == truth.tolist()
        ann = index.search(q, Filters(), 10)
        assert index.last_path == "ann"
        exact = index.search(q, Filters(), 10, force="exact")
        assert len(set(k for k, _ in ann) & set(k for k, _ in exact)) >= 8


def test_paged_search_serves_its_scope_rows_to_its_own_later_reads(paged, monkeypatch) -> None:
    store, index, recs, vecs = paged
    q = make_queries(1, DIM, seed=5, data="lowrank")[0]
    index.search(q, Filters(user_id="u2"), 5)
    assert index.last_path == "exact"
    mine = store.candidate_keys(Filters(user_id="u2")).tolist()
    other = store.candidate_keys(Filters(user_id="u3")).tolist()
    reads: list[list[int]] = []
    real = store.vectors_for
    monkeypatch.setattr(store, "vectors_for", lambda keys: reads.append(list(keys)) or real(keys))
    for keys in (mine[5:9], [*other[:3], mine[0], *other[3:5]], other[:2]):
        got_keys, got = index.vectors_for(keys, refreshed=True)
        want_keys, want = real(sorted(keys))
        assert got_keys.tolist() == want_keys.tolist() and np.array_equal(got, want)
    assert reads == [sorted([*other[:3], *other[3:5]]), sorted(other[:2])]  # the scope's rows were not read again
    index.vectors_for(mine[:2])  # not right after a search of this thread's: read as usual
    assert reads[-1] == mine[:2]
    index.search(q, Filters(), 5)  # another search (the ANN here): the scope's rows are dropped
    index.vectors_for(mine[:2], refreshed=True)
    assert reads[-1] == mine[:2]


def test_another_process_change_reaches_the_paged_index_row_by_row(paged, monkeypatch) -> None:
    store, index, recs, vecs = paged
    index.build_ann()
    other = SQLiteStore(store.path)  # another writer on the same file
    far = -vecs[0]
    changed = recs[10]
    other.update(changed, vector=far, index_text=changed.text)
    other.hard_delete([recs[20].id])
    new = MemoryRecord(user_id="u1", text="new", recorded_at=now())
    other.insert([new], np.asarray([far]), ["new"])
    other.close()

    def no_reload(*a, **k):
        raise AssertionError("a whole reload")

    monkeypatch.setattr(index, "_load_all", no_reload)
    monkeypatch.setattr(index, "_reconcile", no_reload)
    hits = index.search(far, Filters(), 3)
    got = dict(store.ids_for([k for k, _ in hits]))
    assert {got[k] for k, _ in hits[:2]} == {changed.id, new.id}
    gone_key = store.keys_for([recs[20].id])
    assert not gone_key  # hard-deleted: no key, and never a hit
    deleted_hits = index.search(vecs[20], Filters(), 5)
    assert all(k in store.ids_for([k]) for k, _ in deleted_hits)


def test_bench_scale_resumes_its_build_and_reports(tmp_path: Path) -> None:
    from engramdb.bench import scale

    calls = {"n": 0}

    def stop_midway(stage: str, done: int, total: int) -> None:
        calls["n"] += 1
        if done >= 200:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scale.build_cached(400, cache_dir=str(tmp_path), seed=3, progress=stop_midway)
    resumed = scale.build_cached(400, cache_dir=str(tmp_path), seed=3)
    assert resumed["resumed_from"] == 200
    again = scale.build_cached(400, cache_dir=str(tmp_path), seed=3)
    assert again["added_s"] == 0.0
    path = again["path"]
    report = scale.run([400], backends=("sqlite",), n_queries=5, seed=3, cache_dir=str(tmp_path), append=90)
    (appended,) = report["append"]  # engine-only ingest into a copy of the store
    assert appended["n"] == 400 and appended["turns"] >= 90 and len(appended["rounds_turns_per_s"]) == 3
    assert appended["turns_per_s"] == max(appended["rounds_turns_per_s"]) > 0
    assert "engine-only ingest" in scale.markdown(report)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("append-")]  # the copy is gone
    from engramdb import Memory
    from engramdb.embed import HashingEmbedder

    with Memory(path, embedder=HashingEmbedder(384)) as mem:  # the cached store itself is untouched
        assert mem.list(user_id="append-user00000", limit=1).total == 0
    (row,) = report["rows"]
    assert row["n"] == 400 and row["scoped"]["p50_ms"] > 0 and row["bytes_per_memory"] > 0
    sessions_in_plan = {s["session_id"] for s in scale.sessions(400, 3)}
    assert len(sessions_in_plan) == 20
    svg = scale.chart(report)
    assert svg.startswith("<svg") and "sqlite scoped" in svg
    assert "| sqlite | 400 |" in scale.markdown(report)


def test_reindex_swap_makes_a_paged_index_reload(paged) -> None:
    """A model swap replaces every vector at once: the log says so, and another process's index reloads."""
    store, index, recs, vecs = paged
    index.refresh()
    other = SQLiteStore(store.path)
    other.reindex_begin("m2")
    keys = other.vector_keys()
    other.reindex_stage(keys.tolist(), [r.text for r in recs], -vecs)
    assert other.reindex_commit("m2", DIM)
    other.close()
    assert store.vector_changes(0) is None  # the log cannot name the rows: reload
    hits = index.search(-vecs[5], Filters(user_id="u5"), 1)
    assert store.ids_for([hits[0][0]])[hits[0][0]] == recs[5].id


def test_unscoped_keyword_search_ranked_in_the_index_equals_the_joined_query(tmp_path: Path, monkeypatch) -> None:
    """An unscoped search ranks in the index and looks up only its best rows: the same hits, ties and all, as
    joining every match, also when deleted or expired rows crowd the top and when too few survive."""
    store = SQLiteStore(tmp_path / "u.db")
    texts = synthetic_texts(300, seed=3)
    recs = [MemoryRecord(user_id=USERS[i % len(USERS)], text=texts[i % 40], recorded_at=now()) for i in range(900)]
    store.insert(recs, None, [r.text for r in recs])  # 40 texts, each 22 or 23 times: many tied scores
    store.soft_delete([r.id for r in recs[::3]], at=now())

    def both(query: str, limit: int, f: Filters | None = None) -> tuple[list, list]:
        fast = store.keyword_search(query, f or Filters(), limit)
        monkeypatch.setattr(sqlite_mod, "_broad", lambda _f: False)
        slow = store.keyword_search(query, f or Filters(), limit)
        monkeypatch.undo()
        return fast, slow

    for query in synthetic_texts(12, seed=11):
        for limit in (1, 7, 50, 400, 1000):
            fast, slow = both(query, limit)
            assert fast == slow
            fast, slow = both(query, limit, Filters(include_deleted=True))
            assert fast == slow
    store.soft_delete([r.id for i, r in enumerate(recs) if i % 20], at=now())  # the best rows read are gone
    for query in synthetic_texts(12, seed=11):
        for limit in (1, 7, 50):
            fast, slow = both(query, limit)
            assert fast == slow
    store.close()


def test_v4_store_gets_the_source_index(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("engramdb_bucket", 1, sqlite_mod.user_bucket, deterministic=True)
    for version, script in sqlite_schema.MIGRATIONS[:4]:
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {version}")
    rows = [("e1", "episode", "[]"), ("e2", "episode", "[]"), ("f1", "fact", '["e1"]'), ("f2", "fact", '["e1", "e2"]')]
    for i, kind, sources in rows:
        conn.execute(
            "INSERT INTO memories(id, user_id, kind, text, index_text, recorded_at, source_ids)"
            " VALUES (?, 'bo', ?, 'x', 'x', '2024-01-01T00:00:00.000000Z', ?)", (i, kind, sources),
        )
    conn.close()
    store = SQLiteStore(path)
    assert store.stats()["schema_version"] == sqlite_schema.LATEST
    assert sorted(r.id for r in store.derived_from(["e1"], Filters())) == ["f1", "f2"]
    assert [r.id for r in store.derived_from(["e2"], Filters(kinds=["fact"]))] == ["f2"]
    store.close()


def test_a_common_words_count_is_estimated_from_a_sample_of_users(tmp_path: Path, monkeypatch) -> None:
    # the thresholds scaled down, so 3,000 rows of 300 users stand for a large store
    monkeypatch.setattr(sqlite_mod, "STATS_EXACT_ROWS", 0)
    monkeypatch.setattr(sqlite_mod, "DF_EXACT_MAX", 200)
    monkeypatch.setattr(sqlite_mod, "DF_SAMPLE_MIN_ROWS", 50)
    monkeypatch.setattr(sqlite_mod, "DF_SAMPLE", (1 << 40, ((1 + (1 << 23) // 4) << 40) - 1))  # a quarter of users
    store = SQLiteStore(tmp_path / "df.db")
    texts = synthetic_texts(3000, seed=3)
    recs = [MemoryRecord(user_id=f"user{i % 300}", text=t, recorded_at=now()) for i, t in enumerate(texts)]
    store.insert(recs, None, texts)
    n_rows = store._fts_totals()[0]
    estimated = 0
    for word in ["dinner", "coach", "dog", "zebra", "moving", "weekend"]:
        phrase = f'"{word}"'
        exact = store._count_all(phrase)
        got = store._doc_count(phrase, n_rows)
        if exact <= 100:  # rare: always counted
            assert got == exact
        elif got != exact:
            estimated += 1
            assert abs(got - exact) <= 0.35 * exact, (word, got, exact)
    assert estimated >= 1  # the sample did stand in for a full count
    store.close()


def test_unscoped_keyword_search_past_the_postings_cap_scores_the_cutoff_candidates(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """Past UNSCOPED_POSTINGS_MAX, an unscoped search's candidates are the rows of codec.cutoff_groups (each rare
    word's rows, the rows holding the two rarest common words), each scored on every query word exactly as
    bm25() scores it."""
    store = SQLiteStore(tmp_path / "p.db")
    recs = _records(600)
    extra = ["Rock-n-roll night with O'Brien and the road bike crew", "O'Brien sold his road bike to a nurse"]
    recs += [MemoryRecord(user_id="ana", text=t, recorded_at=now()) for t in extra]
    store.insert(recs, None, [r.text for r in recs])
    keys = store.keys_for([r.id for r in recs])
    ids = {keys[r.id]: r.id for r in recs}
    ref = _reference({keys[r.id]: r.text for r in recs})
    monkeypatch.setattr(sqlite_mod, "UNSCOPED_POSTINGS_MAX", 60)
    monkeypatch.setattr(codec, "RARE_ROWS_MAX", 12)
    monkeypatch.setattr(sqlite_mod, "PRUNED_POOL", 10**6)  # no cut: every candidate is rescored
    cut = 0
    queries = [*synthetic_texts(20, seed=9), "Did O'Brien sell the road bike?", "rock-n-roll nurse O'Brien"]
    for query in queries:
        phrases = ['"' + t + '"' for t in keyword_terms(query)]
        df = [ref.execute("SELECT count(*) FROM f WHERE f MATCH ?", (p,)).fetchone()[0] for p in phrases]
        got = store.keyword_search(query, Filters(), 20)
        full = ref.execute(
            "SELECT rowid, -bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f), rowid", (" OR ".join(phrases),)
        ).fetchall()
        if sum(df) <= 60:
            assert [g[0] for g in got] == [ids[k] for k, _ in full[:20]]
            continue
        groups = codec.cutoff_groups(df)
        assert any(len(g) == 2 for g in groups) or len(groups) == sum(c <= 12 for c in df) or len(df) == 1
        expr = " OR ".join("(" + " AND ".join(phrases[i] for i in g) + ")" for g in groups)
        holders = {r[0] for r in ref.execute("SELECT rowid FROM f WHERE f MATCH ?", (expr,))}
        cut += len(holders) < len(full)
        want = [(ids[k], s) for k, s in full if k in holders][:20]
        assert [g[0] for g in got] == [w[0] for w in want]
        assert np.allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-9)
    assert cut >= 10
    monkeypatch.setattr(sqlite_mod, "PRUNED_POOL", 5)  # a cut pool still scores what it keeps exactly
    for query in queries:
        got = store.keyword_search(query, Filters(), 20)
        full_scores = dict(ref.execute("SELECT rowid, -bm25(f) FROM f WHERE f MATCH ?",
                                       (" OR ".join('"' + t + '"' for t in keyword_terms(query)),)).fetchall())
        by_id = {ids[k]: s for k, s in full_scores.items()}
        assert all(abs(by_id[i] - s) < 1e-9 for i, s in got)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    store.close()


def test_cutoff_groups() -> None:
    big, rare = codec.RARE_ROWS_MAX + 1, codec.RARE_ROWS_MAX
    assert codec.cutoff_groups([big * 3, rare, big * 2, big]) == [[1], [2, 3]]
    assert codec.cutoff_groups([big, 1]) == [[1]]  # one common word left: a rare word's rows only
    assert codec.cutoff_groups([big * 2]) == [[0]]
    assert codec.cutoff_groups([big, big * 5, big * 2]) == [[0, 2]]


def test_phrase_counts_in_one_batch_match_one_text_at_a_time(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    texts = [*synthetic_texts(40, seed=12), "", "O'Brien's rock-n-roll road bike, road bike!", "Ünïcödé café"]
    phrases = [store._tokens(w) for w in ["road", "bike", "o'brien", "rock-n-roll", "cafe", "feel"]]
    lens = [len(store._tokenize(t)) for t in texts]
    batch = store._phrase_counts(texts, lens, phrases)
    one_by_one = store._phrase_counts(texts, [n + 1 for n in lens], phrases)  # lengths out of step: fallback
    assert (batch == one_by_one).all()
    assert batch[-2].tolist() == [2, 2, 1, 1, 0, 0] and batch[-1][4] == 1
    store.close()


def test_worker_reads_use_their_own_connection_and_close_with_the_store(tmp_path: Path) -> None:
    """`read_soon` reads on a worker through a second, read-only connection: it sees what the store committed,
    cannot write, and goes with the store's close (a read after close is an error, not a reopened file)."""
    store = SQLiteStore(tmp_path / "r.db")
    recs = _records(20)
    store.insert(recs, None, [r.text for r in recs])
    got = store.read_soon(lambda: store.count(Filters()))()
    assert got == 20
    assert store._reader is not None and store._reader is not store._conn
    with pytest.raises(StoreError):
        store.read_soon(lambda: store._q("DELETE FROM memories"))()
    assert store.count(Filters()) == 20
    store.close()
    assert store._reader is None
    with pytest.raises(StoreError):
        store.read_soon(lambda: store.count(Filters()))()


def test_merging_the_keyword_index_keeps_every_score(tmp_path: Path, monkeypatch) -> None:
    """Many small writes leave the keyword index in many segments; `merge_keyword_index` folds them into one
    in bounded steps, and scoped and unscoped keyword scores come out exactly as before."""
    monkeypatch.setattr(sqlite_mod, "MERGE_STEP_PAGES", 2)  # many small steps
    store = SQLiteStore(tmp_path / "m.db")
    recs = _records(300)
    for i in range(0, 300, 10):  # rows of five users in each write: FTS5 starts a segment at each
        store.insert(recs[i : i + 10], None, [r.text for r in recs[i : i + 10]])
    assert store._segments() > 1
    queries = synthetic_texts(12, seed=21)
    before = [(store.keyword_search(q, Filters(user_id=USERS[i % len(USERS)]), 10),
               store.keyword_search(q, Filters(), 10)) for i, q in enumerate(queries)]
    assert store.merge_keyword_index() > 1
    assert store._segments() == 1
    assert store.merge_keyword_index() == 0  # nothing left to merge
    after = [(store.keyword_search(q, Filters(user_id=USERS[i % len(USERS)]), 10),
              store.keyword_search(q, Filters(), 10)) for i, q in enumerate(queries)]
    for (s0, u0), (s1, u1) in zip(before, after, strict=True):
        assert [h[0] for h in s0] == [h[0] for h in s1] and [h[0] for h in u0] == [h[0] for h in u1]
        assert np.allclose([h[1] for h in s0 + u0], [h[1] for h in s1 + u1], rtol=0, atol=1e-9)
    store.close()


@pytest.mark.parametrize("in_index_max", [0, 10**9], ids=["scope-first", "bm25-in-index"])
def test_agent_and_session_scopes_score_as_fts5(tmp_path: Path, monkeypatch, in_index_max: int) -> None:
    """A scope given by agent or session, with no user, is read through its own index past BM25_IN_INDEX_MAX
    rows and scored in Python: the same hits and scores as bm25() over the whole index."""
    monkeypatch.setattr(sqlite_mod, "BM25_IN_INDEX_MAX", in_index_max)
    store = SQLiteStore(tmp_path / "a.db")
    texts = synthetic_texts(400, seed=13) + ["I've I've O'Brien's e_mail"] * 3
    recs = [MemoryRecord(user_id=USERS[i % len(USERS)], agent_id=f"agent{i % 3}", session_id=f"s{i % 11}",
                         text=t, recorded_at=now()) for i, t in enumerate(texts)]
    store.insert(recs, None, texts)
    keys = store.keys_for([r.id for r in recs])
    ids = {keys[r.id]: r.id for r in recs}
    ref = _reference({keys[r.id]: r.text for r in recs})
    queries = [*synthetic_texts(15, seed=31), "I've e_mail O'Brien"]
    for i, query in enumerate(queries):
        for filt, keep in (
            (Filters(agent_id=f"agent{i % 3}"), {keys[r.id] for r in recs if r.agent_id == f"agent{i % 3}"}),
            (Filters(session_id=f"s{i % 11}"), {keys[r.id] for r in recs if r.session_id == f"s{i % 11}"}),
            (Filters(ids=[r.id for r in recs[::7]]), {keys[r.id] for r in recs[::7]}),
        ):
            got = store.keyword_search(query, filt, 20)
            want = _expected(ref, query, keep, ids, 20)
            assert [g[0] for g in got] == [w[0] for w in want], (query, filt)
            assert np.allclose([g[1] for g in got], [w[1] for w in want], rtol=0, atol=1e-9)
    store.close()


def test_a_replicated_stores_queries_reach_every_copy_on_both_backends() -> None:
    """`--build replicate`: the SQLite file and its PostgreSQL copy hold ten copies of the 100k store, each under
    its own users; a round's scoped searches are spread over all of them on both backends."""
    from engramdb.bench.scale import _copies, _queries

    sqlite_path = "/cache/scale_1000000_seed11_replicated.db"
    pg_url = "postgresql://localhost/db?schema=scale_1000000_seed11_rep"
    assert _copies(1_000_000, sqlite_path) == _copies(1_000_000, pg_url) == 10
    assert _copies(10_000, "postgresql://localhost/db?schema=scale_10000_seed11") == 1
    _, sqlite_users = _queries(1_000_000, sqlite_path, 50, 11, 0)
    _, pg_users = _queries(1_000_000, pg_url, 50, 11, 0)
    assert sqlite_users == pg_users and sum("~" in u for u in pg_users) > 30  # copies 1-9 carry a ~n suffix
