"""Server time of every UI page on a large store: `python -m engramdb.ui.pagebench --n 100000`.

Builds (once) a synthetic store like `engramdb bench scale` does (the hashing embedder, sessions of 20 turns,
~200 memories a user) plus the UI's sample data (a person who moves city, an agent's runs and tips) and a few
thousand tips learned from synthetic agent runs, then requests each page in-process through the ASGI app and
reports p50/p95/max of the request time, which is everything the server does for a page (routing, the Memory
calls, rendering), without the network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any


def build(db: str, n: int, seed: int = 7, tips: int = 3000) -> None:
    from ..api.memory import Memory
    from ..bench.scale import sessions
    from ..embed import HashingEmbedder
    from .sample import seed as sample_seed

    t0 = time.perf_counter()
    with Memory(db, embedder=HashingEmbedder(384)) as mem:
        plan = sessions(n, seed)
        for i, s in enumerate(plan):
            mem.add(s["turns"], user_id=s["user_id"], session_id=s["session_id"])
            if i % 500 == 0:
                sys.stderr.write(f"\r{i * 20:,}/{n:,} turns")
        sample_seed(mem)
        _add_tips(mem, tips)
        mem.vectors.save()
    sys.stderr.write(f"\rbuilt {n:,} turns in {time.perf_counter() - t0:.0f} s\n")


def _add_tips(mem: Any, tips: int) -> None:
    from .sample import many_tips

    def progress(done: int, agents: int) -> None:
        sys.stderr.write(f"\rtips: {done}/{agents} agents")

    t0 = time.perf_counter()
    many_tips(mem, tips - mem.count_tips(status=None), progress=progress)
    sys.stderr.write(f"\r{mem.count_tips(status=None):,} tips in {time.perf_counter() - t0:.0f} s\n")


def _top_up_tips(db: str, tips: int) -> None:
    """A store built before the tips were part of the bench gets them (written into that store)."""
    from ..api.memory import Memory
    from ..embed import HashingEmbedder

    with Memory(db, embedder=HashingEmbedder(384)) as mem:
        if mem.count_tips(status=None) < tips // 2:
            _add_tips(mem, tips)
            mem.vectors.save()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def run(db: str, reps: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from ..api.memory import Memory
    from ..bench.scale import synthetic_texts
    from ..embed import HashingEmbedder
    from . import local_app

    with Memory(db, embedder=HashingEmbedder(384)) as mem:
        total = mem.stats()["memories"]
        alice_move = mem.list(user_id="alice", kinds=["episode"], limit=1).items[0].id
        some = mem.list(limit=1, offset=total // 2, order="recorded_at").items[0]
        tip = mem.list_tips(status=None, order="-utility", limit=1)[0].id
        n_tips = mem.count_tips(status=None)
        tips_mid = (n_tips // 2) // 50 * 50
        tip_agent = "ops-bot-0" if mem.count_tips(agent_id="ops-bot-0", status=None) else "shop"
        _, users = mem.scopes("user_id", limit=50)
        queries = synthetic_texts((reps + 2) * 6, 99)
        rng = random.Random(3)
        q = iter(queries)
        pages: list[tuple[str, Any]] = [
            ("Overview", lambda: "/ui/overview"),
            ("Memories, newest first (page 1)", lambda: "/ui/memories"),
            ("Memories, page 1,000 (offset 50,000)", lambda: "/ui/memories?offset=50000"),
            ("Memories of one user", lambda: f"/ui/memories?user_id={rng.choice(users)[0]}"),
            ("Memories, kind + time range", lambda: "/ui/memories?kind=episode&since=2023-06-01&until=2023-09-30"),
            ("Memories, hybrid search (all users)", lambda: "/ui/memories?q=" + next(q)[:80]),
            ("Memories, hybrid search (one user)", lambda: f"/ui/memories?user_id={rng.choice(users)[0]}&q="
             + next(q)[:80]),
            ("Recall trace (one user)", lambda: f"/ui/trace?user_id={rng.choice(users)[0]}&q=" + next(q)[:80]),
            ("Recall trace (all users)", lambda: "/ui/trace?q=" + next(q)[:80]),
            ("Facts timeline (alice)", lambda: "/ui/facts?user_id=alice"),
            ("Memory detail", lambda: f"/ui/m/{some.id}"),
            ("Memory detail (a fact-bearing turn)", lambda: f"/ui/m/{alice_move}"),
            (f"Procedures ({n_tips:,} tips, page 1)", lambda: "/ui/procedures"),
            (f"Procedures, page {tips_mid // 50 + 1} (offset {tips_mid:,})",
             lambda: f"/ui/procedures?offset={tips_mid}"),
            ("Procedures, one agent, active recovery tips", lambda: f"/ui/procedures?agent_id={tip_agent}"
             "&status=active&type=recovery"),
            ("Tip and its steps", lambda: f"/ui/procedures/{tip}"),
            ("Purge: counts for one user", lambda: f"/ui/purge?user_id={rng.choice(users)[0]}"),
            ("Forget: confirmation", lambda: f"/ui/m/{some.id}/forget"),
        ]
        out = []
        with TestClient(local_app(mem), base_url="http://127.0.0.1") as c:
            c.get("/ui/memories?q=warm+up")  # model, FTS pages and the vector copy load outside the timings
            for name, url in pages:
                times = []
                for i in range(reps + 2):
                    u = url()
                    t0 = time.perf_counter()
                    r = c.get(u)
                    ms = (time.perf_counter() - t0) * 1000
                    if r.status_code != 200:
                        raise SystemExit(f"{u}: {r.status_code} {r.text[:300]}")
                    if i >= 2:
                        times.append(ms)
                out.append({"page": name, "n": len(times), "p50_ms": _pct(times, 50), "p95_ms": _pct(times, 95),
                            "max_ms": max(times)})
                sys.stderr.write(f"{name}: p50 {out[-1]['p50_ms']:.1f} p95 {out[-1]['p95_ms']:.1f}\n")
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="synthetic turns")
    ap.add_argument("--db", default=None, help="store path (built when missing)")
    ap.add_argument("--reps", type=int, default=20, help="timed requests per page")
    ap.add_argument("--tips", type=int, default=3000, help="tips learned from synthetic agent runs")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    db = args.db or f"ui_bench_{args.n}.db"
    if not os.path.exists(db):
        build(db, args.n, tips=args.tips)
    else:
        _top_up_tips(db, args.tips)
    rows = run(db, args.reps)
    load = os.getloadavg()[0]
    print(f"{args.n:,} synthetic turns + sample data, {args.reps} timed requests per page, "
          f"{os.cpu_count()} CPUs, 1-min load average {load:.1f}\n")
    print("| page | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['page']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.1f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": args.n, "reps": args.reps, "load": load, "pages": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
