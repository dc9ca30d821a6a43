"""Fault injection: kill -9 writers at random moments, then check that nothing committed was lost or torn.

`engramdb bench faults --kills 200` (or `python -m engramdb.bench.faults --kills 200`). Each round starts a worker
process that loops over one operation (add, batch add, consolidate, reindex, import) on one SQLite store, kills it
with SIGKILL after a random delay, and checks the store:

- `PRAGMA integrity_check` and the FTS5 index's own integrity check pass, and it indexes every memory;
- every memory has exactly one vector, all of the store's dimension (no mixed vector spaces, no orphans);
- every id the worker reported as written (after `add` returned) is there;
- batches are all or nothing (8 turns per batch session: 0 or 8 present); an import has whole chunks only, and
  importing the same file again with `skip_bad` completes it;
- the store opens and answers a search with its recorded model.

`concurrency()` is the second check: 4 writer processes and 2 searchers on one file; no write lost or duplicated,
no search error. The hashing embedder stands in for the model: what is measured is the storage engine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

OPS = ("add", "batch", "consolidate", "reindex", "import")
BATCH = 8
IMPORT_N = 1200  # memories per import file: three transactions of IMPORT_CHUNK
DIMS = (64, 96)  # reindex alternates between two models (two hashing dimensions)


# -- worker (child process) ----------------------------------------------------------------------------------
def _stored_dim(path: str) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'embed_dim'").fetchone()
        return int(row[0]) if row else DIMS[0]
    except sqlite3.OperationalError:
        return DIMS[0]
    finally:
        conn.close()


def _log(fh: Any, **entry: Any) -> None:
    fh.write(json.dumps(entry) + "\n")
    fh.flush()  # reported = written to the log after the call returned; the kill may come at any point


def worker(op: str, path: str, log_path: str, seed: int) -> None:
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    rng = random.Random(seed)
    dim = _stored_dim(path)
    other = DIMS[1] if dim == DIMS[0] else DIMS[0]
    mem = (
        Memory(path, embedder=HashingEmbedder(other), allow_model_change=True)
        if op == "reindex"
        else Memory(path, embedder=HashingEmbedder(dim))
    )
    sys.stdout.write("ready\n")  # the parent times its kill from here, not from the (slow, variable) start-up
    sys.stdout.flush()
    with open(log_path, "a") as fh:
        i = 0
        while True:
            i += 1
            tag = f"{seed}-{i}"
            if op == "add":
                recs = mem.add(f"note {tag} about topic {rng.randrange(20)}", user_id="w", session_id=f"a-{tag}")
                _log(fh, op=op, ids=[r.id for r in recs])
            elif op == "batch":
                turns = [
                    {"speaker": "A", "text": f"batch {tag} turn {t} topic {rng.randrange(20)}"} for t in range(BATCH)
                ]
                recs = mem.add(turns, user_id="w", session_id=f"b-{tag}")
                _log(fh, op=op, ids=[r.id for r in recs], session=f"b-{tag}")
            elif op == "consolidate":
                talk = [f"session {tag} talk about hiking trip {t % 3}" for t in range(4)]
                recs = mem.add(talk, user_id="c", session_id=f"c-{tag}")
                recs += mem.add(talk[:2], user_id="c", session_id=f"c-{tag}")  # duplicates to merge
                _log(fh, op=op, ids=[r.id for r in recs])
                mem.consolidate()
            elif op == "reindex":
                mem.reindex(batch=64)
                _log(fh, op=op, model=mem.embedder.name)
                mem.close()
                other = DIMS[1] if other == DIMS[0] else DIMS[0]
                mem = Memory(path, embedder=HashingEmbedder(other), allow_model_change=True)
            elif op == "import":
                user = f"imp-{tag}"
                src = f"{log_path}.{tag}.jsonl"
                with open(src, "w") as out:
                    out.write(json.dumps({"format": "engramdb-jsonl", "version": 1}) + "\n")
                    for n in range(IMPORT_N):
                        rec = {"id": uuid.uuid4().hex, "user_id": user, "text": f"imported {tag} line {n}"}
                        out.write(json.dumps({"record": rec}) + "\n")
                _log(fh, op="import-start", user=user, file=src)
                rep = mem.import_(src)
                _log(fh, op=op, user=user, imported=rep.imported)


# -- checks (parent) -----------------------------------------------------------------------------------------
def check(path: str, log_path: str) -> dict[str, Any]:
    """Verify the store after a kill; returns counts of what was wrong (all zero when sound)."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    out: Counter[str] = Counter()
    conn = sqlite3.connect(path, timeout=30)
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            out["integrity"] += 1
        try:
            conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError:
            out["fts"] += 1
        n_mem = conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
        n_fts = conn.execute("SELECT COUNT(*) FROM memories_fts").fetchone()[0]
        out["fts_drift"] += abs(n_mem - n_fts)
        dim = int(conn.execute("SELECT value FROM meta WHERE key = 'embed_dim'").fetchone()[0])
        out["missing_vectors"] += conn.execute(
            "SELECT COUNT(*) FROM memories WHERE key NOT IN (SELECT key FROM vectors)"
        ).fetchone()[0]
        out["orphan_vectors"] += conn.execute(
            "SELECT COUNT(*) FROM vectors WHERE key NOT IN (SELECT key FROM memories)"
        ).fetchone()[0]
        out["mixed_vectors"] += conn.execute(
            "SELECT COUNT(*) FROM vectors WHERE length(vector) != ?", (dim * 4,)
        ).fetchone()[0]
        ids = {r[0] for r in conn.execute("SELECT id FROM memories")}
        sessions = Counter(
            r[0]
            for r in conn.execute("SELECT session_id FROM memories WHERE session_id LIKE 'b-%' AND kind = 'episode'")
        )
        users = Counter(r[0] for r in conn.execute("SELECT user_id FROM memories WHERE user_id LIKE 'imp-%'"))
    finally:
        conn.close()
    reported = 0
    imports: dict[str, str] = {}
    for line in Path(log_path).read_text().splitlines():
        entry = json.loads(line)
        for mid in entry.get("ids", []):
            reported += 1
            out["lost"] += mid not in ids
        if entry["op"] == "import-start":
            imports[entry["user"]] = entry["file"]
        elif entry["op"] == "import":
            out["lost"] += users.get(entry["user"], 0) != entry["imported"]
    out["partial_batches"] += sum(1 for n in sessions.values() if n != BATCH)
    out["partial_chunks"] += sum(1 for u, n in users.items() if n % 500 and n != IMPORT_N)
    with Memory(path, embedder=HashingEmbedder(dim)) as mem:
        mem.search("topic", user_id="w")  # opens with its recorded model, searches
        for user, src in imports.items():  # an interrupted import is finished by importing again with skip_bad
            if users.get(user, 0) != IMPORT_N:
                mem.import_(src, skip_bad=True)
                out["import_not_completed"] += mem.list(user_id=user).total != IMPORT_N
    out["reported_ids"] = reported
    return dict(out)


