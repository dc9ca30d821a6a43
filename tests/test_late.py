"""Late interaction: token vectors (index/late.py) written with the turns, kept in step with them, and read by
the ranker."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb import Memory
from engramdb.config import MemoryConfig
from engramdb.errors import ConfigError
from engramdb.index import late
from engramdb.retrieve.features import FEATURES, LATE_FEATURES, candidate_features
from engramdb.store.base import Filters


def _unpack(blob: bytes, dim: int) -> np.ndarray:
    """One blob's float token vectors (the stores hand blobs to the ranker packed; this is for checking them)."""
    codes, scales, _ = late.unpack_many([blob], dim)
    return codes.astype(np.float32) * scales[:, None]


def _maxsim(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """MaxSim against float documents given one by one."""
    counts = np.array([len(d) for d in docs], dtype=np.int64)
    stacked = np.vstack(docs) if docs else np.zeros((0, query.shape[1]), dtype=np.float32)
    return late.maxsim_many(query, stacked, counts)


TURNS = [
    {"speaker": "Ann", "text": "I signed up for a pottery class at the community centre.",
     "timestamp": "2023-05-08T10:00:00Z"},
    {"speaker": "Bob", "text": "Nice, what will you make first?", "timestamp": "2023-05-08T10:00:01Z"},
    {"speaker": "Ann", "text": "A bowl for my mother's birthday.", "timestamp": "2023-05-08T10:00:02Z"},
    {"speaker": "Bob", "text": "I am repainting the kitchen this weekend.", "timestamp": "2023-05-08T10:00:03Z"},
]


def test_pack_round_trip_is_close_and_exact_on_repack():
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(5, 16)).astype(np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    blob = late.pack(mat)
    assert len(blob) == 5 * (4 + 16)
    back = _unpack(blob, 16)
    assert np.abs(back - mat).max() < 0.01  # int8: about 1/254 of each token's largest entry
    assert late.pack(back) == blob  # unpacking and packing again loses nothing: a re-pack cannot drift
    with pytest.raises(ValueError):
        _unpack(blob[:-1], 16)
    # many at once, scales applied after the matmul: the same scores as unpacking each
    blobs = [blob, late.pack(mat[:2]), late.pack(mat[3:])]
    q = mat[[0, 4]]
    codes, scales, counts = late.unpack_many(blobs, 16)
    assert counts.tolist() == [5, 2, 2] and codes.dtype == np.int8
    assert np.allclose(late.maxsim_many(q, codes, counts, scales),
                       _maxsim(q, [_unpack(b, 16) for b in blobs]), atol=1e-6)
    with pytest.raises(ValueError):
        late.unpack_many([blob[:-1]], 16)


def test_maxsim_is_the_mean_of_each_query_tokens_best_match():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    d1 = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)  # best: 1.0 for q0, 0.8 for q1
    d2 = np.array([[0.0, 1.0]], dtype=np.float32)  # 0.0 and 1.0
    assert np.allclose(_maxsim(q, [d1, d2]), [0.9, 0.5])
    assert _maxsim(q, []).shape == (0,)


def test_content_tokens_drop_special_tokens_and_stopwords(embedder):
    vecs, toks = embedder.embed_tokens(["Ann: the pottery class", "the"])
    assert embedder.has_tokens and vecs.shape == (2, embedder.dim)
    assert np.allclose(vecs, embedder.embed(["Ann: the pottery class", "the"]), atol=1e-6)  # the same vectors
    n_pieces = len(embedder._model.tokenizer("Ann: the pottery class")["input_ids"])
    assert 0 < len(toks[0]) < n_pieces  # [CLS], [SEP] and 'the' are gone
    assert np.allclose(np.linalg.norm(toks[0], axis=1), 1.0, atol=1e-5)
    assert len(toks[1]) >= 1  # a text of stopwords only keeps its tokens rather than none


def test_turns_get_token_vectors_and_search_reads_them(tmp_path, embedder):
    with Memory(tmp_path / "l.db", embedder=embedder) as mem:
        recs = mem.add(TURNS, user_id="u", session_id="s1")
        assert mem.stats()["token_vectors"] == len(TURNS)
        hits = mem.search("What class did Ann sign up for?", user_id="u", limit=4)
        assert "pottery" in hits[0].memory.text
        assert all("maxsim" in h.signals for h in hits)
        pool = mem.retrieval.retriever().candidates("pottery class", Filters(user_id="u"), 10)
        assert pool.late is not None and set(pool.late) == {r.id for r in recs}
        X = candidate_features(pool, "pottery class")
        assert X.shape[1] == len(FEATURES) + len(LATE_FEATURES)
        col = X[:, len(FEATURES):]
        best = pool.ids.index(recs[0].id)
        assert col[best, 0] == max(col[:, 0])  # the pottery turn matches the query's tokens best
        assert np.allclose(col[:, 2], np.maximum(col[:, 0], col[:, 1]))


def test_update_delete_and_reindex_keep_token_vectors_in_step(tmp_path, embedder):
    with Memory(tmp_path / "l.db", embedder=embedder) as mem:
        recs = mem.add(TURNS, user_id="u", session_id="s1")
        keys = mem.store.keys_for([r.id for r in recs])
        before = mem.store.token_vectors_for([keys[recs[0].id]])[keys[recs[0].id]]
        mem.update(recs[0].id, text="I signed up for a salsa dancing course.")
        after = mem.store.token_vectors_for([keys[recs[0].id]])[keys[recs[0].id]]
        assert after != before  # the new text's tokens, not the old ones
        mem.store.hard_delete([recs[1].id])  # what purge and forget end in
        assert keys[recs[1].id] not in mem.store.token_vectors_for(list(keys.values()))
        assert mem.reindex() == 3 and mem.stats()["token_vectors"] == 3


