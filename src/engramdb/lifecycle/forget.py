"""Forgetting: TTL expiry, decay scores, soft forget with history, and privacy purge.

- `expire`: memories past `expires_at` are already invisible to every read; this sweep
  also soft-deletes them (action "expire") so `get`, exports and counts agree.
- decay: score = recency x importance x access, configurable, OFF by default (and, when on,
  not applied to facts unless asked): facts are true until superseded, not until old.
- `forget`: soft delete with history (action "forget"), optionally cascading to derived
  memories whose every source is gone.
- `purge`: hard delete of every trace of a user: rows, keyword index, vectors, links,
  history, derived memories (also other scopes' memories built from the user's episodes),
  the ANN sidecar file; then FTS optimize + VACUUM + WAL checkpoint so the bytes are gone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from ..model import FACT, MemoryRecord
from ..store.base import Filters, Store
from ..timeutil import now


class DecayPolicy(BaseModel):
    """recency x importance x access. Off by default; facts are exempt unless listed in `kinds`."""

    enabled: bool = False
    half_life_days: float = Field(default=30.0, gt=0)
    access_weight: float = Field(default=0.5, ge=0)  # how much each logged access counts (log-scaled)
    kinds: list[str] = Field(default_factory=lambda: ["episode", "summary"])
    archive_below: float | None = Field(default=None, ge=0, le=1)  # soft-delete (action "archive") under this
    rank_weight: float = Field(default=0.0, ge=0, le=1)  # 0 = do not touch search ranking


def decay_score(rec: MemoryRecord, policy: DecayPolicy, at: datetime | None = None) -> float:
    """In [0, 1]: 1 for a fresh, important, often-used memory."""
    at = at or now()
    last = rec.last_accessed_at or rec.occurred_at or rec.recorded_at or at
    age_days = max((at - last).total_seconds() / 86400, 0.0)
    recency = 0.5 ** (age_days / policy.half_life_days)
    access = 1 - math.exp(-policy.access_weight * math.log1p(rec.access_count)) if policy.access_weight else 0.0
    # importance sets the floor and scale; access lifts toward 1
    return min(1.0, recency * (rec.importance + (1 - rec.importance) * access))


def applies(rec: MemoryRecord, policy: DecayPolicy) -> bool:
    return policy.enabled and rec.kind in policy.kinds and not (rec.kind == FACT and FACT not in policy.kinds)


def expire(store: Store, at: datetime | None = None, *, batch: int = 500) -> int:
    """Soft-delete memories whose `expires_at` has passed (history action 'expire')."""
    at = at or now()
    flt = Filters(include_expired=True)
    due: list[str] = []
    offset = 0
    while True:
        page = store.list(flt, limit=batch, offset=offset, order="recorded_at")
        if not page:
            break
        due.extend(r.id for r in page if r.expires_at is not None and r.expires_at <= at)
        offset += len(page)
    n = 0
    for i in range(0, len(due), batch):
        n += store.soft_delete(due[i : i + batch], at=at, action="expire")
    return n


class PurgeReport(BaseModel):
    user_id: str | None = None
    agent_id: str | None = None
    memories: int = 0  # rows removed (including derived memories in other scopes)
    derived_elsewhere: int = 0  # of which: memories of other scopes built from the purged ones
    ann_files_removed: list[str] = Field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0


def collect_purge_ids(store: Store, user_id: str | None, agent_id: str | None) -> tuple[list[str], int]:
    """Every memory of the scope (deleted and expired included) plus, transitively, anything derived from them."""
    flt = Filters(user_id=user_id, agent_id=agent_id, include_deleted=True, include_expired=True)
    ids: set[str] = set()
    offset = 0
    while True:
        page = store.list(flt, limit=1000, offset=offset, order="recorded_at")
        if not page:
            break
        ids.update(r.id for r in page)
        offset += len(page)
    # Derived memories in other scopes (e.g. an agent-level summary citing this user's turns).
    everything = Filters(include_deleted=True, include_expired=True)
    derived = 0
    changed = True
    while changed:
        changed = False
        offset = 0
        while True:
            page = store.list(everything, limit=1000, offset=offset, order="recorded_at")
            if not page:
                break
            for r in page:
                if r.id not in ids and r.source_ids and ids.intersection(r.source_ids):
                    ids.add(r.id)
                    derived += 1
                    changed = True
            offset += len(page)
    return sorted(ids), derived


def remove_ann_files(ann_path: str | None) -> list[str]:
    removed = []
    if ann_path:
        for p in (ann_path, ann_path + ".json", ann_path + ".tmp"):
            if os.path.exists(p):
                os.remove(p)
                removed.append(p)
    return removed


def forget_ids(store: Store, ids: Sequence[str], *, cascade: bool, at: datetime | None = None,
               action: str = "forget") -> list[str]:
    """Soft-delete `ids` (history action `action`); with `cascade`, derived memories follow them
    (lifecycle/cascade.py): those left with no source are retracted, older facts they had replaced reopen."""
    from .cascade import follow_sources

    at = at or now()
    with store.transaction():
        store.soft_delete(list(ids), at=at, action=action)
        if not cascade:
            return list(ids)
        rep = follow_sources(store, ids, reason=f"source {action}", at=at, action=action)
    return [*ids, *rep.retracted, *rep.removed]
