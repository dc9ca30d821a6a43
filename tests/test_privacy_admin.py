"""Managing privacy from the CLI and over REST: --audience on search/context, policies, grants, the audit log."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env
from typer.testing import CliRunner

from engramdb.cli.main import app

SEED = [
    ("alice takes insulin for her diabetes", ["health"]),
    ("alice likes hiking in the alps", []),
]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    monkeypatch.setenv("ENGRAMDB_PATH", str(tmp_path / "p.db"))
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        r = runner.invoke(app, list(args))
        assert r.exit_code == code, (args, r.output)
        return r

    for text, labels in SEED:
        run("add", text, "--user", "alice", "--metadata", json.dumps({"sensitivity": labels}))
    return run


def test_cli_audience_policy_grants_and_audit(cli):
    owner = json.loads(cli("search", "alice", "--user", "alice", "--json").stdout)
    assert len(owner) == 2
    bot = json.loads(cli("search", "alice", "--user", "alice", "--audience", "bot", "--json").stdout)
    assert [x["memory"]["text"] for x in bot] == ["alice likes hiking in the alps"]
    block = json.loads(cli("context", "alice diabetes", "--user", "alice", "--audience", "bot", "--json").stdout)
    assert "insulin" not in block["text"]
    assert "error" in cli("search", "alice", "--audience", "a b", code=2).output

    # alice lets her doctor see her health data
    rules = json.dumps([{"category": "health", "audience": "agent:doctor", "action": "allow"}])
    cli("privacy", "policy", "set", rules, "--user", "alice")
    listed = json.loads(cli("privacy", "policy", "list", "--user", "alice", "--json").stdout)
    assert listed["rules"] == [{"category": "health", "audience": "agent:doctor", "action": "allow"}]
    doc = json.loads(cli("search", "alice", "--user", "alice", "--audience", "doctor", "--json").stdout)
    assert len(doc) == 2

    seen = json.loads(cli("privacy", "audit", "--user", "alice", "--category", "health", "--json").stdout)
    assert {d["agent_id"] for d in seen} == {"doctor"}
    summ = json.loads(cli("privacy", "audit", "--user", "alice", "--category", "health", "--summary",
                          "--json").stdout)
    assert [(x["agent_id"], x["count"]) for x in summ] == [("doctor", 1)]
    assert "doctor" in cli("privacy", "audit", "--user", "alice").stdout

    assert json.loads(cli("privacy", "policy", "delete", "--user", "alice", "--json").stdout)["deleted"] is True
    assert len(json.loads(cli("search", "alice", "--user", "alice", "--audience", "doctor", "--json").stdout)) == 1

    assert json.loads(cli("privacy", "grant", "team", "coder", "--access", "write", "--json").stdout) == {
        "team": {"coder": "write"}}
    assert "coder" in cli("privacy", "grants").stdout
    assert json.loads(cli("privacy", "revoke", "team", "coder", "--json").stdout) == {}

    # bad input: one line, exit 2
    for bad in (["privacy", "policy", "set", "[{\"category\": \"health\", \"action\": \"maybe\"}]"],
                ["privacy", "policy", "set", "not json"],
                ["privacy", "grant", "team", "coder", "--access", "all"],
                ["privacy", "audit", "--summary"],
                ["privacy", "audit", "--limit", "0"]):
        r = cli(*bad, code=2)
        assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1, r.output


def test_rest_privacy_routes(tmp_path):
    env = make_env(tmp_path)
    bound = env.keys.create("acme", ["write", "audience:bot"]).key
    with TestClient(env.app) as c:
        rw, ro, adm = env.auth("acme_rw"), env.auth("acme_ro"), env.auth("acme_admin")
        for text, labels in SEED:
            c.post("/v1/memories", json={"messages": text, "user_id": "alice", "metadata": {"sensitivity": labels}},
                   headers=rw)
        rules = {"rules": [{"category": "health", "audience": "agent:doctor", "action": "allow"}]}
        # a user's policy needs write; the tenant's needs admin; an audience-bound key changes nothing
        r = c.put("/v1/privacy/policy", params={"user_id": "alice"}, json=rules, headers=rw)
        assert r.status_code == 200 and r.json()["rules"] == rules["rules"], r.text
        assert c.put("/v1/privacy/policy", json=rules, headers=rw).status_code == 403
        assert c.put("/v1/privacy/policy", params={"user_id": "alice"}, json=rules, headers=ro).status_code == 403
        assert c.put("/v1/privacy/policy", params={"user_id": "alice"}, json=rules,
                     headers={"Authorization": f"Bearer {bound}"}).status_code == 403
        tenant = {"rules": [{"category": "finance", "audience": "any", "action": "redact"}]}
        assert c.put("/v1/privacy/policy", json=tenant, headers=adm).status_code == 200
        got = c.get("/v1/privacy/policy", headers=ro).json()
        assert got["rules"] == tenant["rules"] and "credentials" in got["defaults"]["never"]
        assert c.get("/v1/privacy/policy", params={"user_id": "alice"}, headers=ro).json()["rules"] == rules["rules"]
        # bad rules are a 4xx with a message
        for bad in ({"rules": [{"category": "health", "action": "maybe"}]}, {"rules": "x"}, {"nope": 1}):
            r = c.put("/v1/privacy/policy", params={"user_id": "alice"}, json=bad, headers=rw)
            assert 400 <= r.status_code < 500 and r.json()["error"]["message"], r.text

        hits = c.post("/v1/search", json={"query": "alice", "user_id": "alice", "audience": "doctor"}, headers=ro)
        assert len(hits.json()["results"]) == 2
        c.post("/v1/search", json={"query": "alice", "user_id": "alice", "audience": "bot"}, headers=ro)
        assert c.get("/v1/privacy/audit", params={"user_id": "alice"}, headers=rw).status_code == 403
        audit = c.get("/v1/privacy/audit", params={"user_id": "alice", "category": "health"}, headers=adm).json()
        assert {d["agent_id"] for d in audit["disclosures"]} == {"doctor"}
        who = c.get("/v1/privacy/audit/who", params={"user_id": "alice", "category": "health"}, headers=adm).json()
        assert [(a["agent_id"], a["count"]) for a in who["audiences"]] == [("doctor", 1)]
        assert c.get("/v1/privacy/audit", params={"limit": 0}, headers=adm).status_code == 422

        assert c.delete("/v1/privacy/policy", params={"user_id": "alice"}, headers=rw).json()["rules"] == []
        assert c.delete("/v1/privacy/policy", headers=rw).status_code == 403

        assert c.put("/v1/privacy/grants/team/coder", json={"access": "write"}, headers=rw).status_code == 403
        r = c.put("/v1/privacy/grants/team/coder", json={"access": "write"}, headers=adm)
        assert r.json() == {"grants": {"team": {"coder": "write"}}}
        assert c.get("/v1/privacy/grants", headers=ro).json() == {"grants": {"team": {"coder": "write"}}}
        assert c.put("/v1/privacy/grants/team/coder", json={"access": "all"}, headers=adm).status_code == 422
        assert c.put("/v1/privacy/grants/team/a%20b", headers=adm).status_code == 422
        assert c.delete("/v1/privacy/grants/team/coder", headers=adm).json() == {"grants": {}}


async def test_mcp_over_http_serves_the_audience_of_the_key(tmp_path):
    from server_helpers import mcp_http_client, serve_in_thread, tool_json

    env = make_env(tmp_path)
    bound = env.keys.create("acme", ["write", "audience:bot"]).key
    mem = env.registry.get("acme")
    for text, labels in SEED:
        mem.add(text, user_id="alice", metadata={"sensitivity": labels})
    health_id = next(r.id for r in mem.list(user_id="alice").items if "insulin" in r.text)
    with serve_in_thread(env.app) as base:
        async with mcp_http_client(base + "/mcp/", bound) as client:
            res = await client.call_tool("recall", {"query": "alice insulin", "user_id": "alice", "limit": 10})
            texts = [x["text"] for x in tool_json(res)["results"]]
            assert texts == ["alice likes hiking in the alps"]
            res = await client.call_tool("get_context", {"query": "alice diabetes", "user_id": "alice"})
            assert "insulin" not in str(res.content)
            # the tools that would bypass the policies are refused to an audience-bound key
            for tool, args in (("memory_history", {"memory_id": health_id}), ("facts", {"user_id": "alice"}),
                               ("update_memory", {"memory_id": health_id, "importance": 0.9})):
                res = await client.call_tool(tool, args)
                assert res.is_error and "audience" in tool_json(res)["text"], (tool, res)
        async with mcp_http_client(base + "/mcp/", env.tokens["acme_rw"]) as client:  # an unbound key: the owner
            res = await client.call_tool("recall", {"query": "alice insulin", "user_id": "alice", "limit": 10})
            assert len(tool_json(res)["results"]) == 2
            assert not (await client.call_tool("memory_history", {"memory_id": health_id})).is_error
    assert {d.agent_id for d in mem.privacy.disclosures(user_id="alice")} == {"bot"}


def test_rest_routes_past_the_policies_refuse_an_audience_bound_key(tmp_path):
    env = make_env(tmp_path)
    hb = {"Authorization": f"Bearer {env.keys.create('acme', ['write', 'audience:bot']).key}"}
    with TestClient(env.app) as c:
        rid = c.post("/v1/memories", json={"messages": SEED[0][0], "user_id": "alice",
                                           "metadata": {"sensitivity": ["health"]}},
                     headers=env.auth("acme_rw")).json()["memories"][0]["id"]
        for method, path in (("GET", f"/v1/memories/{rid}"), ("GET", "/v1/memories"),
                             ("GET", f"/v1/memories/{rid}/history"), ("GET", f"/v1/memories/{rid}/derived"),
                             ("GET", f"/v1/memories/{rid}/links"), ("GET", "/v1/export"), ("GET", "/v1/facts"),
                             ("GET", f"/v1/facts/{rid}/history")):
            r = c.request(method, path, headers=hb)
            assert r.status_code == 403 and "audience" in r.json()["error"]["message"], (path, r.text)
        assert c.patch(f"/v1/memories/{rid}", json={"importance": 0.9}, headers=hb).status_code == 403
        assert c.post("/v1/search", json={"query": "alice", "user_id": "alice"}, headers=hb).json()["results"] == []
        assert c.get(f"/v1/memories/{rid}", headers=env.auth("acme_ro")).status_code == 200
