"""Rank fusion. Each signal is a ranked list of (id, raw score); fusion merges them.

RRF (reciprocal rank fusion) ignores raw score scales, which differ wildly
between BM25 and cosine; weights let one signal count more than another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def rrf(
    ranked: Mapping[str, Sequence[tuple[str, float]]],
    *,
    weights: Mapping[str, float] | None = None,
    k: int = 60,
) -> list[tuple[str, float, dict[str, float]]]:
    """Fuse named ranked lists. Returns (id, fused score, signals) best first.

    signals holds, per list, the raw score and 1-based rank of each hit.
    """
    fused: dict[str, float] = {}
    signals: dict[str, dict[str, float]] = {}
    for name, hits in ranked.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (mid, raw) in enumerate(hits, start=1):
            fused[mid] = fused.get(mid, 0.0) + w / (k + rank)
            sig = signals.setdefault(mid, {})
            sig[name] = float(raw)
            sig[f"{name}_rank"] = float(rank)
    order = sorted(fused, key=lambda m: -fused[m])
    return [(m, fused[m], signals[m]) for m in order]


def score_fusion(
    ids: Sequence[str],
    bm25: Mapping[str, float],
    dense: Mapping[str, float],
    *,
    dense_weight: float,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Fuse by score over one candidate set: BM25 / best BM25, plus dense_weight x z-score(cosine) / 4.

    Unlike RRF this keeps margins (a clear BM25 winner stays ahead). The z-score
    puts cosines from any model on one scale; /4 maps roughly +-2 sd onto BM25's
    0..1. The result is shifted so the weakest candidate scores 0, which keeps
    additive lifts (context, session) from rewarding negative scores."""
    bm = np.array([bm25.get(i, 0.0) for i in ids], dtype=np.float64)
    top_bm = float(bm.max()) if len(ids) else 0.0
    cos = np.array([dense.get(i, 0.0) for i in ids], dtype=np.float64)
    z = (cos - cos.mean()) / (cos.std() + 1e-9) if len(ids) > 1 else np.zeros(len(ids))
    # the same float operations per candidate as a loop, on whole columns
    raw = (bm / top_bm if top_bm > 0 else np.zeros(len(ids))) + dense_weight * z / 4
    signals: dict[str, dict[str, float]] = {}
    for i in ids:
        sig = signals.setdefault(i, {})
        if i in bm25:
            sig["bm25"] = float(bm25[i])
        if i in dense:
            sig["dense"] = float(dense[i])
    floor = float(raw.min()) if len(ids) else 0.0
    return dict(zip(ids, (raw - floor).tolist(), strict=True)), signals
