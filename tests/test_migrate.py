"""`engramdb migrate`: SQLite -> PostgreSQL -> SQLite loses nothing, refuses a non-empty target, and a failure
leaves the target empty."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.cli.main import app
from engramdb.embed import HashingEmbedder
from engramdb.errors import ValidationError
from engramdb.store.base import Filters, Link
from engramdb.store.migrate import copy_store
from engramdb.store.postgres import PostgresStore
from engramdb.store.sqlite import SQLiteStore

ALL = Filters(include_deleted=True, include_expired=True)


def _populate(path) -> list[str]:
    """A store with every kind of content: speakers, metadata, deleted, expired, updated, facts, links."""
    with Memory(path, embedder=HashingEmbedder(32)) as mem:
        recs = mem.add(
            [{"speaker": "Ann", "text": f"turn {i} about the garden and café ☕", "timestamp": 1700000000 + i}
             for i in range(30)],
            user_id="ann",
            session_id="s1",
            metadata={"src": "chat", "nested": {"a": [1, 2.5, None, True]}},
        )  # fmt: skip
        mem.add("a fact", user_id="ann", kind="fact", importance=0.9)
        mem.add("soon gone", user_id="bob", expires_at=datetime.now(UTC) - timedelta(days=1))
        mem.update(recs[0].id, text="turn 0, corrected", metadata={"edited": True})
        mem.delete(recs[1].id)
        mem.store.add_links([Link(recs[2].id, recs[3].id, "related", "same topic", datetime(2024, 1, 1, tzinfo=UTC))])
        mem.store.set_meta("custom_key", "custom value")
        return [r.id for r in recs]


def _snapshot(store) -> dict:
    recs = store.list(ALL, limit=10_000, order="recorded_at")
    ids = [r.id for r in recs]
    keys = store.keys_for(ids)
    got, mat = store.vectors_for(list(keys.values()))
    by_key = {int(k): mat[i].tobytes() for i, k in enumerate(got)}
    return {
        "records": [r.model_dump() for r in recs],
        "texts": store.index_texts(ids),
        "vectors": {i: by_key.get(keys[i]) for i in ids},
        "history": {i: [h.model_dump() for h in store.history(i)] for i in ids},
        "links": {i: [lk.__dict__ for lk in store.links(i, direction="out")] for i in ids},
        "meta": store.all_meta(),
    }


def test_round_trip_sqlite_postgres_sqlite_is_lossless(tmp_path, pg_url):
    _populate(tmp_path / "a.db")
    src = SQLiteStore(tmp_path / "a.db")
    pg = PostgresStore(pg_url)
    back = SQLiteStore(tmp_path / "b.db")
    try:
        done: list[int] = []
        there = copy_store(src, pg, batch=7, progress=lambda d, t: done.append(d))
        assert there.verified and there.mismatches == []
        assert (there.records, there.vectors, there.links) == (32, 32, 1) and done[-1] == 32
        assert "custom_key" in there.meta_keys and "embed_model" in there.meta_keys
        again = copy_store(pg, back, batch=1000)
        assert again.verified
        original, returned = _snapshot(src), _snapshot(back)
        assert returned == original  # every field, vector bit, history entry, link and meta key
        assert _snapshot(pg) == original
    finally:
        src.close()
        pg.close()
        back.close()


def _tie_swap(y: str, s: float, ids: list[str], scores: list[float]) -> bool:
    """Where one list has another id than the other at a position of score `s`, the other id (`y`) must have
    the same score in this list (a tie, ordered either way), or have fallen past its cut in a tie at the cut."""
    if y in ids:
        return abs(scores[ids.index(y)] - s) < 1e-5
    return abs(scores[-1] - s) < 1e-5


def test_search_after_migration_matches(tmp_path, pg_url):
    _populate(tmp_path / "a.db")
    src, dst = SQLiteStore(tmp_path / "a.db"), PostgresStore(pg_url)
    copy_store(src, dst, verify=False)
    src.close()
    dst.close()
    with (
        Memory(tmp_path / "a.db", embedder=HashingEmbedder(32)) as a,
        Memory(url=pg_url, embedder=HashingEmbedder(32)) as b,
    ):
        for q in ("garden café", "turn 7", "fact"):
            ha, hb = a.search(q, user_id="ann", mode="dense"), b.search(q, user_id="ann", mode="dense")
            sa, sb = [h.signals["dense"] for h in ha], [h.signals["dense"] for h in hb]
            assert np.allclose(sa, sb, atol=1e-5)
            ia, ib = [h.memory.id for h in ha], [h.memory.id for h in hb]
            for x, y, s in zip(ia, ib, sa, strict=True):  # same ids, except where the hashing embedder ties
                assert x == y or _tie_swap(y, s, ia, sa), (q, x, y)


def test_cli_migrate_json_and_refusals(tmp_path, pg_url):
    _populate(tmp_path / "a.db")
    runner = CliRunner()
    res = runner.invoke(app, ["migrate", "--from", f"sqlite:///{tmp_path / 'a.db'}", "--to", pg_url, "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["records"] == 32 and report["verified"] is True
    # A second run into the now non-empty target is refused, and changes nothing.
    res = runner.invoke(app, ["migrate", "--from", str(tmp_path / "a.db"), "--to", pg_url, "--json"])
    assert res.exit_code == 2 and "not empty" in res.output
    store = PostgresStore(pg_url)
    assert store.count(ALL) == 32
    store.close()
    res = runner.invoke(app, ["migrate", "--from", "mysql://x", "--to", pg_url])
    assert res.exit_code == 2 and "sqlite:///" in res.output


def test_failure_mid_copy_leaves_target_empty(tmp_path, pg_url, monkeypatch):
    _populate(tmp_path / "a.db")
    src, dst = SQLiteStore(tmp_path / "a.db"), PostgresStore(pg_url)
    calls = {"n": 0}
    real_insert = dst.insert

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("network blip")
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(dst, "insert", flaky)
    try:
        with pytest.raises(RuntimeError):
            copy_store(src, dst, batch=5)
        assert dst.count(ALL) == 0 and dst.all_meta() == {}
        monkeypatch.setattr(dst, "insert", real_insert)
        assert copy_store(src, dst, batch=5).verified  # and a retry then works
    finally:
        src.close()
        dst.close()


def test_verify_reports_differences(tmp_path):
    _populate(tmp_path / "a.db")
    src, dst = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
    try:
        copy_store(src, dst, verify=False)
        rec = dst.list(ALL, limit=1, order="recorded_at")[0]
        dst.replace_keys([rec.id], ["tampered"], np.zeros((1, 32), dtype=np.float32))
        from engramdb.store.migrate import _verify

        problems = _verify(src, dst, 100)
        assert any("index text" in p for p in problems) and any("vector" in p for p in problems)
    finally:
        src.close()
        dst.close()
    with pytest.raises(ValidationError, match="not empty"):
        a, b = SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")
        try:
            copy_store(a, b)
        finally:
            a.close()
            b.close()
