"""Time expressions: resolve relative dates in text against an anchor, and parse time ranges in queries.

Rule-based and offline (no model, no network). Two entry points:

* `resolve(text, anchor)` finds relative and absolute time expressions in a
  memory's text ("yesterday", "last week", "two weeks ago", "last Friday",
  "next month", "in May 2023") and returns them as `TimeSpan`s: half-open
  [start, end) UTC ranges at the expression's granularity. `annotate(text,
  anchor)` turns them into a short suffix of absolute dates ("7 May 2023"),
  which the write path adds to a memory's index keys so that "when did ..."
  questions and date filters find it, while the stored text stays verbatim.
* `query_range(query, now)` reads the time constraint of a query ("in May
  2023", "last year", "two weeks ago") into one `TimeSpan`, or None.

Weeks start on Monday. "last Friday" is the most recent Friday strictly
before the anchor's day; "this Friday"/"on Friday" the one in the anchor's
week; "next Friday" the first one after the anchor's day. A bare month
("in May") means that month of the anchor's year, or of the year before when
`past=True` and it lies after the anchor. Times are UTC.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from .regex_gates import Gates

__all__ = ["TimeSpan", "annotate", "query_range", "resolve"]

GRANULARITIES = ("day", "week", "weekend", "month", "season", "year")


class TimeSpan(BaseModel):
    """A resolved time expression: [start, end) in UTC, the matched text and where it was found."""

    model_config = ConfigDict(frozen=True)  # `resolve` hands out cached spans

    text: str
    start: datetime
    end: datetime
    granularity: str
    span: tuple[int, int]

    def label(self) -> str:
        """A human-readable absolute form: '7 May 2023', 'week of 1 May 2023', 'May 2023', '2023'."""
        s = self.start
        if self.granularity == "day":
            return f"{s.day} {s:%B %Y}"
        if self.granularity in ("week", "weekend"):
            return f"{self.granularity} of {s.day} {s:%B %Y}"
        if self.granularity == "month":
            return f"{s:%B %Y}"
        if self.granularity == "season":
            last = self.end - timedelta(days=1)
            return f"{s:%B}-{last:%B %Y}" if s.year == last.year else f"{s:%B %Y}-{last:%B %Y}"
        return f"{s.year}"

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


_NUM = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a couple": 2,
    "couple of": 2, "a few": 3, "few": 3, "several": 3,
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_MONTH_RE = "|".join([*(m for m in _MONTHS), *(m[:3] for m in _MONTHS if m != "may"), "sept"])
_SEASONS = {"spring": (3, 3), "summer": (6, 3), "fall": (9, 3), "autumn": (9, 3), "winter": (12, 3)}
_NUM_RE = (r"(\d+|a couple of|a couple|couple of|a few|few|several|an?|one|two|three|four|five|six|seven|eight|nine|"
           r"ten|eleven|twelve)")
_UNIT_RE = r"(day|week|month|year|weekend)s?"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("ago", re.compile(rf"\b{_NUM_RE}\s+{_UNIT_RE}\s+ago\b", re.I)),
    ("in_n", re.compile(rf"\bin\s+{_NUM_RE}\s+{_UNIT_RE}\b", re.I)),
    ("dmy", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\.?,?\s+(\d{{4}})\b", re.I)),
    ("mdy", re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)),
    ("iso", re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")),
    ("my", re.compile(rf"\b({_MONTH_RE})\.?,?\s+(?:of\s+)?(\d{{4}})\b", re.I)),
    ("rel_unit", re.compile(
        r"\b(last|past|previous|this|next|coming|earlier this|later this)\s+(week|weekend|month|year)\b", re.I)),
    ("rel_wd", re.compile(rf"\b(last|this|next|on|past|coming)\s+({'|'.join(_WEEKDAYS)})\b", re.I)),
    ("rel_season", re.compile(r"\b(last|this|next|past)\s+(spring|summer|fall|autumn|winter)\b", re.I)),
    ("rel_month", re.compile(rf"\b(last|this|next|in|since)\s+({'|'.join(_MONTHS)})\b(?!\s*,?\s*\d)", re.I)),
    ("day_word", re.compile(r"\b(the day before yesterday|day before yesterday|yesterday|today|tonight|this morning|"
                            r"this afternoon|this evening|last night|tomorrow|the other day)\b", re.I)),
    ("year", re.compile(r"\b(?:in|since|during|of|from)\s+((?:19|20)\d{2})\b", re.I)),
]
_GATES = Gates([rx for _, rx in _PATTERNS])  # skips the patterns a text lacks the words for (regex_gates.py)


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _month_span(y: int, m: int) -> tuple[datetime, datetime]:
    while m < 1:
        m += 12
        y -= 1
    while m > 12:
        m -= 12
        y += 1
    start = datetime(y, m, 1, tzinfo=UTC)
    return start, start + timedelta(days=calendar.monthrange(y, m)[1])


def _month_no(name: str) -> int:
    name = name.lower().rstrip(".")
    if name == "sept":
        return 9
    for i, m in enumerate(_MONTHS, start=1):
        if m == name or m[:3] == name:
            return i
    raise ValueError(name)


def _num(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else _NUM[word]


def _shift(anchor: date, unit: str, n: int) -> tuple[datetime, datetime, str]:
    """The unit-sized span n units from the anchor (n < 0 is the past)."""
    unit = unit.lower().rstrip("s")
    if unit == "day":
        d = anchor + timedelta(days=n)
        return _day(d), _day(d) + timedelta(days=1), "day"
    if unit in ("week", "weekend"):
        monday = anchor - timedelta(days=anchor.weekday()) + timedelta(weeks=n)
        if unit == "weekend":
            return _day(monday + timedelta(days=5)), _day(monday + timedelta(days=7)), "weekend"
        return _day(monday), _day(monday + timedelta(days=7)), "week"
    if unit == "month":
        s, e = _month_span(anchor.year, anchor.month + n)
        return s, e, "month"
    y = anchor.year + n
    return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC), "year"


def _resolve_match(kind: str, m: re.Match[str], anchor: date, past: bool) -> tuple[datetime, datetime, str] | None:
    g = [x.lower() if isinstance(x, str) else x for x in m.groups()]
    try:
        if kind == "ago":
            return _shift(anchor, g[1], -_num(g[0]))
        if kind == "in_n":
            return _shift(anchor, g[1], _num(g[0]))
        if kind in ("dmy", "mdy", "iso"):
            if kind == "dmy":
                d = date(int(g[2]), _month_no(g[1]), int(g[0]))
            elif kind == "mdy":
                d = date(int(g[2]), _month_no(g[0]), int(g[1]))
            else:
                d = date(int(g[0]), int(g[1]), int(g[2]))
            return _day(d), _day(d) + timedelta(days=1), "day"
        if kind == "my":
            s, e = _month_span(int(g[1]), _month_no(g[0]))
            return s, e, "month"
        if kind == "rel_unit":
            n = {"last": -1, "past": -1, "previous": -1, "next": 1, "coming": 1}.get(g[0], 0)
            return _shift(anchor, g[1], n)
        if kind == "rel_wd":
            target = _WEEKDAYS.index(g[1])
            if g[0] in ("last", "past"):
                back = (anchor.weekday() - target) % 7 or 7
                d = anchor - timedelta(days=back)
            elif g[0] in ("next", "coming"):
                fwd = (target - anchor.weekday()) % 7 or 7
                d = anchor + timedelta(days=fwd)
            elif g[0] == "on" and past:  # "on Friday" in a diary-like turn: the latest one up to today
                d = anchor - timedelta(days=(anchor.weekday() - target) % 7)
            else:
                d = anchor - timedelta(days=anchor.weekday()) + timedelta(days=target)
            return _day(d), _day(d) + timedelta(days=1), "day"
        if kind == "rel_season":
            first, length = _SEASONS[g[1]]
            # "this <season>" is the one of the anchor's year (a winter spanning new year counts from December)
            y = anchor.year - 1 if first == 12 and anchor.month <= 2 else anchor.year
            if g[0] in ("last", "past"):
                y -= 1
            elif g[0] == "next" and date(y, first, 1) <= anchor:
                y += 1
            s, _ = _month_span(y, first)
            _, e = _month_span(y, first + length - 1)
            return s, e, "season"
        if kind == "rel_month":
            mon = _MONTHS.index(g[1]) + 1
            y = anchor.year
            if g[0] == "last" or (g[0] in ("in", "since") and past):
                if mon >= anchor.month + (0 if g[0] == "last" else 1):
                    y -= 1
            elif g[0] == "next" and mon <= anchor.month:
                y += 1
            s, e = _month_span(y, mon)
            return s, e, "month"
        if kind == "day_word":
            w = g[0]
            n = {"yesterday": -1, "last night": -1, "tomorrow": 1, "the day before yesterday": -2,
                 "day before yesterday": -2}.get(w, 0)
            if w == "the other day":
                d = anchor - timedelta(days=3)
                return _day(d), _day(anchor), "day"
            return _shift(anchor, "day", n)
        if kind == "year":
            y = int(g[0])
            return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC), "year"
    except (ValueError, KeyError, OverflowError):
        return None
    return None


def resolve(text: str, anchor: datetime, *, past: bool = True) -> list[TimeSpan]:
    """Every time expression in `text`, resolved against `anchor` (an aware datetime), in text order.

    `past=True` reads ambiguous expressions ("in May", "on Friday") as the most
    recent such time, which suits things people report having done."""
    if anchor.tzinfo is None:
        raise ValueError("anchor must be timezone-aware")
    a = anchor.astimezone(UTC).date()
    # a write resolves each turn twice (its time refs, then its date labels): a short text's spans are kept
    return list(_resolve_cached(text, a, past)) if len(text) <= CACHED_CHARS else _resolve(text, a, past)


CACHED_CHARS = 4000  # texts up to this long have their spans cached (at most ~1,024 of them: a few MB)


@lru_cache(maxsize=1024)
def _resolve_cached(text: str, a: date, past: bool) -> tuple[TimeSpan, ...]:
    return tuple(_resolve(text, a, past))


def _resolve(text: str, a: date, past: bool) -> list[TimeSpan]:
    taken: list[tuple[int, int]] = []
    out: list[TimeSpan] = []
    for i in _GATES.open(text):  # earlier patterns are more specific and win overlaps
        kind, pat = _PATTERNS[i]
        for m in pat.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            got = _resolve_match(kind, m, a, past)
            if got is None:
                continue
            taken.append((m.start(), m.end()))
            out.append(TimeSpan(text=m.group(0), start=got[0], end=got[1], granularity=got[2],
                                span=(m.start(), m.end())))
    out.sort(key=lambda t: t.span)
    return out


def annotate(text: str, anchor: datetime | None) -> str:
    """Absolute labels for the time expressions in `text` ('' when none), e.g. '7 May 2023; May 2023'."""
    if anchor is None:
        return ""
    labels: dict[str, None] = {}
    for ts in resolve(text, anchor):
        labels.setdefault(ts.label(), None)
    return "; ".join(labels)


def query_range(query: str, now: datetime, *, past: bool = True) -> TimeSpan | None:
    """The time constraint of a query, as one span (the union of the spans it names), or None."""
    spans = resolve(query, now, past=past)
    if not spans:
        return None
    start = min(s.start for s in spans)
    end = max(s.end for s in spans)
    gran = spans[0].granularity if len(spans) == 1 else "range"
    return TimeSpan(text="; ".join(s.text for s in spans), start=start, end=end, granularity=gran,
                    span=(spans[0].span[0], spans[-1].span[1]))
