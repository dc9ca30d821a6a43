"""Pure helpers for the UI pages: word diffs, why-it-ranks-here, chart and timeline geometry.

Nothing here touches a store: views.py reads through `Memory` and hands the data over. Every string that
reaches a template is escaped by Jinja's autoescape; the geometry is numbers only.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

# Record fields a person cares about in a diff (bookkeeping like access_count changes on every read).
DIFF_FIELDS = (
    "text", "kind", "speaker", "role", "metadata", "importance", "occurred_at", "valid_from", "valid_to",
    "expires_at", "deleted_at", "source_ids", "source_ref", "user_id", "agent_id", "session_id",
)

SIGNAL_NAMES = {
    "bm25": "keyword (BM25)",
    "dense": "dense (cosine)",
    "maxsim": "late interaction (MaxSim)",
    "time": "time",
    "context": "links: neighbouring turns",
    "session": "links: same session",
    "speaker": "speaker named",
    "fused": "fused base",
    "learned": "learned ranker (raw)",
    "exact": "exact text match",
    "decay": "decay",
}


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """[(op, text)] with op in '=', '-', '+': a word-level diff for display."""
    a, b = re.findall(r"\S+|\s+", old), re.findall(r"\S+|\s+", new)
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("=", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("-", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("+", "".join(b[j1:j2])))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def history_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The fields one history entry changed: [{field, before, after, diff?}]."""
    if before is None or after is None:  # a creation or an erase: the record itself is the change
        return []
    out = []
    for name in DIFF_FIELDS:
        b, a = before.get(name), after.get(name)
        if b == a or (name not in before and name not in after):
            continue
        row: dict[str, Any] = {"field": name, "before": _show(b), "after": _show(a)}
        if name == "text" and isinstance(b, str) and isinstance(a, str):
            row["diff"] = word_diff(b, a)
        out.append(row)
    return out


def why(rank: int, hit: Any, prev: Any | None) -> str:
    """One or two sentences: what put this hit at this rank."""
    s = hit.signals
    if s.get("exact"):
        return "Its text is the query itself: exact matches always come first."
    parts: list[str] = []
    if s.get("current_fact"):
        parts.append("a current fact about who the question names, so it leads")
    kw = s.get("bm25", 0.0)
    if kw >= 0.005:
        rank_kw = f", keyword rank {int(s['bm25_rank']) + 1}" if "bm25_rank" in s else ""
        parts.append(f"shares words with the query (BM25 {kw:.2f}{rank_kw})")
    else:
        parts.append("no words in common with the query")
    if "dense" in s:
        rank_dn = f", dense rank {int(s['dense_rank']) + 1}" if "dense_rank" in s else ""
        parts.append(f"meaning similarity {s['dense']:.2f}{rank_dn}")
    if "learned" in s:
        parts.append(f"the learned ranker scored it {s['learned']:+.2f} (fused base {s.get('fused', 0):.2f})")
    lifts = [(SIGNAL_NAMES[k], s[k]) for k in ("context", "session", "speaker", "time") if s.get(k)]
    if lifts:
        parts.append("lifted by " + ", ".join(f"{n} (+{v:.3f})" for n, v in lifts))
    if s.get("decay"):
        parts.append(f"down-ranked for staleness ({s['decay']:.3f})")
    text = "; ".join(parts)
    text = text[0].upper() + text[1:] + "."
    if prev is not None and hit.score > prev.score + 1e-9:
        text += (" It sits below a lower score because a step after scoring orders the page: current facts first,"
                 " a source turn before what was derived from it, and a cap on derived memories per page.")
    return text


def currency(hit: Any, as_of: datetime | None = None) -> tuple[str, str | None]:
    """('current' | 'historical' | '', superseded_by id): from the result's own fields when the engine
    provides them, else from the record's validity."""
    cur = getattr(hit, "current", None)
    sup = getattr(hit, "superseded_by", None)
    if cur is None:
        m = hit.memory
        if m.valid_from is None and m.valid_to is None:
            return "", sup
        cur = m.is_current(as_of)
    return ("current" if cur else "historical"), sup


