"""The last steps of ranking, after the retriever's candidates are scored (retrieve/search.py):

- time words in the query lift memories that happened in the named time, or around an event of the
  person's own fact history ("before she moved");
- an enabled decay policy down-ranks stale memories;
- a derived memory never outranks its own source turn;
- derived memories (facts, summaries) take at most a share of a page;
- `order="time"` returns the chosen results in time order.

The current-truth order (retrieve/currency.py) runs between the source order and the derived-memory quota;
`retrieve.pipeline.Retrieval` calls these in sequence.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ..errors import ConfigError, ValidationError
from ..lifecycle.forget import DecayPolicy, applies, decay_score
from ..model import FACT, MemoryRecord, SearchResult
from ..store.base import Filters, Store
from ..temporal import query_range

DERIVED = ("fact", "summary", "profile")
DERIVED_MAX_SHARE = 0.4  # measured in docs/lifecycle.md ("Derived memories in search")
TIME_BOOST = 0.5
ORDERS = ("relevance", "time", "-time")
EVENT_RE = re.compile(
    r"\b(before|after|since)\s+(?:(?:she|he|they|i|we|you|[A-Z][\w-]*)\s+)?(moved|relocated|changed jobs?|"
    r"switched jobs?|started (?:working|(?:her|his|their|my|the) new job)|got (?:a |the )?(?:new )?job|quit|"
    r"left (?:her|his|their|my) job)",
    re.I,
)

Span = tuple[datetime | None, datetime | None]


def fetch_size(limit: int) -> int:
    """How many candidates to retrieve for `limit` results: the derived-memory quota and the time lift re-rank
    a wider list."""
    return min(1000, max(limit * 3, limit + 20))


def retrieval_query(query: str) -> str:
    """The query without an event clause ("before she moved"): that clause becomes a time span, and its
    words would otherwise pull in the moving episodes themselves."""
    stripped = EVENT_RE.sub(" ", query).strip()
    return stripped if len(stripped) >= 3 else query


def query_span(store: Store, query: str, f: Filters, at: datetime) -> Span | None:
    """The time a query names: a date expression ("in May 2023", "last year"), or an event of the
    user's own fact history ("before she moved" -> before the last change of lives_in)."""
    m = EVENT_RE.search(query)
    if m:
        attr = "lives_in" if m.group(2).lower().startswith(("moved", "relocated")) else "works_at"
        flt = Filters(user_id=f.user_id, agent_id=f.agent_id, kinds=[FACT], metadata={"attribute": attr})
        closed = [r.valid_to for r in store.list(flt, limit=1000) if r.valid_to]
        if closed:
            t = max(closed)
            return (None, t) if m.group(1).lower() == "before" else (t, None)
    span = query_range(query, at)
    return (span.start, span.end) if span is not None else None


def check_order(order: object) -> str:
    if order not in ORDERS:
        raise ValidationError("order must be relevance, time or -time")
    return str(order)


def derived_share(lifecycle: dict) -> float:
    share = float(lifecycle.get("derived_max_share", DERIVED_MAX_SHARE))
    if not 0 <= share <= 1:
        raise ConfigError("lifecycle.derived_max_share must be between 0 and 1")
    return share


def lift_and_decay(
    results: list[SearchResult], span: Span | None, boost: float, policy: DecayPolicy, at: datetime
) -> list[SearchResult]:
    """The time lift and the decay penalty, both additive and scaled to the candidates' score spread (scores
    may end <= 0); re-sorted. Unchanged when neither applies."""
    decay = policy.enabled and policy.rank_weight
    if span is None and not decay:
        return results
    spread = (max(r.score for r in results) - min(r.score for r in results)) or 1.0
    rescored = []
    for r in results:
        score = r.score
        sig = dict(r.signals)
        if span is not None and in_span(r.memory, span):
            score += boost * spread
            sig["time"] = boost * spread
        if decay and applies(r.memory, policy):
            penalty = policy.rank_weight * (1 - decay_score(r.memory, policy, at)) * spread
            score -= penalty
            sig["decay"] = -penalty
        rescored.append(r.updated(score=score, signals=sig))
    return sorted(rescored, key=lambda r: -r.score)


def sources_first(results: list[SearchResult]) -> list[SearchResult]:
    """A derived memory never outranks its own source turn: it moves to just after the source (the turn is
    the evidence; the fact or summary is the reading of it)."""
    pos = {r.memory.id: i for i, r in enumerate(results)}
    after: dict[str, list[SearchResult]] = {}
    out: list[SearchResult] = []
    for i, r in enumerate(results):
        later = [pos[s] for s in r.memory.source_ids if pos.get(s, -1) > i] if r.memory.kind in DERIVED else []
        if later:
            after.setdefault(results[min(later)].memory.id, []).append(r)
            continue
        out.append(r)
        out.extend(after.pop(r.memory.id, []))
    return out


def cap_derived(results: list[SearchResult], limit: int, share: float) -> list[SearchResult]:
    """Derived memories keep their rank but take at most `share` of a page of `limit`, so they cannot crowd
    out the episodes they came from; those over the quota are used only if episodes run out."""
    if share >= 1.0:
        return results
    cap = int(limit * share) if limit * share >= 1 else (1 if share > 0 else 0)
    out: list[SearchResult] = []
    held: list[SearchResult] = []
    n_derived = 0
    for r in results:
        if r.memory.kind in DERIVED:
            if n_derived >= cap:
                held.append(r)
                continue
            n_derived += 1
        out.append(r)
    return out + held


def time_order(results: list[SearchResult], order: str) -> list[SearchResult]:
    """`order="time"` (or "-time"): the chosen results by occurred_at (SORT-style questions)."""
    if order == "relevance":
        return results
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(results, key=lambda r: r.memory.occurred_at or far, reverse=order == "-time")


def in_span(rec: MemoryRecord, span: Span) -> bool:
    lo, hi = span
    times = [rec.occurred_at] if rec.occurred_at else []
    for ref in (rec.metadata.get("time_refs") or []) if isinstance(rec.metadata, dict) else []:
        try:
            times.append(datetime.fromisoformat(ref["start"]))
        except (KeyError, TypeError, ValueError):
            continue
    return any((lo is None or t >= lo) and (hi is None or t < hi) for t in times)
