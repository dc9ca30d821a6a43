"""`engramdb`: the command line. Library and CLI in parity: every command is a
thin shell over a `Memory` method, and every command takes `--json`.

Errors from bad input print one line and exit with code 2; nothing is changed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from ..errors import EngramError, ValidationError
from .output import console, emit_json, err_console, records_table, results_table


class _EngramGroup(TyperGroup):
    """Turns expected errors into one line on stderr and exit code 2, for every command and sub-group.

    Here rather than only in `main()` so that the same holds when the app is driven in-process (CliRunner)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_EngramGroup,
    name="engramdb",
    help="EngramDB: long-term memory for LLM agents, in one SQLite file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", envvar="ENGRAMDB_PATH", help="SQLite file (or set ENGRAMDB_PATH). Default: ./engram.db"),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="ENGRAMDB_URL", help="Database URL instead of --db: sqlite:///x.db or postgresql://..."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
UserOpt = Annotated[str | None, typer.Option("--user", "-u", help="user_id scope")]
AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="agent_id scope")]
SessionOpt = Annotated[str | None, typer.Option("--session", "-s", help="session_id scope")]


def open_memory(db: str | None, url: str | None = None, *, create: bool = False, **kwargs: Any):  # noqa: ANN201
    """Open the store. Only commands that write new memories (`create=True`) may create a SQLite file:
    a typo in --db for `search` or `stats` must be an error, not a new empty store."""
    from ..api.memory import Memory
    from ..config import default_path
    from ..embed import on_model_load
    from .output import model_spinner

    on_model_load(model_spinner)  # commands that embed show a spinner while the model loads; the rest load none
    if not create and not url and not os.environ.get("ENGRAMDB_URL"):
        path = db or default_path()
        if path != ":memory:" and not os.path.exists(path):
            raise ValidationError(f"no EngramDB store at {path} (create one with `engramdb add` or `engramdb import`)")
    return Memory(db if not url else None, url=url, **kwargs)


def parse_json_opt(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{name}: not valid JSON ({exc.msg} at column {exc.colno})") from exc


def progress_bar(description: str, enabled: bool = True) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled,
        transient=True,
    )


def read_input_file(path: str) -> str:
    """Read a file (or '-' for stdin) as strict UTF-8."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path}: invalid UTF-8 at byte {exc.start}") from exc


@app.command()
def add(
    text: Annotated[str | None, typer.Argument(help="Text to remember (or use --file).")] = None,
    file: Annotated[
        str | None, typer.Option("--file", "-f", help="JSON file of messages/turns, or '-' for stdin.")
    ] = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    speaker: Annotated[str | None, typer.Option(help="Who said it.")] = None,
    timestamp: Annotated[str | None, typer.Option(help="When it happened, ISO-8601 with time zone.")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object of metadata.")] = None,
    kind: Annotated[str, typer.Option(help="episode, fact, profile, summary, procedure, ...")] = "episode",
    source_ref: Annotated[str | None, typer.Option(help="Your reference for the source (e.g. a dialogue id).")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remember text, or a JSON list of chat messages / speaker turns."""
    if (text is None) == (file is None):
        raise ValidationError("give either TEXT or --file")
    meta = parse_json_opt(metadata, "--metadata")
    if file is not None:
        messages = parse_json_opt(read_input_file(file), file)
    else:
        messages = {"text": text, "speaker": speaker} if speaker else text
    with open_memory(db, url, create=True) as mem:
        recs = mem.add(
            messages,
            user_id=user,
            agent_id=agent,
            session_id=session,
            timestamp=timestamp,
            metadata=meta,
            kind=kind,
            source_ref=source_ref,
        )
    if as_json:
        emit_json(recs)
    else:
        console.print(f"added {len(recs)} memor{'y' if len(recs) == 1 else 'ies'}: " + ", ".join(r.id for r in recs))


