"""`engramdb trajectory add|show|learn`, `engramdb tips TASK`, `engramdb outcome TIP_ID... --result R`:
procedural memory from the command line. Every command takes --json."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import ValidationError
from .app import AgentOpt, DbOpt, JsonOpt, SessionOpt, UrlOpt, UserOpt, open_memory, parse_json_opt, read_input_file
from .output import console, emit_json, err_console, short

trajectory_app = typer.Typer(
    help="Agent trajectories: store them, show them, learn tips from them.", no_args_is_help=True
)


tip_app = typer.Typer(help="Stored tips: list them, show where one came from.", no_args_is_help=True)
StatusOpt = Annotated[str, typer.Option(help="active, retired or all.")]
TipTypeOpt = Annotated[str | None, typer.Option("--type", help="strategy, recovery, optimization or warning.")]


def register(app: typer.Typer) -> None:
    app.add_typer(trajectory_app, name="trajectory")
    app.add_typer(tip_app, name="tip")
    app.command("tips")(tips_cmd)
    app.command("outcome")(outcome_cmd)


def _tips_table(tips: list, title: str) -> Table:
    table = Table(title=title)
    for col in ("id", "type", "support", "served", "utility", "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis", no_wrap=col != "text")
    for t in tips:
        table.add_row(t.id or "", t.type, str(t.support), str(t.served), f"{t.utility:.2f}", short(t.text, 160))
    return table


@trajectory_app.command("add")
def add_cmd(
    file: Annotated[
        str,
        typer.Argument(
            help="JSON file ('-' = stdin): one trajectory, a list of them, or a chat "
            "message list (OpenAI / Anthropic) with --task/--outcome."
        ),
    ],
    task: Annotated[str | None, typer.Option(help="The task, when the data does not say it.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="success, failure or partial, when the data does not say it.")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help='JSON object, e.g. \'{"steps": 7, "cost": 0.02}\'')] = None,
    format: Annotated[str, typer.Option(help="auto, native, openai, anthropic or langchain.")] = "auto",
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store trajectories (all checked first: one bad trajectory writes nothing)."""
    from ..procedural.parse import parse_trajectory

    data = parse_json_opt(read_input_file(file), file)
    m = parse_json_opt(metrics, "--metrics")
    # a list of trajectories (dicts with steps/messages) vs one message list
    many = (
        isinstance(data, list)
        and data
        and all(isinstance(x, (dict, list)) and (isinstance(x, list) or "role" not in x) for x in data)
    )
    items = data if many else [data]
    trajs = []
    for i, item in enumerate(items):
        try:
            trajs.append(parse_trajectory(item, task=task, outcome=outcome, metrics=m, format=format))
        except ValidationError as exc:
            raise ValidationError(f"{file}[{i}]: {exc}" if many else f"{file}: {exc}") from exc
    with open_memory(db, url, create=True) as mem:
        stored = mem.add_trajectories(trajs, user_id=user, agent_id=agent, session_id=session)
    if as_json:
        emit_json(
            [
                {
                    "id": t.id,
                    "task": t.task,
                    "outcome": t.outcome,
                    "steps": len(t.steps),
                    "step_ids": t.step_ids,
                    "truncated_steps": sum(s.truncated for s in t.steps),
                }
                for t in stored
            ]
        )
    else:
        for t in stored:
            cut = sum(s.truncated for s in t.steps)
            note = f" ({cut} steps truncated)" if cut else ""
            console.print(f"stored trajectory {t.id}: {t.outcome}, {len(t.steps)} steps{note}", highlight=False)


