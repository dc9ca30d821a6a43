"""Embedding providers: batching and normalisation, the offline MiniLM pack (hash-checked), OpenAI-compatible HTTP."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from engramdb.embed import HashingEmbedder, direct, make_embedder, packs
from engramdb.embed import local as local_mod
from engramdb.embed.base import Embedder
from engramdb.errors import ConfigError, EngramError


class Ones(Embedder):
    name, dim, batch_size = "ones", 3, 4

    def _embed_batch(self, texts):
        return np.array([[len(t), 0.0, 0.0] if t else [0.0, 0.0, 0.0] for t in texts], dtype=np.float64)


def test_batches_and_normalises():
    e = Ones()
    out = e.embed(["a", "bb", "", "dddd", "e", "f", "g", "h", "i"])
    assert e.calls == 3 and out.dtype == np.float32 and out.shape == (9, 3)
    assert np.allclose(np.linalg.norm(out[[0, 1, 3]], axis=1), 1.0)
    assert np.all(out[2] == 0)  # a zero vector stays zero instead of NaN
    assert e.embed([]).shape == (0, 3) and e.calls == 3


def test_hashing_is_deterministic_and_spec_built():
    a, b = make_embedder("hashing-32"), HashingEmbedder(32)
    assert a.name == "hashing-32" and a.dim == 32
    np.testing.assert_array_equal(a.embed(["same words here"]), b.embed(["same words here"]))
    assert not np.allclose(a.embed(["cats"])[0], a.embed(["dogs"])[0])


def test_default_model_is_offline_minilm(embedder):
    assert embedder.name == "all-MiniLM-L6-v2" and embedder.dim == 384
    assert make_embedder("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"  # alias, cached
    v = embedder.embed(["The cat sat on the mat.", "A feline rested on the rug.", "Quarterly tax filing deadline"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_direct_query_tokens_are_the_models_own(embedder):
    """embed/direct.py: one text's features from the tokenizer backend equal `preprocess`'s, cut at the model's
    length as it cuts them; a model it cannot match gets none (and `preprocess` runs)."""
    import torch

    tok = direct.load(embedder._model)
    assert tok is not None, "the default model must get the direct tokenizer"
    for text in ["When did Melanie paint a sunrise?", "x" * 3000, "Ünïcödé   spacing\t?", "word " * 400]:
        want, got = embedder._model.preprocess([text]), tok.features(text)
        assert list(want) == list(got)
        assert all(torch.equal(want[k], got[k]) if hasattr(want[k], "shape") else want[k] == got[k] for k in want)
    assert direct.load(object()) is None
    texts = ["When did Melanie paint a sunrise?", "Hi!", "x" * 3000, "Ünïcödé   spacing\t?", "word " * 400, ""]
    assert tok.pad_id == 0  # several texts padded together, as `preprocess` pads them
    want, got = embedder._model.preprocess(texts), tok.padded(tok.encode(texts))
    assert list(want) == list(got)
    assert all(torch.equal(want[k], got[k]) if hasattr(want[k], "shape") else want[k] == got[k] for k in want)
    assert [tok.content_count(e) for e in tok.encode(["Hi!", ""])] == [2, 0]


def test_an_adds_vectors_are_the_same_with_direct_encodings(embedder, monkeypatch):
    """An add tokenizes its texts once (direct encodings); the vectors and token blobs equal `preprocess`'s."""
    from engramdb.ingest.keys import compute_keys
    from engramdb.model import MemoryRecord

    words = "we walked along the river to the old mill and then back home for lunch".split()
    recs = [MemoryRecord(user_id="u", session_id="s", speaker="AB"[i % 2], text=" ".join(words[: 3 + (i * 5) % 14]))
            for i in range(14)]
    embedder.embed(["warm"]), embedder.embed(["up"])  # the direct tokenizer is set up
    assert embedder._direct_tok is not None and embedder._direct_tok.pad_id is not None
    monkeypatch.setattr(embedder, "_packed_copy", lambda: None)  # padded runs (packed ones: test_packed.py)
    seen: list[bool] = []
    real = embedder._sorted_runs
    def spy(texts, chunk, copy, encs=None):
        seen.append(encs is not None and embedder._direct_tok.pad_id is not None)  # padded from the encodings
        return real(texts, chunk, copy, encs)

    monkeypatch.setattr(embedder, "_sorted_runs", spy)
    _, vecs, toks = compute_keys(recs, embedder)
    monkeypatch.setattr(embedder._direct_tok, "pad_id", None)  # back to `preprocess`
    _, vecs2, toks2 = compute_keys(recs, embedder)
    assert seen == [True, False]
    assert np.array_equal(vecs, vecs2) and toks == toks2


def test_minilm_hash_is_checked(monkeypatch):
    monkeypatch.setattr(packs, "sha256_of", lambda path: "0" * 64)
    with pytest.raises(ConfigError, match="SHA-256"):
        local_mod.minilm_pack_dir()


class _Handler(BaseHTTPRequestHandler):
    requests: list[dict] = []
    fail = False

    def do_POST(self):  # http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if type(self).fail:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0, 0.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": list(reversed(data)), "model": body["model"]}).encode()  # out of order on purpose
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def endpoint():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.requests, _Handler.fail = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