def test_searches_read_token_vectors_once_and_follow_their_changes(tmp_path, embedder, monkeypatch):
    with Memory(tmp_path / "l.db", embedder=embedder) as mem:
        recs = mem.add(TURNS, user_id="u", session_id="s1")
        reads: list[list[int]] = []
        real = mem.store.token_vectors_for
        monkeypatch.setattr(mem.store, "token_vectors_for", lambda keys: reads.append(list(keys)) or real(keys))

        def maxsim(query: str) -> dict[str, float]:
            return {h.memory.id: h.signals["maxsim"] for h in mem.search(query, user_id="u", limit=4)}

        first = maxsim("pottery class")
        assert maxsim("pottery class") == first and len(reads) == 1  # the second search reads none
        mem.update(recs[0].id, text="I signed up for a salsa dancing course.")  # new vectors: copies dropped
        assert maxsim("salsa dancing")[recs[0].id] > maxsim("pottery class")[recs[0].id] and len(reads) == 2
        mem.store.hard_delete([recs[1].id])
        assert recs[1].id not in maxsim("pottery class") and len(reads) == 3


def test_late_interaction_off_stores_none_and_ranks_with_the_plain_model(tmp_path, embedder):
    cfg = MemoryConfig(retrieval={"late_interaction": False})
    with Memory(tmp_path / "p.db", embedder=embedder, config=cfg) as mem:
        mem.add(TURNS, user_id="u", session_id="s1")
        assert mem.stats()["token_vectors"] == 0
        hits = mem.search("What class did Ann sign up for?", user_id="u", limit=4)
        assert "pottery" in hits[0].memory.text and "maxsim" not in hits[0].signals
    # the same store opened with it on: no candidate has token vectors, so the plain model ranks
    with Memory(tmp_path / "p.db", embedder=embedder) as mem:
        hits = mem.search("What class did Ann sign up for?", user_id="u", limit=4)
        assert "pottery" in hits[0].memory.text and "maxsim" not in hits[0].signals


def test_hashing_embedder_has_no_tokens_and_a_late_model_is_refused_for_it(fake_mem, tmp_path):
    fake_mem.add(TURNS, user_id="u", session_id="s1")
    assert not fake_mem.embedder.has_tokens and fake_mem.stats()["token_vectors"] == 0
    assert fake_mem.search("pottery class", user_id="u", limit=2)  # plain model
    from engramdb.retrieve.ranker import DEFAULT_MODEL

    cfg = MemoryConfig(retrieval={"ranker_path": str(DEFAULT_MODEL)})
    from engramdb.embed import HashingEmbedder

    with Memory(tmp_path / "u.db", embedder=HashingEmbedder(64), config=cfg) as mem:
        mem.add(TURNS, user_id="u", session_id="s1")
        with pytest.raises(ConfigError, match="token vectors"):
            mem.search("pottery class", user_id="u")


def test_token_vectors_migrate_to_postgres_exactly_and_rank_there(tmp_path, embedder, pg_url):
    from engramdb.store.migrate import copy_store
    from engramdb.store.postgres import PostgresStore
    from engramdb.store.sqlite import SQLiteStore

    with Memory(tmp_path / "m.db", embedder=embedder) as mem:
        ids = [r.id for r in mem.add(TURNS, user_id="u", session_id="s1")]
    src, dst = SQLiteStore(tmp_path / "m.db"), PostgresStore(pg_url)
    try:
        assert copy_store(src, dst).verified  # verify compares token vectors too
        ks, kd = src.keys_for(ids), dst.keys_for(ids)
        a, b = src.token_vectors_for(list(ks.values())), dst.token_vectors_for(list(kd.values()))
        assert len(a) == len(ids) and {i: a[ks[i]] for i in ids} == {i: b[kd[i]] for i in ids}
        dst.hard_delete([ids[0]])
        assert kd[ids[0]] not in dst.token_vectors_for(list(kd.values()))
    finally:
        src.close()
        dst.close()
    with Memory(url=pg_url, embedder=embedder) as pm:
        hits = pm.search("What class did Ann sign up for?", user_id="u", limit=3)
        assert "maxsim" in hits[0].signals and pm.stats()["token_vectors"] == len(ids) - 1


def test_maxsim_is_computed_only_for_a_ranker_that_reads_it(tmp_path, embedder, monkeypatch):
    from engramdb.retrieve.ranker import PLAIN_MODEL

    with Memory(tmp_path / "l.db", embedder=embedder) as mem:
        mem.add(TURNS, user_id="u", session_id="s1")
        reads = []
        real = mem.store.token_vectors_for
        monkeypatch.setattr(mem.store, "token_vectors_for", lambda keys: reads.append(1) or real(keys))
        assert "maxsim" in mem.search("pottery class", user_id="u")[0].signals and reads == [1]
    for retrieval in ({"ranker": "linear"}, {"ranker_path": str(PLAIN_MODEL)}):  # neither reads MaxSim
        with Memory(tmp_path / "l.db", embedder=embedder, config=MemoryConfig(retrieval=retrieval)) as mem:
            reads.clear()
            monkeypatch.setattr(mem.store, "token_vectors_for", lambda keys: reads.append(1) or {})
            hits = mem.search("What class did Ann sign up for?", user_id="u", limit=4)
            assert "pottery" in hits[0].memory.text and "maxsim" not in hits[0].signals and reads == []
