"""PostgreSQL-only behaviour: URLs and schemas, migrations, the pool, HNSW, scrubbing, and the same-results
check against SQLite on the same data with the real model."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import psycopg
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.embed.base import Embedder
from engramdb.errors import ConfigError, ModelMismatchError, StoreError, ValidationError
from engramdb.store import codec, postgres_schema
from engramdb.store import postgres as pgmod
from engramdb.store.base import Filters
from engramdb.store.migrate import copy_store
from engramdb.store.postgres import PostgresStore, parse_url, redact


def _schema_of(url: str) -> str:
    return parse_url(url)[1]["schema"]


def test_parse_url_strips_our_parameters_and_validates():
    conninfo, opts = parse_url("postgresql://u:secret@db.example:5432/mem?sslmode=require&schema=t_acme&pool_max=4")
    assert conninfo == "postgresql://u:secret@db.example:5432/mem?sslmode=require"
    assert opts["schema"] == "t_acme" and opts["pool_max"] == 4
    assert parse_url("postgres://h/db")[1]["schema"] == "engramdb"
    assert parse_url("postgres://h/db?schema=a", schema="b")[1]["schema"] == "b"
    for bad in ("postgresql://h/db?schema=Robert');DROP", "postgresql://h/db?schema=" + "x" * 64):
        with pytest.raises(ConfigError):
            parse_url(bad)
    with pytest.raises(ConfigError):
        parse_url("postgresql://h/db?pool_max=lots")
    with pytest.raises(ConfigError):
        parse_url("postgresql://h/db?prepare=maybe")
    assert parse_url("postgresql://h/db?prepare=off")[1]["prepare"] == "off"
    with pytest.raises(ConfigError):
        parse_url("mysql://h/db")
    assert redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


def test_unreachable_server_is_a_clear_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore(f"postgresql://nobody@/nodb?host={tmp_path}&connect_timeout=2")


def test_migrations_are_tracked_and_run_once(pg_url):
    s1 = PostgresStore(pg_url)
    s2 = PostgresStore(pg_url)  # second open: nothing to do
    rows = s1._q("SELECT version, name FROM engramdb_migrations ORDER BY version")
    assert [r[0] for r in rows] == [v for v, _, _ in postgres_schema.MIGRATIONS]
    assert s2.stats()["schema_version"] == postgres_schema.LATEST
    s1._q(
        "INSERT INTO engramdb_migrations (version, name) VALUES (%s, 'from the future')", (postgres_schema.LATEST + 1,)
    )
    s1.close()
    s2.close()
    with pytest.raises(StoreError, match="newer than this EngramDB"):
        PostgresStore(pg_url)


def test_concurrent_first_opens_of_one_schema(pg_url):
    """Four processes' worth of first opens race on a fresh schema: the advisory lock serialises them."""
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(pg_url, pool_max=2))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 4
    assert stores[0]._q("SELECT count(*) FROM engramdb_migrations")[0][0] == len(postgres_schema.MIGRATIONS)
    for s in stores:
        s.close()


def test_schemas_isolate_tenants_and_vector_extension_is_shared(pg_server):
    a = Memory(url=pg_server.url("t_tenant_a"), embedder=HashingEmbedder(16))
    b = Memory(url=pg_server.url("t_tenant_b"), embedder=HashingEmbedder(16))
    try:
        rec = a.add("secret plans of tenant a", user_id="same-user")[0]
        b.add("tenant b notes", user_id="same-user")
        assert b.store.get([rec.id], include_deleted=True) == []
        assert [h.memory.text for h in b.search("secret plans", user_id="same-user")] == ["tenant b notes"]
        assert a.stats()["memories"] == b.stats()["memories"] == 1
        assert a.store._pool is b.store._pool  # one pool per server, whatever the number of tenants
        with psycopg.connect(pg_server.uri) as conn:
            ext = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname='vector'")
            assert ext.fetchone()[0] == "public"
    finally:
        a.close()
        b.close()
        pg_server.drop_schema("t_tenant_a")
        pg_server.drop_schema("t_tenant_b")


def test_no_session_state_needed(pg_url):
    """Behind a transaction-mode pooler no SET survives a statement: an empty search_path must not matter."""
    url = pg_url + "&options=-csearch_path%3Dpg_catalog&prepare=off"  # no prepared statements either
    with Memory(url=url, embedder=HashingEmbedder(16)) as mem:
        with mem.store._conn() as conn:
            assert conn.execute("SHOW search_path").fetchone()[0] == "pg_catalog"
        rec = mem.add("the lighthouse keeper's logbook", user_id="u")[0]
        assert mem.search("lighthouse", user_id="u", mode="bm25")[0].memory.id == rec.id
        assert mem.search("lighthouse keeper", user_id="u", mode="dense")[0].memory.id == rec.id
        assert mem.update(rec.id, text="the harbour master's logbook").version == 2
        mem.store.compact()
        assert mem.stats()["memories"] == 1


