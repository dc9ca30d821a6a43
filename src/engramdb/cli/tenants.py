"""`engramdb tenants ...`: where tenants live (the routing table) and moving one to another PostgreSQL server."""

from __future__ import annotations

from typing import Annotated

import typer

from .output import console, emit_json

tenants_app = typer.Typer(help="Tenants across PostgreSQL servers: the routing table, online moves.",
                          no_args_is_help=True)
RoutesOpt = Annotated[str, typer.Option("--routes", envvar="ENGRAMDB_TENANT_ROUTES",
                                        help="The routing table (JSON) every API server reads.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@tenants_app.command("routes")
def routes_show(routes: RoutesOpt, as_json: JsonOpt = False) -> None:
    """Print the routing table: tenant -> database (passwords hidden)."""
    from ..server.routing import read_routes
    from ..store.postgres import redact

    table = {t: redact(u) for t, u in read_routes(routes).items()}
    if as_json:
        emit_json(table)
        return
    for tenant, url in table.items():
        console.print(f"{tenant}\t{url}", markup=False, highlight=False)


@tenants_app.command("move")
def move(
    tenant: Annotated[str, typer.Argument(help="The tenant to move.")],
    to: Annotated[str, typer.Option("--to", help="postgresql:// URL of the database to move it to.")],
    routes: RoutesOpt,
    source: Annotated[str | None, typer.Option("--from", help="Its database now (default: its route; needed for "
                                                               "a tenant on the servers' default --url).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a tenant online: copy, catch up, then a short switch (writes wait, or get a retryable 503) that
    verifies every row and points the routing table at the new database. The old schema stays, read-only."""
    from ..server.routing import move_tenant
    from .output import err_console

    rep = move_tenant(tenant, to, routes, from_url=source,
                      on_step=None if as_json else lambda m: err_console.print(f"[dim]{m}...[/dim]"))
    if as_json:
        emit_json(rep.as_dict())
        return
    d = rep.as_dict()
    console.print(f"moved {tenant}: {sum(rep.rows.values())} rows verified "
                  f"({', '.join(f'{t} {n}' for t, n in rep.rows.items())}); copy {d['copied_s']} s, "
                  f"catch-up rounds {rep.catch_up_rounds}, switch {d['pause_s']} s ({rep.switch_rows} rows), "
                  f"total {d['total_s']} s", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants_app, name="tenants")
