"""`engramdb bench ann`: pick the ANN library by measurement.

Every library indexes the same seeded vectors (unit-normalised, 384-d like
all-MiniLM-L6-v2) and answers the same single queries, one at a time, as the
engine does. Reported per library: build time, index size and memory, save and
load time, query latency p50/p95 and recall@k against exact brute force
(numpy, the baseline) at a few search-beam widths, so libraries are compared at
equal recall rather than at equal knob values.

Each library runs in its own spawned process, so its memory figure is its own
and a crash in one native library cannot take the others down.

Data: `random` (Gaussian, the hardest case for a graph index: no structure) or
`clustered` (a mixture of Gaussians around 1,000 topics, closer to sentence
embeddings, where neighbours are concentrated).
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np

from ..index.vector import dot_rows

LIBRARIES = ("numpy", "usearch", "usearch-i8", "hnswlib", "faiss", "sqlite-vec")
M = 16  # graph degree, the same for every HNSW library
EF_CONSTRUCTION = 128
EF_SEARCH = (32, 64, 128, 256)


def make_vectors(n: int, dim: int, *, seed: int, data: str, sample_seed: int | None = None) -> np.ndarray:
    """Unit vectors. The structure (topics, subspace) comes from `seed`; the points from `sample_seed`."""
    rng = np.random.default_rng(seed)
    pts = np.random.default_rng(seed + 1000 if sample_seed is None else sample_seed)
    if data == "random":
        x = pts.standard_normal((n, dim), dtype=np.float32)
    elif data == "clustered":
        centers = rng.standard_normal((1000, dim), dtype=np.float32)
        x = centers[pts.integers(0, len(centers), n)] + 0.75 * pts.standard_normal((n, dim), dtype=np.float32)
    elif data == "lowrank":
        # Sentence embeddings have a low intrinsic dimension: points in a 32-d subspace plus a little noise.
        basis = np.linalg.qr(rng.standard_normal((dim, 32)))[0].astype(np.float32)
        x = pts.standard_normal((n, 32), dtype=np.float32) @ basis.T
        x += 0.02 * pts.standard_normal((n, dim), dtype=np.float32)
    else:
        raise ValueError("data must be 'random', 'clustered' or 'lowrank'")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_queries(n_queries: int, dim: int, *, seed: int, data: str) -> np.ndarray:
    """Queries from the same distribution (same topics / subspace), not in the index."""
    return make_vectors(n_queries, dim, seed=seed, data=data, sample_seed=seed + 2000)


def exact_topk(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), 64):
        scores = q[start : start + 64] @ x.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[start : start + 64] = np.take_along_axis(part, order, axis=1)
    return out


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def _time_queries(fn: Any, q: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    times: list[float] = []
    found = np.full((len(q), k), -1, dtype=np.int64)
    for i, vec in enumerate(q):
        t0 = time.perf_counter()
        keys = fn(vec, k)
        times.append((time.perf_counter() - t0) * 1000)
        found[i, : len(keys)] = keys[:k]
    return times, found


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def run_one(lib: str, n: int, dim: int, n_queries: int, k: int, seed: int, data: str) -> dict[str, Any]:
    """Build, query, save and load one library's index. Runs in its own process."""
    threads = os.cpu_count() or 1
    x = make_vectors(n, dim, seed=seed, data=data)
    q = make_queries(n_queries, dim, seed=seed, data=data)
    truth = exact_topk(x, q, k)
    keys = np.arange(n, dtype=np.int64)
    gc.collect()
    rss0 = _rss()
    row: dict[str, Any] = {"library": lib, "n": n, "dim": dim, "data": data, "k": k}
    tmp = tempfile.mkdtemp(prefix="engramdb-ann-")
    path = os.path.join(tmp, "index.bin")
    try:
        if lib == "numpy":
            t0 = time.perf_counter()
            mat = np.ascontiguousarray(x.copy())
            row["build_s"] = time.perf_counter() - t0

            def search(v: np.ndarray, kk: int) -> np.ndarray:
                s = dot_rows(mat, v)
                part = np.argpartition(-s, kk - 1)[:kk]
                return part[np.argsort(-s[part])]

            row["mem_mb"] = (_rss() - rss0) / 2**20
            t0 = time.perf_counter()
            np.save(path + ".npy", mat)
            row["save_s"] = time.perf_counter() - t0
            row["file_mb"] = os.path.getsize(path + ".npy") / 2**20
            t0 = time.perf_counter()
            mat = np.load(path + ".npy", mmap_mode="r")
            mat = np.asarray(mat)
            row["load_s"] = time.perf_counter() - t0
            times, found = _time_queries(search, q, k)
            row["runs"] = [
                {"ef": None, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "recall": _recall(found, truth)}
            ]
            row["deletes"] = "yes (mask)"
        elif lib in ("usearch", "usearch-i8"):
            from ..index.ann import load_usearch_index

            Index = load_usearch_index()

            # usearch-i8 is the engine's configuration (index/ann.py): an 8-bit graph, ef_construction 64,
            # whose candidates (k + 30, at least 40) are rescored exactly from the float32 vectors.
            quantised = lib == "usearch-i8"
            dtype, ef_add = ("i8", 64) if quantised else ("f32", EF_CONSTRUCTION)

            def make() -> Any:
                return Index(ndim=dim, metric="ip", dtype=dtype, connectivity=M, expansion_add=ef_add)

            def rescored(v: np.ndarray, kk: int) -> np.ndarray:
                cand = idx.search(v, max(kk + 30, 40), threads=1).keys.astype(np.int64)
                s = dot_rows(x, v, cand)
                return cand[np.argsort(-s)[:kk]]

            idx = make()
            t0 = time.perf_counter()
            idx.add(keys.astype(np.uint64), x, threads=threads)
            row["build_s"] = time.perf_counter() - t0
            row["mem_mb"] = (_rss() - rss0) / 2**20
            t0 = time.perf_counter()
            idx.save(path)
            row["save_s"] = time.perf_counter() - t0
            row["file_mb"] = os.path.getsize(path) / 2**20
            del idx
            gc.collect()
            t0 = time.perf_counter()
            idx = make()
            idx.load(path)
            row["load_s"] = time.perf_counter() - t0
            row["runs"] = []
            for ef in EF_SEARCH:
                idx.expansion_search = ef
                plain = lambda v, kk: idx.search(v, kk, threads=1).keys  # noqa: E731
                times, found = _time_queries(rescored if quantised else plain, q, k)
                row["runs"].append(
                    {"ef": ef, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "recall": _recall(found, truth)}
                )
            row["deletes"] = "yes (remove)"
            row["version"] = __import__("usearch").__version__ + (" i8+rescore" if quantised else "")
        elif lib == "hnswlib":
            import hnswlib

            idx = hnswlib.Index(space="ip", dim=dim)
            t0 = time.perf_counter()
            idx.init_index(max_elements=n, ef_construction=EF_CONSTRUCTION, M=M)
            idx.add_items(x, keys, num_threads=threads)
            row["build_s"] = time.perf_counter() - t0
            row["mem_mb"] = (_rss() - rss0) / 2**20
            t0 = time.perf_counter()
            idx.save_index(path)
            row["save_s"] = time.perf_counter() - t0
            row["file_mb"] = os.path.getsize(path) / 2**20
            del idx
            gc.collect()
            t0 = time.perf_counter()
            idx = hnswlib.Index(space="ip", dim=dim)
            idx.load_index(path, max_elements=n)
            row["load_s"] = time.perf_counter() - t0
            idx.set_num_threads(1)
            row["runs"] = []
            for ef in EF_SEARCH:
                idx.set_ef(max(ef, k))
                times, found = _time_queries(lambda v, kk: idx.knn_query(v, k=kk)[0][0], q, k)
                row["runs"].append(
                    {"ef": ef, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "recall": _recall(found, truth)}
                )
            row["deletes"] = "yes (mark_deleted)"
            row["version"] = getattr(hnswlib, "__version__", "")
        elif lib == "faiss":
            import faiss

            faiss.omp_set_num_threads(threads)
            idx = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = EF_CONSTRUCTION
            t0 = time.perf_counter()
            idx.add(x)
            row["build_s"] = time.perf_counter() - t0
            row["mem_mb"] = (_rss() - rss0) / 2**20
            t0 = time.perf_counter()
            faiss.write_index(idx, path)
            row["save_s"] = time.perf_counter() - t0
            row["file_mb"] = os.path.getsize(path) / 2**20
            del idx
            gc.collect()
            t0 = time.perf_counter()
            idx = faiss.read_index(path)
            row["load_s"] = time.perf_counter() - t0
            faiss.omp_set_num_threads(1)
            row["runs"] = []
            for ef in EF_SEARCH:
                idx.hnsw.efSearch = ef
                times, found = _time_queries(lambda v, kk: idx.search(v[None, :], kk)[1][0], q, k)
                row["runs"].append(
                    {"ef": ef, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "recall": _recall(found, truth)}
                )
            row["deletes"] = "no (HNSW cannot remove; rebuild)"
            row["version"] = faiss.__version__
        elif lib == "sqlite-vec":
            row.update(_sqlite_vec(x, q, truth, k, path))
        else:
            raise ValueError(f"unknown library {lib!r}")
    except ImportError as exc:
        row["error"] = f"not installed ({exc.name})"
    finally:
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)
    return row


