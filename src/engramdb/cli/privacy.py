"""`engramdb privacy ...`: disclosure policies, space grants, and the audit log of disclosures."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import ValidationError
from .app import DbOpt, JsonOpt, UrlOpt, open_memory, parse_json_opt, read_input_file
from .output import console, emit_json

privacy_app = typer.Typer(help="Privacy: disclosure policies, space grants, who has seen what.", no_args_is_help=True)
policy_app = typer.Typer(help="Disclosure policies: which categories may flow to which audience.",
                         no_args_is_help=True)
PolicyUserOpt = Annotated[str | None, typer.Option("--user", "-u", help="A user's policy (default: the tenant's).")]


def _policy_view(mem: Any, user: str | None) -> dict[str, Any]:
    from ..privacy.policy import describe_defaults

    pol = mem.privacy.get_policy(user_id=user)
    return {"user_id": user, "rules": [r.model_dump() for r in pol.rules], "defaults": describe_defaults()}


@policy_app.command("set")
def policy_set(
    rules: Annotated[str | None, typer.Argument(help='Rules as JSON: [{"category": "health", "audience": '
                                                      '"agent:doctor", "action": "allow"}, ...] or {"rules": [...]}.')]
    = None,
    file: Annotated[str | None, typer.Option("--file", "-f", help="Read the rules from a JSON file ('-': stdin).")]
    = None,
    user: PolicyUserOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the tenant's policy, or a user's (--user)."""
    if (rules is None) == (file is None):
        raise ValidationError("give either RULES or --file")
    value = parse_json_opt(rules if rules is not None else read_input_file(file or "-"), "rules")
    with open_memory(db, url) as mem:
        mem.privacy.set_policy(value, user_id=user)
        view = _policy_view(mem, user)
    if as_json:
        emit_json(view)
    else:
        console.print(f"{'user ' + user if user else 'tenant'} policy: {len(view['rules'])} rule(s)",
                      markup=False, highlight=False)


@policy_app.command("list")
def policy_list(user: PolicyUserOpt = None, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show the tenant's policy, or a user's (--user), and the defaults."""
    with open_memory(db, url) as mem:
        view = _policy_view(mem, user)
    if as_json:
        emit_json(view)
        return
    console.print(f"{'user ' + user if user else 'tenant'} policy:", markup=False, highlight=False)
    for r in view["rules"]:
        console.print(f"  {r['category']}\t{r['audience']}\t{r['action']}", markup=False, highlight=False)
    if not view["rules"]:
        console.print("  (no rules)", markup=False)
    d = view["defaults"]
    console.print(f"defaults: never {', '.join(d['never'])}; only with the user's allow: "
                  f"{', '.join(d['user_consent'])}; otherwise {d['otherwise']}", markup=False, highlight=False)


@policy_app.command("delete")
def policy_delete(user: PolicyUserOpt = None, db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Remove the tenant's policy, or a user's (--user)."""
    with open_memory(db, url) as mem:
        had = mem.privacy.delete_policy(user_id=user)
    if as_json:
        emit_json({"user_id": user, "deleted": had})
    else:
        console.print(f"{'user ' + user if user else 'tenant'} policy {'deleted' if had else 'was empty'}",
                      markup=False, highlight=False)


@privacy_app.command("grant")
def grant(
    space: Annotated[str, typer.Argument(help="The space (a team or project).")],
    agent: Annotated[str, typer.Argument(help="The agent id.")],
    access: Annotated[str, typer.Option(help="read or write (write includes read).")] = "read",
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give an agent read or write on a space."""
    with open_memory(db, url) as mem:
        grants = mem.privacy.grant(space, agent, access)
    if as_json:
        emit_json(grants)
    else:
        console.print(f"{agent}: {access} on {space}", markup=False, highlight=False)


@privacy_app.command("revoke")
def revoke(
    space: Annotated[str, typer.Argument(help="The space.")],
    agent: Annotated[str, typer.Argument(help="The agent id.")],
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take an agent's grant on a space away."""
    with open_memory(db, url) as mem:
        grants = mem.privacy.revoke(space, agent)
    if as_json:
        emit_json(grants)
    else:
        console.print(f"{agent}: no access to {space}", markup=False, highlight=False)


@privacy_app.command("grants")
def grants_cmd(db: DbOpt = None, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Every space's grants."""
    with open_memory(db, url) as mem:
        grants = mem.privacy.grants()
    if as_json:
        emit_json(grants)
        return
    for space, agents in sorted(grants.items()):
        for agent, access in sorted(agents.items()):
            console.print(f"{space}\t{agent}\t{access}", markup=False, highlight=False)


@privacy_app.command("audit")
def audit(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Whose memories.")] = None,
    category: Annotated[str | None, typer.Option(help="Only disclosures of this category (e.g. health).")] = None,
    audience: Annotated[str | None, typer.Option(help="Only to this audience (agent id or purpose:<label>).")]
    = None,
    since: Annotated[str | None, typer.Option(help="Only from this time on (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many (1-10000).")] = 100,
    summary: Annotated[bool, typer.Option("--summary", help="Per audience: how many, and the latest (needs --user).")]
    = False,
    db: DbOpt = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who received which memories, newest first: `--user alice --category health` answers "who has seen
    alice's health data?"."""
    with open_memory(db, url) as mem:
        if summary:
            if user is None:
                raise ValidationError("--summary needs --user")
            rows: list[Any] = mem.privacy.who_has_seen(user, category)
        else:
            rows = mem.privacy.disclosures(user_id=user, category=category, audience=audience, since=since,
                                           limit=limit)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print("(no disclosures)", markup=False)
    for x in rows:
        if summary:
            who = " ".join(filter(None, [x["agent_id"], x["purpose"] and f"purpose:{x['purpose']}"]))
            console.print(f"{who}\t{x['count']} disclosure(s)\tlast {x['last']:%Y-%m-%d %H:%M}",
                          markup=False, highlight=False)
        else:
            who = " ".join(filter(None, [x.agent_id, x.purpose and f"purpose:{x.purpose}"]))
            console.print(f"{x.at:%Y-%m-%d %H:%M:%S}\t{who}\t{x.memory_id}\t{','.join(x.categories) or '-'}\t"
                          f"{x.action}\t{x.op}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    privacy_app.add_typer(policy_app, name="policy")
    app.add_typer(privacy_app, name="privacy")
