"""Calibrated scores: a result's `score` is the estimated probability that it is relevant.

The rankers' own outputs are not probabilities and differ in scale between queries (the learned ranker is
trained to order one query's candidates, not to compare queries). The last step of a search maps each
result to a probability with a small logistic model over three features of its raw output:

- `raw`: the ranker's own output (the learned ranker's value, else the pipeline's raw score);
- `gap`: `raw` minus the best `raw` of the list (how far below the top it sits);
- `log_rank`: log(1 + its place in the list).

The weights are fitted per pipeline (learned, plain learned, linear, bm25, dense, rrf) on LoCoMo dev, a
relevant result being a turn in the question's evidence, and shipped in `models/calibration.json`
(`engramdb bench calibration` refits them and prints the out-of-fold reliability table). Scores then fall
with rank within a list (a result moved up by a later step takes the score of the one it now precedes), lie
in [0, 1], and mean the same across queries, so one `threshold` can cut every list. The raw output stays in
the result's signals (`raw_score`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..model import SearchResult

FORMAT = "engramdb-score-calibration/1"
FEATURES = ("raw", "gap", "log_rank")
DEFAULT_PATH = Path(__file__).parent / "models" / "calibration.json"
RAW = "raw_score"  # the signal that keeps the pipeline's own score


def calibration_key(mode: str, ranker: str, late: bool) -> str:
    """Which fitted mapping a result list takes: the baseline mode, or the default pipeline's ranker."""
    if mode != "default":
        return mode
    if ranker == "learned":
        return "learned" if late else "learned_plain"
    return ranker


def raw_of(r: SearchResult, key: str) -> float | None:
    """The ranker output the mapping reads: the learned ranker's value where it ranked, else the raw score."""
    if key.startswith("learned"):
        v = r.signals.get("learned")
        return None if v is None else float(v)
    return float(r.signals.get(RAW, r.score))


def features(results: Sequence[SearchResult], key: str) -> np.ndarray:
    """One row (raw, gap, log_rank) per result, in list order. A result the ranker did not score (a memory
    appended after ranking) counts as the lowest-scored one."""
    raws = [raw_of(r, key) for r in results]
    known = [v for v in raws if v is not None]
    floor = min(known, default=0.0)
    x = np.array([floor if v is None else v for v in raws], dtype=np.float64)
    top = float(x.max()) if len(x) else 0.0
    return np.column_stack([x, x - top, np.log1p(np.arange(len(x), dtype=np.float64))]) if len(x) else \
        np.zeros((0, len(FEATURES)))


class Calibration:
    """Logistic maps, one per key: p = sigmoid(coef . features + intercept)."""

    def __init__(self, maps: dict[str, dict[str, Any]], info: dict[str, Any] | None = None) -> None:
        self.maps = {k: (np.asarray(v["coef"], dtype=np.float64), float(v["intercept"])) for k, v in maps.items()}
        for k, (coef, _) in self.maps.items():
            if coef.shape != (len(FEATURES),):
                raise ConfigError(f"score calibration {k!r}: expected {len(FEATURES)} weights, got {coef.shape}")
        self.info = info or {}

    def probabilities(self, X: np.ndarray, key: str) -> np.ndarray:
        coef, b = self.maps.get(key) or self.maps["learned"]  # a user's own ranker reads like the shipped one
        z = np.clip(X @ coef + b, -40.0, 40.0)
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(FEATURES), "info": self.info,
                "maps": {k: {"coef": [round(float(c), 9) for c in coef], "intercept": round(b, 9)}
                         for k, (coef, b) in self.maps.items()}}

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read score calibration {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or "learned" not in data.get("maps", {}):
            raise ConfigError(f"{path} is not an EngramDB score calibration ({FORMAT})")
        return cls(data["maps"], data.get("info"))


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> Calibration:
    return Calibration.load(path or DEFAULT_PATH)


def calibrate(results: list[SearchResult], key: str, *, ordered: bool = True,
              calibration: Calibration | None = None) -> list[SearchResult]:
    """The same list, same order, each `score` replaced by its calibrated probability and the old one kept
    in `signals['raw_score']`. `ordered`: the list is in relevance order, so scores are made non-increasing
    down it; a list sorted by time keeps each result's own probability."""
    if not results:
        return results
    cal = calibration or load_calibration()
    p = cal.probabilities(features(results, key), key)
    if ordered:
        p = np.minimum.accumulate(p)
    out = []
    for r, s in zip(results, p.tolist(), strict=True):
        sig = dict(r.signals)
        sig.setdefault(RAW, float(r.score))
        out.append(r.updated(score=min(max(float(s), 0.0), 1.0), signals=sig))
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, iters: int = 50) -> tuple[np.ndarray, float]:
    """Logistic regression by Newton's method on standardised features (a small ridge keeps it finite on
    separable data); returns weights and intercept for the raw features."""
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Z = np.column_stack([(X - mu) / sd, np.ones(len(X))])
    w = np.zeros(Z.shape[1])
    reg = np.full(Z.shape[1], l2 * len(X))
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -40, 40)))
        grad = Z.T @ (p - y) + reg * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    coef = w[:-1] / sd
    return coef, float(w[-1] - coef @ mu)


EDGES = tuple(k / 10 for k in range(11))  # ten equal-width score buckets


def reliability(p: np.ndarray, y: np.ndarray, edges: Sequence[float] = EDGES) -> list[dict[str, float]]:
    """Score bucket -> count, mean score, observed precision (the reliability table)."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (p >= lo) & ((p < hi) if hi < edges[-1] else (p <= hi))
        n = int(inside.sum())
        rows.append({"lo": lo, "hi": hi, "n": n,
                     "mean_score": float(p[inside].mean()) if n else math.nan,
                     "precision": float(y[inside].mean()) if n else math.nan})
    return rows
