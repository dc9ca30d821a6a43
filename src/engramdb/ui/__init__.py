"""The web UI: see, question and correct what an agent remembers (docs/ui.md).

`engramdb serve` mounts it at /ui behind the server's API keys; `engramdb ui --db agent.db` serves one local
store on 127.0.0.1 with no key. Server-rendered HTML (Jinja2) with one small stylesheet and script, all
shipped in the package: no CDN, no front-end build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ..api.memory import Memory
from .auth import KeyBackend, LocalBackend, load_secret
from .views import install


def install_server_ui(app: FastAPI, registry: Any, keys: Any, limiter: Any, data_dir: str, backend: str) -> None:
    """Mount the UI on the REST server's app, signed in with its API keys."""
    secret = load_secret(Path(data_dir) / "ui_secret")
    install(app, KeyBackend(registry, keys, limiter, secret, backend))


def local_app(mem: Memory, *, read_only: bool = False) -> FastAPI:
    """A UI-only app over one store, for `engramdb ui` (bind it to 127.0.0.1)."""
    app = FastAPI(title="EngramDB UI", docs_url=None, redoc_url=None, openapi_url=None)
    backend = "postgresql" if type(mem.store).__name__.startswith("Postgres") else "sqlite"
    install(app, LocalBackend(mem, read_only=read_only, backend=backend))
    return app


__all__ = ["install_server_ui", "local_app"]
