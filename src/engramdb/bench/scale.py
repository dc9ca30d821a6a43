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

import gc
import json
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
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


def run_size(
    n: int,
    *,
    workdir: str,
    embedder_name: str,
    n_queries: int,
    seed: int,
    progress: Any = None,
) -> dict[str, Any]:
    from ..api.memory import Memory
    from ..embed import HashingEmbedder, make_embedder
    from ..store.base import Filters

    embedder = HashingEmbedder(384) if embedder_name == "hashing-384" else make_embedder(embedder_name)
    db = os.path.join(workdir, f"scale_{n}.db")
    for p in (db, db + "-wal", db + "-shm", db + ".usearch", db + ".usearch.json"):
        if os.path.exists(p):
            os.remove(p)
    gc.collect()
    rss0 = _rss_mb()
    row: dict[str, Any] = {"n": n, "embedder": embedder.name}
    plan = sessions(n, seed)
    with Memory(db, embedder=embedder) as mem:
        ingest_s, row["embed_calls"] = _timed_ingest(mem, plan, "ingest", n, progress)
        row["ingest_s"] = ingest_s
        row["ingest_turns_per_s"] = n / ingest_s
        row["rss_after_ingest_mb"] = _rss_mb() - rss0

        vec = mem.vectors
        t0 = time.perf_counter()
        vec.refresh()
        row["vector_load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if n > vec.exact_max:
            vec.build_ann()
        row["ann_build_s"] = time.perf_counter() - t0 if n > vec.exact_max else 0.0
        row["exact_max"] = vec.exact_max

        rng = random.Random(seed + 7)
        qtexts = synthetic_texts(n_queries, seed + 99)
        users = sorted({s["user_id"] for s in plan})
        scoped_users = [rng.choice(users) for _ in range(n_queries)]
        qvecs = embedder.embed(qtexts)
        mem.search(qtexts[0], limit=10)  # warm caches (FTS pages, model) outside the timings
        if progress:
            progress("search", 0, 1)

        default_max = vec.exact_max
        results: dict[str, Any] = {}
        for label, exact in (("default", False), ("exact", True)):
            vec.exact_max = 10**12 if exact else default_max
            t_scoped, _ = _lat(lambda i: mem.search(qtexts[i], user_id=scoped_users[i], limit=10), range(n_queries))
            t_all, _ = _lat(lambda i: mem.search(qtexts[i], limit=10), range(n_queries))
            results[label] = {"scoped": _stats(t_scoped), "unscoped": _stats(t_all)}
            t_dense, hits = _lat(lambda i: vec.search(qvecs[i], Filters(), 10), range(n_queries))
            results[label]["dense_unscoped"] = _stats(t_dense)
            results[label]["dense_path"] = vec.last_path
            results[label]["_hits"] = [[k for k, _ in h] for h in hits]
        vec.exact_max = default_max
        truth = results["exact"].pop("_hits")
        got = results["default"].pop("_hits")
        row["dense_recall_at_10"] = float(
            np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(got, truth, strict=True)])
        )
        row["search"] = results
        row["rss_mb"] = _rss_mb() - rss0
        row["rss_total_mb"] = _rss_mb()
        mem.vectors.save()
        st = mem.stats()
        row["memories"] = st["memories"]
        row["users"] = st["users"]
    row["bytes_on_disk"] = _dir_bytes(db)
    row["bytes_per_memory"] = row["bytes_on_disk"] / n
    return row



BUILT_KEY = "bench_scale_built"  # meta key set once a cached synthetic store holds its whole plan


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
    with Memory(db, embedder=embedder) as mem:
        ingest_s, calls = _timed_ingest(mem, plan, "MiniLM ingest", n_turns, progress)
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
    }


