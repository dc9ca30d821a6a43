"""Retrieval: write-time keys (context, dates) and the linear pipeline's query-time lifts (tests/test_ranker.py
covers the learned ranker)."""

from datetime import UTC, datetime

import numpy as np
import pytest

from engramdb.embed import HashingEmbedder
from engramdb.ingest.keys import build_keys, compute_keys, index_text
from engramdb.model import MemoryRecord, SearchResult
from engramdb.resources import make_filters
from engramdb.retrieve.fuse import score_fusion
from engramdb.retrieve.query import analyze, named_speakers

T0 = "2023-05-08T13:56:00+00:00"


def _session(mem, user="u", session="s1", ts=T0):
    return mem.add(
        [
            {"speaker": "Caroline", "text": "Did you finish the pottery class?"},
            {"speaker": "Melanie", "text": "Yes, last week! It was so calming."},
            {"speaker": "Caroline", "text": "I adopted a kitten called Oscar yesterday."},
            {"speaker": "Melanie", "text": "Adorable. My kids want one too."},
        ],
        user_id=user,
        session_id=session,
        timestamp=ts,
    )


def test_context_keys_carry_previous_turn_and_dates(fake_mem):
    recs = _session(fake_mem)
    keys = fake_mem.store.index_texts([r.id for r in recs])
    assert "pottery class" in keys[recs[1].id]  # the question it answers
    assert "week of 1 May 2023" in keys[recs[1].id]  # 'last week' resolved at the session date
    assert "7 May 2023" in keys[recs[2].id]
    assert keys[recs[0].id].count("\n") == 1  # the first turn has no context: the turn twice, nothing more
    assert recs[1].text == "Yes, last week! It was so calming."  # the stored text is verbatim


def test_context_found_in_store_for_one_at_a_time_adds(fake_mem):
    fake_mem.add({"speaker": "A", "text": "Where did you travel in spring?"}, user_id="u", session_id="s",
                 timestamp="2023-05-08T10:00:00Z")
    other = fake_mem.add({"speaker": "X", "text": "unrelated"}, user_id="u", session_id="other",
                         timestamp="2023-05-08T10:00:30Z")[0]
    reply = fake_mem.add({"speaker": "B", "text": "Lisbon, it was lovely."}, user_id="u", session_id="s",
                         timestamp="2023-05-08T10:01:00Z")[0]
    keys = fake_mem.store.index_texts([reply.id, other.id])
    assert "travel in spring" in keys[reply.id]
    assert "travel" not in keys[other.id]  # another session is not context


def test_reply_is_found_through_its_question(fake_mem):
    _session(fake_mem)
    res = fake_mem.search("pottery class", user_id="u", limit=4)
    refs = [r.memory.text for r in res[:2]]
    assert "Yes, last week! It was so calming." in refs


def test_dates_in_keys_make_relative_dates_searchable(fake_mem):
    _session(fake_mem)
    fake_mem.add({"speaker": "Melanie", "text": "We adopted nothing at all."}, user_id="u", session_id="s2",
                 timestamp="2023-09-01T10:00:00Z")
    top = fake_mem.search("adopted 7 May 2023", user_id="u", limit=1)[0]
    assert "kitten" in top.memory.text


def test_speaker_boost_and_signals(fake_mem):
    _session(fake_mem)
    res = fake_mem.search("What do Melanie's kids want?", user_id="u", limit=4)
    assert res[0].memory.speaker == "Melanie" and "learned" in res[0].signals  # the default: learned ranker
    fake_mem.config = fake_mem.config.model_copy(update={"retrieval": {"ranker": "linear"}})
    res = fake_mem.search("What do Melanie's kids want?", user_id="u", limit=4)
    assert res[0].memory.speaker == "Melanie"
    assert res[0].signals.get("speaker") == pytest.approx(0.1)
    assert "session" in res[0].signals