def test_openai_compatible_endpoint(endpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("ENGRAMDB_EMBED_BASE_URL", endpoint)
    monkeypatch.setenv("ENGRAMDB_EMBED_API_KEY", "sk-test")
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")
    e = make_embedder("openai:nomic-embed-text")
    assert e.name == "openai:nomic-embed-text" and e.dim == 4  # probed once
    e.batch_size = 2
    out = e.embed(["a", "bbb", "cc", "d", "eeeee"])
    reqs = _Handler.requests
    assert [len(r["body"]["input"]) for r in reqs] == [1, 2, 2, 1]  # probe, then batches of 2
    assert all(r["path"] == "/v1/embeddings" and r["auth"] == "Bearer sk-test" for r in reqs)
    expected = np.array([[len(t), 1, 0, 0] for t in ["a", "bbb", "cc", "d", "eeeee"]], dtype=np.float32)
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)
    # a store records the endpoint model, like any other
    from engramdb import Memory

    with Memory(tmp_path / "o.db", embedder=e) as m:
        m.add("hello there", user_id="u")
        assert m.stats()["embed_model"] == "openai:nomic-embed-text" and m.stats()["embed_dim"] == 4
    _Handler.fail = True
    with pytest.raises(EngramError, match="answered 500"):
        e.embed(["x"])
    with pytest.raises(ConfigError):
        make_embedder("openai:")


def test_context_pairs_come_from_the_turns_own_run(embedder, monkeypatch):
    """A session's turns run through the model once, with only the short turns' context pairs beside them: a
    short turn's pair is embedded as its joined text, a longer turn's is the mean over both turns' token vectors
    from the turns' own run."""
    from engramdb.embed.base import normalise
    from engramdb.ingest.keys import compute_keys
    from engramdb.model import MemoryRecord

    turns = ["I adopted a dog last week.", "What breed is it?", "A beagle, from the shelter on Elm Street.",
             "Lovely!", "We walk by the river every morning before work, rain or shine, and then we both have a "
             "long nap on the sofa until lunch.", "Sounds nice.", "It is.", "Bye!",
             "See you on Friday at the climbing gym."]
    recs = [MemoryRecord(user_id="u", session_id="s", text=t, speaker="A" if i % 2 else "B")
            for i, t in enumerate(turns)]
    assert embedder.exact_context is False and embedder.pair_tokens == 16  # the default
    texts = [f"{r.speaker}: {r.text}" for r in recs]
    lens = embedder._token_lengths(texts)
    short = [i for i in range(1, len(texts)) if lens[i] <= 16]
    assert 0 < len(short) < len(texts) - 1 and lens[4] > 16
    seen: list[int] = []
    real = embedder._token_run
    monkeypatch.setattr(embedder, "_token_run", lambda texts, *a: seen.append(len(texts)) or real(texts, *a))
    _, vecs, toks = compute_keys(recs, embedder)
    assert seen == [len(turns) + len(short)]  # one pass: the turns and the short turns' pairs
    assert all(t is not None for t in toks)
    single, pairs, _ = embedder.embed_in_context(texts, [(3, 4), (4, 5)])
    run = embedder._sorted_runs(texts[3:5], 8, None)
    sums = [o["token_embeddings"][o["attention_mask"].astype(bool)].sum(0) for o in run]
    assert np.allclose(pairs[0], normalise((sums[0] + sums[1])[None])[0], atol=1e-4)  # a long turn: composed
    joined = embedder.embed([f"{texts[4]}\n{texts[5]}"])[0]
    assert float(pairs[1] @ joined) > 0.9999  # a short turn: its pair embedded
    assert float(pairs[0] @ embedder.embed([f"{texts[3]}\n{texts[4]}"])[0]) > 0.9  # close to embedding it
    # the stored vector: the turn's own plus its context, normalised
    _, one_pair, _ = embedder.embed_in_context(texts, [(0, 1)])
    assert np.allclose(vecs[1], normalise((single[1] + one_pair[0])[None])[0], atol=1e-4)
    # every pair composed: the turns alone go through the model
    monkeypatch.setattr(embedder, "pair_tokens", 0)
    seen.clear()
    _, composed_vecs, _ = compute_keys(recs, embedder)
    assert seen == [len(turns)]
    exact = type(embedder)(exact_context=True)  # every pair embedded as a text
    assert exact._model is embedder._model  # the same loaded weights
    _, exact_vecs, _ = compute_keys(recs, exact)
    assert float(np.min(np.sum(exact_vecs * vecs, axis=1))) > 0.95
    assert float(np.min(np.sum(exact_vecs * composed_vecs, axis=1))) > 0.95
    assert np.allclose(exact_vecs[short], vecs[short], atol=1e-4)  # short turns: the same vectors as exact


def test_int8_spec_names_the_same_model():
    from engramdb.embed.packs import canonical_name, split_int8

    assert split_int8("all-MiniLM-L6-v2:int8") == ("all-MiniLM-L6-v2", True)
    assert split_int8("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", False)
    assert canonical_name("all-MiniLM-L6-v2:INT8") == canonical_name("all-MiniLM-L6-v2")


def test_spec_suffixes_choose_int8_and_the_context_mode():
    from engramdb.embed import make_embedder
    from engramdb.embed.packs import split_options

    assert split_options("all-MiniLM-L6-v2:composed:int8") == ("all-MiniLM-L6-v2", frozenset({"int8", "composed"}))
    assert split_options("org/model:v2") == ("org/model:v2", frozenset())  # not an option: part of the name
    e = make_embedder("all-MiniLM-L6-v2:composed")
    assert (e.exact_context, e.pair_tokens, e.int8) == (False, 0, False) and e.name == make_embedder().name
    e = make_embedder("all-MiniLM-L6-v2:exact")
    assert e.exact_context is True and e.name == make_embedder().name
    d = make_embedder()
    assert (d.exact_context, d.pair_tokens) == (False, 16)  # the default embeds short turns' pairs only
    with pytest.raises(ConfigError, match="context modes"):
        make_embedder("all-MiniLM-L6-v2:exact:composed")
