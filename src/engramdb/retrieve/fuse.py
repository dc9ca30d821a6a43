"""Rank fusion. Each signal is a ranked list of (id, raw score); fusion merges them.

RRF (reciprocal rank fusion) ignores raw score scales, which differ wildly
between BM25 and cosine; weights let one signal count more than another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


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