# -- driver --------------------------------------------------------------------------------------------------
def run(kills: int, *, workdir: str | None = None, seed: int = 0, ops: tuple[str, ...] = OPS,
        max_delay: float = 3.0, progress: bool = False) -> dict[str, Any]:  # fmt: skip
    """Kill `kills` workers (ops in turn) and check the store after each; returns the figures."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    rng = random.Random(seed)
    base = Path(workdir or tempfile.mkdtemp(prefix="engramdb-faults-"))
    base.mkdir(parents=True, exist_ok=True)
    path = str(base / "faults.db")
    log_path = str(base / "reported.jsonl")
    with Memory(path, embedder=HashingEmbedder(DIMS[0])) as mem:
        mem.add("the store exists", user_id="w")
    Path(log_path).touch()
    problems: Counter[str] = Counter()
    by_op: Counter[str] = Counter()
    t0 = time.perf_counter()
    env = {**os.environ, "ENGRAMDB_EXTRACTION": "off", "ENGRAMDB_ONNX": "0"}
    for k in range(kills):
        op = ops[k % len(ops)]
        cmd = [sys.executable, "-m", "engramdb.bench.faults", "--worker", op, path, log_path, str(seed * 100_000 + k)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None  # stdout=PIPE
        proc.stdout.readline()  # the worker has opened the store
        time.sleep(rng.uniform(0.05, max_delay))  # a random point of its loop
        if proc.poll() is not None:
            raise RuntimeError(f"{op} worker exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        by_op[op] += 1
        got = check(path, log_path)
        for key, value in got.items():
            if key != "reported_ids":
                problems[key] += value
        if progress:
            print(f"kill {k + 1}/{kills} ({op}): {sum(problems.values())} problems so far", file=sys.stderr)
    last = check(path, log_path)
    return {
        "kills": kills,
        "kills_by_op": dict(by_op),
        "reported_ids": last["reported_ids"],
        "problems": {k: problems.get(k, 0) for k in (
            "lost", "partial_batches", "partial_chunks", "import_not_completed", "integrity", "fts", "fts_drift",
            "missing_vectors", "orphan_vectors", "mixed_vectors")},
        "seconds": round(time.perf_counter() - t0, 1),
        "store": path,
    }  # fmt: skip


def _conc_writer(path: str, name: str, n: int, out_path: str) -> None:
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    with Memory(path, embedder=HashingEmbedder(DIMS[0])) as mem, open(out_path, "w") as fh:
        for i in range(n):
            rec = mem.add(f"{name} write {i}", user_id=name)[0]
            fh.write(rec.id + "\n")


def _conc_searcher(path: str, stop_path: str, out_path: str) -> None:
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    n = errors = 0
    worst = 0.0
    with Memory(path, embedder=HashingEmbedder(DIMS[0])) as mem:
        while not os.path.exists(stop_path):
            t = time.perf_counter()
            try:
                mem.search("write", limit=5)
            except Exception:  # noqa: BLE001 - counted: the check is that there are none
                errors += 1
            worst = max(worst, time.perf_counter() - t)
            n += 1
    Path(out_path).write_text(json.dumps({"searches": n, "errors": errors, "worst_s": worst}))


def concurrency(writers: int = 4, searchers: int = 2, writes: int = 1200, workdir: str | None = None) -> dict[str, Any]:
    """`writers` processes each add `writes` memories while `searchers` search; then count."""
    base = Path(workdir or tempfile.mkdtemp(prefix="engramdb-conc-"))
    base.mkdir(parents=True, exist_ok=True)
    path = str(base / "conc.db")
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    with Memory(path, embedder=HashingEmbedder(DIMS[0])) as mem:
        mem.add("seed", user_id="seed")
    env = {**os.environ, "ENGRAMDB_EXTRACTION": "off", "ENGRAMDB_ONNX": "0"}
    stop = str(base / "stop")
    me = [sys.executable, "-m", "engramdb.bench.faults"]
    search_procs = [
        subprocess.Popen([*me, "--searcher", path, stop, str(base / f"s{i}.json")], env=env) for i in range(searchers)
    ]
    t0 = time.perf_counter()
    write_procs = [
        subprocess.Popen([*me, "--writer", path, f"w{i}", str(writes), str(base / f"w{i}.ids")], env=env)
        for i in range(writers)
    ]
    codes = [p.wait() for p in write_procs]
    Path(stop).touch()
    for p in search_procs:
        p.wait()
    seconds = time.perf_counter() - t0
    reported = [line for i in range(writers) for line in (base / f"w{i}.ids").read_text().split()]
    conn = sqlite3.connect(path)
    rows = [r[0] for r in conn.execute("SELECT id FROM memories WHERE user_id LIKE 'w%'")]
    texts = [r[0] for r in conn.execute("SELECT text FROM memories WHERE user_id LIKE 'w%'")]
    conn.close()
    stats = [json.loads((base / f"s{i}.json").read_text()) for i in range(searchers)]
    return {
        "writers": writers,
        "searchers": searchers,
        "writes": writers * writes,
        "writer_exit_codes": codes,
        "lost": len(set(reported) - set(rows)),
        "duplicated": len(texts) - len(set(texts)),
        "stored": len(rows),
        "searches": sum(s["searches"] for s in stats),
        "search_errors": sum(s["errors"] for s in stats),
        "worst_search_s": round(max(s["worst_s"] for s in stats), 3),
        "seconds": round(seconds, 1),
    }


def _reads_client(path: str, stop_path: str, out_path: str, dim: int) -> None:
    """Child: search and add in turn (old model) until told to stop; record each call's latency and outcome."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder
    from ..errors import ModelMismatchError

    searches: list[float] = []
    writes: list[float] = []
    mismatch = errors = 0
    with Memory(path, embedder=HashingEmbedder(dim)) as mem:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        i = 0
        while not os.path.exists(stop_path):
            i += 1
            for kind, call in (("search", lambda: mem.search("topic 3", limit=10)),
                               ("write", lambda i=i: mem.add(f"written during the reindex {i}", user_id="live"))):
                t = time.perf_counter()
                try:
                    call()
                except ModelMismatchError:
                    mismatch += 1  # after the swap: the old model is refused, as it should be
                except Exception:  # noqa: BLE001 - counted: the check is that there are none
                    errors += 1
                (searches if kind == "search" else writes).append(time.perf_counter() - t)
            time.sleep(0.05)
    Path(out_path).write_text(json.dumps({"searches": searches, "writes": writes, "mismatch": mismatch,
                                          "errors": errors}))  # fmt: skip