@trajectory_app.command("show")
def show_cmd(trajectory_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show a stored trajectory with its steps."""
    with open_memory(db, url) as mem:
        got = mem.trajectories(ids=[trajectory_id])
    if not got:
        from ..errors import NotFoundError

        raise NotFoundError(f"no trajectory with id {trajectory_id!r}")
    t = got[0]
    if as_json:
        emit_json(t)
        return
    console.print(f"{t.task}\noutcome: {t.outcome}, {t.n_steps} steps", highlight=False)
    for i, (s, sid) in enumerate(zip(t.steps, t.step_ids, strict=False)):
        console.print(f"  [{i}] {short(s.text(i), 150)}  [dim]{sid}[/dim]", highlight=False)


@trajectory_app.command("list")
def list_trajectories_cmd(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The stored trajectories of a scope (all of them without one)."""
    with open_memory(db, url) as mem:
        got = mem.trajectories(user_id=user, agent_id=agent, session_id=session)
    if as_json:
        emit_json(got)
        return
    table = Table(title=f"{len(got)} trajectories")
    for col in ("id", "outcome", "steps", "task"):
        table.add_column(col, overflow="fold" if col == "task" else "ellipsis", no_wrap=col != "task")
    for t in got:
        table.add_row(t.id or "", t.outcome, str(t.n_steps), short(t.task, 160))
    console.print(table)


@tip_app.command("list")
def list_tips_cmd(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    status: StatusOpt = "active",
    tip_type: TipTypeOpt = None,
    order: Annotated[str, typer.Option(help="recorded_at (oldest first), -recorded_at or -utility.")] = "recorded_at",
    limit: Annotated[int | None, typer.Option(help="At most this many tips (one page); all when not given.")] = None,
    offset: Annotated[int, typer.Option(help="Skip this many first (with --limit: the next page).")] = 0,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The stored tips of a scope: active ones by default, a page at a time with --limit and --offset."""
    with open_memory(db, url) as mem:
        wanted = None if status == "all" else status
        got = mem.list_tips(user_id=user, agent_id=agent, session_id=session, status=wanted, tip_type=tip_type,
                            order=order, limit=limit, offset=offset)
        paged = limit is not None or offset > 0
        total = (mem.count_tips(user_id=user, agent_id=agent, session_id=session, status=wanted, tip_type=tip_type)
                 if paged and not as_json else len(got))
    if as_json:
        emit_json(got)
    elif paged:
        shown = f"{offset + 1}-{offset + len(got)}" if got else "none"
        console.print(_tips_table(got, f"{total} tips ({status}), showing {shown}"))
    else:
        console.print(_tips_table(got, f"{len(got)} tips ({status})"))


@tip_app.command("count")
def count_tips_cmd(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    status: StatusOpt = "active",
    tip_type: TipTypeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How many tips `tip list` lists with the same filters."""
    with open_memory(db, url) as mem:
        wanted = None if status == "all" else status
        n = mem.count_tips(user_id=user, agent_id=agent, session_id=session, status=wanted, tip_type=tip_type)
    if as_json:
        emit_json({"count": n})
    else:
        console.print(str(n))


@tip_app.command("show")
def tip_provenance_cmd(tip_id: str, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """A tip and where it came from: the exact steps it was drawn from and their trajectories."""
    with open_memory(db, url) as mem:
        prov = mem.tip_provenance(tip_id)
    if as_json:
        emit_json(prov)
        return
    tip = prov.get("tip")
    console.print(f"{getattr(tip, 'text', tip)}", highlight=False)
    for t in prov.get("trajectories", []):
        console.print(f"  from {t.get('trajectory_id')} ({t.get('outcome')}): {short(str(t.get('task')), 120)}",
                      highlight=False)


@trajectory_app.command("learn")
def learn_cmd(
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    min_support: Annotated[int, typer.Option(help="Trajectories a tip needs behind it.")] = 2,
    use_llm: Annotated[bool, typer.Option("--llm", help="Also ask the configured LLM (engramdb.llm).")] = False,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mine tips (strategy, recovery, optimization, warning) from the stored trajectories."""
    llm = None
    if use_llm:
        from ..errors import ConfigError

        try:
            from ..llm import LLMClient, load_llm_config
        except ImportError as exc:
            raise ConfigError("--llm: the LLM client (engramdb.llm) is not available") from exc
        cfg = load_llm_config()
        if cfg is None:
            raise ConfigError("--llm: no LLM configured (see docs on engramdb.llm configuration)")
        llm = LLMClient(cfg)
    with open_memory(db, url) as mem:
        report = mem.learn_tips(user_id=user, agent_id=agent, session_id=session, min_support=min_support, llm=llm)
    if as_json:
        emit_json(report)
        return
    console.print(
        f"{report.trajectories} trajectories: {len(report.added)} tips added, {len(report.updated)} updated, "
        f"{len(report.merged)} merged, {len(report.rejected)} candidates rejected",
        highlight=False,
    )
    if report.tips:
        console.print(_tips_table(report.tips, "active tips"))


def tips_cmd(
    task: Annotated[str, typer.Argument(help="The new task.")],
    tool: Annotated[list[str] | None, typer.Option("--tool", "-t", help="A tool the agent has (repeatable).")] = None,
    error: Annotated[list[str] | None, typer.Option("--error", "-e", help="An error being seen (repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 5,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not count the tips as served.")] = False,
    user: UserOpt = None,
    agent: AgentOpt = None,
    session: SessionOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Guidance for a new task from procedural memory: a prompt-ready block (report back with `outcome`)."""
    with open_memory(db, url) as mem:
        g = mem.tips(
            task,
            tools=tool,
            errors=error,
            limit=limit,
            user_id=user,
            agent_id=agent,
            session_id=session,
            track=not no_track,
        )
    if as_json:
        emit_json({"task": g.task, "text": g.text, "tip_ids": g.tip_ids, "tips": g.tips})
        return
    console.print(g.text or "(no tips yet)", markup=False, highlight=False)
    if g.tip_ids:
        err_console.print(
            f"[dim]report back: engramdb outcome {' '.join(g.tip_ids)} --result success|failure|partial[/dim]"
        )


def outcome_cmd(
    tip_ids: Annotated[list[str], typer.Argument(help="The tip ids that were served.")],
    result: Annotated[str, typer.Option("--result", "-r", help="success, failure or partial.")],
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the loop: record what happened after tips were served (retires tips whose utility falls)."""
    with open_memory(db, url) as mem:
        tips = mem.report_outcome(tip_ids, result)
    if as_json:
        emit_json(tips)
        return
    for t in tips:
        state = "RETIRED" if t.status == "retired" else "active"
        console.print(
            f"{t.id}: utility {t.utility:.2f} ({t.successes_after} ok / {t.failures_after} failed), {state}",
            highlight=False,
        )
