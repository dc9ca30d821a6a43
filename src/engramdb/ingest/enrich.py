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
                prev = next((r for r in store.list(f, limit=3, order="-occurred_at") if r.id != rec.id), None)
            last[key] = rec
        out.append(prev)
    return out
