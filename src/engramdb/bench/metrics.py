"""Retrieval metrics shared by the benchmarks.

Two families live here:

* LoCoMo-style, over ranked lists of ids against a set of gold ids: fractional
  recall@k, all-evidence hit@k, MRR, NDCG@k (standard log2 discount).
* LongMemEval's own definitions (`src/retrieval/eval_utils.py` of
  xiaowu0162/LongMemEval), reproduced exactly, quirks included: its DCG does not
  discount rank 2 (`rel[0] + sum(rel[i] / log2(i + 1))` for i >= 1, i.e. both
  rank 1 and rank 2 have weight 1), NDCG's ideal ranking is taken over the whole
  corpus, and turn rankings are turned into session rankings by widening k until
  k distinct sessions are covered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import mean


# -- LoCoMo-style ------------------------------------------------------------------
def recall_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """Fraction of gold ids found in the top k."""
    if not gold:
        return 0.0
    return len(gold.intersection(ranked[:k])) / len(gold)


def hit_all_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """1.0 when every gold id is in the top k."""
    return float(bool(gold) and gold.issubset(ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], gold: set[str]) -> float:
    for i, x in enumerate(ranked, start=1):
        if x in gold:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: set[str], k: int) -> float:
    """Binary-relevance NDCG@k with the standard 1/log2(rank+1) discount."""
    dcg = sum(1.0 / math.log2(i + 1) for i, x in enumerate(ranked[:k], start=1) if x in gold)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def dedupe(items: Sequence[str]) -> list[str]:
    """Keep the first occurrence of each item, in order."""
    seen: dict[str, None] = {}
    for x in items:
        seen.setdefault(x, None)
    return list(seen)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    idx = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return float(s[idx])


def average(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over rows (all rows share keys)."""
    if not rows:
        return {}
    return {key: float(mean(r[key] for r in rows)) for key in rows[0]}


# -- LongMemEval (exact port of its eval_utils.py) -----------------------------------
def lme_dcg(relevances: Sequence[float], k: int) -> float:
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    return float(rel[0] + sum(r / math.log2(i) for i, r in zip(range(2, len(rel) + 1), rel[1:], strict=True)))


def lme_ndcg(rankings: Sequence[int], correct: set[str], corpus_ids: Sequence[str], k: int) -> float:
    relevances = [1 if d in correct else 0 for d in corpus_ids]
    actual = lme_dcg([relevances[i] for i in rankings[:k]], k)
    ideal = lme_dcg(sorted(relevances, reverse=True), k)
    return 0.0 if ideal == 0 else actual / ideal


def lme_evaluate(
    rankings: Sequence[int], correct: Sequence[str], corpus_ids: Sequence[str], k: int
) -> tuple[float, float, float]:
    """(recall_any@k, recall_all@k, ndcg_any@k); rankings index into corpus_ids, best first."""
    recalled = {corpus_ids[i] for i in rankings[:k]}
    correct_set = set(correct)
    return (
        float(any(d in recalled for d in correct)),
        float(all(d in recalled for d in correct)),
        lme_ndcg(rankings, correct_set, corpus_ids, k),
    )


def lme_strip_turn(doc_id: str) -> str:
    return "_".join(doc_id.split("_")[:-1])


def lme_evaluate_turn2session(
    rankings: Sequence[int], correct: Sequence[str], corpus_ids: Sequence[str], k: int
) -> tuple[float, float, float]:
    """Session-level metrics from a turn ranking: turn ids are `<session>_<n>`."""
    correct_s = sorted({lme_strip_turn(x) for x in correct})
    sess_ids = [lme_strip_turn(x) for x in corpus_ids]
    eff = k
    unique = {sess_ids[i] for i in rankings[:eff]}
    while eff <= len(sess_ids) and len(unique) < k:
        eff += 1
        unique = {sess_ids[i] for i in rankings[:eff]}
    return lme_evaluate(rankings, correct_s, sess_ids, eff)
