"""Packed ingest runs (embed/packed.py): texts end to end in rows give each text's own vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engramdb.embed import local as local_mod
from engramdb.embed import onnx, packed

TURNS = ["I adopted a dog last week.", "What breed is it?", "A beagle, from the shelter on Elm Street.", "Lovely!",
         "We walk by the river every morning before work, rain or shine, and then we both have a long nap on the "
         "sofa until lunch.", "Sounds nice.", "It is.", "Bye!", "See you on Friday at the climbing gym.",
         "Ünïcödé   spacing\t?", "word " * 300, "", "Caroline: I went to the LGBTQ support group yesterday."]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def copy(embedder, cache):
    got = packed.load(embedder._model, "all-MiniLM-L6-v2", cache)
    assert got is not None, "the default model must get a packed copy"
    return got


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(8, 200))
def test_rows_hold_every_text_once_within_their_width(lengths, width):
    rows = packed.pack_rows(lengths, width)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert sum(lengths[i] for i in row) <= max(width, *(lengths[i] for i in row))


def test_feed_keeps_texts_apart():
    f = packed.feed([[0, 1], [2]], [[5, 6, 7], [8, 9], [4]])
    assert f["input_ids"].tolist() == [[5, 6, 7, 8, 9], [4, 0, 0, 0, 0]]
    assert f["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 0, 0, 0, 0]]
    seen = f["attention_mask"][:, 0] == 0
    assert seen[0, 0].tolist() == [True, True, True, False, False]  # a token sees its own text only
    assert seen[0, 4].tolist() == [False, False, False, True, True]
    assert seen[1, 0].tolist() == [True, False, False, False, False]
    assert seen.any(axis=2).all()  # every row of the softmax has something to see


def test_packed_tokens_are_each_texts_own(embedder, copy):
    feats = [embedder._model.preprocess([t]) for t in TURNS]
    ids = [f["input_ids"][0].tolist() for f in feats]
    got = copy.token_vectors(ids, width=40)  # narrow rows: texts share rows, the long one has its own
    assert len(packed.pack_rows([len(x) for x in ids], 40)) < len(TURNS)
    for f, vectors in zip(feats, got, strict=True):
        want = embedder._model(dict(f))["token_embeddings"][0].detach().numpy()
        assert vectors.shape == want.shape
        assert np.abs(vectors - want).max() < 1e-4


def test_an_add_through_packed_runs_matches_padded_runs(embedder, copy, monkeypatch):
    """The same vectors and token blobs as the padded runs, with one packed run for the whole add."""
    from engramdb.ingest.keys import compute_keys
    from engramdb.model import MemoryRecord

    recs = [MemoryRecord(user_id="u", session_id="s", text=t or "…", speaker="AB"[i % 2]) for i, t in enumerate(TURNS)]
    embedder.embed(["warm"]), embedder.embed(["up"])  # the direct tokenizer is set up
    key = f"{embedder._source}@cpu"
    monkeypatch.setitem(local_mod._packed, key, copy)
    runs: list[int] = []
    real = copy.token_vectors
    monkeypatch.setattr(copy, "token_vectors", lambda ids, *a, **k: runs.append(len(ids)) or real(ids, *a, **k))
    _, vecs, toks = compute_keys(recs, embedder)
    assert runs and runs[0] >= len(recs)  # the turns and the short turns' pairs, in one call
    monkeypatch.setitem(local_mod._packed, key, None)  # padded runs
    _, vecs2, toks2 = compute_keys(recs, embedder)
    assert np.abs(vecs - vecs2).max() < 1e-5
    assert len(toks) == len(toks2) and all(len(a) == len(b) for a, b in zip(toks, toks2, strict=True))


def test_cached_export_is_reused_and_failures_fall_back(embedder, copy, cache, monkeypatch):
    monkeypatch.setattr(packed, "_export", lambda *a: pytest.fail("the cached file should have been used"))
    again = packed.load(embedder._model, "all-MiniLM-L6-v2", cache)
    assert again is not None and again.path == copy.path
    assert copy.path not in onnx.cached("all-MiniLM-L6-v2", cache)  # `models list` names the query copy only
    monkeypatch.setenv("ENGRAMDB_ONNX", "0")
    assert packed.load(embedder._model, "all-MiniLM-L6-v2", cache) is None
    monkeypatch.delenv("ENGRAMDB_ONNX")

    def broken(hf, path):
        path.write_bytes(b"not a model")

    monkeypatch.setattr(packed, "_export", broken)
    other = cache / "other"
    assert packed.load(embedder._model, "all-MiniLM-L6-v2", other) is None  # a bad copy: padded runs, no error


def test_many_texts_embedded_packed_match_each_alone(embedder, copy, monkeypatch):
    monkeypatch.setitem(local_mod._packed, f"{embedder._source}@cpu", copy)
    runs: list[int] = []
    real = copy.token_vectors
    monkeypatch.setattr(copy, "token_vectors", lambda ids, *a, **k: runs.append(len(ids)) or real(ids, *a, **k))
    texts = [t or "…" for t in TURNS]
    many = embedder.embed(texts)
    assert runs == [len(texts)]
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.abs(many - alone).max() < 1e-5


def test_int8_packed_copy_is_checked_by_cosine(embedder, copy, cache):
    q = packed.load(embedder._model, "all-MiniLM-L6-v2", cache, int8=True)
    assert q is not None and q.path.name.endswith("-int8pc.onnx") and q.path != copy.path
    feats = [embedder._model.preprocess([t]) for t in TURNS[:6]]
    got = q.token_vectors([f["input_ids"][0].tolist() for f in feats])
    for f, vectors in zip(feats, got, strict=True):
        want = embedder._model(dict(f))["sentence_embedding"][0].detach().numpy()
        mean = vectors.mean(axis=0)
        assert float(want @ mean / (np.linalg.norm(want) * np.linalg.norm(mean))) > 0.97
