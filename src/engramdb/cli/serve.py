"""`engramdb serve`, `engramdb mcp` and `engramdb keys ...`: the server side of the CLI."""

from __future__ import annotations

import functools
import json
import os
import sys
from datetime import timedelta
from typing import Annotated

import typer

from ..errors import ValidationError
from .output import console, emit_json, model_spinner

DataDirOpt = Annotated[
    str,
    typer.Option(
        "--data-dir",
        envvar="ENGRAMDB_DATA_DIR",
        help="Server data directory: keys.db and one SQLite file per tenant (or set ENGRAMDB_DATA_DIR).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEFAULT_DATA_DIR = "engramdb-data"
DEFAULT_PORT = 8420

keys_app = typer.Typer(help="Manage API keys (stored hashed; each bound to one tenant).", no_args_is_help=True)


def _keystore(data_dir: str):
    from ..server.keys import KeyStore

    return KeyStore(os.path.join(data_dir, "keys.db"))


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant the key is bound to (e.g. acme).")],
    perm: Annotated[
        list[str] | None, typer.Option("--perm", "-p", help="read, write or admin (repeatable). Default: read+write.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for people (e.g. 'billing-bot').")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Create a key. The key is printed once: only its hash is stored."""
    ks = _keystore(data_dir)
    try:
        created = ks.create(
            tenant,
            perm or ["read", "write"],
            name=name,
            expires_in=timedelta(days=expires_in_days) if expires_in_days is not None else None,
        )
    finally:
        ks.close()
    if as_json:
        emit_json({"key": created.key, **created.info.model_dump(mode="json")})
    else:
        console.print(
            f"key id {created.info.key_id}, tenant {created.info.tenant}, "
            f"permissions {','.join(created.info.permissions)}"
        )
        console.print("store this key now; it cannot be shown again:", style="bold")
        print(created.key)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant's keys.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """List keys (ids, tenants, permissions, expiry, revocation; never the keys)."""
    from rich.table import Table

    ks = _keystore(data_dir)
    try:
        infos = ks.list(tenant)
    finally:
        ks.close()
    if as_json:
        emit_json([{**i.model_dump(mode="json"), "active": i.active} for i in infos])
        return
    table = Table(title="API keys")
    for col in ("key id", "tenant", "permissions", "name", "created", "expires", "status"):
        table.add_column(col)
    for i in infos:
        status = "revoked" if i.revoked_at else ("expired" if not i.active else "active")
        table.add_row(
            i.key_id,
            i.tenant,
            ",".join(i.permissions),
            i.name or "",
            f"{i.created_at:%Y-%m-%d %H:%M}",
            f"{i.expires_at:%Y-%m-%d %H:%M}" if i.expires_at else "never",
            status,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `keys list`), not the key.")],
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: every worker refuses it from its next request on."""
    ks = _keystore(data_dir)
    try:
        info = ks.revoke(key_id)
    finally:
        ks.close()
    if as_json:
        emit_json(info.model_dump(mode="json"))
    else:
        console.print(f"revoked {info.key_id} (tenant {info.tenant})")


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = DEFAULT_PORT,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    url: Annotated[
        str | None, typer.Option("--url", help="postgresql://... to keep each tenant in its own schema.")
    ] = None,
    embedder: Annotated[str | None, typer.Option(help="Embedding model spec (default: all-MiniLM-L6-v2).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 1,
    rate_limit: Annotated[float, typer.Option(help="Requests per second per key (0 = unlimited).")] = 100.0,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body accepted.")] = 4 * 1024 * 1024,
    no_mcp: Annotated[bool, typer.Option("--no-mcp", help="Do not serve MCP at /mcp.")] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not serve the web UI at /ui.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    as_json: JsonOpt = False,
) -> None:
    """Run the REST API (and MCP at /mcp). Logs are JSON lines on stderr; SIGTERM shuts down gracefully."""
    import uvicorn

    from ..server.app import SETTINGS_ENV, ServerSettings, create_app

    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ValidationError("--url must be a postgresql:// URL (without it, tenants are SQLite files in --data-dir)")
    settings = ServerSettings(
        data_dir=data_dir,
        url=url,
        embedder=embedder,
        rate_limit=rate_limit,
        max_body_bytes=max_body_bytes,
        mcp=not no_mcp,
        ui=not no_ui,
        log_level=log_level,
        host=host,
    )
    info = {
        "listening": f"http://{host}:{port}",
        "workers": workers,
        "backend": "postgresql" if url else "sqlite",
        "data_dir": data_dir,
        "openapi": f"http://{host}:{port}/openapi.json",
    }
    if as_json:
        sys.stderr.write(json.dumps(info) + "\n")
    else:
        console.print(
            f"EngramDB server on {info['listening']} ({info['backend']}, {workers} worker(s)); "
            f"docs at http://{host}:{port}/docs",
            highlight=False,
        )
    run = functools.partial(uvicorn.run, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=15)
    if workers > 1:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        run("engramdb.server.app:create_app_from_env", factory=True, workers=workers)
    else:
        run(create_app(settings))


def mcp(
    transport: Annotated[str, typer.Option(help="stdio (one store, for a local client) or http (API keys).")] = "stdio",
    db: Annotated[str | None, typer.Option("--db", envvar="ENGRAMDB_PATH", help="stdio: SQLite file.")] = None,
    url: Annotated[str | None, typer.Option("--url", envvar="ENGRAMDB_URL", help="stdio: database URL.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="stdio: default user_id when a tool call names no scope.")
    ] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="stdio: refuse remember/forget/update.")] = False,
    embedder: Annotated[str | None, typer.Option(help="Embedding model spec.")] = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="http: address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: port.")] = DEFAULT_PORT + 1,
    as_json: JsonOpt = False,
) -> None:
    """Run the MCP server: tools remember, recall, get_context, forget, update_memory, memory_history, facts,
    tips, report_outcome."""
    if transport == "stdio":
        from ..mcp.server import stdio_server
        from .app import open_memory

        with open_memory(db, url, create=True, embedder=embedder) as mem:
            mem.warmup()  # before the protocol starts: the client's first call pays for no model load
            # stdout is the protocol channel: nothing else may be printed there.
            stdio_server(mem, read_only=read_only, default_scope={"user_id": user}).run("stdio")
    elif transport == "http":
        import uvicorn

        from ..server.mcp_http import http_app
        from ..server.ratelimit import RateLimiter
        from ..server.tenants import TenantRegistry

        registry = TenantRegistry(data_dir, embedder=embedder)
        with model_spinner(embedder or "all-MiniLM-L6-v2"):
            registry.warmup()  # before the port opens: no request pays for a model load
        keys = _keystore(data_dir)
        app = http_app(registry, keys, limiter=RateLimiter(100.0), path="/mcp", host=host)
        if as_json:
            sys.stderr.write(json.dumps({"mcp": f"http://{host}:{port}/mcp", "data_dir": data_dir}) + "\n")
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=15)
        finally:
            registry.close()
            keys.close()
    else:
        raise ValidationError("--transport must be stdio or http")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("mcp")(mcp)
    app.add_typer(keys_app, name="keys")
