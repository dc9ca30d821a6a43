"""Dense search: exact over small candidate sets, ANN beyond.

The store is the source of truth. This index keeps an in-memory copy of the
vectors (keys sorted, one float32 matrix) and, for large stores, an ANN graph
persisted beside the database file. Deleted and expired memories never come
back because every hit is checked against the store's filter.

Choosing the path (thresholds measured, docs/ann.md):
- a filter that narrows (scope, kind, time, metadata...) and matches at most
  `exact_max` memories: exact dot products over exactly those candidates;
- otherwise, up to `exact_max` vectors in all: exact over the whole matrix,
  then the filter on the best hits (widening until k survive: still exact);
- beyond: the ANN graph, the same post-filter, widening the beam.

Memory: up to `resident_max` vectors are held as one float32 matrix. Beyond it,
when the store logs vector changes (SQLite), no copy is kept: exact scores
read the candidates' vectors from the database pages (a scope's few hundred,
or the ANN graph's shortlist), and the process holds only the keys and the
8-bit graph.

Freshness: the store keeps `data_version` (any write) and `vector_epoch`
(a vector replaced or removed). New rows are appended incrementally. An epoch
change reloads the matrix and patches the ANN graph with the rows that changed
or vanished (found by comparing old and new matrices), rather than rebuilding
it. Without a matrix, the store's change log names the rows to patch: another
process's edit reaches this index row by row, never by a whole reload. The ANN
file records the store id, the epoch and the highest key it
covers: a missing file is rebuilt, a stale one is checked vector by vector
against the store and patched, a file from another store is discarded.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from ..store.base import Filters, Store
from .ann import UsearchANN, remove_files

EXACT_MAX = 20_000  # exact search up to this many candidates (measured crossover, docs/ann.md)
RESIDENT_MAX = 20_000  # above this many vectors, read them from the store instead of holding a copy
# paged: a scope of up to this many rows has its vectors read with its keys, in one statement (a broader one
# reads its keys alone, so a filter the exact path cannot take never reads a vector)
SCOPE_VECTORS_MAX = 2_000
ANN_SAVE_EVERY = 5_000  # persist the graph after this many unsaved changes
TOKEN_CACHE_BYTES = 32 << 20  # packed token vectors kept for late interaction (~4,000 turns of MiniLM)
_BLOCK = 1024


class Scope(NamedTuple):
    """The keys a narrowing filter selects, read before the query vector is known (`VectorIndex.scope`); in
    paged mode, for a small scope, their vectors too (in key order), read in the same statement."""

    keys: np.ndarray
    vectors: np.ndarray | None = None


class VectorIndex:
    def __init__(
        self,
        store: Store,
        dim: int,
        *,
        ann_path: str | None = None,
        exact_max: int = EXACT_MAX,
        model_name: str = "",
        resident_max: int = RESIDENT_MAX,
    ) -> None:
        self.store = store
        self.dim = dim
        self.ann_path = ann_path
        self.exact_max = exact_max
        self.resident_max = resident_max
        self.model_name = model_name
        self._paged = False  # True: no matrix; vectors read from the store (see the module docstring)
        self._log_seq: int | None = None  # the store's vector-change log position this copy reflects
        self._lock = threading.RLock()
        self._keys = np.zeros(0, dtype=np.int64)
        self._mat = np.zeros((0, dim), dtype=np.float32)
        self._seen_version = -1
        self._epoch: str | None = None
        self._ann: UsearchANN | None = None
        self._ann_max_key = 0
        self._ann_unsaved = 0
        self.last_path = ""  # 'exact', 'exact-post' or 'ann': which path the last search took (benchmarks, tests)
        self._tokens: OrderedDict[int, bytes] = OrderedDict()  # key -> packed token vectors, least recent first
        self._token_bytes = 0
        self._native = False  # the backend searches itself (PostgreSQL): no in-process copies at all
        # per thread, the rows a paged exact search just read: the same search's later reads of those keys (the
        # keyword hits' and neighbours' cosines, all in the scope) take them from here (see vectors_for)
        self._scope_rows = threading.local()

    # -- freshness ---------------------------------------------------------------
    def _vector_epoch(self) -> str:
        return self.store.get_meta("vector_epoch") or "0"

    @property
    def paged(self) -> bool:
        """True when vectors are read from the store rather than held in memory."""
        return self._paged

    def refresh(self) -> None:
        """Bring the in-memory state up to date with the store (cheap when nothing changed)."""
        with self._lock:
            version = self.store.data_version()
            if version == self._seen_version:
                return
            epoch = self._vector_epoch()
            if epoch != self._epoch:  # vectors replaced or removed (a key may even be reused): token copies go too
                self._tokens.clear()
                self._token_bytes = 0
            if self._paged:
                after = int(self._keys[-1]) if len(self._keys) else 0
                self._keys = np.concatenate([self._keys, self.store.vector_keys(after_key=after)])
                if epoch != self._epoch and not self._apply_log():
                    self._reload()
                self._epoch = epoch
            elif epoch != self._epoch:
                self._reload()
                self._epoch = epoch
            else:
                after = int(self._keys[-1]) if len(self._keys) else 0
                new_keys, new_mats = [], []
                for keys, mat in self.store.iter_vectors(after_key=after):
                    new_keys.append(keys)
                    new_mats.append(mat)
                if new_keys:
                    self._keys = np.concatenate([self._keys, *new_keys])
                    self._mat = np.vstack([self._mat, *new_mats])
                if len(self._keys) > self.resident_max and self._log_seq is not None:
                    self._go_paged()
            self._seen_version = version

    def _reload(self) -> None:
        """Everything again from the store (first load, or a change the log cannot name)."""
        self._log_seq = self.store.vector_log_head()  # read first: changes from here on are replayed, never missed
        keys = self.store.vector_keys() if self._log_seq is not None else None
        if keys is not None and len(keys) > self.resident_max:
            self._mat = np.zeros((0, self.dim), dtype=np.float32)
            self._keys = keys
            self._paged = True
            if self._ann is not None:  # patching needs the old vectors: reconcile against the store
                self._reconcile(self._ann)
            return
        old_keys, old_mat = self._keys, self._mat
        was_paged = self._paged
        self._paged = False
        self._keys, self._mat = self._load_all()
        if self._ann is not None:
            if was_paged:
                self._reconcile(self._ann)
            else:
                self._patch_ann(old_keys, old_mat)

    def _go_paged(self) -> None:
        self._mat = np.zeros((0, self.dim), dtype=np.float32)
        self._paged = True

    def _apply_log(self) -> bool:
        """Patch keys and graph with the rows the store's log names; False when the log cannot say."""
        if self._log_seq is None:
            return False
        got = self.store.vector_changes(self._log_seq)
        if got is None:
            return False
        self._log_seq, changed = got
        if not len(changed):
            return True
        present, mat = self.store.vectors_for(changed.tolist())
        # binary searches in the sorted keys: a few changed rows must not cost a sort of a million keys
        gone = np.setdiff1d(changed, present)
        if len(gone):
            self._keys = np.delete(self._keys, _positions(self._keys, gone))
        if len(present) and len(_positions(self._keys, present)) < len(present):  # a key reused after a delete
            self._keys = np.union1d(self._keys, present)
        if self._ann is not None:
            self._ann_unsaved += _patch_graph(self._ann, self._ann_max_key, changed, present, mat)
        return True

    def _load_all(self) -> tuple[np.ndarray, np.ndarray]:
        keys, mats = [], []
        for k, m in self.store.iter_vectors():
            keys.append(k)
            mats.append(m)
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(keys), np.vstack(mats)

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
        scope: Scope | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k (key, cosine) among memories that match `filters`. `force`: 'exact' or 'ann'. `scope`: what
        `scope` gave for these filters, read while the query was embedded (None: read here)."""
        if force not in (None, "exact", "ann"):
            raise ValueError("force must be None, 'exact' or 'ann'")
        query = np.asarray(query, dtype=np.float32)
        self._scope_rows.rows = None  # a new search: no earlier search's rows are served
        native = self.store.vector_search(query, filters, k) if force is None else None
        if native is not None:  # the backend searches in the database (PostgreSQL + pgvector)
            self._native = True
            return native
        with self._lock:
            self.refresh()
            n = len(self._keys)
            if n == 0 or k <= 0:
                return []
            if force == "ann":
                return self._search_ann(query, filters, k)
            if force == "exact" or _narrows(filters):
                # The store narrows through its indexes; one key more than the exact path takes says a filter is
                # too broad for it, so a broad filter never lists a million keys.
                vectors = None
                if force == "exact":
                    candidates = self.store.candidate_keys(filters)
                elif scope is not None:
                    candidates, vectors = scope
                else:
                    candidates = self.store.candidate_keys(filters, limit=self.exact_max + 1)
                if len(candidates) <= self.exact_max or force == "exact":
                    self.last_path = "exact"
                    return self._search_exact(query, candidates, k, vectors)
                return self._search_ann(query, filters, k)
            if n <= self.exact_max:
                return self._search_exact_post(query, filters, k)
            return self._search_ann(query, filters, k)

    def scope(self, filters: Filters) -> Scope | None:
        """The keys a narrowing filter selects, as `search` reads them (one more than the exact path takes says
        the filter is too broad for it, so a broad filter never lists a million keys), and in paged mode a small
        scope's vectors with them; None where `search` reads none (a filter that does not narrow, a backend that
        searches itself). It needs no query: a search reads it while its query is embedded (`Store.read_soon`);
        a memory written meanwhile is then missed, as by the keyword search that runs beside it."""
        if self._native or self.store.native_vector_search or not _narrows(filters):
            return None
        if self._paged:
            keys, mat = self.store.scope_vectors(filters, limit=SCOPE_VECTORS_MAX + 1)
            if len(keys) <= SCOPE_VECTORS_MAX:
                return Scope(keys, mat)
        return Scope(self.store.candidate_keys(filters, limit=self.exact_max + 1))

    def vectors_for(self, keys: Sequence[int], *, refreshed: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(keys, vectors) of those `keys` that have a vector, in key order: from the copy held in memory where
        there is one (no database read), else from the store. `refreshed`: as for `token_vectors`."""
        if self._native:
            return self.store.vectors_for(keys)
        if self._paged:
            return self._paged_rows(keys) if refreshed else self.store.vectors_for(keys)
        with self._lock:
            if not refreshed:
                self.refresh()
            if self._paged:
                return self.store.vectors_for(keys)
            pos = self._match(np.asarray(keys, dtype=np.int64))
            if not len(pos):
                return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
            return self._keys[pos], self._mat[pos]

    def _paged_rows(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """`vectors_for` in paged mode, right after this thread's own search: the rows its exact search read
        (a scope's few hundred) are not read again; the others are."""
        rows = getattr(self._scope_rows, "rows", None)
        want = np.unique(np.asarray(keys, dtype=np.int64))
        if rows is None or not len(rows[0]) or not len(want):
            return self.store.vectors_for(want.tolist())
        have_keys, have_mat = rows
        at = np.minimum(np.searchsorted(have_keys, want), len(have_keys) - 1)
        held = have_keys[at] == want
        if held.all():
            return want, have_mat[at]
        more_keys, more_mat = self.store.vectors_for(want[~held].tolist())
        if not held.any():
            return more_keys, more_mat
        if not len(more_keys):
            return want[held], have_mat[at[held]]
        keys_all = np.concatenate([want[held], more_keys])
        order = np.argsort(keys_all, kind="stable")
        return keys_all[order], np.vstack([have_mat[at[held]], more_mat])[order]

    def token_vectors(self, keys: Sequence[int], *, refreshed: bool = False) -> dict[int, bytes]:
        """The store's packed token vectors (index/late.py) of those `keys` that have them. A search reads ~150
        of ~8 KB: the recent ones are kept in memory (TOKEN_CACHE_BYTES), dropped when the store's vectors
        change, so the database is read only for the others. `refreshed`: the caller's own `search` just
        brought this index up to date (no second look at the store's version)."""
        if self._native:
            return self.store.token_vectors_for(keys)
        with self._lock:
            if not refreshed:
                self.refresh()
            out: dict[int, bytes] = {}
            missing: list[int] = []
            for k in keys:
                blob = self._tokens.get(k)
                if blob is None:
                    missing.append(k)
                else:
                    self._tokens.move_to_end(k)
                    out[k] = blob
            # keys without token vectors are not remembered: they are read again (few: derived memories)
            for k, blob in self.store.token_vectors_for(missing).items() if missing else ():
                out[k] = blob
                self._tokens[k] = blob
                self._token_bytes += len(blob)
            while self._token_bytes > TOKEN_CACHE_BYTES and self._tokens:
                self._token_bytes -= len(self._tokens.popitem(last=False)[1])
            return {k: out[k] for k in keys if k in out}

    def _search_exact(self, query: np.ndarray, candidates: np.ndarray, k: int, vectors: np.ndarray | None = None
                      ) -> list[tuple[int, float]]:
        if self._paged:  # the candidates' own rows, from the database pages (or read with the scope's keys)
            keys, mat = (candidates, vectors) if vectors is not None else self.store.vectors_for(candidates.tolist())
            order = np.argsort(keys, kind="stable")  # (in key order already: cheap to be sure)
            keys, mat = keys[order], mat[order]
            self._scope_rows.rows = (keys, mat)
            if not len(keys):
                return []
            scores = dot_rows(mat, query)
            top = _top_k(scores, k)
            return list(zip(keys[top].tolist(), scores[top].tolist(), strict=True))
        pos = self._match(candidates)
        if not len(pos):
            return []
        scores = dot_rows(self._mat, query, pos)
        top = _top_k(scores, k)
        return list(zip(self._keys[pos[top]].tolist(), scores[top].tolist(), strict=True))

    def _scan(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keys, scores) over every vector: the matrix, or the store streamed in batches."""
        if not self._paged:
            return self._keys, dot_rows(self._mat, query)
        keys, scores = [], []
        for k, m in self.store.iter_vectors():
            keys.append(k)
            scores.append(dot_rows(m, query))
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(keys), np.concatenate(scores)

    def _search_exact_post(self, query: np.ndarray, filters: Filters, k: int) -> list[tuple[int, float]]:
        """Exact scores over every vector, then the filter on the best ones, widening until k pass."""
        self.last_path = "exact-post"
        all_keys, scores = self._scan(query)
        fetch = max(k + k // 2, 32)  # most rows pass a non-narrowing filter: a small margin, widened if not
        while True:
            top = _top_k(scores, fetch)
            keys = all_keys[top].tolist()
            allowed = set(self.store.filter_keys(keys, filters).tolist())
            hits = [(key, s) for key, s in zip(keys, scores[top].tolist(), strict=True) if key in allowed]
            if len(hits) >= k or fetch >= len(scores):
                return hits[:k]
            fetch *= 4

    def _match(self, candidates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self._keys, candidates)
        ok = pos < len(self._keys)
        pos, cand = pos[ok], candidates[ok]
        return np.sort(pos[self._keys[pos] == cand])

    def brute_force(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Exact top-k over every stored vector, no filter: the baseline for benchmarks."""
        with self._lock:
            self.refresh()
            keys, scores = self._scan(np.asarray(query, dtype=np.float32))
            top = _top_k(scores, k)
            return list(zip(keys[top].tolist(), scores[top].tolist(), strict=True))

    def _search_ann(self, query: np.ndarray, filters: Filters, k: int) -> list[tuple[int, float]]:
        self.last_path = "ann"
        ann = self._ensure_ann()
        fetch = max(k + k // 2, 40)
        while True:
            found = ann.search(query, fetch)
            # Rescore exactly from float32 vectors: the graph's 8-bit distances only pick candidates.
            if self._paged:
                got, mat = self.store.vectors_for(found.tolist())
                scores = dot_rows(mat, query) if len(got) else np.zeros(0, dtype=np.float32)
            else:
                pos = self._match(found)
                got, scores = self._keys[pos], dot_rows(self._mat, query, pos)
            order = np.argsort(-scores, kind="stable")
            keys, scores = got[order].tolist(), scores[order].tolist()
            allowed = set(self.store.filter_keys(keys, filters).tolist())
            hits = [(key, s) for key, s in zip(keys, scores, strict=True) if key in allowed]
            if len(hits) >= k or fetch >= len(ann):
                return hits[:k]
            fetch *= 4  # a selective filter: widen the beam rather than return too few

    # -- ANN lifecycle -----------------------------------------------------------
    def _store_id(self) -> str:
        """A random id for this store, so a sidecar copied from another database is never trusted."""
        sid = self.store.get_meta("store_id")
        if sid is None:
            sid = uuid.uuid4().hex
            self.store.set_meta("store_id", sid)
        return sid

    def _ensure_ann(self) -> UsearchANN:
        if self._ann is None:
            self._ann = self._load_ann()
        if len(self._keys) and int(self._keys[-1]) > self._ann_max_key:
            if self._paged:  # stream the rows the graph has not seen
                for keys, mat in self.store.iter_vectors(after_key=self._ann_max_key):
                    self._ann.add(keys, mat)
                    self._ann_unsaved += len(keys)
                    self._ann_max_key = int(keys[-1])
            else:
                start = int(np.searchsorted(self._keys, self._ann_max_key, side="right"))
                self._ann.add(self._keys[start:], self._mat[start:])
                self._ann_unsaved += len(self._keys) - start
                self._ann_max_key = int(self._keys[-1])
        if self._ann_unsaved >= ANN_SAVE_EVERY:
            self.save()
        return self._ann

    def _load_ann(self) -> UsearchANN:
        """The persisted graph if it belongs to this store (patched if stale), else a new empty one."""
        self._ann_unsaved = 0
        self._ann_max_key = 0
        loaded = UsearchANN.load(self.ann_path, self.dim) if self.ann_path else None
        if loaded is not None:
            ann, meta = loaded
            if (
                meta.get("store_id") == self._store_id()
                and meta.get("model") == self.model_name
                and meta.get("count") == len(ann)
            ):
                self._ann_max_key = int(meta.get("max_key", 0))
                if meta.get("epoch") != self._epoch:
                    # the store's change log since the save names the rows to patch; else compare them all
                    got = self.store.vector_changes(int(meta["log_seq"])) if self._logged(meta) else None
                    if got is None:
                        self._reconcile(ann)
                    elif len(got[1]):
                        present, mat = self.store.vectors_for(got[1].tolist())
                        self._ann_unsaved += _patch_graph(ann, self._ann_max_key, got[1], present, mat)
                return ann
        self._ann_unsaved = 1  # a fresh graph: save it once built
        return UsearchANN(self.dim)

    def _logged(self, meta: dict[str, object]) -> bool:
        """Can the graph saved with `meta` be patched from the store's change log up to this copy's state?"""
        return self._log_seq is not None and isinstance(meta.get("log_seq"), int)

    def _reconcile(self, ann: UsearchANN) -> None:
        """Make a loaded graph agree with the store: drop vanished keys, re-add changed vectors."""
        have = ann.keys()
        covered = self._keys[self._keys <= self._ann_max_key]
        gone = np.setdiff1d(have, covered)
        changed = np.zeros(0, dtype=np.int64)
        missing = np.zeros(0, dtype=np.int64)
        for keys, mine in self._covered_batches():
            in_graph = np.isin(keys, have, assume_unique=True)
            missing = np.concatenate([missing, keys[~in_graph]])
            part, mine = keys[in_graph], mine[in_graph]
            if len(part):
                # The graph holds 8-bit copies (step 1/127): a changed vector differs by far more than that.
                moved = np.max(np.abs(ann.vectors(part) - mine), axis=1) > 0.02
                changed = np.concatenate([changed, part[moved]])
        fix = np.concatenate([changed, missing])
        ann.remove(np.concatenate([gone, changed]))
        if len(fix):
            got, mat = self._vectors_of(fix)
            ann.add(got, mat)
        self._ann_unsaved += len(gone) + len(fix) + 1

    def _covered_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(keys, vectors) in batches, for every key the graph should cover."""
        if self._paged:
            for keys, mat in self.store.iter_vectors():
                keep = keys <= self._ann_max_key
                if not keep.any():
                    return
                yield keys[keep], mat[keep]
            return
        covered = self._keys <= self._ann_max_key
        keys, mat = self._keys[covered], self._mat[covered]
        for i in range(0, len(keys), 50_000):
            yield keys[i : i + 50_000], mat[i : i + 50_000]

    def _vectors_of(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._paged:
            got, mat = self.store.vectors_for(keys.tolist())
            return got, mat
        return keys, self._mat[np.searchsorted(self._keys, keys)]

    def _patch_ann(self, old_keys: np.ndarray, old_mat: np.ndarray) -> None:
        """After an epoch change: bring the in-memory graph in line by diffing old and new matrices."""
        assert self._ann is not None
        old_keys = old_keys[old_keys <= self._ann_max_key]
        gone = np.setdiff1d(old_keys, self._keys)
        common, i_old, i_new = np.intersect1d(old_keys, self._keys, return_indices=True)
        changed = common[np.any(old_mat[i_old] != self._mat[i_new], axis=1)] if len(common) else common
        # Keys at or below the graph's high-water mark that it never saw (only possible after key reuse).
        unseen = np.setdiff1d(self._keys[self._keys <= self._ann_max_key], old_keys)
        fix = np.concatenate([changed, unseen])
        self._ann.remove(np.concatenate([gone, changed]))
        self._ann.add(fix, self._mat[np.searchsorted(self._keys, fix)])
        self._ann_unsaved += len(gone) + len(fix)

    def build_ann(self) -> None:
        """Build (or load and catch up) the ANN graph now, and persist it."""
        with self._lock:
            self.refresh()
            self._ensure_ann()
            self.save()

    def save(self) -> None:
        with self._lock:
            if self._ann is not None and self.ann_path and self._ann_unsaved:
                self._ann.save(
                    self.ann_path,
                    {
                        "store_id": self._store_id(),
                        "epoch": self._epoch,
                        "max_key": self._ann_max_key,
                        "model": self.model_name,
                        "count": len(self._ann),
                        "log_seq": self._log_seq,
                        "pid": os.getpid(),
                    },
                )
                self._ann_unsaved = 0

    def drop_ann(self) -> None:
        """Forget the graph, in memory and on disk (after a reindex to another model)."""
        with self._lock:
            self._ann = None
            self._ann_max_key = 0
            if self.ann_path:
                remove_files(self.ann_path)

    def close(self) -> None:
        self.save()


def _positions(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions in `sorted_keys` of those `keys` it holds."""
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, keys)
    pos = pos[pos < len(sorted_keys)]
    return pos[np.isin(sorted_keys[pos], keys)]


def _patch_graph(ann: UsearchANN, max_key: int, changed: np.ndarray, present: np.ndarray, mat: np.ndarray) -> int:
    """Drop the changed keys the graph covers and re-add those still present; returns how many it touched."""
    covered = changed[changed <= max_key]
    ann.remove(covered)
    keep = present <= max_key
    if keep.any():
        ann.add(present[keep], mat[keep])
    return len(covered)


def _narrows(f: Filters) -> bool:
    """Does the filter select a subset the store can list through an index (not just 'live rows')?"""
    return bool(
        f.user_id
        or f.agent_id
        or f.session_id
        or f.kinds
        or f.ids is not None
        or f.source_ref
        or f.since
        or f.until
        or f.metadata
    )  # as_of / current_only pass nearly every row (open validity): post-filtering is the cheap way


def dot_rows(mat: np.ndarray, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """`mat[rows] @ query` in blocks of 1,024 rows.

    Measured (docs/ann.md): OpenBLAS hands a matrix-vector product of more than
    ~1k x 384 to its thread pool, and on a small, busy machine the wake-up alone
    costs ~8 ms; blocks below that size stay on one core and run 5-20x faster.
    Gathering block by block also avoids copying every candidate row at once.
    """
    n = len(mat) if rows is None else len(rows)
    out = np.empty(n, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    for i in range(0, n, _BLOCK):
        block = mat[i : i + _BLOCK] if rows is None else mat[rows[i : i + _BLOCK]]
        np.matmul(block, q, out=out[i : i + _BLOCK])
    return out


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])]


SearchFn = Callable[[np.ndarray, Filters, int], list[tuple[int, float]]]
