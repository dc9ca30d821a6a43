"""Derived memories follow their sources. When episodes are deleted, forgotten or edited:

- a derived memory (fact, summary, profile...) that still has other live sources stays, citing only those;
- one that no longer has any is retracted: a fact's validity is closed where it began (it was never true, as
  far as the store now knows) with the reason in `metadata["retracted"]`, then it is soft-deleted like its
  source, so every read drops it and the history keeps it; other kinds are soft-deleted;
- a fact that the retracted one had superseded, or that a gone turn had ended ("I quit Acme"), is reopened
  up to where the next value starts: deleting "I moved to Denver" makes "lives in Boston" current again;
- `related` links built from a gone memory are removed (`supersedes` and `invalidates` links are history).
This repeats down the provenance chain (a summary of facts follows the facts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from ..extract.base import norm_value
from ..model import FACT, MemoryRecord
from ..store.base import Filters, Link, Store
from .update import ENDS, SUPERSEDES


class CascadeReport(BaseModel):
    retracted: list[str] = Field(default_factory=list)  # facts whose only sources are gone
    removed: list[str] = Field(default_factory=list)  # other derived memories soft-deleted with them
    unsourced: list[str] = Field(default_factory=list)  # derived memories that lost a source but keep others
    reopened: list[str] = Field(default_factory=list)  # older facts current again


def follow_sources(store: Store, gone_ids: Sequence[str], *, reason: str, at: datetime,
                   action: str = "forget", only: set[str] | None = None) -> CascadeReport:
    """Apply the rules above for memories `gone_ids` that were just deleted, forgotten or edited. `only`:
    restrict the first step to these derived memories (an edit keeps the facts the new text still gives)."""
    rep = CascadeReport()
    gone = set(gone_ids)
    todo = list(gone_ids)
    first = True
    while todo:
        derived = store.derived_from(todo, Filters(include_expired=True))
        todo = []
        for d in derived:
            if d.id in gone or (first and only is not None and d.id not in only):
                continue
            remaining = [s for s in d.source_ids if s not in gone]
            live = {r.id for r in store.get(remaining)} if remaining else set()
            remaining = [s for s in remaining if s in live]
            if remaining:
                store.update(d.model_copy(update={"source_ids": remaining}), action="unsource")
                rep.unsourced.append(d.id)
                continue
            gone.add(d.id)
            todo.append(d.id)
            if d.kind == FACT:
                _retract(store, d, reason, at, action)
                rep.retracted.append(d.id)
                rep.reopened += _reopen_replaced(store, d)
            else:
                store.soft_delete([d.id], at=at, action=action)
                rep.removed.append(d.id)
        first = False
    for ep in gone_ids:
        rep.reopened += _reopen_ended(store, ep)
    store.remove_links(sorted(gone), type="related")
    return rep


def _retract(store: Store, fact: MemoryRecord, reason: str, at: datetime, action: str) -> None:
    start = fact.valid_from or fact.occurred_at or at
    meta = {**fact.metadata, "retracted": {"reason": reason, "sources": fact.source_ids, "at": at.isoformat()}}
    store.update(fact.model_copy(update={"valid_to": start, "metadata": meta}), action="retract")
    store.soft_delete([fact.id], at=at, action=action)


def _same_key_current(store: Store, fact: MemoryRecord) -> list[MemoryRecord]:
    m = fact.metadata
    flt = Filters(user_id=fact.user_id, agent_id=fact.agent_id, kinds=[FACT], current_only=True,
                  metadata={"subject_key": m.get("subject_key", ""), "attribute": m.get("attribute", "")})
    return store.list(flt, limit=100)


def _reopen(store: Store, old: MemoryRecord, until: datetime | None) -> bool:
    if old.deleted_at is not None or old.metadata.get("retracted"):
        return False
    if until is None and _same_key_current(store, old):
        return False  # another value holds now
    meta = {k: v for k, v in old.metadata.items() if k not in ("superseded_by", "ended_by")}
    store.update(old.model_copy(update={"valid_to": until, "metadata": meta}), action="reopen")
    return True


def _reopen_replaced(store: Store, retracted: MemoryRecord) -> list[str]:
    """The facts `retracted` had closed take back its span: up to its own end (None: open again)."""
    out = []
    olds = store.get([lk.dst_id for lk in store.links(retracted.id, type=SUPERSEDES, direction="out")])
    for old in olds:
        if old.valid_to is None or old.valid_to != retracted.valid_from:
            continue  # closed by something else
        newer = [lk.src_id for lk in store.links(retracted.id, type=SUPERSEDES, direction="in")]
        if _reopen(store, old, retracted.valid_to):
            out.append(old.id)
            store.add_links([Link(n, old.id, SUPERSEDES, reason="takes over from a retracted value") for n in newer])
    return out


def _reopen_ended(store: Store, episode_id: str) -> list[str]:
    """Facts a gone turn had ended ("I quit my job at Acme") are current again."""
    out = []
    for lk in store.links(episode_id, type=ENDS, direction="out"):
        for old in store.get([lk.dst_id]):
            if episode_id in (old.metadata.get("ended_by") or []) and _reopen(store, old, None):
                out.append(old.id)
    return out


def fact_key(subject: str, attribute: str, value: str) -> tuple[str, str, str]:
    return norm_value(subject), attribute.casefold(), norm_value(value)