def _sqlite_vec(x: np.ndarray, q: np.ndarray, truth: np.ndarray, k: int, path: str) -> dict[str, Any]:
    import sqlite3

    import sqlite_vec  # ImportError is reported as 'not installed'

    conn = sqlite3.connect(path)
    if not hasattr(conn, "enable_load_extension"):
        return {"error": "this Python's sqlite3 is built without extension loading; sqlite-vec cannot load"}
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    rss0 = _rss()
    t0 = time.perf_counter()
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{x.shape[1]}])")
    conn.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", ((i, x[i].tobytes()) for i in range(len(x))))
    conn.commit()
    out: dict[str, Any] = {"build_s": time.perf_counter() - t0, "mem_mb": (_rss() - rss0) / 2**20}
    out["file_mb"] = os.path.getsize(path) / 2**20
    out["save_s"] = 0.0
    out["load_s"] = 0.0

    def search(v: np.ndarray, kk: int) -> np.ndarray:
        rows = conn.execute(
            "SELECT rowid FROM v WHERE embedding MATCH ? ORDER BY distance LIMIT ?", (v.tobytes(), kk)
        ).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    times, found = _time_queries(search, q, k)
    out["runs"] = [{"ef": None, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "recall": _recall(found, truth)}]
    out["deletes"] = "yes (DELETE)"
    conn.close()
    return out