@app.command()
def search(
    query: str,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 10,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(help="occurred_at >= this (ISO-8601)")] = None,
    until: Annotated[str | None, typer.Option(help="occurred_at < this (ISO-8601)")] = None,
    where: Annotated[
        str | None, typer.Option(help='Metadata equality filter as JSON, e.g. \'{"topic": "work"}\'')
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="What was true then (ISO-8601).")] = None,
    order: Annotated[str, typer.Option(help="relevance, time or -time.")] = "relevance",
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid (keyword + vector) search."""
    filters = parse_json_opt(where, "--where")
    with open_memory(db, url) as mem:
        results = mem.search(
            query,
            user_id=user,
            agent_id=agent,
            session_id=session,
            limit=limit,
            kinds=kind,
            since=since,
            until=until,
            filters=filters,
            as_of=as_of,
            order=order,
        )
    if as_json:
        emit_json(results)
    else:
        console.print(results_table(results, title=f"search: {query}"))


@app.command("context")
def context_cmd(
    query: str,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    max_tokens: Annotated[int, typer.Option(help="Token budget.")] = 1000,
    as_of: Annotated[str | None, typer.Option("--as-of", help="What was true then (ISO-8601).")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a prompt-ready context block for a query."""
    with open_memory(db, url) as mem:
        block = mem.context(query, user_id=user, agent_id=agent, session_id=session, max_tokens=max_tokens, as_of=as_of)
    if as_json:
        emit_json(block)
    else:
        console.print(block.text or "(no relevant memories)", markup=False, highlight=False)
        err_console.print(f"[dim]{block.tokens}/{block.max_tokens} tokens ({block.tokenizer})[/dim]")


