"""Concurrency and durability: four server workers (and four plain processes) writing one SQLite file at
once lose and duplicate nothing; a client that disconnects mid-request leaves nothing half-written."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
from fastapi.testclient import TestClient
from server_helpers import free_port, make_env, serve_in_thread

from engramdb.server.keys import KeyStore

N_CLIENTS, PER_CLIENT = 4, 15


def _episodes(client, headers) -> list[str]:
    texts: list[str] = []
    offset = 0
    while True:
        page = client.get(
            "/v1/memories",
            params={"kind": "episode", "limit": 1000, "offset": offset, "order": "recorded_at"},
            headers=headers,
        ).json()
        texts += [m["text"] for m in page["items"]]
        if page["next_offset"] is None:
            return texts
        offset = page["next_offset"]


def test_four_server_workers_write_one_sqlite_file_without_loss(tmp_path):
    data_dir = tmp_path / "srv"
    key = KeyStore(data_dir / "keys.db").create("acme", ["read", "write"]).key
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engramdb.cli.main",
            "serve",
            "--workers",
            "4",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--embedder",
            "hashing-64",
            "--rate-limit",
            "0",
            "--no-mcp",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "wb"),
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.2)
        # four worker processes under the supervisor
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 4, children
        errors: list[str] = []

        def writer(w: int) -> None:
            for i in range(PER_CLIENT):
                # a fresh connection per request, so requests spread over the workers
                r = httpx.post(
                    base + "/v1/memories",
                    headers=h,
                    timeout=60,
                    json={
                        "messages": [f"client {w} write {i} part a", f"client {w} write {i} part b"],
                        "user_id": f"u{w}",
                        "kind": "episode",
                    },
                )
                if r.status_code != 201:
                    errors.append(r.text)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(N_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        with httpx.Client(base_url=base, timeout=60) as c:
            texts = _episodes(c, h)
            expected = {
                f"client {w} write {i} part {p}" for w in range(N_CLIENTS) for i in range(PER_CLIENT) for p in "ab"
            }
            dupes = [t for t, n in Counter(texts).items() if n > 1]
            assert dupes == [] and set(texts) == expected  # nothing lost, nothing twice
            # every worker's searches see every worker's writes
            for w in range(N_CLIENTS):
                hits = httpx.post(
                    base + "/v1/search",
                    headers=h,
                    json={"query": f"client {w} write 3 part a", "user_id": f"u{w}", "limit": 50},
                ).json()
                assert f"client {w} write 3 part a" in [x["memory"]["text"] for x in hits["results"]]
    finally:
        proc.terminate()  # SIGTERM: graceful shutdown
        assert proc.wait(timeout=30) == 0


def _process_writer(path: str, w: int, n: int) -> None:
    from engramdb import Memory

    with Memory(path, embedder="hashing-64") as mem:
        for i in range(n):
            mem.add([f"proc {w} item {i} a", f"proc {w} item {i} b"], user_id=f"p{w}")


def test_four_processes_write_one_sqlite_file_without_loss(tmp_path):
    from engramdb import Memory

    path = str(tmp_path / "shared.db")
    Memory(path, embedder="hashing-64").close()  # create the schema once
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_process_writer, args=(path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Memory(path, embedder="hashing-64") as mem:
        texts = [r.text for r in mem.list(kinds=["episode"], limit=10_000).items]
    assert len(texts) == 4 * 15 * 2 and len(set(texts)) == len(texts)


def _raw_request(port: int, body: bytes, *, send: int, headers: dict | None = None) -> None:
    """Send a POST with a full Content-Length but only `send` bytes of the body, then hang up."""
    head = [
        "POST /v1/memories HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:send])
        time.sleep(0.05)
        s.shutdown(socket.SHUT_RDWR)


def test_client_disconnect_mid_request_leaves_nothing_half_written(tmp_path):
    import json

    env = make_env(tmp_path)
    h = env.auth("acme_rw")
    turns = [f"batch turn {i}" for i in range(300)]
    body = json.dumps({"messages": turns, "user_id": "d"}).encode()
    with serve_in_thread(env.app) as base:
        port = int(base.rsplit(":", 1)[1])
        # 1) hang up halfway through the body: the request never reaches the store
        _raw_request(port, body, send=len(body) // 2, headers=h)
        # 2) send it all, hang up without reading the answer: the batch lands whole or not at all
        _raw_request(port, body, send=len(body), headers=h)
        time.sleep(1.0)
        with httpx.Client(base_url=base, timeout=30) as c:
            deadline = time.monotonic() + 20
            while True:  # wait for the abandoned request to finish in its worker thread
                n = len(_episodes(c, h))
                if n in (0, 300) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert n in (0, 300), n
            assert sorted(_episodes(c, h)) == (sorted(turns) if n else [])


def test_failure_inside_the_write_transaction_rolls_back_everything(tmp_path, monkeypatch):
    """A crash half-way through a batch insert (here: injected on row 150 of 300) leaves no row behind."""
    import engramdb.store.sqlite as sqlite_mod

    env = make_env(tmp_path)
    real = sqlite_mod.record_to_row
    calls = {"n": 0}

    def flaky(rec):
        calls["n"] += 1
        if calls["n"] == 150:
            raise OSError("disk unplugged")
        return real(rec)

    with TestClient(env.app, raise_server_exceptions=False) as c:
        monkeypatch.setattr(sqlite_mod, "record_to_row", flaky)
        r = c.post(
            "/v1/memories",
            json={"messages": [f"t{i}" for i in range(300)], "user_id": "x"},
            headers=env.auth("acme_rw"),
        )
        monkeypatch.setattr(sqlite_mod, "record_to_row", real)
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert "disk unplugged" not in r.text  # internals stay in the server log
        assert c.get("/v1/memories", headers=env.auth("acme_rw")).json()["total"] == 0
        assert calls["n"] >= 150
