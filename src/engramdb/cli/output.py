"""Rendering for the CLI: rich tables for people, JSON for scripts (--json)."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
err_console = Console(stderr=True)


def model_spinner(name: str) -> AbstractContextManager[object]:
    """A spinner on stderr while a model loads (seconds): never in stdout, so --json output stays clean."""
    return err_console.status(f"loading the embedding model {name}…", spinner="dots")


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
    """Hits as a table that stays readable at 80 columns: the text wraps and keeps most of the width;
    on narrow terminals the signals column shows only the two main signals (all of them with --json)."""
    wide = console.width >= 120
    table = Table(title=title, show_lines=not wide, pad_edge=False)
    table.add_column("#", no_wrap=True, justify="right")
    table.add_column("score", no_wrap=True)
    table.add_column("when", no_wrap=True, min_width=10)
    table.add_column("speaker", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("text", ratio=1, min_width=24, overflow="fold")
    table.add_column("signals", max_width=None if wide else 12, overflow="fold")
    for i, res in enumerate(results, 1):
        m = res.memory
        sig = {k: v for k, v in res.signals.items() if not k.endswith("_rank")}
        if not wide:
            sig = {k: v for k, v in sig.items() if k in ("bm25", "dense")} or dict(list(sig.items())[:2])
        sig_text = (" " if wide else "\n").join(f"{k}={v:.3g}" for k, v in sig.items())
        when = m.occurred_at.strftime("%Y-%m-%d") if m.occurred_at else ""
        # Text, not a markup string: memory text is the user's and may hold brackets
        text = Text(short(m.text, 160)) if res.current else Text("(past) ", style="dim") + Text(short(m.text, 150))
        table.add_row(str(i), f"{res.score:.3f}", when, m.speaker or "", text, sig_text)
    return table
