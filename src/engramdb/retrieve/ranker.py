"""The learned ranker: a small gradient-boosted tree ensemble, evaluated with numpy.

It is trained offline (`engramdb bench train-ranker`, LightGBM's lambdarank) on the
features of retrieve/features.py and shipped as JSON, so serving needs neither
LightGBM nor scipy. `TreeEnsemble.predict` walks all trees at once: one numpy step
per tree level.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .features import FEATURES

FORMAT = "engramdb-tree-ensemble/1"
DEFAULT_MODEL = Path(__file__).parent / "models" / "ranker.json"


class TreeEnsemble:
    """Sum of regression trees; node arrays are (trees, nodes), a leaf has feature -1."""

    def __init__(self, trees: list[dict[str, list]], features: list[str], info: dict[str, Any] | None = None) -> None:
        if not trees:
            raise ConfigError("ranker model has no trees")
        self.sizes = [len(t["value"]) for t in trees]
        width = max(self.sizes)

        def pad(key: str, fill: float, dtype: Any) -> np.ndarray:
            return np.array([list(t[key]) + [fill] * (width - len(t[key])) for t in trees], dtype=dtype)

        self.feature = pad("feature", -1, np.int64)
        self.threshold = pad("threshold", 0.0, np.float64)
        self.left = pad("left", 0, np.int64)
        self.right = pad("right", 0, np.int64)
        self.value = pad("value", 0.0, np.float64)
        self.depth = max(int(t.get("depth", width)) for t in trees)
        self.features = list(features)
        self.info = info or {}
        self._flat: tuple[np.ndarray, ...] | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got shape {X.shape}")
        if self._flat is None:
            self._flat = self._flatten()
        feat, thr, child, value, roots = self._flat
        n = X.shape[0]
        node = np.broadcast_to(roots, (n, len(roots))).copy()  # global node ids, one column per tree
        base = (np.arange(n, dtype=np.int64) * X.shape[1])[:, None]
        flat_x = X.ravel()
        for _ in range(self.depth):  # leaves loop onto themselves, so every row takes `depth` steps
            right = flat_x[base + feat[node]] > thr[node]
            node = child[2 * node + right]
        return value[node].sum(axis=1)

    def _flatten(self) -> tuple[np.ndarray, ...]:
        """All trees in one set of 1-d arrays (fast gathers); a leaf points to itself on both sides."""
        offsets = np.cumsum([0, *self.sizes[:-1]]).astype(np.int64)
        feat, thr, left, right, value = [], [], [], [], []
        for k, (size, off) in enumerate(zip(self.sizes, offsets, strict=True)):
            leaf = self.feature[k, :size] < 0
            own = np.arange(size, dtype=np.int64) + off
            feat.append(np.where(leaf, 0, self.feature[k, :size]))
            thr.append(self.threshold[k, :size])
            left.append(np.where(leaf, own, self.left[k, :size] + off))
            right.append(np.where(leaf, own, self.right[k, :size] + off))
            value.append(np.where(leaf, self.value[k, :size], 0.0))
        child = np.column_stack([np.concatenate(left), np.concatenate(right)]).ravel()  # [2n]: left, [2n+1]: right
        return np.concatenate(feat), np.concatenate(thr), child, np.concatenate(value), offsets

    # -- (de)serialisation ---------------------------------------------------------
    @classmethod
    def from_lightgbm(cls, dump: dict[str, Any], features: list[str], info: dict[str, Any] | None = None
                      ) -> TreeEnsemble:
        """From `Booster.dump_model()`: numerical '<=' splits only (what our features need)."""
        trees = []
        for t in dump["tree_info"]:
            arrays: dict[str, list] = {"feature": [], "threshold": [], "left": [], "right": [], "value": []}

            def walk(node: dict[str, Any], depth: int, arrays: dict[str, list] = arrays) -> tuple[int, int]:
                at = len(arrays["value"])
                for key in arrays:
                    arrays[key].append(0)
                if "leaf_value" in node or "split_feature" not in node:
                    arrays["feature"][at] = -1
                    arrays["value"][at] = float(node.get("leaf_value", 0.0))
                    return at, depth
                if node.get("decision_type", "<=") != "<=":
                    raise ConfigError("ranker model: only numerical '<=' splits are supported")
                arrays["feature"][at] = int(node["split_feature"])
                arrays["threshold"][at] = float(node["threshold"])
                left, dl = walk(node["left_child"], depth + 1)
                right, dr = walk(node["right_child"], depth + 1)
                arrays["left"][at], arrays["right"][at] = left, right
                return at, max(dl, dr)

            _, depth = walk(t["tree_structure"], 0)
            trees.append({**arrays, "depth": depth})
        return cls(trees, features, info)

    def to_json(self) -> dict[str, Any]:
        trees = []
        for k, size in enumerate(self.sizes):
            trees.append({
                "feature": self.feature[k, :size].tolist(),
                "threshold": [round(float(x), 9) for x in self.threshold[k, :size]],
                "left": self.left[k, :size].tolist(),
                "right": self.right[k, :size].tolist(),
                "value": [round(float(x), 9) for x in self.value[k, :size]],
            })
        return {"format": FORMAT, "features": self.features, "info": self.info, "depth": self.depth, "trees": trees}

    @classmethod
    def load(cls, path: str | Path) -> TreeEnsemble:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read ranker model {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path} is not an EngramDB ranker model ({FORMAT})")
        if list(data.get("features", [])) != list(FEATURES):
            raise ConfigError(f"ranker model {path} was trained on other features; retrain it with "
                              "`engramdb bench train-ranker`")
        trees = [{**t, "depth": data.get("depth", len(t["value"]))} for t in data["trees"]]
        return cls(trees, data["features"], data.get("info"))


@lru_cache(maxsize=8)
def load_ranker(path: str | None = None) -> TreeEnsemble:
    """The shipped model (None) or one trained by the user; cached per path."""
    return TreeEnsemble.load(path or DEFAULT_MODEL)