def fill_months(series: list[tuple[str, int]], most: int = 120) -> list[tuple[str, int]]:
    """Every month between the first and the last (empty ones as 0), so the axis is time; a span of more
    than `most` months is summed by year."""
    if not series:
        return []
    counts = dict(series)
    y0, m0 = map(int, series[0][0].split("-"))
    y1, m1 = map(int, series[-1][0].split("-"))
    n = (y1 - y0) * 12 + (m1 - m0) + 1
    if n > most:
        years: dict[str, int] = {}
        for label, c in series:
            years[label[:4]] = years.get(label[:4], 0) + c
        return [(str(y), years.get(str(y), 0)) for y in range(y0, y1 + 1)]
    out = []
    for i in range(n):
        y, m = y0 + (m0 - 1 + i) // 12, (m0 - 1 + i) % 12 + 1
        out.append((f"{y:04d}-{m:02d}", counts.get(f"{y:04d}-{m:02d}", 0)))
    return out


def bar_chart(series: list[tuple[str, int]], width: int = 860, height: int = 220) -> dict[str, Any]:
    """Geometry of the growth chart: a bar per period and the cumulative line."""
    series = fill_months(series)
    pad_l, pad_b, pad_t = 56, 28, 12
    if not series:
        return {"width": width, "height": height, "bars": [], "line": "", "ticks": [], "yticks": []}
    n = len(series)
    inner_w, inner_h = width - pad_l - 10, height - pad_b - pad_t
    step = inner_w / n
    top = max(c for _, c in series) or 1
    total = sum(c for _, c in series) or 1
    bars, pts, cum = [], [], 0
    for i, (label, count) in enumerate(series):
        h = inner_h * count / top
        x = pad_l + i * step
        bars.append({"x": round(x + step * 0.1, 1), "y": round(pad_t + inner_h - h, 1),
                     "w": round(max(step * 0.8, 1), 1), "h": round(h, 1), "label": label, "count": count})
        cum += count
        pts.append(f"{x + step / 2:.1f},{pad_t + inner_h - inner_h * cum / total:.1f}")
    every = max(1, n // 8)
    ticks = [{"x": round(pad_l + i * step + step / 2, 1), "label": series[i][0]} for i in range(0, n, every)]
    yticks = [{"y": round(pad_t + inner_h - inner_h * f, 1), "label": f"{round(top * f):,}"} for f in (0, 0.5, 1)]
    return {"width": width, "height": height, "bars": bars, "line": " ".join(pts), "ticks": ticks,
            "yticks": yticks, "base": pad_t + inner_h, "left": pad_l, "total": cum}


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def timeline(groups: list[dict[str, Any]], now: datetime, width: int = 860) -> dict[str, Any]:
    """Geometry of the facts timeline: per attribute a row of bars valid_from -> valid_to (open = now)."""
    starts = [f["valid_from"] for g in groups for f in g["facts"] if f["valid_from"]]
    if not starts:
        return {"rows": [], "width": width}
    t0 = min(starts)
    ends = [*starts, *[f["valid_to"] for g in groups for f in g["facts"] if f["valid_to"]]]
    # the axis ends a little after the last change, not at today: years of unchanged facts would squeeze the
    # history into a corner; bars still open run to the right edge (and the slider's end means "now")
    last = max(ends)
    t1 = min(now, last + max((last - t0) * 0.12, timedelta(days=45))) if last < now else last
    span = max((t1 - t0).total_seconds(), 86400.0)
    t0 = t0.astimezone(UTC)
    left, right = 190, width - 20

    def x(t: datetime) -> float:
        return round(left + (right - left) * (t - t0).total_seconds() / span, 1)

    rows = []
    for g in groups:
        bars = []
        for f in g["facts"]:
            start = f["valid_from"] or t0
            end = f["valid_to"] or t1
            bars.append({**f, "x": x(start), "w": round(max(x(end) - x(start), 3), 1),
                         "from_ms": _ms(start), "to_ms": _ms(f["valid_to"]) if f["valid_to"] else ""})
        rows.append({**g, "bars": bars})
    ticks = []
    quarterly = span < 3 * 365 * 86400
    for year in range(t0.year, t1.year + 2):
        for month in ((1, 4, 7, 10) if quarterly else (1,)):
            t = datetime(year, month, 1, tzinfo=UTC)
            if t0 <= t <= t1:
                ticks.append({"x": x(t), "label": f"{year}-{month:02d}" if quarterly else str(year)})
    return {"rows": rows, "width": width, "left": left, "right": right, "t0_ms": _ms(t0), "t1_ms": _ms(t1),
            "ticks": ticks, "x_now": x(min(now, t1))}