def test_time_boost_prefers_memories_in_the_named_month(fake_mem, tmp_path):
    fake_mem.add({"speaker": "A", "text": "I went hiking in the hills."}, user_id="u", session_id="s1",
                 timestamp="2023-03-02T10:00:00Z")
    fake_mem.add({"speaker": "A", "text": "I went hiking in the hills."}, user_id="u", session_id="s2",
                 timestamp="2023-07-02T10:00:00Z")
    res = fake_mem.search("Where did A go hiking in July 2023?", user_id="u", limit=2)
    assert res[0].memory.occurred_at.month == 7
    assert res[0].signals.get("time", 0) > 0
    # one time lift for every ranker: lifecycle.time_boost; the old retrieval key says where it went
    from engramdb import Memory

    off = Memory(tmp_path / "u.db", embedder=HashingEmbedder(64),
                 config=fake_mem.config.model_copy(update={"lifecycle": {"time_boost": 0.0}}))
    plain = off.search("Where did A go hiking in July 2023?", user_id="u", limit=2)
    assert all("time" not in r.signals for r in plain)
    off.close()
    from engramdb.errors import ConfigError

    with pytest.raises(ConfigError, match="lifecycle.time_boost"):
        fake_mem.config.model_copy(update={"retrieval": {"time_boost": 0.0}}).retrieval_config()


def test_modes_and_bad_mode(fake_mem):
    _session(fake_mem)
    for mode in ("bm25", "dense", "rrf", "default"):
        assert fake_mem.search("kitten", user_id="u", limit=3, mode=mode)
    from engramdb.errors import ValidationError

    with pytest.raises(ValidationError):
        fake_mem.search("kitten", user_id="u", mode="nope")


def test_update_and_reindex_keep_context_keys(fake_mem):
    recs = _session(fake_mem)
    fake_mem.update(recs[1].id, text="Yes, two weeks ago!")
    key = fake_mem.store.index_texts([recs[1].id])[recs[1].id]
    assert "pottery class" in key and "week of 24 April 2023" in key
    fake_mem.reindex()
    key = fake_mem.store.index_texts([recs[3].id])[recs[3].id]
    assert "kitten called Oscar" in key


def test_compute_keys_vectors_are_normalised_mix():
    emb = HashingEmbedder(32)
    at = datetime(2023, 5, 8, tzinfo=UTC)
    a = MemoryRecord(user_id="u", session_id="s", speaker="A", text="hello there", occurred_at=at)
    b = MemoryRecord(user_id="u", session_id="s", speaker="B", text="general kenobi", occurred_at=at)
    texts, vecs, tokens = compute_keys([a, b], emb)
    assert tokens == [None, None]  # the hashing embedder has no token vectors
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
    assert np.allclose(vecs[0], emb.embed(["A: hello there"])[0])  # no context: the turn alone
    assert not np.allclose(vecs[1], emb.embed(["B: general kenobi"])[0])
    assert texts[1].endswith("A: hello there")
    plain, _, _ = compute_keys([a, b], emb, context=False, dates=False)
    assert plain[1] == "B: general kenobi" == index_text(b, dates=False, weighted=False)
    assert build_keys([b])[1] == ["B: general kenobi"]


def test_updated_result_is_model_copy():
    r = SearchResult(memory=MemoryRecord(text="a turn", user_id="u"), score=0.5, signals={"bm25": 1.0})
    for fields in ({"score": 0.9, "signals": {"x": 1.0}}, {"current": False, "superseded_by": "f1"}):
        got, want = r.updated(**fields), r.model_copy(update=fields)
        assert got == want and list(got.__dict__) == list(want.__dict__)
        assert got.model_fields_set == want.model_fields_set and got.memory is r.memory
    assert r.score == 0.5 and r.current and "x" not in r.signals  # the original is untouched


def test_score_fusion_scales_and_floor():
    base, sig = score_fusion(["a", "b", "c"], {"a": 10.0, "b": 5.0}, {"a": 0.2, "b": 0.5, "c": 0.1},
                             dense_weight=0.6)
    assert min(base.values()) == 0.0
    assert base["a"] > base["b"] > base["c"]
    assert sig["c"] == {"dense": 0.1}


def test_query_analysis():
    assert named_speakers("What did caroline paint?", ["Caroline", "Melanie"]) == {"Caroline"}
    assert named_speakers("What did Jon Smith say?", ["Jon Smith"]) == {"Jon Smith"}
    assert named_speakers("Jonathan?", ["Jon"]) == set()
    assert analyze("in May 2023?").time is not None
    assert analyze("last year?").time is None  # relative: no clock given


