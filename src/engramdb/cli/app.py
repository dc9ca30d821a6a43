"""The `engramdb` typer app and what every command shares: the options, opening the store, JSON options,
progress bars. The commands live in main.py and the modules beside it; each imports this module, never
main.py, so the CLI has no import cycle.

Global options: `engramdb --url postgresql://... facts` and `engramdb --db x.db search ...` set the store
for the command that follows, as if given after it.
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
from typer._click.core import Context as ClickContext  # typer vendors click
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click
from typer.core import TyperGroup

from ..errors import EngramError, ValidationError
from .output import err_console


def _usage_error(exc: UsageError) -> typer.Exit:
    """A malformed command line (unknown option or command, missing argument, invalid value): one line on
    stderr, where click prints a usage block or a box, and exit code 2."""
    msg = " ".join(exc.format_message().split())
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    err_console.print(f"[red]error:[/red] {escape(msg + hint)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


class _EngramGroup(TyperGroup):
    """Turns expected errors and usage errors into one line on stderr and exit code 2, for every command and
    sub-group.

    Here rather than only in `main()` so that the same holds when the app is driven in-process (CliRunner)."""

    def make_context(self, info_name: str | None, args: list[str], parent: ClickContext | None = None,
                     **extra: Any) -> ClickContext:  # fmt: skip
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise  # `engramdb` alone prints the help
        except UsageError as exc:  # `engramdb --bogus`
            raise _usage_error(exc) from None

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except NoArgsIsHelpError:
            raise  # a sub-group alone (`engramdb bench`) prints its help
        except UsageError as exc:  # a command's or sub-group's arguments
            raise _usage_error(exc) from None


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


def open_memory(db: str | None, url: str | None = None, *, create: bool = False, **kwargs: Any):
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


registered = False  # main.py has added the commands of the modules beside it


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: Annotated[
        str | None, typer.Option("--db", help="SQLite file for the command that follows (same as its own --db).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Database URL for the command that follows (same as its own --url)."),
    ] = None,
) -> None:
    """EngramDB: long-term memory for LLM agents, in one SQLite file."""
    # The commands read --db/--url from ENGRAMDB_PATH/ENGRAMDB_URL when not given: set those for this one
    # invocation (a command's own option still wins), and put them back after it.
    for name, value in (("ENGRAMDB_PATH", db), ("ENGRAMDB_URL", url)):
        if value is not None:
            before = os.environ.get(name)
            os.environ[name] = value
            ctx.call_on_close(lambda name=name, before=before: _restore_env(name, before))


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value

