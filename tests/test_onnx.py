"""Queries through ONNX Runtime (embed/onnx.py): the same numbers as torch, a cached export, torch on any failure."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from engramdb.embed import local as local_mod
from engramdb.embed import onnx

TEXTS = ["When did Melanie paint a sunrise?", "Caroline: I went to the LGBTQ support group yesterday.", "ok"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def copy(embedder, cache):
    got = onnx.load(embedder._model, "all-MiniLM-L6-v2", cache)
    assert got is not None, "the default model must get an ONNX copy"
    return got


def test_onnx_copy_reproduces_torch(embedder, copy, monkeypatch):
    monkeypatch.setitem(local_mod._onnx, f"{embedder._source}@cpu", copy)
    monkeypatch.setattr(embedder, "_small_runs", 1)  # past the first query: the copy is in use
    calls = []
    real = copy.hidden
    monkeypatch.setattr(copy, "hidden", lambda *a: calls.append(1) or real(*a))
    fast = [embedder.embed_tokens([t]) for t in TEXTS]
    batch = embedder.embed_tokens(TEXTS)
    assert len(calls) == len(TEXTS) + 1
    monkeypatch.setattr(embedder, "use_onnx", False)
    for t, (vec, toks) in zip(TEXTS, fast, strict=True):
        want_vec, want_toks = embedder.embed_tokens([t])
        assert np.abs(vec - want_vec).max() < 1e-5
        assert toks[0].shape == want_toks[0].shape and np.abs(toks[0] - want_toks[0]).max() < 1e-5
    want_vec, want_toks = embedder.embed_tokens(TEXTS)  # a padded batch of three
    assert np.abs(batch[0] - want_vec).max() < 1e-5
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(batch[1], want_toks, strict=True))


def test_embedder_uses_the_copy_for_queries(embedder, copy, monkeypatch):
    calls, modules = [], []
    real, real_forward = copy.hidden, copy.forward
    monkeypatch.setattr(copy, "hidden", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(copy, "forward", lambda *a: modules.append(1) or real_forward(*a))
    monkeypatch.setitem(local_mod._onnx, f"{embedder._source}@cpu", copy)
    monkeypatch.setattr(embedder, "_small_runs", 0)  # a fresh embedder
    first = embedder.embed_one("Where did Caroline move from?")
    assert calls == []  # one query alone stays in torch: loading the copy would cost more than it saves
    again = embedder.embed_one("Where did Caroline move from?")
    assert calls == [1] and modules == []  # numpy either side of the run: no torch tensors or pooling modules
    assert np.abs(first - again).max() < 1e-6
    vec, toks = embedder.embed_tokens(["Where did Caroline move from?"])
    assert calls == [1, 1] and modules == []
    assert np.abs(vec[0] - again).max() < 1e-6 and toks[0].shape[1] == embedder.dim
    embedder.embed(["a turn"] * (local_mod.SMALL_BATCH + 1))  # a batch: the packed copy, not this one
    assert calls == [1, 1]


def test_cached_export_is_reused(embedder, copy, cache, monkeypatch):
    monkeypatch.setattr(onnx, "_export", lambda *a: pytest.fail("the cached file should have been used"))
    again = onnx.load(embedder._model, "all-MiniLM-L6-v2", cache)
    assert again is not None and again.path == copy.path


def test_damaged_cache_file_is_exported_again(embedder, copy, tmp_path):
    (tmp_path / "onnx").mkdir()
    target = tmp_path / "onnx" / copy.path.name
    shutil.copy(copy.path, target)
    target.write_bytes(target.read_bytes()[: 1000])  # truncated
    again = onnx.load(embedder._model, "all-MiniLM-L6-v2", tmp_path)
    assert again is not None and again.path == target
    assert target.stat().st_size == copy.path.stat().st_size
    assert not list((tmp_path / "onnx").glob("*.part"))  # no temporary file left behind


def test_switched_off_by_environment(embedder, cache, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_ONNX", "0")
    assert onnx.load(embedder._model, "all-MiniLM-L6-v2", cache) is None


def test_any_failure_leaves_torch_with_a_warning(embedder, tmp_path, monkeypatch, caplog):
    def broken(*a):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx, "_export", broken)
    with caplog.at_level(logging.WARNING, logger="engramdb"):
        assert onnx.load(embedder._model, "all-MiniLM-L6-v2", tmp_path) is None
    assert "exporter exploded" in caplog.text
    assert not (tmp_path / "onnx").exists() or not list((tmp_path / "onnx").iterdir())
    # the embedder itself still answers, through torch
    monkeypatch.setitem(local_mod._onnx, f"{embedder._source}@cpu", None)
    assert embedder.embed_one("still works").shape == (embedder.dim,)


def test_a_copy_that_disagrees_is_not_used(embedder, copy, tmp_path, monkeypatch, caplog):
    good = tmp_path / "good.onnx"
    shutil.copy(copy.path, good)
    exports = []
    monkeypatch.setattr(onnx, "_export", lambda hf, probe, inputs, path: exports.append(shutil.copy(good, path)))
    monkeypatch.setattr(onnx, "TOLERANCE", -1.0)  # nothing can pass: stands for a mis-exported graph
    with caplog.at_level(logging.WARNING, logger="engramdb"):
        assert onnx.load(embedder._model, "all-MiniLM-L6-v2", tmp_path / "cache") is None
    assert len(exports) == 2  # a stale file gets one more export before torch is kept
    assert "differs from the model" in caplog.text


def test_embedder_builds_its_copy_once_into_the_model_cache(embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_MODEL_CACHE", str(tmp_path))
    monkeypatch.setattr(local_mod, "_onnx", {})
    got = embedder._onnx_copy()
    assert got is not None and got.path.parent == tmp_path / "onnx" and got.path.name.startswith("all-MiniLM-L6-v2-")
    assert embedder._onnx_copy() is got  # one per process
    monkeypatch.setattr(local_mod, "_onnx", {})  # a new process: reads the file, exports nothing
    monkeypatch.setattr(onnx, "_export", lambda *a: pytest.fail("the cached file should have been used"))
    assert embedder._onnx_copy().path == got.path
    assert onnx.cached("all-MiniLM-L6-v2", tmp_path) == [got.path]


def test_int8_copy_is_close_and_cached(embedder, copy, cache):
    """int8 (dynamic quantization, per channel) is made once beside the float export and stays near the model."""
    import torch

    q = onnx.load(embedder._model, "all-MiniLM-L6-v2", cache, int8=True)
    assert q is not None and q.path.name.endswith("-int8pc.onnx") and q.path.parent == copy.path.parent
    feats = embedder._model.preprocess(TEXTS)
    with torch.inference_mode():
        want = embedder._model(dict(feats))["sentence_embedding"]
    got = q.forward(embedder._model, dict(feats))["sentence_embedding"]
    cos = torch.nn.functional.cosine_similarity(want, got, dim=-1)
    assert float(cos.min()) > 0.95 and float(cos.mean()) > 0.98  # close ('ok' alone: 0.96) ...
    assert float((want - got).abs().max()) > 1e-4  # ... not equal
    stamp = q.path.stat().st_mtime_ns
    assert onnx.load(embedder._model, "all-MiniLM-L6-v2", cache, int8=True).path.stat().st_mtime_ns == stamp