def reads_during_reindex(turns: int = 12_000, model: str | None = None, workdir: str | None = None) -> dict[str, Any]:
    """A store of `turns` memories (hashing embedder) re-indexed to the real model while another process searches
    and adds with the old one: the longest search and write waits, and what the old model gets after the swap."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder, make_embedder

    base = Path(workdir or tempfile.mkdtemp(prefix="engramdb-reindex-"))
    base.mkdir(parents=True, exist_ok=True)
    path = str(base / "reindex.db")
    with Memory(path, embedder=HashingEmbedder(384)) as mem:
        for start in range(0, turns, 1000):
            mem.add([f"turn {i} about topic {i % 50} and more words" for i in range(start, min(turns, start + 1000))],
                    user_id="u", session_id=f"s{start}")  # fmt: skip
    env = {**os.environ, "ENGRAMDB_EXTRACTION": "off"}
    stop, out = str(base / "stop"), str(base / "client.json")
    client = subprocess.Popen([sys.executable, "-m", "engramdb.bench.faults", "--reads-client", path, stop, out, "384"],
                              env=env, stdout=subprocess.PIPE)  # fmt: skip
    client.stdout.readline()  # type: ignore[union-attr]
    emb = make_embedder(model)
    t0 = time.perf_counter()
    with Memory(path, embedder=emb, allow_model_change=True) as mem:
        done = mem.reindex()
    seconds = time.perf_counter() - t0
    time.sleep(1.0)  # a few calls after the swap
    Path(stop).touch()
    client.wait()
    got = json.loads(Path(out).read_text())
    return {
        "turns": turns,
        "reindexed": done,
        "reindex_s": round(seconds, 1),
        "model": emb.name,
        "searches": len(got["searches"]),
        "longest_search_s": round(max(got["searches"]), 3),
        "p50_search_s": round(sorted(got["searches"])[len(got["searches"]) // 2], 4),
        "writes": len(got["writes"]),
        "longest_write_s": round(max(got["writes"]), 3),
        "refused_after_swap": got["mismatch"],
        "errors": got["errors"],
    }


def sync_cost(n: int = 300, workdir: str | None = None) -> dict[str, Any]:
    """Single-memory adds per synchronous level (hashing embedder: the commit is what is timed)."""
    from ..api.memory import Memory
    from ..config import MemoryConfig
    from ..embed import HashingEmbedder

    base = Path(workdir or tempfile.mkdtemp(prefix="engramdb-sync-"))
    base.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"adds": n}
    for level in ("NORMAL", "FULL", "EXTRA"):
        cfg = MemoryConfig(sqlite_synchronous=level, extraction="off")
        with Memory(base / f"{level}.db", embedder=HashingEmbedder(384), config=cfg) as mem:
            mem.add("warm up", user_id="u")
            times = []
            for i in range(n):
                t = time.perf_counter()
                mem.add(f"memory number {i} for the durability test", user_id="u")
                times.append(time.perf_counter() - t)
        times.sort()
        out[level] = {"p50_ms": round(1000 * times[n // 2], 2), "p95_ms": round(1000 * times[int(n * 0.95)], 2),
                      "adds_per_s": round(n / sum(times), 1)}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m engramdb.bench.faults")
    p.add_argument("--worker", nargs=4, metavar=("OP", "DB", "LOG", "SEED"))
    p.add_argument("--writer", nargs=4, metavar=("DB", "NAME", "N", "OUT"))
    p.add_argument("--searcher", nargs=3, metavar=("DB", "STOP", "OUT"))
    p.add_argument("--kills", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None)
    p.add_argument("--concurrency", action="store_true", help="also run the 4-writer + 2-searcher check")
    p.add_argument("--reads-client", nargs=4, metavar=("DB", "STOP", "OUT", "DIM"))
    p.add_argument("--reindex-reads", type=int, metavar="TURNS", help="search waits during a reindex of TURNS")
    p.add_argument("--sync-cost", type=int, metavar="N", help="time N adds per PRAGMA synchronous level")
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], a.worker[1], a.worker[2], int(a.worker[3]))
    elif a.writer:
        _conc_writer(a.writer[0], a.writer[1], int(a.writer[2]), a.writer[3])
    elif a.searcher:
        _conc_searcher(*a.searcher)
    elif a.reads_client:
        _reads_client(a.reads_client[0], a.reads_client[1], a.reads_client[2], int(a.reads_client[3]))
    elif a.reindex_reads:
        print(json.dumps(reads_during_reindex(a.reindex_reads, workdir=a.dir), indent=2))
    elif a.sync_cost:
        print(json.dumps(sync_cost(a.sync_cost, workdir=a.dir), indent=2))
    else:
        report = {"faults": run(a.kills, workdir=a.dir, seed=a.seed, progress=True)}
        if a.concurrency:
            report["concurrency"] = concurrency()
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
