"""The MCP client snippets in docs/mcp.md, run as written: each stdio config starts the real server the way a
client would (command + args, PATH from this venv), each remote config connects to a real `engramdb serve`
with its URL and headers (the client's variable syntax expanded), through the official MCP SDK client."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("mcp", reason="needs the server extra: pip install 'engramdb[server]'")

from mcp import Client, StdioServerParameters
from server_helpers import make_env, serve_in_thread, tool_json

DOC = Path(__file__).resolve().parents[1] / "docs" / "mcp.md"
PLACEHOLDER_DB = "/home/me/agent.db"


def _snippets() -> dict[str, dict[str, Any]]:
    """Each client heading's `mcpServers.engramdb` entry from the page (the JSON blocks after it)."""
    text = DOC.read_text()
    section = text[text.index("## Client configuration"):]
    out: dict[str, dict[str, Any]] = {}
    heading = ""
    for part in re.split(r"(^###? [^\n]*$|```json\n.*?```)", section, flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
        elif part.startswith("```json"):
            entry = json.loads(part[len("```json"):-3])["mcpServers"]["engramdb"]
            name = heading if heading not in out else f"{heading} #{sum(k.startswith(heading) for k in out) + 1}"
            out[name] = entry
    return out


SNIPPETS = _snippets()
STDIO = {k: v for k, v in SNIPPETS.items() if "command" in v}
REMOTE = {k: v for k, v in SNIPPETS.items() if "url" in v}


def test_the_page_has_every_client() -> None:
    assert set(STDIO) == {"Claude Desktop (stdio)", "Claude Code (stdio)", "Cursor (stdio)"}
    assert len(REMOTE) == 2 and all(k.startswith("A remote server") for k in REMOTE)
    assert SNIPPETS["Claude Code (stdio)"]["type"] == "stdio"  # Claude Code's own field names
    assert [v.get("type") for v in REMOTE.values()] == ["http", None]  # Claude Code says http; Cursor infers it


async def _agent_session(client: Client, scope: dict[str, str]) -> list[str]:
    """What an agent does first: list the tools, store something, recall it."""
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"remember", "recall", "get_context"} <= names
    stored = await client.call_tool("remember", {"text": "Alice is allergic to peanuts", **scope})
    assert not stored.is_error, tool_json(stored)
    hits = await client.call_tool("recall", {"query": "what is alice allergic to", **scope})
    assert not hits.is_error
    return [h["text"] for h in tool_json(hits)["results"]]


# the three stdio snippets differ only in client-specific fields; the command line is what runs
COMMAND_LINES = sorted({json.dumps([v["command"], v["args"], v.get("env", {})]) for v in STDIO.values()})


@pytest.mark.parametrize("config", COMMAND_LINES, ids=[f"command-line-{i}" for i in range(len(COMMAND_LINES))])
async def test_stdio_snippet_starts_a_working_server(tmp_path: Path, config: str) -> None:
    """Each stdio command line runs as written, on the real default model."""
    command, snippet_args, snippet_env = json.loads(config)
    entry = {"command": command, "args": snippet_args, "env": snippet_env}
    db = tmp_path / "agent.db"
    args = [str(db) if a == PLACEHOLDER_DB else a for a in entry["args"]]
    assert args != entry["args"], "the snippet's database path is the documented placeholder"
    # a client passes its own environment; this venv's bin first, so "engramdb" resolves as installed
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           **entry["env"]}
    params = StdioServerParameters(command=entry["command"], args=args, env=env)
    async with Client(params, read_timeout_seconds=180) as client:
        texts = await _agent_session(client, {})  # no scope in the call: the snippet's --user applies
    assert texts[0] == "Alice is allergic to peanuts"
    from engramdb import Memory

    with Memory(db) as mem:  # the snippet's --user me became the memory's user
        assert [r.user_id for r in mem.list(kinds=["episode"]).items] == ["me"]


def _expand(value: str, key: str) -> str:
    """The clients' own variable syntax: ${VAR} (Claude Code) and ${env:VAR} (Cursor)."""
    expanded = re.sub(r"\$\{(?:env:)?ENGRAMDB_API_KEY\}", key, value)
    assert "${" not in expanded, f"unexpanded variable in {value!r}"
    return expanded


@pytest.mark.parametrize("name", sorted(REMOTE), ids=["claude-code-http", "cursor-http"])
async def test_remote_snippet_connects_with_its_key(tmp_path: Path, name: str) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    entry = REMOTE[name]
    env = make_env(tmp_path)
    key = env.tokens["acme_rw"]
    headers = {h: _expand(v, key) for h, v in entry["headers"].items()}
    path = urlsplit(entry["url"]).path
    assert path == "/mcp/"
    with serve_in_thread(env.app) as base:  # the documented host stands in for this loopback server
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(base + path, http_client=http)) as client:
                texts = await _agent_session(client, {"user_id": "alice"})
        # and without the header the server refuses the client before MCP
        async with httpx2.AsyncClient(timeout=30) as http:
            with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 differently across versions
                async with Client(streamable_http_client(base + path, http_client=http)) as client:
                    await client.list_tools()
    assert texts[0] == "Alice is allergic to peanuts"
    assert env.registry.get("acme").list(user_id="alice").total >= 1  # the key's tenant holds it
    assert env.registry.get("globex").list().total == 0
    env.registry.close()
