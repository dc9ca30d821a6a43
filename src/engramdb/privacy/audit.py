"""The audit log of disclosures: each memory served to an audience (search, context, listings, tips,
trajectories), to whom, when, with which categories and what the policy did (allow or redact).

Entries live in the store (the `audit_*` methods of store/base.py: a `privacy_disclosures` table in SQLite and
PostgreSQL). Erasing a memory erases its entries, so `purge` takes a user's audit trail with their data. Entries
older than the retention are dropped as new ones come.

A store opened read-only (a read-only file or replica) cannot take entries: by default the read is served and
its entries are skipped, with a warning logged and counted (`skipped`); `audit_read_only="refuse"` refuses the
read instead (docs/privacy.md, "Read-only stores").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ..errors import ReadOnlyError, StoreError
from ..store.base import AuditEntry
from ..timeutil import now

PRUNE_EVERY_S = 600.0  # retention is applied at most this often per process
log = logging.getLogger("engramdb.privacy.audit")


class Disclosure(BaseModel):
    at: datetime
    user_id: str | None
    memory_id: str
    agent_id: str | None
    purpose: str | None
    categories: list[str]
    action: str  # allow | redact
    op: str  # search | context | list | tips | trajectories
    seq: int | None = None  # the entry's position in the log: pass it as `before_seq` for the next page


class AuditUnavailable(ReadOnlyError):
    """An audience-scoped read refused because its disclosures cannot be audited (audit_read_only="refuse")."""


class AuditLog:
    """One store's disclosures, through the store's audit methods."""

    def __init__(self, store: Any, retention_days: int | None = 365, *, on_read_only: str = "skip") -> None:
        self.store = store
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.on_read_only = on_read_only
        self.skipped = 0  # entries not recorded because the store is read-only (this process)
        self._lock = threading.Lock()
        self._pruned = 0.0
        self._refused = False  # the database refused a write as read-only (a replica)

    @property
    def read_only(self) -> bool:
        return self._refused or bool(getattr(self.store, "read_only", False))

    # -- writes -----------------------------------------------------------------------------------------------
    def record(self, rows: Sequence[AuditEntry]) -> None:
        if not rows:
            return
        if self.read_only:
            self._skip(rows, "the store is open read-only")
            return
        try:
            self.store.audit_append(rows)
        except ReadOnlyError as exc:  # e.g. a PostgreSQL hot standby
            self._refused = True
            self._skip(rows, str(exc))
            return
        if self.retention is not None and time.monotonic() - self._pruned > PRUNE_EVERY_S:
            self._pruned = time.monotonic()
            try:
                self.prune()
            except StoreError:  # retention is housekeeping: the next write tries again
                self._pruned = 0.0

    def check(self) -> None:
        """Before a read for an audience is served: refuses it at once where it could not be audited."""
        if self.on_read_only == "refuse" and self.read_only:
            raise AuditUnavailable("not served: a read for an audience cannot be audited on a read-only store;"
                                   " read from a writable store, or set privacy audit_read_only='skip'")

    def _skip(self, rows: Sequence[AuditEntry], why: str) -> None:
        if self.on_read_only == "refuse":
            raise AuditUnavailable(f"not served: {len(rows)} disclosure(s) to an audience cannot be audited ({why});"
                               " read from a writable store, or set privacy audit_read_only='skip'")
        with self._lock:
            first = self.skipped == 0
            self.skipped += len(rows)
        (log.warning if first else log.debug)(
            "audit skipped: %d disclosure(s) served without an audit entry (%s); %d skipped so far in this"
            " process. Audit disclosures on a writable store, or set privacy audit_read_only='refuse'",
            len(rows), why, self.skipped)

    def prune(self, before: datetime | None = None) -> int:
        """Drop entries older than `before` (default: now minus the retention). Returns how many."""
        if before is None:
            if self.retention is None:
                return 0
            before = now() - self.retention
        return int(self.store.audit_delete(before=before))

    def erase(self, *, user_id: str | None = None, agent_id: str | None = None) -> int:
        """Erase the entries about a user's memories (or those served to an agent)."""
        if user_id:
            return int(self.store.audit_delete(user_id=user_id))
        return int(self.store.audit_delete(agent_id=agent_id)) if agent_id else 0

    # -- reads ------------------------------------------------------------------------------------------------
    def query(self, *, user_id: str | None = None, category: str | None = None, agent_id: str | None = None,
              purpose: str | None = None, memory_id: str | None = None, since: datetime | None = None,
              until: datetime | None = None, before_seq: int | None = None, limit: int = 100) -> list[Disclosure]:
        """Disclosures, newest first, narrowed by each argument given."""
        got = self.store.audit_query(user_id=user_id, category=category, agent_id=agent_id, purpose=purpose,
                                     memory_id=memory_id, since=since, until=until, before_seq=before_seq,
                                     limit=limit)
        return [Disclosure(at=e.at, user_id=e.user_id, memory_id=e.memory_id, agent_id=e.agent_id,
                           purpose=e.purpose, categories=list(e.categories), action=e.action, op=e.op, seq=e.seq)
                for e in got]


def row(at: datetime, user_id: str | None, memory_id: str, agent_id: str | None, purpose: str | None,
        categories: Sequence[str], action: str, op: str) -> AuditEntry:
    return AuditEntry(at=at, user_id=user_id, memory_id=memory_id, agent_id=agent_id, purpose=purpose,
                      categories=sorted(categories), action=action, op=op)
