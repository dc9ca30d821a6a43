"""Helpers shared by the server, isolation, MCP and concurrency tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from engramdb.embed import HashingEmbedder
from engramdb.server.app import ServerSettings, create_app
from engramdb.server.keys import KeyStore
from engramdb.server.tenants import TenantRegistry


@dataclass
class Env:
    app: FastAPI
    registry: TenantRegistry
    keys: KeyStore
    data_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)  # name -> plaintext key

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def make_env(data_dir: Path, *, url: str | None = None, embedder=None, **settings) -> Env:
    registry = TenantRegistry(data_dir, url=url, embedder=embedder or HashingEmbedder(64))
    keys = KeyStore(data_dir / "keys.db")
    app = create_app(ServerSettings(data_dir=str(data_dir), url=url, **settings), registry=registry, keys=keys)
    env = Env(app=app, registry=registry, keys=keys, data_dir=data_dir)
    for tenant in ("acme", "globex"):
        env.tokens[f"{tenant}_rw"] = keys.create(tenant, ["read", "write"]).key
        env.tokens[f"{tenant}_ro"] = keys.create(tenant, ["read"]).key
        env.tokens[f"{tenant}_admin"] = keys.create(tenant, ["admin"]).key
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Run `app` with uvicorn on a loopback port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextlib.asynccontextmanager
async def mcp_http_client(url: str, key: str | None):
    """The SDK's own client over streamable HTTP, sending `key` as a Bearer token."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


def tool_json(result) -> dict:
    """The structured (JSON) payload of a CallToolResult, or its text."""
    import json

    if getattr(result, "structured_content", None) is not None:
        return result.structured_content
    text = "".join(getattr(c, "text", "") for c in result.content)
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text}
