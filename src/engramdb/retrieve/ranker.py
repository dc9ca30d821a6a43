"""The learned ranker: a small gradient-boosted tree ensemble, evaluated with numpy.

It is trained offline (`engramdb bench train-ranker`, LightGBM's lambdarank) on the
features of retrieve/features.py and shipped as JSON, so serving needs neither
LightGBM nor scipy. `predict` evaluates every tree for every row at once without
walking them (QuickScorer's bit masks): one comparison per row and split node,
then each tree's exit leaf is the leftmost leaf that no true comparison rules
out. `predict_levels` walks the trees level by level instead (the reference,
and the way for trees of more than 64 leaves).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .features import FEATURES, LATE_FEATURES

FORMAT = "engramdb-tree-ensemble/1"
DEFAULT_MODEL = Path(__file__).parent / "models" / "ranker.json"  # with late interaction (token vectors)
PLAIN_MODEL = Path(__file__).parent / "models" / "ranker_plain.json"  # for stores or models without token vectors
FEATURE_SETS = (list(FEATURES), [*FEATURES, *LATE_FEATURES])


class TreeEnsemble:
    """Sum of regression trees. A tree is node lists (feature, threshold, left, right, value); a leaf has
    feature -1, and `left`/`right` index nodes of the same tree."""

    def __init__(self, trees: list[dict[str, Any]], features: list[str], info: dict[str, Any] | None = None) -> None:
        if not trees:
            raise ConfigError("ranker model has no trees")
        self.trees = [{k: list(t[k]) for k in ("feature", "threshold", "left", "right", "value")} for t in trees]
        self.sizes = [len(t["value"]) for t in self.trees]
        self.depth = max(int(t.get("depth", len(t["value"]))) for t in trees)
        self.features = list(features)
        self.late = self.features == FEATURE_SETS[1]  # reads the late-interaction features (index/late.py)
        self.info = info or {}
        # flat arrays: node ids are global; a leaf points to itself on both sides, so every row takes `depth` steps
        self._roots = np.cumsum([0, *self.sizes[:-1]]).astype(np.int64)
        feat, thr, child, value = [], [], [], []
        for t, off in zip(self.trees, self._roots.tolist(), strict=True):
            for n, f in enumerate(t["feature"]):
                leaf = f < 0
                feat.append(0 if leaf else f)
                thr.append(t["threshold"][n])
                child += [off + n, off + n] if leaf else [off + t["left"][n], off + t["right"][n]]
                value.append(t["value"][n] if leaf else 0.0)
        self._feat = np.array(feat, dtype=np.int64)
        self._thr = np.array(thr, dtype=np.float64)
        self._child = np.array(child, dtype=np.int64)  # [2n]: left of node n, [2n+1]: right
        self._value = np.array(value, dtype=np.float64)
        self._masks = _bit_masks(self.trees)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The ensemble's output per row: the same numbers as `predict_levels`, bit for bit (each row's leaf values
        are summed in tree order either way)."""
        X = self._check(X)
        if self._masks is None:
            return self.predict_levels(X)
        feat, thr, cut, leaf_at, leaf_value, n_trees = self._masks
        out = np.empty(X.shape[0], dtype=np.float64)
        for lo in range(0, X.shape[0], _ROWS):  # bounded memory: rows x split nodes comparisons at a time
            rows = X[lo : lo + _ROWS]
            right = (rows[:, feat] > thr).reshape(len(rows), -1, n_trees)  # [row, k-th split of the tree, tree]
            # a split whose row goes right rules out the leaves of its left subtree; NaN goes left, as in the walk
            gone = right[:, 0] * cut[0]
            for k in range(1, right.shape[1]):
                gone |= right[:, k] * cut[k]
            kept = ~gone
            lowest = kept & (~kept + 1)  # leaves are bits in left-to-right order: the exit leaf is the lowest kept
            leaf = np.frexp(lowest.astype(np.float64))[1] - 1
            # row-major like the walk's leaf values, so the sum adds in the same order
            out[lo : lo + _ROWS] = np.ascontiguousarray(leaf_value[leaf_at + leaf]).sum(axis=1)
        return out

    def predict_levels(self, X: np.ndarray) -> np.ndarray:
        """`predict` by walking all trees for every row at once, one numpy step per tree level."""
        X = self._check(X)
        n = X.shape[0]
        node = np.broadcast_to(self._roots, (n, len(self._roots))).copy()  # one column per tree
        base = (np.arange(n, dtype=np.int64) * X.shape[1])[:, None]
        flat_x = X.ravel()
        for _ in range(self.depth):
            right = flat_x[base + self._feat[node]] > self._thr[node]
            node = self._child[2 * node + right]
        return self._value[node].sum(axis=1)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got shape {X.shape}")
        return X

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

    @classmethod
    def average(cls, models: list[TreeEnsemble], info: dict[str, Any] | None = None) -> TreeEnsemble:
        """One ensemble whose output is the mean of `models`' outputs (their trees, leaf values divided by n)."""
        if not models or any(m.features != models[0].features for m in models):
            raise ConfigError("can only average ranker models over the same features")
        scale = 1.0 / len(models)
        trees = [{**t, "value": [v * scale for v in t["value"]], "depth": m.depth} for m in models for t in m.trees]
        return cls(trees, models[0].features, info)

    def to_json(self) -> dict[str, Any]:
        trees = [{**t, "threshold": [round(float(x), 9) for x in t["threshold"]],
                  "value": [round(float(x), 9) for x in t["value"]]} for t in self.trees]
        return {"format": FORMAT, "features": self.features, "info": self.info, "depth": self.depth, "trees": trees}

    @classmethod
    def load(cls, path: str | Path) -> TreeEnsemble:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read ranker model {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{path} is not an EngramDB ranker model ({FORMAT})")
        if list(data.get("features", [])) not in FEATURE_SETS:
            raise ConfigError(f"ranker model {path} was trained on other features; retrain it with "
                              "`engramdb bench train-ranker`")
        trees = [{**t, "depth": data.get("depth", len(t["value"]))} for t in data["trees"]]
        return cls(trees, data["features"], data.get("info"))


_ROWS = 2048  # rows per block in `predict`
_MASK_TYPES = ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))

MaskArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def _bit_masks(trees: list[dict[str, Any]]) -> MaskArrays | None:
    """`predict`'s arrays: the split nodes as k-major blocks of one column per tree (feature, threshold, the bits of
    the leaves each one's left subtree holds), padded to the tree with the most splits by splits that never go
    right; each tree's first leaf in `leaf_value`, whose leaves are in left-to-right order. None where a tree has
    more than 64 leaves (no bit mask type holds it)."""
    per_tree: list[list[tuple[int, float, int]]] = []
    leaf_at: list[int] = []
    leaf_value: list[float] = []
    width = 1
    for t in trees:
        feature, left, right = t["feature"], t["left"], t["right"]
        bits: dict[int, int] = {}  # node -> bits of the leaves under it
        order: list[int] = []  # leaves, left to right
        stack = [(0, False)]
        while stack:  # post-order without recursion: a tree of a few hundred levels must not overflow the stack
            node, done = stack.pop()
            if feature[node] < 0:
                bits[node] = 1 << len(order)
                order.append(node)
            elif done:
                bits[node] = bits[left[node]] | bits[right[node]]
            else:
                stack += [(node, True), (right[node], False), (left[node], False)]
        if len(order) > 64:
            return None
        width = max(width, len(order))
        leaf_at.append(len(leaf_value))
        leaf_value += [float(t["value"][n]) for n in order]
        per_tree.append([(feature[n], float(t["threshold"][n]), bits[left[n]])
                         for n in range(len(feature)) if feature[n] >= 0])
    dtype = next(d for w, d in _MASK_TYPES if width <= w)
    depth = max(1, *(len(s) for s in per_tree))
    pad = (0, np.inf, 0)  # x > inf is never true: rules nothing out
    rows = [[s[k] if k < len(s) else pad for s in per_tree] for k in range(depth)]  # [k][tree]
    feat = np.array([f for row in rows for f, _, _ in row], dtype=np.intp)
    thr = np.array([x for row in rows for _, x, _ in row], dtype=np.float64)
    cut = np.array([[m for _, _, m in row] for row in rows], dtype=dtype)
    return (feat, thr, cut, np.array(leaf_at, dtype=np.intp), np.array(leaf_value, dtype=np.float64), len(trees))


@lru_cache(maxsize=8)
def load_ranker(path: str | None = None, *, late: bool = True) -> TreeEnsemble:
    """A model trained by the user (`path`), or the shipped one: with late-interaction features when the pool has
    them (`late`), else the plain one. Cached per path."""
    return TreeEnsemble.load(path or (DEFAULT_MODEL if late else PLAIN_MODEL))
