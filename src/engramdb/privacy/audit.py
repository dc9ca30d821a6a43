"""The audit log of disclosures: each memory served to an audience (search or context), to whom, when, with
which categories and what the policy did (allow or redact).

Rows live in the store's database, in a `privacy_disclosures` table made on first use (SQLite, PostgreSQL).
A trigger erases a memory's rows when the memory row is deleted, so `purge` takes a user's audit trail with
their data, and nothing points at an erased memory. Rows older than the retention are dropped as new ones come.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ..errors import StoreError
from ..timeutil import from_store, now, to_store

TABLE = "privacy_disclosures"
PRUNE_EVERY_S = 600.0  # retention is applied at most this often per process


class Disclosure(BaseModel):
    at: datetime
    user_id: str | None
    memory_id: str
    agent_id: str | None
    purpose: str | None
    categories: list[str]
    action: str  # allow | redact
    op: str  # search | context | ...


@dataclass
class _Row:
    at: datetime
    user_id: str | None
    memory_id: str
    agent_id: str | None
    purpose: str | None
    categories: list[str]
    action: str
    op: str


class AuditLog:
    """One store's disclosures. Backends: SQLite and PostgreSQL (the store's own connection), else in memory."""

    def __init__(self, store: Any, retention_days: int | None = 365) -> None:
        self.store = store
        self.retention = timedelta(days=retention_days) if retention_days else None
        self._ready = False
        self._lock = threading.Lock()
        self._pruned = 0.0
        self._kind = "sqlite" if isinstance(getattr(store, "_conn", None), sqlite3.Connection) else (
            "postgres" if hasattr(store, "schema") and hasattr(store, "_pool") else "memory")
        self._mem: list[_Row] = []

    # -- schema -----------------------------------------------------------------------------------------------
    def _t(self) -> str:
        return f'"{self.store.schema}".{TABLE}' if self._kind == "postgres" else TABLE

    def _ensure(self) -> None:
        if self._ready or self._kind == "memory":
            return
        with self._lock:
            if self._ready:
                return
            if self._kind == "sqlite":
                if self._sqlite_has_table():
                    self._ready = True
                    return
                ddl = [
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, user_id TEXT,"
                    " memory_id TEXT NOT NULL, agent_id TEXT, purpose TEXT, categories TEXT NOT NULL DEFAULT '[]',"
                    " action TEXT NOT NULL, op TEXT NOT NULL)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_user ON {TABLE}(user_id, at)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_memory ON {TABLE}(memory_id)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_at ON {TABLE}(at)",
                    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_forget AFTER DELETE ON memories BEGIN"
                    f" DELETE FROM {TABLE} WHERE memory_id = old.id; END",
                ]
                with self.store.transaction():
                    for sql in ddl:
                        self.store._conn.execute(sql)
            else:
                s = self.store.schema
                t = self._t()
                ddl = [
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    f"CREATE TABLE IF NOT EXISTS {t} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                    " at timestamptz NOT NULL, user_id text, memory_id text NOT NULL, agent_id text, purpose text,"
                    " categories jsonb NOT NULL DEFAULT '[]'::jsonb, action text NOT NULL, op text NOT NULL)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_user ON {t} (user_id, at)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_memory ON {t} (memory_id)",
                    f"CREATE INDEX IF NOT EXISTS {TABLE}_at ON {t} (at)",
                    f'CREATE OR REPLACE FUNCTION "{s}".{TABLE}_forget() RETURNS trigger LANGUAGE plpgsql AS'
                    f" $$ BEGIN DELETE FROM {t} WHERE memory_id = OLD.id; RETURN OLD; END $$",
                    f'CREATE OR REPLACE TRIGGER {TABLE}_forget AFTER DELETE ON "{s}".memories FOR EACH ROW'
                    f' EXECUTE FUNCTION "{s}".{TABLE}_forget()',
                ]
                with self.store.transaction(), self.store._conn() as conn:
                    for sql in ddl:
                        conn.execute(sql, (f"engramdb:privacy:{s}",) if "%s" in sql else None)
            self._ready = True

    def _sqlite_has_table(self) -> bool:
        return bool(self.store._q("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                  (f"{TABLE}_forget",)))

    # -- writes -----------------------------------------------------------------------------------------------
    def record(self, rows: Sequence[_Row]) -> None:
        if not rows:
            return
        self._ensure()
        if self._kind == "memory":
            self._mem.extend(rows)
            return
        if self._kind == "sqlite":
            with self.store.transaction():
                self.store._conn.executemany(
                    f"INSERT INTO {TABLE} (at, user_id, memory_id, agent_id, purpose, categories, action, op)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(to_store(r.at), r.user_id, r.memory_id, r.agent_id, r.purpose, json.dumps(r.categories),
                      r.action, r.op) for r in rows],
                )
        else:
            with self.store.transaction(), self.store._conn() as conn, conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self._t()} (at, user_id, memory_id, agent_id, purpose, categories, action, op)"
                    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                    [(r.at, r.user_id, r.memory_id, r.agent_id, r.purpose, json.dumps(r.categories), r.action, r.op)
                     for r in rows],
                )
        if self.retention is not None and time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            self.prune()

    def prune(self, before: datetime | None = None) -> int:
        """Drop rows older than `before` (default: now minus the retention). Returns how many."""
        if before is None:
            if self.retention is None:
                return 0
            before = now() - self.retention
        if self._kind == "memory":
            n = len(self._mem)
            self._mem = [r for r in self._mem if r.at >= before]
            return n - len(self._mem)
        self._ensure()
        return self._delete("at < {p}", [before])

    def erase(self, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Erase the rows about a user's memories (or those served to an agent)."""
        if self._kind == "memory":
            n = len(self._mem)
            self._mem = [r for r in self._mem if not ((user_id and r.user_id == user_id)
                                                      or (agent_id and r.agent_id == agent_id))]
            return n - len(self._mem)
        self._ensure()
        if user_id:
            return self._delete("user_id = {p}", [user_id])
        return self._delete("agent_id = {p}", [agent_id]) if agent_id else 0

    def _delete(self, where: str, params: list[Any]) -> int:
        if self._kind == "sqlite":
            vals = [to_store(v) if isinstance(v, datetime) else v for v in params]
            with self.store.transaction():
                return int(self.store._conn.execute(f"DELETE FROM {TABLE} WHERE {where.format(p='?')}",
                                                    vals).rowcount)
        with self.store.transaction(), self.store._conn() as conn:
            return int(conn.execute(f"DELETE FROM {self._t()} WHERE {where.format(p='%s')}", params).rowcount)

    # -- reads ------------------------------------------------------------------------------------------------
    def query(self, *, user_id: str | None = None, category: str | None = None, agent_id: str | None = None,
              purpose: str | None = None, memory_id: str | None = None, since: datetime | None = None,
              limit: int = 100) -> list[Disclosure]:
        """Disclosures, newest first, narrowed by each argument given."""
        if self._kind == "memory":
            rows = [r for r in reversed(self._mem) if _match(r, user_id, category, agent_id, purpose, memory_id,
                                                              since)]
            return [Disclosure(**r.__dict__) for r in rows[:limit]]
        if self._kind == "sqlite" and not self._sqlite_has_table():
            return []  # nothing was ever disclosed (and a read-only store stays untouched)
        self._ensure()
        p = "?" if self._kind == "sqlite" else "%s"
        clauses: list[str] = []
        params: list[Any] = []
        for col, val in (("user_id", user_id), ("agent_id", agent_id), ("purpose", purpose),
                         ("memory_id", memory_id)):
            if val is not None:
                clauses.append(f"{col} = {p}")
                params.append(val)
        if since is not None:
            clauses.append(f"at >= {p}")
            params.append(to_store(since) if self._kind == "sqlite" else since)
        if category is not None:
            if self._kind == "sqlite":
                clauses.append(f"EXISTS (SELECT 1 FROM json_each(categories) WHERE value = {p})")
                params.append(category)
            else:
                clauses.append(f"categories ? {p}")
                params.append(category)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = (f"SELECT at, user_id, memory_id, agent_id, purpose, categories, action, op FROM {self._t()}{where}"
               f" ORDER BY seq DESC LIMIT {int(limit)}")
        try:
            if self._kind == "sqlite":
                raw = [tuple(r) for r in self.store._q(sql, params)]
            else:
                with self.store._conn() as conn:
                    raw = [tuple(r) for r in conn.execute(sql, params).fetchall()]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the audit log: {exc}") from exc
        out = []
        for at, uid, mid, aid, purp, cats, action, op in raw:
            when = from_store(at) if isinstance(at, str) else at
            out.append(Disclosure(at=when or now(), user_id=uid, memory_id=mid, agent_id=aid, purpose=purp,
                                  categories=json.loads(cats) if isinstance(cats, str) else list(cats),
                                  action=action, op=op))
        return out


def _match(r: _Row, user_id: str | None, category: str | None, agent_id: str | None, purpose: str | None,
           memory_id: str | None, since: datetime | None) -> bool:
    return ((user_id is None or r.user_id == user_id) and (category is None or category in r.categories)
            and (agent_id is None or r.agent_id == agent_id) and (purpose is None or r.purpose == purpose)
            and (memory_id is None or r.memory_id == memory_id) and (since is None or r.at >= since))


def row(at: datetime, user_id: str | None, memory_id: str, agent_id: str | None, purpose: str | None,
        categories: Sequence[str], action: str, op: str) -> _Row:
    return _Row(at, user_id, memory_id, agent_id, purpose, sorted(categories), action, op)