def test_rank_meta_matches_records_and_default_implementation(fake_mem):
    from engramdb.store.base import Store

    recs = _session(fake_mem)
    fake_mem.delete(recs[3].id)
    ids = [r.id for r in recs]
    fast = fake_mem.store.rank_meta(ids)
    slow = Store.rank_meta(fake_mem.store, ids)  # the backend-neutral default, from get() + keys_for()
    assert fast == slow and set(fast) == set(ids[:3])  # deleted memories are not candidates
    m = fast[recs[1].id]
    assert (m.speaker, m.session_id, m.user_id) == ("Melanie", "s1", "u")
    assert m.key == fast[recs[0].id].key + 1 and m.occurred_at == recs[1].occurred_at


def test_two_away_lift_and_session_best_turn(fake_mem):
    _session(fake_mem)
    from engramdb.retrieve.search import RetrievalConfig, Retriever

    q, kitten = "pottery class", "I adopted a kitten called Oscar yesterday."

    base = Retriever(fake_mem.store, fake_mem.vectors, fake_mem.embedder,
                     RetrievalConfig(ranker="linear", neighbor2_weight=0.0, session_max_weight=0.0))
    full = Retriever(fake_mem.store, fake_mem.vectors, fake_mem.embedder, RetrievalConfig(ranker="linear"))
    f = make_filters("u", None, None, None, None, None, None)
    b = {r.memory.text: r for r in base.search(q, f, 4)}
    w = {r.memory.text: r for r in full.search(q, f, 4)}
    # turn 3 is two away from the pottery question: neighbor2_weight adds that question's score to its lift
    assert w[kitten].signals["context"] > b[kitten].signals.get("context", 0.0)
    assert w[kitten].signals["session"] > b[kitten].signals["session"]  # + the session's best turn


def test_a_slow_embedders_search_reads_the_keyword_hits_records_beside_the_model(fake_mem, monkeypatch):
    """Where a query's embedding takes long (a model run), the keyword hits' rank fields and records are read
    on the worker beside it; the search itself then reads fewer records, and its results are the same."""
    for i in range(6):
        _session(fake_mem, session=f"s{i}", ts=f"2023-05-{10 + i:02d}T10:00:00+00:00")
    queries = ["pottery class", "kitten called Oscar", "what do the kids want?", "calming week"]
    emb, store = fake_mem.embedder, fake_mem.store
    assert emb.slow_queries is False  # hashing: microseconds, nothing to read beside it
    reads: list[tuple[bool, int]] = []
    get = store.get

    def counted(ids, **kw):
        reads.append((bool(getattr(store._on_worker, "reading", False)), len(ids)))
        return get(ids, **kw)

    near: list[tuple[bool, int]] = []
    near_of = store.rank_meta_for_keys

    def counted_near(keys, filters):
        near.append((bool(getattr(store._on_worker, "reading", False)), len(keys)))
        return near_of(keys, filters)

    monkeypatch.setattr(store, "get", counted)
    monkeypatch.setattr(store, "rank_meta_for_keys", counted_near)

    def run() -> tuple[list[list[tuple[str, float]]], tuple[int, int], tuple[int, int]]:
        reads.clear()
        near.clear()
        got = [[(r.memory.id, r.score) for r in fake_mem.search(q, user_id="u", limit=5)] for q in queries]
        return (got, (sum(n for w, n in reads if not w), sum(n for w, n in reads if w)),
                (sum(n for w, n in near if not w), sum(n for w, n in near if w)))

    plain, (plain_main, plain_worker), (plain_near_main, plain_near_worker) = run()
    assert store._reader is None  # an instant embedder: every read in line, the worker's connection never opened
    monkeypatch.setattr(emb, "slow_queries", True, raising=False)
    slow, (slow_main, slow_worker), (slow_near_main, slow_near_worker) = run()
    assert slow == plain
    # records: the keyword hits' read on the worker, so fewer after the embedding
    assert plain_worker == 0 and slow_worker > 0 and slow_main < plain_main
    # the expansion's neighbours: those around the best keyword hits looked up on the worker
    assert plain_near_main > 0 and plain_near_worker == 0
    assert slow_near_worker > 0 and slow_near_main < plain_near_main
    # a store whose reads run in line (PostgreSQL's): nothing is read ahead, it would only add statements
    monkeypatch.setattr(type(store), "reads_beside", property(lambda self: False))
    inline, (inline_main, inline_worker), (inline_near_main, _) = run()
    assert inline == plain and (inline_main, inline_worker, inline_near_main) == (plain_main, 0, plain_near_main)
