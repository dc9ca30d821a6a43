"""MCP server, driven by the SDK's own client over both transports (stdio and streamable HTTP)."""

from __future__ import annotations

import json
import sys

import pytest
from mcp import Client, StdioServerParameters
from server_helpers import make_env, mcp_http_client, serve_in_thread, tool_json

TOOLS = {
    "remember", "recall", "get_context", "forget", "update_memory", "memory_history", "facts", "tips", "report_outcome"
}


async def _session(client, transcript: list[str], *, scope: dict) -> None:
    """The same agent session on any transport: list, remember, recall, update, history, context, forget."""
    tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    for t in tools:
        # written for an agent: a real description saying when to call it, and a typed input schema
        assert len(t.description) > 120 and t.input_schema["type"] == "object"
        assert "ctx" not in t.input_schema["properties"]
    by_name = {t.name: t for t in tools}
    assert by_name["remember"].input_schema["required"] == ["text"]
    assert by_name["recall"].input_schema["required"] == ["query"]
    assert by_name["recall"].annotations.read_only_hint is True
    assert by_name["forget"].annotations.destructive_hint is True
    transcript.append("tools: " + ", ".join(t.name for t in tools))

    async def call(name: str, args: dict) -> dict:
        res = await client.call_tool(name, args)
        out = tool_json(res)
        transcript.append(f"{name}({json.dumps(args)}) -> {'ERROR ' if res.is_error else ''}{json.dumps(out)}")
        assert not res.is_error, out
        return out

    stored = await call("remember", {"text": "Alice is allergic to peanuts", "speaker": "user", **scope})
    mid = stored["stored"][0]["id"]
    await call("remember", {"text": "Alice's favourite city is Lisbon", "kind": "fact", **scope})
    hits = (await call("recall", {"query": "peanuts allergy", "limit": 2, **scope}))["results"]
    assert hits[0]["id"] == mid and hits[0]["text"] == "Alice is allergic to peanuts"
    upd = await call("update_memory", {"memory_id": mid, "text": "Alice is allergic to peanuts and cashews"})
    assert upd["updated"]["version"] == 2
    await call("update_memory", {"memory_id": mid, "expires_at": "2099-01-01T00:00:00Z"})
    await call("update_memory", {"memory_id": mid, "clear": ["expires_at"]})
    bad = await client.call_tool("update_memory", {"memory_id": mid, "clear": ["text"]})
    assert bad.is_error and "expires_at" in tool_json(bad)["text"]
    got = await call("memory_history", {"memory_id": mid})
    hist = got["versions"]
    assert [v["action"] for v in hist] == ["add", "update", "update", "update"]
    assert hist[1]["text_before"] == "Alice is allergic to peanuts"
    assert got["more_before"] is False
    newest = await call("memory_history", {"memory_id": mid, "limit": 1})
    assert [v["action"] for v in newest["versions"]] == ["update"] and newest["more_before"] is True
    bad = await client.call_tool("memory_history", {"memory_id": mid, "limit": 0})
    assert bad.is_error
    block = await call("get_context", {"query": "what is Alice allergic to", **scope})
    assert "cashews" in block.get("result", block.get("text", json.dumps(block)))
    who = {k: v for k, v in scope.items() if k in ("user_id", "agent_id")}
    facts = (await call("facts", who))["facts"]
    assert "Alice's favourite city is Lisbon" in [f["text"] for f in facts]
    assert (await call("tips", {"task_description": "plan a trip to Lisbon", **scope}))["tip_ids"] == []
    bad = await client.call_tool("report_outcome", {"tip_ids": ["no-such-tip"], "outcome": "success"})
    assert bad.is_error
    bad = await client.call_tool("get_context", {"query": "x", "max_tokens": 100_001})
    assert bad.is_error  # the one token limit of every interface (api/params.py)
    assert (await call("forget", {"memory_id": mid})) == {"forgotten": mid}
    after = (await call("recall", {"query": "peanuts allergy", **scope}))["results"]
    assert mid not in [h["id"] for h in after]
    # errors come back as tool errors the model can read, not as crashes
    bad = await client.call_tool("forget", {"memory_id": "no-such-id"})
    assert bad.is_error and "no memory with id 'no-such-id'" in tool_json(bad)["text"]
    bad = await client.call_tool("remember", {"text": "x", "expires_at": "next week", **scope})
    assert bad.is_error and "expires_at" in tool_json(bad)["text"]
    bad = await client.call_tool("remember", {"text": "x", "timestamp": "2024-01-01 10:00", **scope})
    assert bad.is_error and "time zone" in tool_json(bad)["text"]
    bad = await client.call_tool("recall", {"query": "x", "limit": 0})
    assert bad.is_error
    transcript.append(f"recall(limit=0) -> ERROR {tool_json(bad)['text']}"[:160])


async def test_stdio_transport_with_sdk_client(tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "engramdb.cli.main",
            "mcp",
            "--db",
            str(tmp_path / "agent.db"),
            "--embedder",
            "hashing-64",
            "--user",
            "alice",
        ],
        env={"HF_HUB_OFFLINE": "1", "PYTHONPATH": ":".join(sys.path)},
    )
    transcript: list[str] = []
    async with Client(params, read_timeout_seconds=60) as client:
        await _session(client, transcript, scope={})  # no scope given: the server's --user alice applies
    print("\n[stdio] " + "\n[stdio] ".join(transcript))
    from engramdb import Memory

    with Memory(tmp_path / "agent.db", embedder="hashing-64") as mem:
        assert [
            r.text
            for r in mem.list(user_id="alice", kinds=["episode", "fact"]).items
            if r.kind == "episode" or "Lisbon" in r.text
        ] == ["Alice's favourite city is Lisbon"]


@pytest.mark.parametrize("path", ["/mcp/", "/mcp"])
async def test_streamable_http_transport_with_api_keys(tmp_path, path):
    env = make_env(tmp_path)
    transcript: list[str] = []
    with serve_in_thread(env.app) as base:
        async with mcp_http_client(base + path, env.tokens["acme_rw"]) as client:
            await _session(client, transcript, scope={"user_id": "alice"})
        # read-only key: reads work, writes are refused with a clear tool error
        async with mcp_http_client(base + path, env.tokens["acme_ro"]) as client:
            res = await client.call_tool("remember", {"text": "x", "user_id": "alice"})
            assert res.is_error and "lacks the 'write' permission" in tool_json(res)["text"]
            assert not (await client.call_tool("recall", {"query": "Lisbon", "user_id": "alice"})).is_error
        # no key / revoked key: refused at the HTTP layer with 401, before MCP
        import httpx

        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        r = httpx.post(base + "/mcp/", json=body, headers={"accept": "application/json, text/event-stream"})
        assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
        env.keys.revoke(env.tokens["acme_rw"].split("_")[1])
        r = httpx.post(
            base + "/mcp/",
            json=body,
            headers={
                "Authorization": f"Bearer {env.tokens['acme_rw']}",
                "accept": "application/json, text/event-stream",
            },
        )
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    print("\n[http] " + "\n[http] ".join(transcript))
    # what MCP wrote is in the key's tenant, visible over REST too
    assert "Alice's favourite city is Lisbon" in [r.text for r in env.registry.get("acme").list(user_id="alice").items]
    assert env.registry.get("globex").list().total == 0
    env.registry.close()
