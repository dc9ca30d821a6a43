"""Approximate nearest-neighbour backends, persisted beside the database.

usearch was chosen by measurement (see docs/ann.md and `engramdb bench ann`):
on this machine it builds faster and answers faster than hnswlib and faiss-HNSW
at equal recall, and it saves/loads (memory-mapped) in one file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError


class UsearchANN:
    """Cosine HNSW over normalised vectors, keyed by the store's integer keys."""

    def __init__(self, dim: int, *, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 96):
        try:
            from usearch.index import Index
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ConfigError("the ANN index needs the 'ann' extra: pip install 'engramdb[ann]'") from exc
        self.dim = dim
        self._index = Index(
            ndim=dim,
            metric="ip",
            dtype="f32",
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=expansion_search,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            self._index.add(np.asarray(keys, dtype=np.uint64), np.asarray(vectors, dtype=np.float32))

    def remove(self, keys: np.ndarray) -> None:
        for k in keys:
            if int(k) in self._index:
                self._index.remove(int(k))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self._index))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        matches = self._index.search(np.asarray(query, dtype=np.float32), k)
        # usearch 'ip' distance is 1 - dot
        return matches.keys.astype(np.int64), (1.0 - matches.distances).astype(np.float32)

    def save(self, path: str, meta: dict) -> None:
        tmp = path + ".tmp"
        self._index.save(tmp)
        os.replace(tmp, path)
        Path(path + ".json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, path: str, dim: int) -> tuple[UsearchANN, dict] | None:
        meta_path = Path(path + ".json")
        if not (os.path.exists(path) and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            ann = cls(dim)
            ann._index.load(path)
        except Exception:  # noqa: BLE001 - a broken sidecar is rebuilt, never trusted
            return None
        return ann, meta