def test_engramdb_url_environment_selects_postgres(pg_url, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_URL", pg_url)
    with Memory(embedder=HashingEmbedder(16)) as mem:
        assert isinstance(mem.store, PostgresStore) and mem.store.schema == _schema_of(pg_url)


def test_pool_serves_concurrent_writers_without_loss(pg_url):
    mem = Memory(url=pg_url + "&pool_max=4", embedder=HashingEmbedder(32))
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(25):
                mem.add(f"worker {w} note {i}", user_id=f"w{w}")
                mem.search(f"note {i}", user_id=f"w{w}", limit=3)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert mem.store.count(Filters()) == 200
        assert all(mem.list(user_id=f"w{w}").total == 25 for w in range(8))
        texts = [r.text for r in mem.store.list(Filters(), limit=1000)]
        assert len(set(texts)) == 200  # no duplicates
        assert mem.store.data_version() >= 200
    finally:
        mem.close()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_reindex_is_staged_writers_go_on_and_nothing_is_lost(pg_url, embedder):
    old = Memory(url=pg_url, embedder=HashingEmbedder(384))
    recs = old.add([f"turn {i} about topic {i % 7}" for i in range(40)], user_id="u")
    changed, erased = recs[0], recs[1]
    added: list[str] = []
    errors: list[BaseException] = []

    def write_meanwhile(done: int, total: int) -> None:  # the reindex is paused here, between two batches
        if added:
            return

        def writer() -> None:
            try:
                added.extend(r.id for r in old.add("added while the reindex ran", user_id="u"))
                old.update(changed.id, text="a text changed while the reindex ran")  # a row already re-embedded
                old.erase([erased.id])
                assert old.search("topic", user_id="u")  # one complete (old) vector space meanwhile
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        t.join(timeout=60)  # an in-place reindex holds the rows it rewrote: the update would wait for all of it
        assert not t.is_alive(), "a writer waited on the reindex"
        assert errors == []

    with Memory(url=pg_url, embedder=embedder, allow_model_change=True) as new:
        assert new.reindex(progress=write_meanwhile, batch=8) >= 40
        assert added and new.stats()["embed_model"] == embedder.name
        assert new.store.count(Filters(include_deleted=True)) == 40  # 40 + 1 added - 1 erased
        keys = new.store.keys_for([added[0], changed.id])
        got, mat = new.store.vectors_for(list(keys.values()))
        assert len(got) == 2
        for key, vec in zip(got, mat, strict=True):
            text = new.get(next(i for i, k in keys.items() if k == key)).text
            assert _cos(vec, embedder.embed([text])[0]) > 0.8, text  # the new model's vector of today's text
        assert new.stats()["vectors"] == 40
        assert new.search("added while the reindex ran", user_id="u")[0].memory.id == added[0]
    with pytest.raises(ModelMismatchError):  # the old model can no longer write into the new space
        old.add("late", user_id="u")
    old.close()


def test_pool_exhaustion_is_a_store_error(pg_url):
    store = PostgresStore(pg_url + "&pool_max=1&pool_timeout=0.5")
    try:
        with store.transaction():
            done: list[BaseException] = []
            t = threading.Thread(target=lambda: _catch(done, lambda: store.count(Filters())))
            t.start()
            t.join()
        assert len(done) == 1 and isinstance(done[0], StoreError) and "pool" in str(done[0])
    finally:
        store.close()


def _catch(out: list[BaseException], fn) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001
        out.append(exc)


def test_bad_data_is_a_validation_error_and_writes_nothing(pg_url):
    with Memory(url=pg_url, embedder=HashingEmbedder(16)) as mem:
        with pytest.raises(ValidationError):
            mem.add(["fine", "also fine"], user_id="u", metadata={"bad": "nul\x00byte"})
        assert mem.store.count(Filters(include_deleted=True)) == 0


def test_hnsw_index_is_built_and_used_with_filters(pg_url, monkeypatch):
    dim, n = 16, 600
    monkeypatch.setattr(pgmod, "HNSW_MIN_ROWS", 500)  # built once a dimension has more rows than this
    store = PostgresStore(pg_url)
    try:
        from engramdb.model import MemoryRecord

        rng = np.random.default_rng(1)
        vecs = rng.standard_normal((n, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        recs = [MemoryRecord(user_id=f"u{i % 3}", text=f"t{i}", recorded_at=datetime.now(UTC)) for i in range(n)]
        store.insert(recs[:400], vecs[:400], [r.text for r in recs[:400]])

        def names() -> list[str]:
            return [r[0] for r in store._q("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (store.schema,))]

        assert f"vectors_hnsw_{dim}" not in names()  # small: searches are exact, no graph to maintain
        store.insert(recs[400:], vecs[400:], [r.text for r in recs[400:]])
        assert f"vectors_hnsw_{dim}" in names()  # built after the commit that crossed the threshold
        assert store.build_vector_index() == [dim]  # idempotent
        keys = store.keys_for([r.id for r in recs])
        u1 = np.array([i for i in range(n) if i % 3 == 1])
        q = vecs[7]
        exact = [keys[recs[i].id] for i in u1[np.argsort(-(vecs[u1] @ q))[:10]]]
        assert [k for k, _ in store.vector_search(q, Filters(user_id="u1"), 10)] == exact  # exact path
        # a table above the threshold, a filter below it: the filter's rows are counted, and searched exactly
        monkeypatch.setattr(pgmod, "EXACT_MAX", len(u1))
        with store._conn() as conn:
            assert store._small(conn, " AND m.user_id = %s", ["u1"])
            assert not store._small(conn, "", [])
        assert [k for k, _ in store.vector_search(q, Filters(user_id="u1"), 10)] == exact
        monkeypatch.setattr(pgmod, "EXACT_MAX", 0)  # force the HNSW path
        with store._conn() as conn:
            conn.execute("SET enable_seqscan = off")  # a tiny table: make the planner show the index it would use
            plan = "\n".join(
                r[0]
                for r in store._ex(
                    conn,
                    f"EXPLAIN SELECT v.key FROM vectors v WHERE vector_dims(v.embedding) = {dim}"
                    f" ORDER BY v.embedding::vector({dim}) <=> %b LIMIT 10",
                    [q],
                )
            )
            conn.execute("RESET enable_seqscan")
        assert f"vectors_hnsw_{dim}" in plan
        ann = store.vector_search(q, Filters(user_id="u1"), 10)
        assert len(ann) == 10 and len(set(k for k, _ in ann) & set(exact)) >= 8  # recall@10 on a filtered search
        assert all(k in keys.values() for k, _ in ann)
    finally:
        store.close()


def test_purge_leaves_no_bytes_in_the_data_files(pg_server, pg_url):
    marker = "zqxjmarker" + "7" * 12
    with Memory(url=pg_url, embedder=HashingEmbedder(16)) as mem:
        recs = mem.add(f"{marker} is my bank pin", user_id="u", metadata={"m": marker})
        recs += mem.add("keep this one", user_id="other")
        mem.update(recs[0].id, text=f"{marker} changed")
        mem.store.add_links([pgmod.Link(recs[0].id, recs[1].id, "related", marker)])
        with mem.store._conn() as conn:
            conn.execute("CHECKPOINT")  # make sure the marker reached the data files first
        files = _db_files(pg_server)
        assert any(marker.encode() in _bytes(f) for f in files)
        report = mem.purge(user_id="u")  # hard delete + VACUUM FULL
        assert report.memories >= 1
        with mem.store._conn() as conn:
            conn.execute("CHECKPOINT")
        leaks = [str(f) for f in _db_files(pg_server) if marker.encode() in _bytes(f)]
        assert leaks == []
        assert mem.list(user_id="u").total == 0
        assert [r.text for r in mem.list(user_id="other").items] == ["keep this one"]


def _bytes(path: Path) -> bytes:
    """A data file's bytes; one the server removed since the listing (pg_internal.init is rewritten) holds none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _db_files(pg_server) -> list[Path]:
    with psycopg.connect(pg_server.uri) as conn:
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    return [p for p in (pg_server.pgdata / "base" / str(oid)).iterdir() if p.is_file()]


# -- same results as SQLite, on the same data, with the real model ----------------------------------------------
def _corpus() -> tuple[list[dict], list[str]]:
    """Every text fixture we ship or test with, as speaker turns, and the queries that come with them."""
    sample = json.loads(resources.files("engramdb").joinpath("data/sample_conversation.json").read_text())
    turns = [
        {"speaker": t["speaker"], "text": t["text"], "timestamp": s["date"]}
        for s in sample["sessions"]
        for t in s["turns"]
    ]
    queries = list(sample["queries"])
    fx = Path(__file__).parent / "fixtures"
    if (fx / "extraction_labelled.jsonl").exists():
        for line in (fx / "extraction_labelled.jsonl").read_text().splitlines():
            if line.strip():
                turns.append({"speaker": "user", "text": json.loads(line)["text"]})
    if (fx / "longmemeval_small.json").exists():
        for item in json.loads((fx / "longmemeval_small.json").read_text()):
            queries.append(item["question"])
            for sess in item["haystack_sessions"]:
                turns.extend({"speaker": t["role"], "text": t["content"]} for t in sess)
    # Plus a query from a few words of every 7th turn: keyword-heavy queries, where BM25 matters most.
    queries += [" ".join(t["text"].split()[1:6]) for t in turns[::7]]
    return turns, queries


class _Cached(Embedder):
    """The real model, each distinct text embedded once: both backends ask for the same query vectors."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim, self.batch_size = inner, inner.name, inner.dim, 4096
        self.cache: dict[str, np.ndarray] = {}

    def _embed_batch(self, texts):
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.embed(todo), strict=True))
        return np.vstack([self.cache[t] for t in texts])


def _overlap(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / max(len(a), len(b), 1)


def _tie_swap(y: str, s: float, ids: list[str], scores: list[float]) -> bool:
    """Where one list has another id than the other at a position of score `s`, the other id (`y`) must have
    the same score in this list (a tie, ordered either way), or have fallen past its cut in a tie at the cut."""
    if y in ids:
        return abs(scores[ids.index(y)] - s) < 1e-5
    return abs(scores[-1] - s) < 1e-5


def test_same_results_as_sqlite(tmp_path, pg_url, embedder):
    embedder = _Cached(embedder)
    turns, queries = _corpus()
    embedder.embed(queries)  # one batch instead of one model call per query
    assert len(turns) > 100 and len(queries) > 20
    lite = Memory(tmp_path / "same.db", embedder=embedder)
    pg = Memory(url=pg_url, embedder=embedder)
    try:
        lite.add(turns, user_id="maya")
        # The very same records (ids, times, derived ones too), vectors and index texts: id lists are comparable.
        assert copy_store(lite.store, pg.store, verify=False).records == lite.store.count(Filters())
        figures: dict[str, list[float]] = {"dense": [], "bm25": [], "default": []}
        top1: dict[str, int] = {"dense": 0, "bm25": 0, "default": 0}
        for q in queries:
            for mode in figures:
                a = lite.search(q, user_id="maya", limit=10, mode=mode)
                b = pg.search(q, user_id="maya", limit=10, mode=mode)
                ia, ib = [h.memory.id for h in a], [h.memory.id for h in b]
                if mode == "dense":  # identical up to ties: a swap is only allowed between equal cosines
                    sa, sb = [h.signals["dense"] for h in a], [h.signals["dense"] for h in b]
                    assert np.allclose(sa, sb, atol=1e-5), q
                    for x, y, s in zip(ia, ib, sa, strict=True):
                        assert x == y or _tie_swap(y, s, ia, sa), (q, x, y)
                figures[mode].append(_overlap(ia, ib))
                top1[mode] += bool(ia and ib and ia[0] == ib[0]) or (not ia and not ib)
        means = {mode: float(np.mean(v)) for mode, v in figures.items()}
        print(
            f"\nsame-results over {len(turns)} memories, {len(queries)} queries, top-10 overlap: "
            + ", ".join(f"{mode} {means[mode]:.3f} (top-1 {top1[mode]}/{len(queries)})" for mode in figures)
        )
        assert means["dense"] >= 0.99
        assert means["bm25"] >= 0.85  # same BM25 formula; english snowball vs FTS5 porter stems differ a little
        assert means["default"] >= 0.85
    finally:
        lite.close()
        pg.close()


def test_unscoped_keyword_search_past_the_cap_scores_rare_word_rows_on_every_word(pg_url, monkeypatch):
    """Past UNSCOPED_POSTINGS_MAX, an unscoped search's candidates are the rows of codec.cutoff_groups, each
    scored exactly as when every row is read; a scoped search is never cut."""
    from engramdb.bench.scale import synthetic_texts
    from engramdb.model import MemoryRecord

    store = PostgresStore(pg_url)
    try:
        texts = synthetic_texts(400, seed=4)
        recs = [MemoryRecord(user_id=f"u{i % 3}", text=t, recorded_at=datetime.now(UTC)) for i, t in enumerate(texts)]
        store.insert(recs, None, texts)
        pruned = 0
        for query in synthetic_texts(15, seed=8):
            full = dict(store.keyword_search(query, Filters(), 1000))
            scoped = store.keyword_search(query, Filters(user_id="u1"), 1000)
            monkeypatch.setattr(pgmod, "UNSCOPED_POSTINGS_MAX", 40)
            monkeypatch.setattr(codec, "RARE_ROWS_MAX", 8)
            cut = store.keyword_search(query, Filters(), 1000)
            assert store.keyword_search(query, Filters(user_id="u1"), 1000) == scoped
            monkeypatch.undo()
            assert all(abs(full[i] - s) < 1e-9 for i, s in cut)  # the same score as from the full read
            if len(cut) < len(full):
                pruned += 1
                assert [s for _, s in cut] == sorted((s for _, s in cut), reverse=True)
                assert {i for i, _ in cut} < set(full)
        assert pruned >= 5
    finally:
        store.close()


def test_a_search_writes_nothing_and_its_access_counts_are_kept(pg_url, monkeypatch):
    """As on SQLite: a search's access counts wait in the process (its reads count them), and go out in one
    statement when TOUCH_FLUSH_S has passed, and at close."""
    url = pg_url + ("&" if "?" in pg_url else "?") + "schema=touch_buffer"
    m = Memory(url=url, embedder=HashingEmbedder(64))
    rec = m.add(["alice moved to Berlin", "bob likes tea"], user_id="u")[0]
    other = PostgresStore(url)  # what another server reads

    def stored() -> int:
        return int(other._q("SELECT access_count FROM memories WHERE id = %s", (rec.id,))[0][0])

    assert m.search("Berlin", user_id="u")[0].memory.id == rec.id
    assert stored() == 0
    assert m.store.get([rec.id])[0].access_count == 1  # this process's reads count what is buffered
    assert m.get(rec.id).access_count >= 1
    monkeypatch.setattr(pgmod, "TOUCH_FLUSH_S", 0.0)
    m.search("Berlin", user_id="u")  # due: everything buffered goes out
    assert stored() >= 2
    monkeypatch.setattr(pgmod, "TOUCH_FLUSH_S", 3600.0)
    before = stored()
    m.search("Berlin", user_id="u")
    assert stored() == before and m.store.get([rec.id])[0].access_count == before + 1
    m.close()  # closing writes what is left
    assert stored() == before + 1
    other.close()


def test_common_word_counts_come_from_analyze_statistics(pg_url, monkeypatch):
    """Above STATS_EXACT_ROWS, a word held by more than DF_EXACT_MAX rows is weighed by ANALYZE's sampled share
    (pg_stats), not counted; on a table ANALYZE read whole, that is the exact count, so scores do not move."""
    from engramdb.bench.scale import synthetic_texts
    from engramdb.model import MemoryRecord

    url = pg_url + ("&" if "?" in pg_url else "?") + "schema=df_stats"
    store = PostgresStore(url)
    try:
        texts = synthetic_texts(300, seed=6)
        store.insert([MemoryRecord(user_id="u", text=t, recorded_at=datetime.now(UTC)) for t in texts], None, texts)
        queries = synthetic_texts(10, seed=2)
        exact = [store.keyword_search(q, Filters(), 20) for q in queries]
        assert store._common_lexemes() == {}  # never analyzed: everything is counted
        store._q("ANALYZE memories")
        monkeypatch.setattr(pgmod, "STATS_EXACT_ROWS", 10)
        monkeypatch.setattr(pgmod, "DF_EXACT_MAX", 5)
        monkeypatch.setattr(pgmod, "STATS_TTL_S", 0.0)
        store._df.clear()
        counted: list[str] = []
        real_q = store._q

        def spy(sql: str, params=(), **kw):
            if "count(*) FROM memories x" in sql:
                counted.extend(p for p in params[::2])
            return real_q(sql, params, **kw)

        monkeypatch.setattr(store, "_q", spy)
        shares = store._common_lexemes()
        assert shares and max(shares.values()) > 5 / 300
        again = [store.keyword_search(q, Filters(), 20) for q in queries]
        assert not [lx for lx in counted if shares.get(lx, 0) * 300 > 5]  # common words were not counted
        for a, b in zip(exact, again, strict=True):
            assert [i for i, _ in a] == [i for i, _ in b]
            assert np.allclose([s for _, s in a], [s for _, s in b], rtol=0, atol=1e-6)
    finally:
        store.close()