def run(
    sizes: list[int],
    *,
    minilm_turns: int = 2_000,
    n_queries: int = 200,
    seed: int = 11,
    workdir: str | None = None,
    keep: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="engramdb-scale-")
    os.makedirs(workdir, exist_ok=True)
    rows = []
    minilm = None
    try:
        for n in sizes:
            rows.append(
                run_size(
                    n, workdir=workdir, embedder_name="hashing-384", n_queries=n_queries, seed=seed, progress=progress
                )
            )
        if minilm_turns:
            minilm = run_minilm(
                minilm_turns, workdir=workdir, n_queries=min(n_queries, 100), seed=seed, progress=progress
            )
    finally:
        if own and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "config": {
            "sizes": sizes,
            "minilm_turns": minilm_turns,
            "queries": n_queries,
            "seed": seed,
            "session_turns": SESSION_TURNS,
            "memories_per_user": MEMORIES_PER_USER,
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],  # the machine may be shared: how busy it was when measured
        },
        "rows": rows,
        "minilm": minilm,
    }


def markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    lines = [
        f"Scale, {c['queries']} queries per size, limit 10; ~{c['memories_per_user']} memories per user, "
        f"sessions of {c['session_turns']} turns added one `Memory.add` call each; {c['cpus']} CPUs, "
        f"load average {c.get('loadavg_1m', 0):.1f} at the end.",
        "Latencies are `Memory.search` end to end (query embedding, BM25, dense, fusion, fetch, access count), "
        "default path vs exact brute force forced, same run; dense = the vector step alone, unscoped.",
        "",
        "| memories | embedder | add turns/s | scoped p50 / p95 ms | exact scoped p50 / p95 | unscoped p50 / p95 ms "
        "| exact unscoped p50 / p95 | dense path | dense p50 ms (exact) | recall@10 | RSS MB | bytes/memory |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        d, e = r["search"]["default"], r["search"]["exact"]
        lines.append(
            f"| {r['n']:,} | {r['embedder']} | {r['ingest_turns_per_s']:,.0f} "
            f"| {d['scoped']['p50_ms']:.1f} / {d['scoped']['p95_ms']:.1f} "
            f"| {e['scoped']['p50_ms']:.1f} / {e['scoped']['p95_ms']:.1f} "
            f"| {d['unscoped']['p50_ms']:.1f} / {d['unscoped']['p95_ms']:.1f} "
            f"| {e['unscoped']['p50_ms']:.1f} / {e['unscoped']['p95_ms']:.1f} "
            f"| {d['dense_path']} | {d['dense_unscoped']['p50_ms']:.2f} ({e['dense_unscoped']['p50_ms']:.2f}) "
            f"| {r['dense_recall_at_10']:.3f} | {r['rss_total_mb']:.0f} | {r['bytes_per_memory']:,.0f} |"
        )
    lines.append("")
    for r in report["rows"]:
        lines.append(
            f"- {r['n']:,}: ingest {r['ingest_s']:.1f}s in {r['embed_calls']} embedding calls; "
            f"vector load {r['vector_load_s']:.2f}s; ANN build {r['ann_build_s']:.1f}s; "
            f"p99 unscoped {r['search']['default']['unscoped']['p99_ms']:.1f} ms "
            f"(exact {r['search']['exact']['unscoped']['p99_ms']:.1f})"
        )
    mm = report.get("minilm")
    if mm:
        lines += [
            "",
            f"MiniLM ({mm['embedder']}) alone: add {mm['ingest_turns_per_s']:,.0f} turns/s over {mm['n']:,} turns "
            f"({mm['embed_calls']} embedding calls); one query embedding p50 {mm['query_embed']['p50_ms']:.1f} ms, "
            f"p95 {mm['query_embed']['p95_ms']:.1f} ms (add it to the search latencies when MiniLM is the model).",
        ]
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    tag = "scale_" + "_".join(str(n) for n in report["config"]["sizes"])
    jpath, mpath = os.path.join(out_dir, tag + ".json"), os.path.join(out_dir, tag + ".md")
    with open(jpath, "w") as fh:
        json.dump(report, fh, indent=2)
    with open(mpath, "w") as fh:
        fh.write(markdown(report))
    return jpath, mpath
