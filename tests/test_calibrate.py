"""Calibrated scores (retrieve/calibrate.py): probabilities in [0, 1] that fall with rank, the order kept, the raw
score kept in the signals; the shipped maps; the fit and the reliability table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engramdb.errors import ConfigError
from engramdb.model import MemoryRecord, SearchResult
from engramdb.retrieve.calibrate import (
    DEFAULT_PATH,
    FEATURES,
    Calibration,
    calibrate,
    calibration_key,
    features,
    fit_logistic,
    load_calibration,
    reliability,
)


def _hit(i: int, score: float, **signals: float) -> SearchResult:
    rec = MemoryRecord(user_id="u", text=f"memory {i}")
    return SearchResult(memory=rec, score=score, signals=signals)


CAL = Calibration({"learned": {"coef": [1.0, 0.5, -0.3], "intercept": 1.0},
                   "bm25": {"coef": [50.0, 0.0, -0.5], "intercept": -0.5}})


def test_scores_are_probabilities_that_fall_with_rank_and_keep_the_order():
    # a later step moved the third result up past a better-scored one: the order must not change
    hits = [_hit(0, 0.9, learned=2.0), _hit(1, 0.5, learned=-1.0), _hit(2, 0.7, learned=0.5), _hit(3, 0.1)]
    out = calibrate(hits, "learned", calibration=CAL)
    assert [r.memory.id for r in out] == [r.memory.id for r in hits]
    scores = [r.score for r in out]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert [r.signals["raw_score"] for r in out] == [0.9, 0.5, 0.7, 0.1]
    assert out[0].signals["learned"] == 2.0  # the breakdown is kept
    # a list in time order keeps each result's own probability (not made monotone)
    timed = calibrate(hits, "learned", ordered=False, calibration=CAL)
    assert timed[2].score > timed[1].score


def test_features_read_the_ranker_output_and_place_unscored_results_lowest():
    hits = [_hit(0, 0.9, learned=2.0), _hit(1, 0.5, learned=-1.0), _hit(2, 0.5, slot=1.0)]
    X = features(hits, "learned")
    assert X.shape == (3, len(FEATURES))
    assert X[:, 0].tolist() == [2.0, -1.0, -1.0]  # the appended slot memory counts as the lowest scored
    assert X[:, 1].tolist() == [0.0, -3.0, -3.0]
    assert X[:, 2].tolist() == pytest.approx(np.log1p([0, 1, 2]).tolist())
    # other pipelines read the raw score, also after a first calibration (kept in signals)
    again = calibrate(calibrate([_hit(0, 0.016), _hit(1, 0.015)], "bm25", calibration=CAL), "bm25",
                      calibration=CAL)
    assert [r.signals["raw_score"] for r in again] == [0.016, 0.015]


def test_the_same_raw_output_means_the_same_score_in_any_list():
    a = calibrate([_hit(0, 0, learned=1.0), _hit(1, 0, learned=-2.0)], "learned", calibration=CAL)
    b = calibrate([_hit(2, 0, learned=1.0), _hit(3, 0, learned=0.5)], "learned", calibration=CAL)
    assert a[0].score == b[0].score
    c = calibrate([_hit(4, 0, learned=-3.0)], "learned", calibration=CAL)
    assert c[0].score < a[0].score


def test_keys_and_the_shipped_maps():
    assert calibration_key("default", "learned", True) == "learned"
    assert calibration_key("default", "learned", False) == "learned_plain"
    assert calibration_key("default", "linear", True) == "linear"
    assert calibration_key("bm25", "learned", True) == "bm25"
    shipped = load_calibration()
    assert set(shipped.maps) >= {"learned", "learned_plain", "linear", "bm25", "dense", "rrf"}
    for key, (coef, _) in shipped.maps.items():
        assert coef[0] > 0, key  # a higher ranker output never means a lower probability
    data = json.loads(DEFAULT_PATH.read_text())
    assert data["info"].get("conversations"), "the shipped maps name the data they were fitted on"


def test_bad_calibration_files_are_clear_errors(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read score calibration"):
        Calibration.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not an EngramDB score calibration"):
        Calibration.load(bad)
    with pytest.raises(ConfigError, match="expected 3 weights"):
        Calibration({"learned": {"coef": [1.0], "intercept": 0.0}})


def test_fit_recovers_a_logistic_model_and_the_table_reads_it():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 3))
    true = np.array([1.5, -0.5, -1.0])
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-(X @ true - 0.7)))).astype(float)
    coef, b = fit_logistic(X, y, l2=0.0)
    assert coef == pytest.approx(true, abs=0.08) and b == pytest.approx(-0.7, abs=0.08)
    p = 1 / (1 + np.exp(-(X @ coef + b)))
    rows = [r for r in reliability(p, y) if r["n"] > 500]
    assert rows and all(abs(r["mean_score"] - r["precision"]) < 0.03 for r in rows)
    assert sum(r["n"] for r in reliability(p, y)) == len(p)


def test_search_scores_are_calibrated_end_to_end(mem):
    mem.add(["I moved to Berlin last month", "My cat is called Tom", "I work at Siemens as an engineer",
             "We went hiking in the Alps in May"], user_id="alice")
    hit = mem.search("what is my cat called", user_id="alice")
    miss = mem.search("quarterly tax filing deadline for corporations", user_id="alice")
    for results in (hit, miss):
        scores = [r.score for r in results]
        assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        assert all("raw_score" in r.signals and "learned" in r.signals for r in results)
    assert "Tom" in hit[0].memory.text
    assert hit[0].score > miss[0].score  # the same scale across queries: a threshold can tell them apart
    for mode in ("bm25", "dense", "rrf"):
        scores = [r.score for r in mem.search("what is my cat called", user_id="alice", mode=mode)]
        assert scores and all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
