"""Write-time enrichment of index keys: the conversational context of a turn and its resolved dates.

A turn often means little alone ("Yes, last week!"): what it answers is in the
turn before it. So an episode's keys carry the previous turn of the same
conversation (same scope and session), found in the same write batch or, for
turns added one at a time, in the store. Relative dates ("yesterday", "last
week") are resolved against the turn's own `occurred_at` (see
`engramdb.temporal`) and added as absolute labels ("7 May 2023").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ..model import EPISODE, MemoryRecord
from ..store.base import Filters, Store
from ..temporal import annotate


def speaker_line(rec: MemoryRecord) -> str:
    """'Speaker: text', or the text alone: the unit both keys are built from."""
    return f"{rec.speaker}: {rec.text}" if rec.speaker else rec.text


def date_labels(rec: MemoryRecord) -> str:
    """Absolute dates for the time expressions in the text, resolved at occurred_at ('' if none)."""
    try:
        return annotate(rec.text, rec.occurred_at)
    except (ValueError, OverflowError):  # a date outside datetime's range: no label rather than no write
        return ""


def _thread(rec: MemoryRecord) -> tuple[str | None, str | None, str | None]:
    return rec.user_id, rec.agent_id, rec.session_id


def previous_turns(records: Sequence[MemoryRecord], store: Store | None = None) -> list[MemoryRecord | None]:
    """For each episode, the turn before it in its conversation (None for the first or for derived memories).

    Within a batch, the previous record of the same scope and session is the context;
    otherwise, when the record has a session, the latest earlier episode of that session in the store."""
    out: list[MemoryRecord | None] = []
    last: dict[tuple[str | None, str | None, str | None], MemoryRecord] = {}
    for rec in records:
        prev: MemoryRecord | None = None
        if rec.kind == EPISODE:
            key = _thread(rec)
            prev = last.get(key)
            if prev is None and store is not None and rec.session_id and rec.occurred_at is not None:
                f = Filters(user_id=rec.user_id, agent_id=rec.agent_id, session_id=rec.session_id, kinds=[EPISODE],
                            until=rec.occurred_at + timedelta(microseconds=1))
                prev = _previous_in_store(store, f, rec)
            last[key] = rec
        out.append(prev)
    return out


def _previous_in_store(store: Store, f: Filters, rec: MemoryRecord) -> MemoryRecord | None:
    """The stored turn just before `rec`: latest by occurred_at, ties broken by write order (the store key),
    so turns added together with one timestamp still have a before and after."""
    rows = store.list(f, limit=64, order="-occurred_at")  # newest first; ties newest-written first
    own = store.keys_for([rec.id]).get(rec.id)
    if own is None:  # a new record: everything stored at or before its time is earlier
        return next((r for r in rows if r.id != rec.id), None)
    keys = store.keys_for([r.id for r in rows])
    for r in rows:
        if r.id == rec.id:
            continue
        if r.occurred_at is not None and rec.occurred_at is not None and r.occurred_at < rec.occurred_at:
            return r
        if keys.get(r.id, own) < own:
            return r
    return None
