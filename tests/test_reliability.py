"""Reliability findings, one test each (docs/reliability.md): silent corruption, reads waiting on writes, raw
errors escaping, orphan files, consolidation that depends on being interrupted."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env
from typer.testing import CliRunner

from engramdb import Memory, MemoryConfig
from engramdb.cli.main import app as cli_app
from engramdb.embed import HashingEmbedder, make_embedder
from engramdb.errors import ConfigError, ModelMismatchError, StoreError, ValidationError
from engramdb.index.ann import UsearchANN
from engramdb.lifecycle.consolidate import ConsolidateConfig, Consolidator
from engramdb.store.base import Filters


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- 1. vector spaces never mixed --------------------------------------------------------------------------
def test_store_reindexed_by_another_process_refuses_the_old_model(tmp_path, embedder):
    path = tmp_path / "mix.db"
    old = Memory(path, embedder=HashingEmbedder(384))
    old.add("I moved to Berlin", user_id="alice")
    with Memory(path, embedder=embedder, allow_model_change=True) as new:  # same dimension, another model
        new.reindex()
    with pytest.raises(ModelMismatchError):
        old.add("My sister lives in Lisbon", user_id="alice")
    with pytest.raises(ModelMismatchError):
        old.search("where does alice live", user_id="alice")
    assert old.list(user_id="alice").total == 1  # nothing was written
    old.close()
    with Memory(path, embedder=embedder) as again:
        assert again.search("Berlin", user_id="alice")[0].memory.text == "I moved to Berlin"


def test_consolidation_by_a_process_open_with_the_old_model_is_refused(tmp_path, embedder):
    path = tmp_path / "consol.db"
    old = Memory(path, embedder=HashingEmbedder(384))
    turns = [f"we talked about the hiking trip to the alps, part {i % 3}" for i in range(12)]
    old.add(turns, user_id="u", session_id="s1")
    with Memory(path, embedder=embedder, allow_model_change=True) as new:  # same dimension, another model
        new.reindex()
        n = new.store.count(Filters(include_deleted=True))
    with pytest.raises(ModelMismatchError):  # its session summary would carry an old-model vector
        old.consolidate()
    old.close()
    with Memory(path, embedder=embedder) as again:
        assert again.store.count(Filters(include_deleted=True)) == n


def test_writes_during_a_reindex_are_embedded_with_the_new_model(tmp_path, embedder):
    path = tmp_path / "live.db"
    old = Memory(path, embedder=HashingEmbedder(384))
    old.add([f"turn {i} about topic {i % 7}" for i in range(40)], user_id="u")
    changed = old.list(user_id="u", limit=1).items[0]
    during: list[str] = []

    def write_meanwhile(done: int, total: int) -> None:  # between two batch transactions
        if not during:
            during.extend(r.id for r in old.add("added while the reindex ran", user_id="u"))
            old.update(changed.id, text="a text changed while the reindex ran")
            # searches meanwhile still see one complete (old) vector space
            assert old.search("topic", user_id="u")

    with Memory(path, embedder=embedder, allow_model_change=True) as new:
        new.reindex(progress=write_meanwhile, batch=8)
        keys = new.store.keys_for([during[0], changed.id])
        got_keys, mat = new.store.vectors_for(list(keys.values()))
        for key, vec in zip(got_keys, mat, strict=True):
            rec_id = next(i for i, k in keys.items() if k == key)
            text = new.get(rec_id).text
            assert _cos(vec, embedder.embed([text])[0]) > 0.8, text
        assert new.stats()["vectors"] == 42 - 1 and new.stats()["embed_model"] == embedder.name
    old.close()


def test_reindex_lets_other_writers_in_between_batches(tmp_path):
    path = tmp_path / "bounded.db"
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        m.add([f"turn {i}" for i in range(30)], user_id="u")
        waits: list[float] = []

        def other_writer(done: int, total: int) -> None:
            conn = sqlite3.connect(path, timeout=1.0)
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")  # fails after 1 s if the reindex held the lock across batches
            conn.execute("ROLLBACK")
            waits.append(time.perf_counter() - t0)
            conn.close()

        m.reindex(progress=other_writer, batch=10)
        assert len(waits) == 3 and max(waits) < 1.0


def test_reindex_embeds_only_a_few_rows_while_it_holds_the_lock(tmp_path, monkeypatch):
    path = tmp_path / "final.db"
    old = Memory(path, embedder=HashingEmbedder(64))
    old.add([f"turn {i}" for i in range(20)], user_id="u")
    new = Memory(path, embedder=HashingEmbedder(96), allow_model_change=True)
    under_lock: list[int] = []
    late: list[str] = []
    keys, stage = new._res.keys, new.store.reindex_stage

    def keys_spy(records):
        if new.store._depth:  # embedding while the swap's transaction holds the write lock
            under_lock.append(len(records))
        return keys(records)

    def stage_spy(*args, **kwargs):
        stage(*args, **kwargs)
        if not new.store._depth and not late:  # written between the sweep and the swap
            late.extend(r.id for r in old.add([f"late turn {i}" for i in range(40)], user_id="u"))

    monkeypatch.setattr(new._res, "keys", keys_spy)
    monkeypatch.setattr(new.store, "reindex_stage", stage_spy)
    assert new.reindex(batch=64) == 60
    assert len(late) == 40 and all(n <= 8 for n in under_lock), under_lock  # not the 40, under the lock
    got_keys, mat = new.store.vectors_for(list(new.store.keys_for(late).values()))
    assert len(got_keys) == 40 and mat.shape[1] == 96
    old.close()
    new.close()


def test_reindex_finishes_while_a_writer_adds_faster_than_it_embeds(tmp_path, monkeypatch):
    path = tmp_path / "chase.db"
    old = Memory(path, embedder=HashingEmbedder(64))
    old.add([f"turn {i}" for i in range(30)], user_id="u")
    new = Memory(path, embedder=HashingEmbedder(96), allow_model_change=True)
    keys, added = new._res.keys, [0]

    def keys_spy(records):
        if not new.store._depth:  # every batch embedded outside the lock sees 12 more rows come in meanwhile
            old.add([f"live {added[0]} {i}" for i in range(12)], user_id="live")
            added[0] += 1
        return keys(records)

    monkeypatch.setattr(new._res, "keys", keys_spy)
    new.reindex(batch=10)  # a sweep never comes back empty: before, this never returned
    assert new.stats()["embed_dim"] == 96 and new.store.count(Filters()) == 30 + 12 * added[0]
    _, mat = new.store.vectors_for(list(range(1, 31 + 12 * added[0])))
    assert mat.shape == (30 + 12 * added[0], 96)
    old.close()
    new.close()


def test_reindex_skips_rows_changed_or_erased_while_it_embedded_them(tmp_path, monkeypatch, embedder):
    path = tmp_path / "race.db"
    old = Memory(path, embedder=HashingEmbedder(384))
    recs = old.add([f"turn {i} about topic {i % 5}" for i in range(12)], user_id="u")
    changed, erased = recs[2], recs[3]
    new = Memory(path, embedder=embedder, allow_model_change=True)
    keys = new._res.keys
    done: list[bool] = []

    def keys_spy(records):
        out = keys(records)  # embedded from the texts read before the writes below
        if not done:
            done.append(True)
            old.update(changed.id, text="a completely different sentence about pottery")
            old.erase([erased.id])
        return out

    monkeypatch.setattr(new._res, "keys", keys_spy)
    assert new.reindex(batch=64) >= 11  # no foreign-key failure from the erased row
    (key,) = new.store.keys_for([changed.id]).values()
    _, mat = new.store.vectors_for([key])
    assert _cos(mat[0], embedder.embed(["a completely different sentence about pottery"])[0]) > 0.8
    assert not new.store.get([erased.id], include_deleted=True)
    assert new.stats()["vectors"] == 11
    old.close()
    new.close()


def test_reindex_keeps_the_triggers_and_indexes_of_the_vector_tables(tmp_path):
    path = tmp_path / "trig.db"
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        m.add(["one", "two"], user_id="u")
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX vectors_probe ON vectors(length(vector))")
    conn.commit()
    before = sorted(conn.execute("SELECT name FROM sqlite_master WHERE tbl_name IN ('vectors', 'token_vectors')"
                                 " AND type IN ('trigger', 'index') AND sql IS NOT NULL"))  # fmt: skip
    conn.close()
    with Memory(path, embedder=HashingEmbedder(96), allow_model_change=True) as m:
        m.reindex()
    conn = sqlite3.connect(path)
    after = sorted(conn.execute("SELECT name FROM sqlite_master WHERE tbl_name IN ('vectors', 'token_vectors')"
                                " AND type IN ('trigger', 'index') AND sql IS NOT NULL"))  # fmt: skip
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert after == before and ("vectors_probe",) in after


# -- 2-4, 9. inputs that ended in a 500 or exit 1 -------------------------------------------------------
def _nested(depth: int) -> dict:
    d: dict = {"leaf": 1}
    for _ in range(depth - 1):
        d = {"a": d}
    return d


def test_metadata_depth_is_limited_and_export_keeps_working(fake_mem, tmp_path):
    fake_mem.add("deep but fine", user_id="u", metadata=_nested(32))
    for depth in (33, 255, 400, 5000):
        with pytest.raises(ValidationError, match="levels deep"):
            fake_mem.add("too deep", user_id="u", metadata=_nested(depth))
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValidationError):
        fake_mem.add("cyclic", user_id="u", metadata=loop)
    assert fake_mem.export(tmp_path / "out.jsonl") == 1


@pytest.mark.parametrize("key", ["a.", "a..b", ".a", "a.b.", "a" * 65])
def test_filter_keys_with_empty_segments_are_refused(fake_mem, key):
    fake_mem.add("x", user_id="u", metadata={"a": {"b": 1}})
    with pytest.raises(ValidationError):
        fake_mem.search("x", user_id="u", filters={key: 1})
    with pytest.raises(ValidationError):
        fake_mem.list(user_id="u", filters={key: 1})
    assert fake_mem.list(user_id="u", filters={"a.b": 1}).total == 1  # a real nested path still works


def test_integers_outside_64_bits_are_refused(fake_mem):
    fake_mem.add("x", user_id="u", metadata={"n": 1})
    with pytest.raises(ValidationError, match="64-bit"):
        fake_mem.search("x", user_id="u", filters={"n": 10**30})
    with pytest.raises(ValidationError):
        fake_mem.list(user_id="u", offset=2**63)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.search("x", user_id="u", limit=True),
        lambda m: m.list(user_id="u", limit=True),
        lambda m: m.list(user_id="u", offset=False),
        lambda m: m.add("x", user_id="u", importance=True),
        lambda m: m.context("x", user_id="u", max_tokens=True),
    ],
)
def test_booleans_are_not_numbers(fake_mem, call):
    with pytest.raises(ValidationError):
        call(fake_mem)


@pytest.mark.parametrize("spec", ["hashing-0", "hashing-abc", "hashing--3", "hashing-"])
def test_bad_hashing_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError):
        make_embedder(spec)


def test_rest_bad_filters_and_bodies_are_4xx(tmp_path):
    env = make_env(tmp_path)
    with TestClient(env.app) as c:
        h = env.auth("acme_rw")
        body = {"messages": "x", "user_id": "u", "metadata": {"a": 1}}
        assert c.post("/v1/memories", json=body, headers=h).status_code == 201
        for key in ("a.", "a..b"):
            r = c.post("/v1/search", json={"query": "x", "user_id": "u", "filters": {key: 1}}, headers=h)
            assert r.status_code == 422, r.text
            r = c.get("/v1/memories", params={"user_id": "u", "filters": json.dumps({key: 1})}, headers=h)
            assert r.status_code == 422, r.text
        r = c.post("/v1/search", json={"query": "x", "user_id": "u", "filters": {"a": 10**30}}, headers=h)
        assert r.status_code == 422, r.text
        deep = {"messages": "x", "user_id": "u", "metadata": _nested(255)}
        assert c.post("/v1/memories", json=deep, headers=h).status_code == 422
        assert c.get("/v1/export", headers=h).status_code == 200
        r = c.post("/v1/search", content="query=x", headers={**h, "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = c.post("/v1/memories", content="hello", headers={**h, "Content-Type": "text/plain"})
        assert r.status_code == 415


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    db = str(tmp_path / "c.db")
    runner = CliRunner()
    assert runner.invoke(cli_app, ["add", "x", "--user", "u", "--metadata", '{"a": 1}', "--db", db]).exit_code == 0
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    deep = json.dumps(_nested(255))
    cases = [
        ["add", "x", "--user", "u", "--metadata", deep, "--db", db],
        ["search", "x", "--user", "u", "--where", '{"a.": 1}', "--db", db],
        ["search", "x", "--user", "u", "--where", '{"a": 1000000000000000000000000000000}', "--db", db],
        ["list", "--user", "u", "--offset", str(2**63), "--db", db],
        ["search", "x", "--user", "u", "--db", str(garbage)],
        ["stats", "--db", str(empty)],
        ["search", "x", "--user", "u", "--db", db, "ENGRAMDB_EMBEDDER=hashing-0"],
    ]
    for args in cases:
        env = dict(a.split("=", 1) for a in args if a.startswith("ENGRAMDB_"))
        r = runner.invoke(cli_app, [a for a in args if not a.startswith("ENGRAMDB_")], env=env)
        assert r.exit_code == 2, (args[:2], r.output)
        assert r.stderr.count("\n") == 1, (args[:2], r.stderr)
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["search", "x", "--bogus"], "No such option: --bogus"),  # unknown option
        (["search"], "Missing argument 'query'"),  # missing argument
        (["list", "--limit", "abc"], "Invalid value for '--limit'"),  # invalid value
        (["bench", "faults", "--kills", "0"], "Invalid value for '--kills'"),  # in a sub-group
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_cli_usage_errors_are_one_line_and_exit_2(tmp_path, args, says):
    r = CliRunner().invoke(cli_app, args, env={"ENGRAMDB_PATH": str(tmp_path / "none.db")})
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr  # no usage block, no box
    assert says in r.stderr and "--help" in r.stderr
    assert r.stdout == "" and not (tmp_path / "none.db").exists()


def test_cli_usage_error_from_the_installed_command_and_help_still_works(tmp_path):
    env = {**os.environ, "ENGRAMDB_PATH": str(tmp_path / "none.db")}
    cmd = [sys.executable, "-m", "engramdb.cli.main"]
    r = subprocess.run([*cmd, "list", "--limit", "abc"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    r = subprocess.run([*cmd, "search", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "Usage:" in r.stdout and "--where" in r.stdout, r.stderr
    assert CliRunner().invoke(cli_app, ["list", "--help"]).exit_code == 0


# -- 5. reads never wait on writes ------------------------------------------------------------------------
def test_reads_and_opening_do_not_wait_on_a_long_write(tmp_path):
    path = tmp_path / "busy.db"
    m = Memory(path, embedder=HashingEmbedder(64))
    rec = m.add(["alice moved to Berlin", "bob likes tea"], user_id="u")[0]
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        t0 = time.perf_counter()
        assert m.search("Berlin", user_id="u")
        assert m.context("Berlin", user_id="u").text
        assert m.get(rec.id).id == rec.id
        assert m.list(user_id="u").total == 2
        assert m.stats()["memories"] == 2
        with Memory(path, embedder=HashingEmbedder(64)) as other:  # opening takes no write lock
            assert other.list(user_id="u").total == 2
        assert time.perf_counter() - t0 < 5  # each would have waited 30 s for the lock before
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    m.search("Berlin", user_id="u")  # the buffered access counts go out with the next free moment
    m.close()
    with Memory(path, embedder=HashingEmbedder(64)) as again:
        assert again.store.get([rec.id])[0].access_count >= 3


def test_a_search_writes_nothing_and_its_access_counts_are_kept(tmp_path):
    path = tmp_path / "counts.db"
    m = Memory(path, embedder=HashingEmbedder(64))
    rec = m.add(["alice moved to Berlin", "bob likes tea"], user_id="u")[0]
    other = sqlite3.connect(path)  # what another process reads

    def stored() -> int:
        return other.execute("SELECT access_count FROM memories WHERE id = ?", (rec.id,)).fetchone()[0]

    sql: list[str] = []
    m.store._conn.set_trace_callback(sql.append)
    assert m.search("Berlin", user_id="u")[0].memory.id == rec.id
    m.store._conn.set_trace_callback(None)
    assert not [s for s in sql if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE", "BEGIN"))]
    assert stored() == 0
    assert m.store.get([rec.id])[0].access_count == 1  # this process's reads count what is buffered
    m.add("carol plays chess", user_id="u")  # the next write takes the counts with it
    assert stored() == 1
    m.search("Berlin", user_id="u")
    assert m.records([rec.id])[0].access_count == 2 and stored() == 1
    m.close()  # and closing writes what is left
    assert stored() == 2
    other.close()


def test_read_only_store_serves_reads(tmp_path, monkeypatch):
    path = tmp_path / "ro.db"
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        m.add("alice moved to Berlin", user_id="u")
    with Memory(path, embedder=HashingEmbedder(64), read_only=True) as ro:
        assert ro.search("Berlin", user_id="u")
        assert ro.stats()["memories"] == 1
        assert ro.export(tmp_path / "ro.jsonl") == 1
        with pytest.raises(StoreError, match="read-only"):
            ro.add("nope", user_id="u")
    # read-only media: detected by itself (as root, file modes do not stop writes, so the check is stubbed)
    monkeypatch.setattr("engramdb.store.sqlite._writable", lambda p: False)
    with Memory(path, embedder=HashingEmbedder(64)) as auto:
        assert auto.store.read_only and auto.search("Berlin", user_id="u")


# -- 6. raw SQLite errors ---------------------------------------------------------------------------------
def test_corrupt_pages_and_empty_files_are_store_errors(tmp_path):
    path = tmp_path / "bad.db"
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        m.add([f"turn {i} " + "padding " * 200 for i in range(50)], user_id="u")
        m.store.compact()
    raw = bytearray(path.read_bytes())
    raw[8192:] = os.urandom(len(raw) - 8192)  # keep the header and schema page, garble the rest
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError):
        m2 = Memory(path, embedder=HashingEmbedder(64))
        try:
            m2.search("turn", user_id="u")
            m2.add("x", user_id="u")
        finally:
            m2.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match="empty"):
        Memory(empty, embedder=HashingEmbedder(64))
    assert empty.stat().st_size == 0


# -- 7. orphan temporary files ----------------------------------------------------------------------------
def test_orphan_ann_temp_files_are_removed(tmp_path):
    base = str(tmp_path / "x.db.usearch")
    dead = [f"{base}.999999.tmp", f"{base}.json.999999.tmp"]
    live = f"{base}.{os.getppid()}.tmp"
    for p in [*dead, live]:
        Path(p).write_bytes(b"partial")
    ann = UsearchANN(8)
    vecs = np.eye(8, dtype=np.float32)
    ann.add(np.arange(1, 9), vecs)
    ann.save(base, {"n": 8})
    assert not any(os.path.exists(p) for p in dead)
    assert os.path.exists(live)  # a live process may still be writing it
    assert sorted(os.listdir(tmp_path)) == sorted(["x.db.usearch", "x.db.usearch.json", os.path.basename(live)])


# -- 8. an interrupted consolidate ends like an uninterrupted one -------------------------------------------
class _Stop(Exception):
    pass


def _consolidation_store(path: Path) -> None:
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        for s in range(4):
            turns = [
                {"speaker": "A", "text": f"we talked about hiking in the alps trip {s}",
                 "timestamp": f"2024-0{s + 1}-01T10:0{t}:00+00:00"}
                for t in range(3)
            ] + [{"speaker": "B", "text": f"my cat is called Tom, session {s}",
                  "timestamp": f"2024-0{s + 1}-01T11:00:00+00:00"}]
            m.add(turns, user_id="u", session_id=f"s{s}")
            m.add(turns[:2], user_id="u", session_id=f"s{s}")  # the same turns ingested twice


def _state(path: Path) -> tuple:
    with Memory(path, embedder=HashingEmbedder(64)) as m:
        f = Filters(user_id="u", include_deleted=True, include_expired=True)
        recs = m.store.list(f, limit=10_000, order="recorded_at")
        derived = sorted(
            (r.metadata.get("level"), tuple(sorted(r.source_ids)), r.valid_to is None, r.deleted_at is None)
            for r in recs if r.kind == "summary"
        )  # fmt: skip
        merged = sorted(r.id for r in recs if r.kind == "episode" and r.deleted_at is not None)
        episodes = {r.id for r in recs if r.kind == "episode"}
        links = sorted(
            (lk.src_id if lk.src_id in episodes else "*", lk.dst_id if lk.dst_id in episodes else "*", lk.type)
            for r in recs for lk in m.store.links(r.id, direction="out")
        )  # fmt: skip
        return derived, merged, links


def _consolidate(path: Path, fail_at: int | None = None) -> int:
    units = 0

    def hook(name: str) -> None:
        nonlocal units
        units += 1
        if fail_at is not None and units == fail_at:
            raise _Stop(name)

    with Memory(path, embedder=HashingEmbedder(64)) as m:
        cfg = ConsolidateConfig(topic_min_members=3, topic_min_sessions=2)
        Consolidator(m.store, m.embedder.embed, cfg, fail_after=hook).run()
    return units


def test_interrupted_consolidate_ends_like_an_uninterrupted_one(tmp_path):
    seed = tmp_path / "seed.db"
    _consolidation_store(seed)
    whole = tmp_path / "whole.db"
    shutil.copy(seed, whole)
    units = _consolidate(whole)
    expected = _state(whole)
    assert units > 5 and expected[1], "the store must exercise merges, summaries and topics"
    derived = expected[0]
    cites_merged = [src for _, src, live, _ in derived if live and set(src) & set(expected[1])]
    assert not cites_merged, "live summaries cite merged turns"
    for fail_at in range(1, units + 1):
        cut = tmp_path / f"cut{fail_at}.db"
        shutil.copy(seed, cut)
        with pytest.raises(_Stop):
            _consolidate(cut, fail_at)
        _consolidate(cut)
        assert _state(cut) == expected, f"interrupted after unit {fail_at}"


# -- 10. durability setting -------------------------------------------------------------------------------
@pytest.mark.parametrize(("level", "pragma"), [("NORMAL", 1), ("FULL", 2), ("EXTRA", 3)])
def test_synchronous_is_configurable(tmp_path, level, pragma):
    with Memory(tmp_path / "s.db", embedder=HashingEmbedder(8), config=MemoryConfig(sqlite_synchronous=level)) as m:
        assert m.store._conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
