"""Assemble a prompt-ready block from search results, within a token budget.

Selection is by relevance (best first, until the budget is spent); presentation
is chronological, with dates and speakers, because readers (and LLMs) reason
about events in time order.

For a question about the present, the block leads with the current facts that
answer it ("Sam lives in Seattle (since 2024-10-01; before: Boston)"). They are
budgeted first, so a tight budget drops supporting memories before them, and a
memory that is no longer true is never shown as current: superseded facts carry
"(until DATE)" and the turns that supported only them "(past)".
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from ..model import SearchResult
from .tokens import TokenCounter

HEADER = "Relevant memories (oldest first):"
FACTS_HEADER = "Current facts:"


class ContextBlock(BaseModel):
    text: str
    tokens: int
    max_tokens: int
    tokenizer: str
    memory_ids: list[str]
    truncated: bool  # some relevant memories did not fit
    fact_ids: list[str] = []  # the current facts the block leads with
    omitted_ids: list[str] = []  # relevant memories left out for the budget, best first

    def __str__(self) -> str:
        return self.text


def format_line(res: SearchResult) -> str:
    m = res.memory
    when = m.occurred_at.strftime("%Y-%m-%d %H:%M") if m.occurred_at else "undated"
    who = f"{m.speaker}: " if m.speaker else ""
    tag = "" if m.kind == "episode" else f"({m.kind}) "
    if m.valid_to is not None:
        tag += f"(until {m.valid_to:%Y-%m-%d}) "
    elif not res.current or res.signals.get("echo"):
        tag += "(past) "
    return f"[{when}] {tag}{who}{m.text}"


def fact_line(res: SearchResult, before: str | None = None) -> str:
    """"- Sam lives in Seattle (since 2024-10-01; before: Boston)"."""
    m = res.memory
    since = m.valid_from or m.occurred_at
    notes = [f"since {since:%Y-%m-%d}"] if since else []
    if before:
        notes.append(f"before: {before}")
    return f"- {m.text}" + (f" ({'; '.join(notes)})" if notes else "")


def assemble(results: list[SearchResult], counter: TokenCounter, max_tokens: int, *,
             facts: list[SearchResult] | None = None, before: dict[str, str] | None = None,
             facts_header: str = FACTS_HEADER) -> ContextBlock:
    """`facts`: current facts to lead with (budgeted first), under `facts_header`; `before`: fact id -> the
    value it replaced."""
    facts = facts or []
    before = before or {}
    used = 0
    fact_lines: list[tuple[SearchResult, str]] = []
    omitted: list[str] = []
    if facts:
        used = counter.count(facts_header) + 1
        for res in facts:
            line = fact_line(res, before.get(res.memory.id))
            cost = counter.count(line) + 1
            if used + cost > max_tokens:
                omitted.append(res.memory.id)
                continue
            fact_lines.append((res, line))
            used += cost
        if not fact_lines:
            used = 0
    shown = {r.memory.id for r, _ in fact_lines}
    used += counter.count(HEADER) + 2  # +1 for the blank line between the sections
    chosen: list[tuple[SearchResult, str]] = []
    for res in results:
        if res.memory.id in shown:
            continue
        line = format_line(res)
        cost = counter.count(line) + 1  # +1 for the newline
        if used + cost > max_tokens:
            omitted.append(res.memory.id)
            continue  # a shorter, less relevant memory may still fit
        chosen.append((res, line))
        used += cost
    chosen.sort(key=lambda p: (p[0].memory.occurred_at is None, p[0].memory.occurred_at or 0, p[0].memory.id))
    parts = []
    if fact_lines:
        parts.append("\n".join([facts_header, *(line for _, line in fact_lines)]))
    if chosen:
        parts.append("\n".join([HEADER, *(line for _, line in chosen)]))
    text = "\n\n".join(parts)
    return ContextBlock(
        text=text,
        tokens=counter.count(text) if text else 0,
        max_tokens=max_tokens,
        tokenizer=counter.name,
        memory_ids=[r.memory.id for r, _ in fact_lines] + [r.memory.id for r, _ in chosen],
        truncated=bool(omitted),
        fact_ids=[r.memory.id for r, _ in fact_lines],
        omitted_ids=omitted,
    )


def mark_said_before(results: list[SearchResult], lead: list[SearchResult], before: dict[str, str]
                     ) -> list[SearchResult]:
    """A memory naming a replaced value ("Boston is lovely") from before the current fact began reads as
    past in the context block, whoever said it."""
    olds = [(re.compile(rf"\b{re.escape(before[f.memory.id])}\b", re.I), f.memory.valid_from)
            for f in lead if f.memory.id in before and f.memory.valid_from]
    if not olds:
        return results
    out = []
    for r in results:
        m = r.memory
        if r.current and m.kind != "fact" and m.occurred_at and any(
                m.occurred_at < start and pat.search(m.text) for pat, start in olds):
            r = r.model_copy(update={"current": False})
        out.append(r)
    return out
