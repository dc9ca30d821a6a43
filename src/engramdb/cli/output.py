"""Rendering for the CLI: rich tables for people, JSON for scripts (--json)."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return json.loads(obj.model_dump_json())
    if isinstance(obj, list):
        return [to_jsonable(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2, default=str) + "\n")


def short(text: str, n: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def records_table(records: list, title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("id", "when", "scope", "kind", "speaker", "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis", no_wrap=col != "text")
    for r in records:
        scope = "/".join(x for x in (r.user_id, r.agent_id, r.session_id) if x)
        when = r.occurred_at.strftime("%Y-%m-%d %H:%M") if r.occurred_at else ""
        table.add_row(r.id, when, scope, r.kind, r.speaker or "", short(r.text))
    return table


def results_table(results: list, title: str | None = None) -> Table:
    table = Table(title=title)
    for col in ("#", "score", "when", "speaker", "text", "signals"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis", no_wrap=col not in ("text",))
    for i, res in enumerate(results, 1):
        m = res.memory
        sig = " ".join(f"{k}={v:.3g}" for k, v in res.signals.items() if not k.endswith("_rank"))
        when = m.occurred_at.strftime("%Y-%m-%d") if m.occurred_at else ""
        table.add_row(str(i), f"{res.score:.4f}", when, m.speaker or "", short(m.text, 100), sig)
    return table
