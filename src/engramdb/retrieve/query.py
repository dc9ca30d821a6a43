"""Query analysis without an LLM: who a query is about, and what time it names.

`analyze` looks for the speakers of the candidate memories in the query (whole
words, case-insensitive; a multi-word name also matches by its first word), and
for an explicit absolute time ("in May 2023", "on 8 May 2023", "in 2022") through
`engramdb.temporal`. Relative query times ("last year") need a reference clock,
so they are reported only when `now` is given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..temporal import TimeSpan, query_range

_ABSOLUTE = re.compile(r"\b(19|20)\d{2}\b")


@dataclass
class QueryInfo:
    text: str
    speakers: set[str] = field(default_factory=set)  # speakers the query names
    time: TimeSpan | None = None


def named_speakers(query: str, speakers: Iterable[str]) -> set[str]:
    q = query.lower()
    out = set()
    for name in speakers:
        if not name:
            continue
        forms = {name.lower(), name.split()[0].lower()}
        if any(re.search(rf"(?<![\w]){re.escape(f)}(?![\w])", q) for f in forms if len(f) >= 2):
            out.add(name)
    return out


def analyze(query: str, speakers: Iterable[str] = (), now: datetime | None = None) -> QueryInfo:
    info = QueryInfo(text=query, speakers=named_speakers(query, speakers))
    if now is not None:
        info.time = query_range(query, now)
    elif _ABSOLUTE.search(query):
        span = query_range(query, datetime.fromisoformat("2000-01-01T00:00:00+00:00"))
        # only spans that carry their own year are absolute
        info.time = span if span is not None and _ABSOLUTE.search(span.text) else None
    return info