def exact_vs_n(dim: int, sizes: list[int], n_queries: int, k: int, seed: int) -> list[dict[str, float]]:
    """Latency of the engine's exact path (gather candidate rows, dot, top-k) by candidate count."""
    total = max(sizes)
    x = make_vectors(total, dim, seed=seed, data="random")
    q = make_queries(n_queries, dim, seed=seed, data="random")
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        pos = np.sort(rng.choice(total, size=n, replace=False))
        times = []
        for v in q:
            t0 = time.perf_counter()
            scores = dot_rows(x, v, pos)
            kk = min(k, n)
            part = np.argpartition(-scores, kk - 1)[:kk]
            part[np.argsort(-scores[part])]
            times.append((time.perf_counter() - t0) * 1000)
        out.append({"candidates": n, "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95)})
    return out


def run(
    *,
    n: int = 100_000,
    dim: int = 384,
    n_queries: int = 300,
    k: int = 10,
    seed: int = 7,
    data: str = "random",
    libraries: tuple[str, ...] = LIBRARIES,
    progress: Any = None,
) -> dict[str, Any]:
    rows = []
    ctx = get_context("spawn")
    for lib in libraries:
        if progress:
            progress(lib)
        gc.collect()
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            try:
                rows.append(pool.submit(run_one, lib, n, dim, n_queries, k, seed, data).result())
            except Exception as exc:  # noqa: BLE001 - a crashing library is a result, not a bench failure
                rows.append({"library": lib, "error": f"{type(exc).__name__}: {exc}"})
    sizes = sorted({s for s in (1_000, 5_000, 10_000, 20_000, 50_000, 100_000) if s <= n} | {n})
    if progress:
        progress("exact vs candidates")
    return {
        "config": {
            "n": n,
            "dim": dim,
            "queries": n_queries,
            "k": k,
            "seed": seed,
            "data": data,
            "M": M,
            "ef_construction": EF_CONSTRUCTION,
            "threads_build": os.cpu_count(),
            "threads_query": 1,
            "loadavg_1m": os.getloadavg()[0],  # the machine is shared: how busy it was when measured
        },
        "libraries": rows,
        "exact_by_candidates": exact_vs_n(dim, sizes, min(n_queries, 100), k, seed),
    }


def markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"ANN libraries, n={c['n']:,} x {c['dim']} ({c['data']} unit vectors), {c['queries']} single queries, "
        f"recall@{c['k']} vs exact; M={c['M']}, ef_construction={c['ef_construction']}, "
        f"build threads={c['threads_build']}, query threads=1; load average {c.get('loadavg_1m', 0):.1f} at the end",
        "",
        "| library | build s | mem MB | file MB | save s | load s | ef | p50 ms | p95 ms | recall@10 | deletes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["libraries"]:
        if "error" in r:
            lines.append(f"| {r['library']} | {r['error']} |||||||||")
            continue
        for i, run in enumerate(r["runs"]):
            head = (
                f"| {r['library']} {r.get('version', '')} | {r['build_s']:.1f} | {r['mem_mb']:.0f} | "
                f"{r['file_mb']:.0f} | {r['save_s']:.2f} | {r['load_s']:.2f} "
                if i == 0
                else "| | | | | | "
            )
            ef = "exact" if run["ef"] is None else str(run["ef"])
            lines.append(
                head
                + f"| {ef} | {run['p50_ms']:.3f} | {run['p95_ms']:.3f} | {run['recall']:.3f} | "
                + (r["deletes"] if i == 0 else "")
                + " |"
            )
    lines += [
        "",
        "Exact search (engine path: gather candidate rows, dot, top-k) by candidate count:",
        "",
        "| candidates | p50 ms | p95 ms |",
        "|---:|---:|---:|",
    ]
    for e in report["exact_by_candidates"]:
        lines.append(f"| {e['candidates']:,} | {e['p50_ms']:.3f} | {e['p95_ms']:.3f} |")
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    tag = f"ann_{report['config']['data']}_{report['config']['n']}"
    jpath = os.path.join(out_dir, tag + ".json")
    mpath = os.path.join(out_dir, tag + ".md")
    with open(jpath, "w") as fh:
        json.dump(report, fh, indent=2)
    with open(mpath, "w") as fh:
        fh.write(markdown(report))
    return jpath, mpath
