import math

import pytest

from engramdb.bench import metrics as M


def test_locomo_metrics():
    ranked = ["a", "b", "c", "d"]
    gold = {"b", "z"}
    assert M.recall_at(ranked, gold, 1) == 0.0
    assert M.recall_at(ranked, gold, 2) == 0.5
    assert M.hit_all_at(ranked, gold, 4) == 0.0
    assert M.hit_all_at(ranked, {"a", "c"}, 3) == 1.0
    assert M.reciprocal_rank(ranked, gold) == 0.5
    assert M.ndcg_at(ranked, gold, 10) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert M.ndcg_at(ranked, {"a"}, 10) == 1.0
    assert M.dedupe(["x", "y", "x"]) == ["x", "y"]
    assert M.percentile([5, 1, 3, 2, 4], 50) == 3
    assert M.percentile([], 95) == 0.0


def test_lme_dcg_quirk_does_not_discount_rank_two():
    # LongMemEval: rel[0] + sum(rel[i] / log2(i + 1)) for i >= 1 -> ranks 1 and 2 both weigh 1
    assert M.lme_dcg([1, 1, 1], 3) == pytest.approx(1 + 1 + 1 / math.log2(3))
    assert M.lme_dcg([0, 1], 2) == pytest.approx(1.0)


def test_lme_evaluate_and_turn2session():
    corpus = ["s1_1", "s1_3", "answer_s2_1", "answer_s2_3", "s3_1", "answer_s4_1"]
    gold = ["answer_s2_3", "answer_s4_1"]
    rankings = [0, 3, 1, 2, 4, 5]  # s1_1, answer_s2_3, s1_3, answer_s2_1, s3_1, answer_s4_1
    r_any, r_all, nd = M.lme_evaluate(rankings, gold, corpus, 2)
    assert (r_any, r_all) == (1.0, 0.0)
    assert nd == pytest.approx(1.0 / 2.0)  # dcg [0,1] = 1; ideal [1,1] = 2
    # session level: k=2 widens to the first turns covering 2 sessions (s1, answer_s2) -> effective k = 2
    s_any, s_all, _ = M.lme_evaluate_turn2session(rankings, gold, corpus, 2)
    assert (s_any, s_all) == (1.0, 0.0)
    s_any, s_all, _ = M.lme_evaluate_turn2session(rankings, gold, corpus, 4)
    assert (s_any, s_all) == (1.0, 1.0)
    assert M.lme_strip_turn("answer_ab_12_7") == "answer_ab_12"
