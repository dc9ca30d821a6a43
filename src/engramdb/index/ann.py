"""Approximate nearest-neighbour index, persisted beside the database.

usearch was chosen by measurement (docs/ann.md, `engramdb bench ann`): at equal
recall@10 it answers about as fast as hnswlib and faiss-HNSW, builds in the same
time, removes keys in place (faiss HNSW cannot), returns stored vectors by key
(so a stale file can be checked and patched instead of rebuilt), and saves and
loads one file.

The sidecar is two files: `<db>.usearch` (the graph) and `<db>.usearch.json`
(what it covers: store id, vector epoch, model, highest key, count). Both are
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from usearch.index import Index

CONNECTIVITY = 16  # M: graph degree
EXPANSION_ADD = 64  # ef_construction
EXPANSION_SEARCH = 256  # ef at query time (raised to the number of hits asked for); docs/ann.md
# The graph stores 8-bit vectors: it only navigates. Candidates are rescored exactly from the float32 matrix
# the VectorIndex keeps anyway, so scores are exact cosines. Measured (docs/ann.md): builds 3-4x faster than
# float32 with ef_construction 128, a 4x smaller file, and recall@10 after rescoring within 0.01 of float32.
DTYPE = "i8"


def load_usearch_index() -> type[Index]:
    """usearch's `Index`. onnxruntime, where installed, is imported first: importing it after usearch's compiled
    module (which carries its own C++ runtime) crashes the process (usearch 2.26, onnxruntime 1.32; in that
    order only), and a search that builds the graph before its second query loads the model's ONNX copy would
    do just that. The import costs ~0.15 s once."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    from usearch.index import Index

    return Index


class UsearchANN:
    """Inner-product HNSW over unit vectors, 8-bit quantised, keyed by the store's integer keys."""

    def __init__(self, dim: int, *, connectivity: int = CONNECTIVITY, expansion_add: int = EXPANSION_ADD) -> None:
        try:
            Index = load_usearch_index()
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ConfigError("the ANN index needs the 'ann' extra: pip install '.[ann]'") from exc
        self.dim = dim
        self._index = Index(
            ndim=dim,
            metric="ip",
            dtype=DTYPE,
            connectivity=connectivity,
            expansion_add=expansion_add,
            expansion_search=EXPANSION_SEARCH,
        )

    def __len__(self) -> int:
        return len(self._index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            self._index.add(np.asarray(keys, dtype=np.uint64), np.ascontiguousarray(vectors, dtype=np.float32))

    def remove(self, keys: np.ndarray) -> None:
        present = [int(k) for k in keys if int(k) in self._index]
        if present:
            self._index.remove(np.asarray(present, dtype=np.uint64))

    def keys(self) -> np.ndarray:
        return np.sort(np.asarray(self._index.keys, dtype=np.int64))

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors for keys that are all present (used to check a loaded file against the store)."""
        if not len(keys):
            return np.zeros((0, self.dim), dtype=np.float32)
        got = self._index.get(np.asarray(keys, dtype=np.uint64), dtype="f32")
        return np.asarray(got, dtype=np.float32).reshape(len(keys), self.dim)

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Keys of about the k nearest, best first by the quantised distance (callers rescore exactly)."""
        k = min(k, len(self._index))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        # The beam must be at least as wide as the answer, or recall collapses for large k.
        self._index.expansion_search = max(EXPANSION_SEARCH, k)  # type: ignore[misc]  # a setter in usearch
        matches = self._index.search(np.asarray(query, dtype=np.float32), k, threads=1)
        return matches.keys.astype(np.int64)

    def save(self, path: str, meta: dict[str, Any]) -> None:
        remove_orphans(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        meta_tmp = f"{path}.json.{os.getpid()}.tmp"
        try:
            self._index.save(tmp)
            os.replace(tmp, path)
            Path(meta_tmp).write_text(json.dumps(meta))
            os.replace(meta_tmp, path + ".json")
        finally:
            for p in (tmp, meta_tmp):
                if os.path.exists(p):
                    os.remove(p)

    @classmethod
    def load(cls, path: str, dim: int) -> tuple[UsearchANN, dict[str, Any]] | None:
        """The saved index and its metadata, or None when missing or unreadable (the caller rebuilds)."""
        meta_path = Path(path + ".json")
        remove_orphans(path)
        if not (os.path.exists(path) and meta_path.exists()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            ann = cls(dim)
            ann._index.load(path)
        except Exception:  # noqa: BLE001 - a broken sidecar is rebuilt, never trusted
            return None
        if ann._index.ndim != dim or not isinstance(meta, dict):
            return None
        return ann, meta


def remove_orphans(path: str) -> int:
    """Delete temporary files left by processes killed while saving (`<path>.<pid>.tmp`, `<path>.json.<pid>.tmp`)
    whose process is gone; returns how many. A live writer's file is left alone."""
    removed = 0
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(base + ".") and name.endswith(".tmp")):
            continue
        pid = name[len(base) + 1 : -4].removeprefix("json.")
        if not pid.isdecimal() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.remove(os.path.join(folder, name))
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_files(path: str) -> None:
    for p in (path, path + ".json"):
        if os.path.exists(p):
            os.remove(p)
