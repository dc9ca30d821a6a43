"""Dense search: exact over small candidate sets, ANN beyond.

The store is the source of truth. This index keeps an in-memory copy of the
vectors (keys sorted, one float32 matrix) and, for large stores, an ANN graph
persisted beside the database file. Deleted and expired memories never come
back because every hit is checked against the store's filter.

Freshness: the store keeps `data_version` (any write) and `vector_epoch`
(a vector replaced or removed). New rows are appended incrementally; an epoch
change forces a reload. The ANN file records the epoch and the highest key it
covers, so a stale or missing file is caught up or rebuilt, never trusted blindly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..store.base import Filters, Store
from .ann import UsearchANN

EXACT_MAX = 50_000  # candidate sets up to this size are searched exactly
ANN_SAVE_EVERY = 5_000  # persist the graph after this many unsaved additions


class VectorIndex:
    def __init__(
        self,
        store: Store,
        dim: int,
        *,
        ann_path: str | None = None,
        exact_max: int = EXACT_MAX,
        model_name: str = "",
    ) -> None:
        self.store = store
        self.dim = dim
        self.ann_path = ann_path
        self.exact_max = exact_max
        self.model_name = model_name
        self._lock = threading.RLock()
        self._keys = np.zeros(0, dtype=np.int64)
        self._mat = np.zeros((0, dim), dtype=np.float32)
        self._seen_version = -1
        self._epoch = None
        self._ann: UsearchANN | None = None
        self._ann_max_key = 0
        self._ann_unsaved = 0

    # -- freshness ---------------------------------------------------------------
    def _vector_epoch(self) -> str:
        return self.store.get_meta("vector_epoch") or "0"

    def refresh(self) -> None:
        """Bring the in-memory copy up to date with the store (cheap when nothing changed)."""
        with self._lock:
            version = self.store.data_version()
            if version == self._seen_version:
                return
            epoch = self._vector_epoch()
            if epoch != self._epoch:
                self._keys = np.zeros(0, dtype=np.int64)
                self._mat = np.zeros((0, self.dim), dtype=np.float32)
                self._ann = None
                self._ann_max_key = 0
                self._epoch = epoch
            after = int(self._keys[-1]) if len(self._keys) else 0
            new_keys, new_mats = [], []
            for keys, mat in self.store.iter_vectors(after_key=after):
                new_keys.append(keys)
                new_mats.append(mat)
            if new_keys:
                self._keys = np.concatenate([self._keys, *new_keys])
                self._mat = np.vstack([self._mat, *new_mats]) if len(self._mat) else np.vstack(new_mats)
            self._seen_version = version

    def __len__(self) -> int:
        self.refresh()
        return len(self._keys)

    # -- search ------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        filters: Filters,
        k: int,
        *,
        force: str | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (key, cosine) among memories that match `filters`. `force`: 'exact' or 'ann'."""
        with self._lock:
            self.refresh()
            n = len(self._keys)
            if n == 0 or k <= 0:
                return []
            if force == "ann" or (force is None and n > self.exact_max and self.store.count(filters) > self.exact_max):
                return self._search_ann(query, filters, k)
            return self._search_exact(query, self.store.candidate_keys(filters), k)

    def _search_exact(self, query: np.ndarray, candidates: np.ndarray, k: int) -> list[tuple[int, float]]:
        pos = self._match(candidates)
        if not len(pos):
            return []
        scores = self._mat[pos] @ query.astype(np.float32)
        top = _top_k(scores, k)
        return [(int(self._keys[pos[i]]), float(scores[i])) for i in top]

    def _match(self, candidates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._keys, candidates)
        ok = pos < len(self._keys)
        pos, cand = pos[ok], candidates[ok]
        return pos[self._keys[pos] == cand]

    def brute_force(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact top-k over every stored vector, no filter: the baseline for benchmarks."""
        with self._lock:
            self.refresh()
            scores = self._mat @ query.astype(np.float32)
            return [(int(self._keys[i]), float(scores[i])) for i in _top_k(scores, k)]

    def _search_ann(self, query: np.ndarray, filters: Filters, k: int) -> list[tuple[int, float]]:
        ann = self._ensure_ann()
        fetch = max(k * 4, 40)
        while True:
            keys, scores = ann.search(query, fetch)
            allowed = set(self.store.filter_keys(keys, filters).tolist())
            hits = [(int(key), float(s)) for key, s in zip(keys, scores, strict=False) if int(key) in allowed]
            if len(hits) >= k or fetch >= len(ann):
                return hits[:k]
            fetch *= 4  # a selective filter: widen the beam rather than return too few

    # -- ANN lifecycle -----------------------------------------------------------
    def _ensure_ann(self) -> UsearchANN:
        if self._ann is None:
            loaded = UsearchANN.load(self.ann_path, self.dim) if self.ann_path else None
            if loaded and loaded[1].get("epoch") == self._epoch and loaded[1].get("model") == self.model_name:
                self._ann, meta = loaded
                self._ann_max_key = int(meta.get("max_key", 0))
            else:
                self._ann = UsearchANN(self.dim)
                self._ann_max_key = 0
            self._ann_unsaved = 0
        if len(self._keys) and int(self._keys[-1]) > self._ann_max_key:
            start = int(np.searchsorted(self._keys, self._ann_max_key, side="right"))
            self._ann.add(self._keys[start:], self._mat[start:])
            self._ann_unsaved += len(self._keys) - start
            self._ann_max_key = int(self._keys[-1])
            if self._ann_unsaved >= ANN_SAVE_EVERY or start == 0:
                self.save()
        return self._ann

    def build_ann(self) -> None:
        with self._lock:
            self.refresh()
            self._ensure_ann()

    def save(self) -> None:
        if self._ann is not None and self.ann_path and self._ann_unsaved:
            self._ann.save(
                self.ann_path,
                {"epoch": self._epoch, "max_key": self._ann_max_key, "model": self.model_name, "count": len(self._ann)},
            )
            self._ann_unsaved = 0

    def close(self) -> None:
        with self._lock:
            self.save()


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])]


SearchFn = Callable[[np.ndarray, Filters, int], list[tuple[int, float]]]
