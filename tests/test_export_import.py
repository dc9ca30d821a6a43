"""JSONL export/import: a lossless round trip (records, history, links, exact embeddings), recompute, bad lines."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.errors import ValidationError
from engramdb.store.base import Filters, Link


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


def vectors_by_id(m: Memory) -> dict[str, bytes]:
    recs = m.store.list(Filters(include_deleted=True, include_expired=True), limit=10_000)
    keys = m.store.keys_for([r.id for r in recs])
    got_keys, mat = m.store.vectors_for(list(keys.values()))
    by_key = {int(k): mat[i].tobytes() for i, k in enumerate(got_keys)}
    return {r.id: by_key[keys[r.id]] for r in recs}


def snapshot(m: Memory) -> dict:
    recs = m.store.list(Filters(include_deleted=True, include_expired=True), limit=10_000, order="recorded_at")
    return {
        "records": [r.model_dump() for r in recs],
        "history": {r.id: [h.model_dump() for h in m.store.history(r.id)] for r in recs},
        "links": {r.id: [(lk.src_id, lk.dst_id, lk.type) for lk in m.store.links(r.id, direction="out")] for r in recs},
        "index_text": m.store.index_texts([r.id for r in recs]),
    }


def test_round_trip_is_lossless(mem, tmp_path, embedder):
    recs = mem.add(
        [
            {"speaker": "Ana", "text": "I run a small bakery in Lyon.", "timestamp": "2024-02-01T09:00:00+01:00"},
            {"speaker": "Ana", "text": "Croissants sell out by 9am — always.", "metadata": {"n": 1, "ok": True}},
        ],
        user_id="ana",
        session_id="s1",
        source_ref="dlg-9",
    )
    fact = mem.add("Ana owns a bakery", user_id="ana", kind="fact", importance=0.9, expires_at="2099-01-01T00:00:00Z")
    mem.update(recs[1].id, text="Croissants sell out by 10am.")
    mem.delete(recs[0].id)
    mem.store.add_links([Link(fact[0].id, recs[0].id, "derived_from", "test")])
    path = tmp_path / "dump.jsonl"
    assert mem.export(path) == 3
    header = json.loads(path.read_text().splitlines()[0])
    assert header["embed_model"] == "all-MiniLM-L6-v2" and header["format"] == "engramdb-jsonl"

    other = Memory(tmp_path / "copy.db", embedder=embedder)
    report = other.import_(path)
    assert report.imported == 3 and report.skipped == 0 and not report.recomputed_embeddings
    assert snapshot(other) == snapshot(mem)
    assert vectors_by_id(other) == vectors_by_id(mem)  # bit-for-bit
    # and it searches the same
    assert other.search("bakery", user_id="ana")[0].memory.id == mem.search("bakery", user_id="ana")[0].memory.id
    # importing again clashes: nothing imported
    with pytest.raises(ValidationError, match="already in the store"):
        other.import_(path)
    other.close()

    # --recompute-embeddings: vectors come from the model of the target store
    fresh = Memory(tmp_path / "recomputed.db", embedder=HashingEmbedder(64))
    with pytest.raises(ValidationError, match="recompute"):
        fresh.import_(path)
    assert fresh.stats()["memories"] == 0
    rep = fresh.import_(path, recompute_embeddings=True)
    assert rep.imported == 3 and rep.recomputed_embeddings
    assert fresh.stats()["embed_model"] == "hashing-64" and fresh.stats()["vectors"] == 3
    assert fresh.get(fact[0].id).text == "Ana owns a bakery"
    fresh.close()


def test_bad_lines_report_line_numbers_and_import_nothing(fake_mem, tmp_path):
    fake_mem.add(["one", "two", "three"], user_id="u")
    buf = io.StringIO()
    fake_mem.export(buf)
    lines = buf.getvalue().splitlines()
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")

    target = Memory(tmp_path / "t.db", embedder=HashingEmbedder(64))
    bad = lines[:2] + ["{not json"] + lines[2:3] + ['{"record": {"text": "no scope"}}'] + lines[3:]
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(bad) + "\n")
    with pytest.raises(ValidationError) as exc:
        target.import_(p)
    assert "line 3" in str(exc.value) and "line 5" in str(exc.value)
    assert target.stats()["memories"] == 0
    rep = target.import_(p, skip_bad=True)
    assert rep.imported == 3 and rep.skipped == 2 and rep.errors[0].startswith("line 3:")

    # invalid UTF-8 on a line
    raw = tmp_path / "bytes.jsonl"
    raw.write_bytes(good.read_bytes().replace(b'"one"', b'"\xff\xfeone"', 1))
    t2 = Memory(tmp_path / "t2.db", embedder=HashingEmbedder(64))
    with pytest.raises(ValidationError, match="invalid UTF-8"):
        t2.import_(raw)
    assert t2.stats()["memories"] == 0
    # a truncated embedding, a naive timestamp, an over-long text
    rec = json.loads(lines[1])
    broken = [
        {**rec, "embedding": rec["embedding"][:12]},
        {**rec, "record": {**rec["record"], "id": "x2", "occurred_at": "2024-01-01T00:00:00"}},
        {**rec, "record": {**rec["record"], "id": "x3", "text": "a" * 40_000}},
    ]
    p3 = tmp_path / "broken.jsonl"
    p3.write_text(lines[0] + "\n" + "\n".join(json.dumps(b) for b in broken) + "\n")
    with pytest.raises(ValidationError) as exc:
        t2.import_(p3)
    assert all(f"line {n}" in str(exc.value) for n in (2, 3, 4))
    assert t2.stats()["memories"] == 0
    with pytest.raises(ValidationError, match="cannot read"):
        t2.import_(tmp_path / "missing.jsonl")
    t2.close()
    target.close()


def test_hand_written_lines_get_history(fake_mem):
    line = {"record": {"id": "m1", "user_id": "u", "text": "written by hand", "recorded_at": "2024-01-01T00:00:00Z"}}
    rep = fake_mem.import_([json.dumps(line)])
    assert rep.imported == 1 and rep.recomputed_embeddings
    assert [h.action for h in fake_mem.history("m1")] == ["add"]
    assert fake_mem.search("written by hand", user_id="u")[0].memory.id == "m1"


def test_export_embeddings_are_exact_float32(fake_mem):
    r = fake_mem.add("exact bits", user_id="u")[0]
    buf = io.StringIO()
    fake_mem.export(buf)
    import base64

    line = json.loads(buf.getvalue().splitlines()[1])
    vec = np.frombuffer(base64.b64decode(line["embedding"]), dtype=np.float32)
    key = fake_mem.store.keys_for([r.id])[r.id]
    assert vec.tobytes() == fake_mem.store.vectors_for([key])[1][0].tobytes()
