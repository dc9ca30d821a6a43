"""`engramdb ui`: the web UI over one local store, for the person at this machine (no key)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ValidationError
from .output import console

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def ui(
    db: Annotated[str | None, typer.Option("--db", envvar="ENGRAMDB_PATH", help="SQLite file to open.")] = None,
    url: Annotated[str | None, typer.Option("--url", envvar="ENGRAMDB_URL", help="Database URL instead.")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8430,
    host: Annotated[str, typer.Option(help="Loopback address to bind (127.0.0.1, localhost or ::1).")] = "127.0.0.1",
    read_only: Annotated[bool, typer.Option("--read-only", help="Hide and refuse edit, forget and purge.")] = False,
    embedder: Annotated[str | None, typer.Option(help="Embedding model spec (default: the store's).")] = None,
) -> None:
    """Browse, trace and correct a local store in the browser at http://127.0.0.1:8430/ui (no key: loopback only;
    use `engramdb serve` to share it)."""
    import uvicorn

    from ..ui import local_app
    from .app import open_memory

    if host not in LOCAL_HOSTS:
        raise ValidationError("engramdb ui has no sign-in, so it binds only to the loopback; use `engramdb serve`")
    with open_memory(db, url, embedder=embedder or None) as mem:
        shown = f"[{host}]" if ":" in host else host
        console.print(f"EngramDB UI on http://{shown}:{port}/ui ({'read-only' if read_only else 'read/write'})",
                      highlight=False)
        uvicorn.run(local_app(mem, read_only=read_only), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=5)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
