"""One store per tenant: the isolation boundary.

Scopes (`user_id`, `agent_id`, `session_id`) live inside a tenant; tenants never
share a table. With SQLite each tenant is its own file `<data_dir>/tenants/<tenant>.db`;
with PostgreSQL each tenant is its own schema `engram_<tenant>` in one database. A
request reaches a tenant only through `TenantRegistry.get(key_info.tenant)`, so an id,
filter or query from one tenant is simply never looked up in another tenant's store.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..api.memory import Memory
from ..config import MemoryConfig
from ..embed import make_embedder
from ..embed.base import Embedder
from .keys import check_tenant, pg_schema
from .routing import ROUTES_ENV, Routes


class TenantRegistry:
    """Opens each tenant's `Memory` on first use and keeps it open (thread-safe)."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        url: str | None = None,
        embedder: str | Embedder | None = None,
        config: MemoryConfig | None = None,
        routes: str | os.PathLike[str] | None = None,
    ) -> None:
        """`routes`: the tenant routing table (routing.py; default $ENGRAMDB_TENANT_ROUTES, if set)."""
        self.data_dir = Path(data_dir)
        routes = routes if routes is not None else (os.environ.get(ROUTES_ENV) or None)
        self.routes = Routes(routes) if routes else None
        self.url = url
        if url and not url.startswith(("postgresql://", "postgres://")):
            from ..errors import ConfigError

            raise ConfigError("the server takes a postgresql:// URL (one schema per tenant) or a data directory")
        self.config = config or MemoryConfig()
        # One embedding model shared by every tenant: loading it per tenant would cost memory and seconds.
        self._embedder_spec = embedder
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._lock = threading.Lock()
        self._open: dict[str, Memory] = {}
        self.warm = False  # set by `warmup`: a request no longer pays for a model load (/readyz)
        self._where: dict[str, str | None] = {}  # tenant -> the URL its open Memory uses (None: default)
        self._retired: list[Memory] = []  # replaced after a move; requests may still hold them, closed at the end

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                spec = self._embedder_spec if isinstance(self._embedder_spec, str) else self.config.embedder
                self._embedder = make_embedder(spec)
            return self._embedder

    def sqlite_path(self, tenant: str) -> Path:
        return self.data_dir / "tenants" / f"{check_tenant(tenant)}.db"

    def url_for(self, tenant: str) -> str | None:
        """The database URL of a tenant: its route, else the server's own (None: SQLite)."""
        routed = self.routes.url_for(tenant) if self.routes is not None else None
        return routed or self.url

    def get(self, tenant: str) -> Memory:
        tenant = check_tenant(tenant)
        url = self.url_for(tenant)  # one stat of the routing file: a moved tenant is reopened where it went
        mem = self._open.get(tenant)
        if mem is not None and self._where.get(tenant) == url:
            return mem
        embedder = self.embedder
        with self._lock:
            mem = self._open.get(tenant)
            if mem is not None and self._where.get(tenant) != url:
                self._retired.append(self._open.pop(tenant))
                mem = None
            if mem is None:
                if url:
                    from ..store.postgres import PostgresStore

                    store = PostgresStore(url, schema=pg_schema(tenant))
                    mem = Memory(store=store, embedder=embedder, config=self.config)
                else:
                    mem = Memory(self.sqlite_path(tenant), embedder=embedder, config=self.config)
                self._open[tenant] = mem
                self._where[tenant] = url
            return mem

    def warmup(self) -> None:
        """Load the shared model, its query copy, the ranker and the score calibration, through a throwaway
        in-memory store: afterwards no tenant's first request pays for a load."""
        with Memory(":memory:", embedder=self.embedder, config=self.config) as mem:
            mem.warmup()
        self.warm = True

    def ready(self) -> None:
        """Raise if the backend cannot be reached (used by /readyz)."""
        if self.url:
            import psycopg

            from ..store.postgres import parse_url

            # our own URL parameters (schema, pool_*) must not reach libpq
            with psycopg.connect(parse_url(self.url)[0], connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        else:
            (self.data_dir / "tenants").mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / "tenants" / ".readyz"
            probe.write_text("ok")
            probe.unlink()

    def close(self) -> None:
        with self._lock:
            for mem in [*self._open.values(), *self._retired]:
                mem.close()
            self._open.clear()
            self._retired.clear()
