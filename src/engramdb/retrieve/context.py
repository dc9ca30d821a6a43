"""Assemble a prompt-ready block from search results, within a token budget.

Selection is by relevance (best first, until the budget is spent); presentation
is chronological, with dates and speakers, because readers (and LLMs) reason
about events in time order.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..model import SearchResult
from .tokens import TokenCounter

HEADER = "Relevant memories (oldest first):"


class ContextBlock(BaseModel):
    text: str
    tokens: int
    max_tokens: int
    tokenizer: str
    memory_ids: list[str]
    truncated: bool  # some relevant memories did not fit

    def __str__(self) -> str:
        return self.text


def format_line(res: SearchResult) -> str:
    m = res.memory
    when = m.occurred_at.strftime("%Y-%m-%d %H:%M") if m.occurred_at else "undated"
    who = f"{m.speaker}: " if m.speaker else ""
    tag = "" if m.kind == "episode" else f"({m.kind}) "
    if m.valid_to is not None:
        tag += f"(until {m.valid_to:%Y-%m-%d}) "
    return f"[{when}] {tag}{who}{m.text}"


def assemble(results: list[SearchResult], counter: TokenCounter, max_tokens: int) -> ContextBlock:
    used = counter.count(HEADER) + 1
    chosen: list[tuple[SearchResult, str]] = []
    truncated = False
    for res in results:
        line = format_line(res)
        cost = counter.count(line) + 1  # +1 for the newline
        if used + cost > max_tokens:
            truncated = True
            continue  # a shorter, less relevant memory may still fit
        chosen.append((res, line))
        used += cost
    chosen.sort(key=lambda p: (p[0].memory.occurred_at is None, p[0].memory.occurred_at or 0, p[0].memory.id))
    text = "\n".join([HEADER, *(line for _, line in chosen)]) if chosen else ""
    return ContextBlock(
        text=text,
        tokens=counter.count(text) if text else 0,
        max_tokens=max_tokens,
        tokenizer=counter.name,
        memory_ids=[r.memory.id for r, _ in chosen],
        truncated=truncated,
    )
