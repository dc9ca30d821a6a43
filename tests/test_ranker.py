"""The learned ranker: tree evaluation, model files, features, and its place in search."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb import Memory
from engramdb.config import MemoryConfig
from engramdb.errors import ConfigError, ValidationError
from engramdb.resources import make_filters
from engramdb.retrieve.features import FEATURES, LATE_FEATURES, Candidates, _text_form_of, candidate_features
from engramdb.retrieve.ranker import DEFAULT_MODEL, FORMAT, TreeEnsemble, load_ranker
from engramdb.store.base import RankMeta

# one tree: x0 <= 0.5 ? (x1 <= 2 ? 1.0 : 2.0) : 3.0 ; a second tree: a lone leaf 0.25
TREES = [
    {"feature": [0, 1, -1, -1, -1], "threshold": [0.5, 2.0, 0, 0, 0], "left": [1, 2, 0, 0, 0],
     "right": [4, 3, 0, 0, 0], "value": [0, 0, 1.0, 2.0, 3.0], "depth": 2},
    {"feature": [-1], "threshold": [0], "left": [0], "right": [0], "value": [0.25], "depth": 0},
]


def test_tree_walk_matches_hand_evaluation():
    ens = TreeEnsemble(TREES, ["a", "b"])
    X = np.array([[0.0, 1.0], [0.5, 2.0], [0.2, 5.0], [0.9, 0.0]])
    assert ens.predict(X).tolist() == [1.25, 1.25, 2.25, 3.25]  # '<=' sends ties left
    with pytest.raises(ValueError):
        ens.predict(np.zeros((2, 3)))


def _random_tree(rng: np.random.Generator, n_features: int, leaves: int) -> dict:
    """A random binary tree with `leaves` leaves, nodes numbered in creation order (not level order)."""
    tree: dict[str, list] = {"feature": [-1], "threshold": [0.0], "left": [0], "right": [0], "value": [0.0]}
    open_leaves = [0]
    while len(open_leaves) < leaves:
        at = open_leaves.pop(int(rng.integers(len(open_leaves))))
        kids = []
        for _ in range(2):
            kids.append(len(tree["value"]))
            for key, v in (("feature", -1), ("threshold", 0.0), ("left", 0), ("right", 0), ("value", 0.0)):
                tree[key].append(v)
        tree["feature"][at] = int(rng.integers(n_features))
        tree["threshold"][at] = float(np.round(rng.normal(), 1))  # coarse: rows land on thresholds (ties)
        tree["left"][at], tree["right"][at] = kids
        open_leaves += kids
    for n in open_leaves:
        tree["value"][n] = float(rng.normal())
    return tree


@pytest.mark.parametrize("max_leaves", [1, 7, 16, 40, 64, 90])
def test_bit_mask_predict_equals_the_level_walk(max_leaves):
    """`predict` (bit masks) gives the level walk's numbers exactly: random shapes, lone leaves, ties on
    thresholds, missing values (NaN goes left in both), more than 64 leaves (the walk itself)."""
    rng = np.random.default_rng(max_leaves)
    n_features = 5
    trees = [_random_tree(rng, n_features, int(rng.integers(1, max_leaves + 1))) for _ in range(60)]
    ens = TreeEnsemble(trees, [f"f{i}" for i in range(n_features)])
    X = np.round(rng.normal(size=(3000, n_features)), 1)  # more rows than one block of `predict`
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:5] = [np.nan, np.inf, -np.inf, 0.0, 0.1]
    assert np.array_equal(ens.predict(X), ens.predict_levels(X))
    # and by hand for a few rows: follow each tree from its root
    for row in X[:50]:
        want = 0.0
        for t in trees:
            n = 0
            while t["feature"][n] >= 0:
                n = t["right"][n] if row[t["feature"][n]] > t["threshold"][n] else t["left"][n]
            want += t["value"][n]
        assert abs(ens.predict(row[None])[0] - want) < 1e-9


@pytest.mark.parametrize("late", [True, False])
def test_shipped_models_bit_masks_equal_the_level_walk(late):
    ens = load_ranker(late=late)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, len(ens.features))) * rng.choice([0.1, 1.0, 10.0], size=len(ens.features))
    X[rng.random(X.shape) < 0.05] = np.nan
    assert np.array_equal(ens.predict(X), ens.predict_levels(X))
    assert ens.predict(X[:0]).shape == (0,)


def test_from_lightgbm_dump_and_json_round_trip(tmp_path):
    dump = {"tree_info": [{"tree_structure": {
        "split_feature": 1, "threshold": 0.0, "decision_type": "<=",
        "left_child": {"leaf_value": -1.0},
        "right_child": {"split_feature": 0, "threshold": 3.0, "decision_type": "<=",
                        "left_child": {"leaf_value": 0.5}, "right_child": {"leaf_value": 2.0}}}}]}
    ens = TreeEnsemble.from_lightgbm(dump, ["a", "b"])
    X = np.array([[9.0, -1.0], [1.0, 1.0], [4.0, 1.0]])
    assert ens.predict(X).tolist() == [-1.0, 0.5, 2.0]
    back = TreeEnsemble(ens.to_json()["trees"], ["a", "b"])
    assert back.predict(X).tolist() == [-1.0, 0.5, 2.0]
    bad = dict(dump)
    bad["tree_info"] = [{"tree_structure": {**dump["tree_info"][0]["tree_structure"], "decision_type": "=="}}]
    with pytest.raises(ConfigError):
        TreeEnsemble.from_lightgbm(bad, ["a", "b"])


@pytest.mark.parametrize("late", [True, False])
def test_shipped_models_load_and_say_what_they_were_trained_on(late):
    ens = load_ranker(late=late)
    assert ens.features == [*FEATURES, *(LATE_FEATURES if late else ())] and len(ens.sizes) >= 50
    info = ens.info
    assert info["conversations"] and 0 < info["loo_cv"]["recall@10"] <= 1  # the honest estimate travels with it
    out = ens.predict(np.random.default_rng(0).normal(size=(7, len(ens.features))))
    assert out.shape == (7,) and np.isfinite(out).all()


def test_bad_model_files_are_refused(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError):
        TreeEnsemble.load(p)
    p.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ConfigError):
        TreeEnsemble.load(p)
    data = json.loads(DEFAULT_MODEL.read_text())
    data["features"] = data["features"][:-1]
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="other features"):
        TreeEnsemble.load(p)
    assert data["format"] == FORMAT


def _pool() -> Candidates:
    when = datetime(2023, 5, 8, tzinfo=UTC)
    texts = ["I adopted a puppy named Rex!", "Wow, what breed is he?", "A beagle. He loves the park.", "Cool."]
    meta = {f"m{k}": RankMeta(k + 1, "u", None, "s1", ["Ann", "Bob"][k % 2], when, t) for k, t in enumerate(texts)}
    meta["x"] = RankMeta(99, "u", None, "s2", "Bob", datetime(2023, 9, 1, tzinfo=UTC), "Another day entirely?")
    ids = list(meta)
    return Candidates(ids=ids, meta=meta, bm25={"m0": 4.0, "m2": 2.0}, dense={i: 0.1 * n for n, i in enumerate(ids)},
                      bm25_rank={"m0": 0, "m2": 1}, dense_rank={i: 4 - n for n, i in enumerate(ids)}, pool=50,
                      fused={i: 0.2 * n for n, i in enumerate(ids)})


def test_candidate_features_read_the_pool():
    pool = _pool()
    X = candidate_features(pool, "What dog did Ann adopt in May 2023?")
    col = {name: X[:, k] for k, name in enumerate(FEATURES)}
    assert X.shape == (5, len(FEATURES))
    assert col["bm25_norm"].tolist() == [1.0, 0.0, 0.5, 0.0, 0.0]
    assert col["speaker_named"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0] and col["query_names_speaker"].all()
    assert col["time_inside"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0] and col["query_has_time"].all()
    assert col["words"][0] == 6 and col["is_question"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    # neighbours: m1's previous turn is m0 (same session); x has none; the other session never leaks in
    assert col["prev1_bm25_norm"][1] == 1.0 and col["prev1_dense_z"][4] == -3.0 and col["next2_fused"][2] == 0.0
    assert col["session_count"].tolist() == [4, 4, 4, 4, 1] and col["q_starts_what"].all()


def test_pool_positions_stay_inside_a_thread():
    # two sessions whose keys interleave, one memory with no session, a far turn of the best one's session
    rows = [("a0", 10, "s1", 0.9), ("b0", 11, "s2", 0.8), ("a1", 12, "s1", 0.1), ("n", 13, None, 0.7),
            ("b1", 13 + 1, "s2", 0.2), ("a9", 60, "s1", 0.3)]
    meta = {i: RankMeta(k, "u", None, s, "Ann", None, "text") for i, k, s, _ in rows}
    ids = [i for i, *_ in rows]
    pool = Candidates(ids=ids, meta=meta, bm25={}, dense={i: f for i, *_, f in rows}, bm25_rank={}, dense_rank={},
                      pool=50, fused={i: f for i, *_, f in rows})
    col = {name: candidate_features(pool, "what?")[:, k] for k, name in enumerate(FEATURES)}
    # a1 is two keys after a0 in s1 (b0 between them is s2's); b1 three after b0; n has no thread
    assert col["prev2_fused"].tolist() == [0.0, 0.0, 0.9, 0.0, 0.0, 0.0]
    assert col["prev1_fused"].tolist() == [0.0] * 6 and col["win3_fused"][4] == 0.8
    assert col["offset_session_best"].tolist() == [0.0, 0.0, 2.0, 0.0, 3.0, 8.0]
    # the three best are a0, b0, n: distances to the nearest of them in the same thread, not capped at 20
    assert col["distance_top3"].tolist() == [0.0, 0.0, 2.0, 20.0, 3.0, 50.0]
    assert col["session_count"].tolist() == [3.0, 2.0, 3.0, 0.0, 2.0, 3.0]
    assert col["session_rank_log"][3] == np.log1p(2)  # no thread: ranked after both


def test_search_uses_the_learned_ranker_by_default_and_linear_on_request(tmp_path, embedder):
    turns = [
        {"speaker": "Ann", "text": "I adopted a puppy named Rex last week!", "timestamp": "2023-05-08T10:00:00Z"},
        {"speaker": "Bob", "text": "Wow, what breed is he?", "timestamp": "2023-05-08T10:00:01Z"},
        {"speaker": "Ann", "text": "A beagle. He loves the park by the river.", "timestamp": "2023-05-08T10:00:02Z"},
        {"speaker": "Bob", "text": "I am painting my kitchen yellow.", "timestamp": "2023-05-08T10:00:03Z"},
    ]
    path = str(tmp_path / "r.db")
    with Memory(path, embedder=embedder) as mem:
        mem.add(turns, user_id="u", session_id="s1")
        hits = mem.search("What breed is Ann's dog Rex?", user_id="u", limit=4)
        assert {"learned", "fused"} <= set(hits[0].signals) and all(0 < h.score < 1 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert "kitchen" not in hits[0].memory.text
    with Memory(path, embedder=embedder, config=MemoryConfig(retrieval={"ranker": "linear"})) as mem:
        hits = mem.search("What breed is Ann's dog Rex?", user_id="u", limit=4)
        assert "learned" not in hits[0].signals and "kitchen" not in hits[0].memory.text
    with Memory(path, embedder=embedder, config=MemoryConfig(retrieval={"ranker": "magic"})) as mem:
        with pytest.raises(ValidationError, match="ranker"):
            mem.search("dog", user_id="u")


def test_export_is_exactly_lightgbm():
    lgb = pytest.importorskip("lightgbm")
    from engramdb.bench.train_ranker import PARAMS

    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] + 0.5 * X[:, 3] + rng.normal(scale=0.3, size=600) > 0.8).astype(float)
    model = lgb.LGBMRanker(**{**PARAMS, "n_estimators": 40}).fit(X, y, group=[30] * 20)
    ens = TreeEnsemble.from_lightgbm(model.booster_.dump_model(), list("abcde"))
    assert np.allclose(ens.predict(X), model.predict(X), atol=1e-9)


def test_averaged_ensemble_is_the_mean_of_its_parts():
    a, b = TreeEnsemble(TREES, ["a", "b"]), TreeEnsemble(TREES[:1], ["a", "b"])
    X = np.array([[0.0, 1.0], [0.9, 0.0]])
    assert np.allclose(TreeEnsemble.average([a, b]).predict(X), (a.predict(X) + b.predict(X)) / 2)
    with pytest.raises(ConfigError):
        TreeEnsemble.average([a, TreeEnsemble(TREES, ["a", "c"])])


def test_window_offset_and_text_form_features():
    pool = _pool()  # fused: m0 0.0, m1 0.2, m2 0.4, m3 0.6 (keys 1-4, session s1), x 0.8 (key 99, s2)
    pool.expanded = {"m1"}
    X = candidate_features(pool, "What dog did Ann adopt?")
    col = {name: X[:, k] for k, name in enumerate(FEATURES)}
    assert col["expanded"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert np.allclose(col["win3_fused"], [0.6, 0.6, 0.6, 0.4, 0.0])  # best other turn within 3; x has none
    assert col["offset_session_best"].tolist() == [-3.0, -2.0, -1.0, 0.0, 0.0]  # places from m3, s1's best
    assert col["distance_top3"].tolist() == [2.0, 1.0, 0.0, 0.0, 0.0]  # nearest of x, m3, m2 in the same session
    assert col["names"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]  # 'Rex'; 'He' starts a sentence, 'I' is no name
    assert col["ends_question"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]


_PLAIN_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+")  # the form's reading, written the plain way


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZBo .!?\n\t\u00a0\"\u201c\u201d19\u0663\u00e9_-'")) | st.characters(),
               max_size=40))
def test_text_form_reads_as_its_plain_regexes(text):
    """The text form's fast scans (the capital first, a digit or a quote mark before the full patterns) count
    exactly what the plain patterns count."""
    words = re.findall(r"\w+", text.lower())
    number = bool(re.search(r"\b\d+\b", text)) or bool(set(words) & set(
        "one two three four five six seven eight nine ten twice once first second third".split()))
    quote = bool(re.search(r"[\"\u201c][^\"\u201d]{2,}[\"\u201d]", text))
    got = _text_form_of(text)
    assert got[0] == float(len(_PLAIN_NAME.findall(text)))
    assert got[1] == float(number) and got[3] == float(quote)


def test_pool_gains_the_neighbours_of_strong_candidates_within_filters(fake_mem):
    chat = ["We are planning a team trip next month.", "Where are you headed?", "Edinburgh, Scotland!",
            "Sounds magical.", "It is the birthplace of a famous wizard story.", "Nice pick.", "Thanks a lot.",
            "Bye for now."]
    recs = fake_mem.add([{"speaker": "Tim" if k % 2 else "John", "text": t,
                          "timestamp": f"2023-05-08T10:00:0{k}Z"} for k, t in enumerate(chat)],
                        user_id="u", session_id="s1")
    other = fake_mem.add([{"speaker": "Tim", "text": t, "timestamp": "2023-06-01T10:00:00Z"}
                          for t in ("Hello again.", "Another chat.")], user_id="u", session_id="s2")
    stranger = fake_mem.add("Edinburgh is lovely", user_id="someone-else", session_id="s1")
    fake_mem.delete(recs[3].id)
    retriever = fake_mem.retrieval.retriever()
    retriever.config.candidates = 1  # one BM25 hit and one vector hit: the rest can only come as neighbours
    f = make_filters("u", None, None, None, None, None, None, current_only=True)
    pool = retriever.candidates("team trip next month", f, 1)
    assert recs[0].id in pool.ids and recs[0].id not in pool.expanded  # the keyword hit
    assert recs[2].id in pool.ids  # the answer, two turns later, shares no word with the query
    assert pool.expanded and all(pool.meta[i].session_id == "s1" and pool.meta[i].user_id == "u"
                                 for i in pool.expanded)
    assert recs[3].id not in pool.ids and stranger[0].id not in pool.ids  # deleted, or out of scope: never
    assert not {r.id for r in other} & pool.expanded  # written next to s1, but another conversation
    plain = retriever.candidates("team trip next month", f, 1, expand=False)
    assert not plain.expanded and len(plain.ids) < len(pool.ids)


@pytest.mark.parametrize("bad", [{"expand_window": -1}, {"expand_top": 1.5}, {"expand_top": 10_000},
                                 {"no_such_setting": 1}])
def test_bad_retrieval_settings_are_refused_before_anything_opens(tmp_path, bad):
    from engramdb.embed import HashingEmbedder

    with pytest.raises(ConfigError, match="bad retrieval settings"):
        Memory(str(tmp_path / "b.db"), embedder=HashingEmbedder(64), config=MemoryConfig(retrieval=bad))
    assert not (tmp_path / "b.db").exists()
