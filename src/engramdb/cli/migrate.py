"""`engramdb migrate --from sqlite:///a.db --to postgresql://...`: move a store between backends, losslessly."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)


def _open(location: str, flag: str):  # a Store
    from ..api.memory import open_store
    from ..errors import ConfigError

    if "://" in location:
        if not location.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ConfigError(f"{flag}: use sqlite:///path, postgresql://... or a SQLite file path")
        return open_store(None, location)[0]
    return open_store(location, None)[0]


def migrate(
    source: Annotated[str, typer.Option("--from", help="Source: sqlite:///a.db, a .db path, or postgresql://...")],
    target: Annotated[
        str, typer.Option("--to", help="Destination (must be empty): postgresql://... or sqlite:///b.db")
    ],
    batch: Annotated[int, typer.Option(help="Records per read batch.")] = 500,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare both stores afterwards.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Copy every memory, vector, index text, history entry, link and meta key into an empty store."""
    from ..errors import ValidationError
    from ..store.base import Filters
    from ..store.migrate import copy_store
    from .app import progress_bar
    from .output import console, emit_json, err_console

    if not 1 <= batch <= 10_000:
        raise ValidationError("--batch must be between 1 and 10000")
    if source == target:
        raise ValidationError("--from and --to are the same store")
    src = _open(source, "--from")
    try:
        dst = _open(target, "--to")
        try:
            total = src.count(Filters(include_deleted=True, include_expired=True))
            with progress_bar("migrating", enabled=not as_json) as bar:
                task = bar.add_task("migrating", total=total)
                report = copy_store(
                    src, dst, batch=batch, verify=verify, progress=lambda done, _t: bar.update(task, completed=done)
                )
        finally:
            dst.close()
    finally:
        src.close()
    if as_json:
        emit_json(report)
    else:
        console.print(
            f"copied {report.records} memories, {report.vectors} vectors, {report.history_entries} history entries, "
            f"{report.links} links, meta {', '.join(report.meta_keys) or '-'} in {report.seconds:.1f}s"
        )
        if report.verified is not None:
            console.print("verified: identical" if report.verified else "[red]verification found differences[/red]")
    for line in report.mismatches:
        err_console.print(f"mismatch: {line}")
    if report.verified is False:
        raise typer.Exit(1)
