"""`engramdb`: the command line. Library and CLI in parity: every command is a
thin shell over a `Memory` method, and every command takes `--json`.

Errors from bad input print one line and exit with code 2; nothing is changed.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape

from ..api.params import (
    DEFAULT_CONTEXT_LIMIT,
    DEFAULT_MAX_TOKENS,
    DEFAULT_SEARCH_LIMIT,
    AddOptions,
    ContextQuery,
    SearchQuery,
    UpdateRequest,
    field_help,
)
from ..errors import EngramError, ValidationError
from . import app as _app_module
from .app import (
    AgentOpt,
    DbOpt,
    JsonOpt,
    SessionOpt,
    UrlOpt,
    UserOpt,
    app,
    open_memory,
    parse_json_opt,
    progress_bar,
    read_input_file,
)
from .output import console, emit_json, err_console, records_table, results_table


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
    timestamp: Annotated[str | None, typer.Option(help=field_help(AddOptions, "timestamp"))] = None,
    metadata: Annotated[str | None, typer.Option(help=field_help(AddOptions, "metadata"))] = None,
    kind: Annotated[str, typer.Option(help=field_help(AddOptions, "kind"))] = "episode",
    source_ref: Annotated[str | None, typer.Option(help=field_help(AddOptions, "source_ref"))] = None,
    importance: Annotated[float | None, typer.Option(help=field_help(AddOptions, "importance"))] = None,
    expires_at: Annotated[str | None, typer.Option(help=field_help(AddOptions, "expires_at"))] = None,
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
            importance=importance,
            expires_at=expires_at,
        )
    if as_json:
        emit_json(recs)
    else:
        console.print(f"added {len(recs)} memor{'y' if len(recs) == 1 else 'ies'}: " + ", ".join(r.id for r in recs))


# Option help and defaults come from the operations' models (api/params.py), as over REST and MCP; the values
# are checked by Memory, so a bad one gets the same message on every interface (and exit code 2 here).
@app.command()
def search(
    query: Annotated[str, typer.Argument(help=field_help(SearchQuery, "query"))],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help=field_help(SearchQuery, "limit"))] = DEFAULT_SEARCH_LIMIT,
    kind: Annotated[list[str] | None, typer.Option(help=field_help(SearchQuery, "kinds") + " Repeatable.")] = None,
    since: Annotated[str | None, typer.Option(help=field_help(SearchQuery, "since"))] = None,
    until: Annotated[str | None, typer.Option(help=field_help(SearchQuery, "until"))] = None,
    where: Annotated[
        str | None, typer.Option(help=field_help(SearchQuery, "filters") + " As JSON.")
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help=field_help(SearchQuery, "as_of"))] = None,
    order: Annotated[str, typer.Option(help=field_help(SearchQuery, "order"))] = "relevance",
    mode: Annotated[str, typer.Option(help=field_help(SearchQuery, "mode"))] = "default",
    threshold: Annotated[float | None, typer.Option(help=field_help(SearchQuery, "threshold"))] = None,
    audience: Annotated[str | None, typer.Option(help=field_help(SearchQuery, "audience"))] = None,
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
            mode=mode,
            threshold=threshold,
            audience=audience,
        )
    if as_json:
        emit_json(results)
    else:
        console.print(results_table(results, title=f"search: {query}"))


@app.command("context")
def context_cmd(
    query: Annotated[str, typer.Argument(help=field_help(ContextQuery, "query"))],
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    max_tokens: Annotated[int, typer.Option(help=field_help(ContextQuery, "max_tokens"))] = DEFAULT_MAX_TOKENS,
    limit: Annotated[int, typer.Option("--limit", "-n", help=field_help(ContextQuery, "limit"))] = (
        DEFAULT_CONTEXT_LIMIT
    ),
    since: Annotated[str | None, typer.Option(help=field_help(ContextQuery, "since"))] = None,
    until: Annotated[str | None, typer.Option(help=field_help(ContextQuery, "until"))] = None,
    where: Annotated[str | None, typer.Option(help=field_help(ContextQuery, "filters") + " As JSON.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help=field_help(ContextQuery, "as_of"))] = None,
    threshold: Annotated[float | None, typer.Option(help=field_help(ContextQuery, "threshold"))] = None,
    audience: Annotated[str | None, typer.Option(help=field_help(ContextQuery, "audience"))] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a prompt-ready context block for a query."""
    filters = parse_json_opt(where, "--where")
    with open_memory(db, url) as mem:
        block = mem.context(query, user_id=user, agent_id=agent, session_id=session, max_tokens=max_tokens,
                            limit=limit, since=since, until=until, filters=filters, as_of=as_of, threshold=threshold,
                            audience=audience)
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
        # "21-22 of 22"; a page past the end says so instead of "21-20"
        shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else f"none from {page.offset + 1}"
        console.print(records_table(page.items, title=f"{shown} of {page.total}"))
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
    expires_at: Annotated[str | None, typer.Option(help=field_help(UpdateRequest, "expires_at"))] = None,
    occurred_at: Annotated[str | None, typer.Option(help=field_help(UpdateRequest, "occurred_at"))] = None,
    valid_to: Annotated[str | None, typer.Option(help=field_help(UpdateRequest, "valid_to"))] = None,
    clear: Annotated[list[str] | None, typer.Option(help=field_help(UpdateRequest, "clear") + " Repeatable.")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a memory; the old version is kept in history."""
    with open_memory(db, url) as mem:
        rec = mem.update(memory_id, text=text, metadata=parse_json_opt(metadata, "--metadata"), importance=importance,
                         expires_at=expires_at, occurred_at=occurred_at, valid_to=valid_to, clear=clear)
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
def history(
    memory_id: str,
    limit: Annotated[int | None, typer.Option(help="Only the newest this many changes.")] = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change to a memory: what it was, what it became, and when."""
    from rich.table import Table

    with open_memory(db, url) as mem:
        entries = mem.history(memory_id, limit=limit)
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


@app.command()
def links(memory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Typed links touching a memory, both ways (supersedes, summarizes, related, ...)."""
    with open_memory(db, url) as mem:
        got = mem.links(memory_id)
    if as_json:
        emit_json(got)
        return
    for lk in got:
        reason = lk["reason"] or ""
        console.print(f"{lk['src_id']} --{lk['type']}--> {lk['dst_id']}  [dim]{reason}[/dim]", highlight=False)


@app.command()
def derived(memory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Memories derived from this one: facts, summaries and profiles that name it as a source."""
    with open_memory(db, url) as mem:
        got = mem.derived(memory_id)
    if as_json:
        emit_json(got)
    else:
        console.print(records_table(got, title=f"derived from {memory_id}"))


@app.command()
def scopes(
    field: Annotated[str, typer.Argument(help="user_id, agent_id or session_id.")] = "user_id",
    user: UserOpt = None,
    agent: AgentOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, busiest first.")] = 100,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How many users (agents, sessions) hold live memories, and the busiest with their counts."""
    with open_memory(db, url) as mem:
        total, top = mem.scopes(field, user_id=user, agent_id=agent, limit=limit)
    if as_json:
        emit_json({"total": total, "top": [{"value": v, "memories": n} for v, n in top]})
        return
    console.print(f"{total} distinct {field}", highlight=False)
    for v, n in top:
        console.print(f"{n:>8}  {v}", highlight=False)


@app.command()
def growth(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    period: Annotated[str, typer.Option(help="month or day.")] = "month",
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Live memories per month (or day) of when they happened, oldest first."""
    with open_memory(db, url) as mem:
        rows = mem.growth(user_id=user, agent_id=agent, session_id=session, period=period)
    if as_json:
        emit_json([{"period": p, "memories": n} for p, n in rows])
        return
    for p, n in rows:
        console.print(f"{p}  {n}", highlight=False)


@app.command()
def erase(
    memory_ids: Annotated[list[str] | None, typer.Argument(help="Memory ids to erase (or use a scope).")] = None,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Hard-delete exactly these memories (or a scope's), with history and vectors. Irreversible; `purge` also
    erases what was derived from a user's memories elsewhere."""
    if not memory_ids and not (user or agent or session):
        raise ValidationError("erase needs memory ids or a scope (--user, --agent, --session)")
    if not yes:
        if as_json:
            raise ValidationError("erase is irreversible: pass --yes with --json")
        typer.confirm("Erase these memories for good?", abort=True)
    with open_memory(db, url) as mem:
        n = mem.erase(memory_ids or None, user_id=user, agent_id=agent, session_id=session)
    if as_json:
        emit_json({"erased": n})
    else:
        console.print(f"erased {n} memories")


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
    """Sub-command groups that live in their own modules (bench, lifecycle, server, ...), registered once even
    when this file is loaded twice (as __main__ under `python -m engramdb.cli.main`, and by name)."""
    if getattr(_app_module, "registered", False):
        return
    from . import bench, lifecycle, migrate, models, privacy, procedural, serve, tenants, ui

    for mod in (bench, lifecycle, procedural, serve, tenants, migrate, models, privacy, ui):
        mod.register(app)
    _app_module.registered = True


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
    except Exception as exc:  # the CLI never shows a traceback
        # typer vendors click: usage errors (bad option values...) are its ClickException, exit code 2.
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        if os.environ.get("ENGRAMDB_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc} (set ENGRAMDB_DEBUG=1 for details)")
        sys.exit(1)


if __name__ == "__main__":
    main()