@app.command("list")
def list_cmd(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    offset: int = 0,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List memories, oldest first, a page at a time."""
    with open_memory(db, url) as mem:
        page = mem.list(user_id=user, agent_id=agent, session_id=session, kinds=kind, limit=limit, offset=offset)
    if as_json:
        emit_json(page)
    else:
        console.print(
            records_table(page.items, title=f"{page.offset + 1}-{page.offset + len(page.items)} of {page.total}")
        )
        if page.next_offset is not None:
            err_console.print(f"[dim]next page: --offset {page.next_offset}[/dim]")


@app.command()
def show(memory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show one memory in full."""
    with open_memory(db, url) as mem:
        rec = mem.get(memory_id)
    if as_json:
        emit_json(rec)
    else:
        for key, value in rec.model_dump().items():
            console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


@app.command()
def update(
    memory_id: str,
    text: Annotated[str | None, typer.Option(help="New text (re-embedded).")] = None,
    metadata: Annotated[str | None, typer.Option(help="New metadata (JSON object).")] = None,
    importance: Annotated[float | None, typer.Option(help="0..1")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a memory; the old version is kept in history."""
    with open_memory(db, url) as mem:
        rec = mem.update(memory_id, text=text, metadata=parse_json_opt(metadata, "--metadata"), importance=importance)
    if as_json:
        emit_json(rec)
    else:
        console.print(f"updated {rec.id} (version {rec.version})")


@app.command()
def delete(memory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a memory (soft: history keeps it)."""
    with open_memory(db, url) as mem:
        mem.delete(memory_id)
    if as_json:
        emit_json({"deleted": memory_id})
    else:
        console.print(f"deleted {memory_id}")


@app.command()
def history(memory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Every change to a memory: what it was, what it became, and when."""
    from rich.table import Table

    with open_memory(db, url) as mem:
        entries = mem.history(memory_id)
    if as_json:
        emit_json(entries)
        return
    table = Table(title=f"history of {memory_id}")
    for col in ("version", "action", "at", "text"):
        table.add_column(col)
    for h in entries:
        state = h.after or h.before or {}
        table.add_row(str(h.version), h.action, h.at.strftime("%Y-%m-%d %H:%M:%S"), str(state.get("text", ""))[:80])
    console.print(table)


@app.command("export")
def export_cmd(
    path: Annotated[str, typer.Argument(help="Output JSONL file ('-' for stdout).")],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    no_embeddings: Annotated[bool, typer.Option("--no-embeddings", help="Leave vectors out (smaller file).")] = False,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export memories (with history and embeddings) as JSONL."""
    with open_memory(db, url) as mem:
        out = sys.stdout if path == "-" else path
        n = mem.export(out, user_id=user, agent_id=agent, session_id=session, include_embeddings=not no_embeddings)
    if as_json and path != "-":
        emit_json({"exported": n, "path": path})
    elif path != "-":
        console.print(f"exported {n} memories to {path}")


@app.command("import")
def import_cmd(
    path: Annotated[str, typer.Argument(help="JSONL file written by export ('-' for stdin).")],
    recompute_embeddings: Annotated[
        bool, typer.Option("--recompute-embeddings", help="Re-embed instead of using stored vectors.")
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip invalid lines instead of importing nothing.")
    ] = False,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import JSONL. Any bad line aborts the whole import unless --skip-bad."""
    src = sys.stdin.buffer if path == "-" else path
    if path != "-" and not os.path.exists(path):
        raise ValidationError(f"no such file: {path}")
    with open_memory(db, url, create=True) as mem:
        report = mem.import_(src, recompute_embeddings=recompute_embeddings, skip_bad=skip_bad)
    if as_json:
        emit_json(report)
    else:
        console.print(f"imported {report.imported}, skipped {report.skipped}")
        for e in report.errors[:20]:
            err_console.print(f"  skipped {e}")


@app.command()
def stats(db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Counts, sizes, model and schema of the store."""
    with open_memory(db, url) as mem:
        st = mem.stats()
    if as_json:
        emit_json(st)
    else:
        for key, value in st.items():
            console.print(f"[bold]{key}[/bold]: {value}", highlight=False)


@app.command()
def reindex(
    model: Annotated[
        str | None, typer.Option(help="Embedding model to switch to (default: the configured one).")
    ] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-embed every memory (after changing the embedding model)."""
    with open_memory(db, url, embedder=model, allow_model_change=True) as mem:
        with progress_bar("re-embedding", enabled=not as_json) as bar:
            task = bar.add_task("reindex", total=None)
            n = mem.reindex(progress=lambda done, total: bar.update(task, completed=done, total=total))
        name = mem.embedder.name
    if as_json:
        emit_json({"reindexed": n, "model": name})
    else:
        console.print(f"re-embedded {n} memories with {name}")


@app.command()
def demo(
    db: Annotated[
        str | None, typer.Option("--db", help="Where to write the demo store (default: a temp file).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest the bundled sample conversation, then search it and build a context block."""
    from .demo import run_demo

    run_demo(db, as_json=as_json)


def _register_extensions() -> None:
    """Sub-command groups that live in their own modules (bench, lifecycle, server, ...)."""
    from importlib import import_module

    for module in ("bench", "lifecycle", "procedural", "serve", "tenants", "migrate", "models", "ui"):
        try:
            mod = import_module(f"engramdb.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"engramdb.cli.{module}":
                continue
            raise
        mod.register(app)


# Under `python -m engramdb.cli.main` this file runs as __main__ (and as __mp_main__ in multiprocessing children,
# e.g. `serve --workers`), a second copy of the module: the extensions import `engramdb.cli.main`, so they are
# registered there (below) instead of on this copy.
if __name__ not in ("__main__", "__mp_main__"):
    _register_extensions()


def main() -> None:
    """Entry point: run the app, turning expected errors into one line and exit code 2."""
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:  # non-standalone click returns the code of an Exit instead of raising
            sys.exit(rc)
    except EngramError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback
        # typer vendors click: usage errors (bad option values...) are its ClickException, exit code 2.
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("ENGRAMDB_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} (set ENGRAMDB_DEBUG=1 for details)")
        sys.exit(1)


if __name__ == "__main__":
    from engramdb.cli.main import main as _main

    _main()
