"""Tenant isolation: tenant `acme` tries every way it can to read, change or erase tenant `globex`'s
memories — over REST and over MCP — and the suite counts attempts and leaks (must be 0).

A leak is any response to acme that contains globex's secret text or one of its ids, any success
status on a globex id, or any change to globex's data seen afterwards. Runs on SQLite (a file per
tenant) and on PostgreSQL (a schema per tenant).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env, mcp_http_client, serve_in_thread, tool_json

SHARED_USER = "shared_user"  # both tenants use the same scope ids: scopes must not be the boundary


class Ledger:
    def __init__(self, secret: str, secret_ids: list[str]) -> None:
        self.secret = secret
        self.secret_ids = secret_ids
        self.attempts = 0
        self.leaks: list[str] = []

    def check(self, what: str, status: int, body: str, *, sent: str = "") -> None:
        """`sent`: an id the attacker itself put in the request; an error message echoing it is no leak."""
        self.attempts += 1
        echo_free = body.replace(sent, "") if sent else body
        leaked = self.secret in body or any(i in echo_free for i in self.secret_ids)
        if leaked or (sent in self.secret_ids and 200 <= status < 300):
            self.leaks.append(f"{what}: {status} {body[:200]}")


def _backend_url(request, backend: str) -> str | None:
    """None for SQLite; for PostgreSQL the session server's base URL (the registry adds a schema per tenant)."""
    if backend == "sqlite":
        return None
    return request.getfixturevalue("pg_server").uri


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


def test_no_cross_tenant_leaks(tmp_path, request, backend):
    url = _backend_url(request, backend)
    if url:
        # A fresh schema pair per run: tenants get unique names so reruns never see old data.
        suffix = uuid.uuid4().hex[:8]
        victim, attacker = f"globex_{suffix}", f"acme_{suffix}"
    else:
        victim, attacker = "globex", "acme"
    env = make_env(tmp_path, url=url, mcp=True)
    ks = env.keys
    tok = {
        "a_rw": ks.create(attacker, ["read", "write"]).key,
        "a_admin": ks.create(attacker, ["admin"]).key,
        "v_rw": ks.create(victim, ["read", "write"]).key,
    }
    A = {"Authorization": f"Bearer {tok['a_rw']}"}
    A_ADMIN = {"Authorization": f"Bearer {tok['a_admin']}"}
    V = {"Authorization": f"Bearer {tok['v_rw']}"}
    secret = f"CANARY-{uuid.uuid4().hex}"

    with TestClient(env.app) as c:
        # the victim's data: same user/session ids and metadata the attacker will use
        r = c.post(
            "/v1/memories",
            json={
                "messages": [f"{secret} the vault code is 4711", f"{secret} salary is 250k"],
                "user_id": SHARED_USER,
                "session_id": "s1",
                "metadata": {"topic": "secret"},
            },
            headers=V,
        )
        assert r.status_code == 201
        v_ids = [m["id"] for m in r.json()["memories"]]
        c.patch(f"/v1/memories/{v_ids[0]}", json={"text": f"{secret} the vault code is 4712"}, headers=V)
        before = c.get("/v1/export", headers=V).text
        # the attacker's own data, in the same scope
        own = c.post(
            "/v1/memories",
            json={
                "messages": "my vault code is 1234",
                "user_id": SHARED_USER,
                "session_id": "s1",
                "metadata": {"topic": "secret"},
            },
            headers=A,
        )
        assert own.status_code == 201
        led = Ledger(secret, v_ids)
        guessed = [*v_ids, v_ids[0][:12] + "0" * 16, v_ids[0].upper(), f"../{victim}/{v_ids[0]}"]

        # 1. ids taken from the other tenant (and guesses around them), on every id route
        for mid in guessed:
            for method, path, kw in [
                ("get", f"/v1/memories/{mid}", {}),
                ("get", f"/v1/memories/{mid}/history", {}),
                ("patch", f"/v1/memories/{mid}", {"json": {"text": "pwned"}}),
                ("delete", f"/v1/memories/{mid}", {}),
            ]:
                resp = getattr(c, method)(path, headers=A, **kw)
                led.check(f"{method} {path}", resp.status_code, resp.text, sent=mid)
                assert resp.status_code in (404, 422), (path, resp.status_code)
        # 2. search / context / list with the same scope, filters, kinds, no scope, the secret as query
        bodies = [
            {"query": secret},
            {"query": "vault code", "user_id": SHARED_USER},
            {"query": "salary", "session_id": "s1"},
            {"query": "vault", "filters": {"topic": "secret"}},
            {"query": secret, "user_id": SHARED_USER, "limit": 1000},
            {"query": "code", "since": "1970-01-01T00:00:00Z"},
        ]
        for body in bodies:
            for path in ("/v1/search", "/v1/context"):
                if path == "/v1/search":
                    body = {**body, "kinds": ["episode", "fact"]} if "kinds" not in body else body
                else:
                    body = {k: v for k, v in body.items() if k != "kinds"}
                resp = c.post(path, json=body, headers=A)
                led.check(f"{path} {json.dumps(body)}", resp.status_code, resp.text)
        for params in [
            {},
            {"user_id": SHARED_USER},
            {"session_id": "s1"},
            {"filters": '{"topic": "secret"}'},
            {"kind": "episode", "limit": 1000},
            {"order": "-recorded_at"},
        ]:
            resp = c.get("/v1/memories", params=params, headers=A)
            led.check(f"list {params}", resp.status_code, resp.text)
        for mid in v_ids:  # the victim's ids as queries and as filter values
            resp = c.post("/v1/search", json={"query": mid, "filters": {"id": mid}}, headers=A)
            led.check(f"search id {mid}", resp.status_code, resp.text)
            resp = c.get("/v1/memories", params={"filters": json.dumps({"memory_id": mid})}, headers=A)
            led.check(f"list id {mid}", resp.status_code, resp.text)
        # 3. export, stats, whoami
        for params in [{}, {"user_id": SHARED_USER, "include_embeddings": "true"}]:
            resp = c.get("/v1/export", params=params, headers=A)
            led.check(f"export {params}", resp.status_code, resp.text)
        for path in ("/v1/stats", "/v1/whoami"):
            resp = c.get(path, headers=A)
            led.check(path, resp.status_code, resp.text)
            assert victim not in resp.text
        # 4. purge: the victim's ids, and the shared scope (erases only the attacker's own)
        resp = c.post("/v1/purge", json={"memory_ids": v_ids}, headers=A_ADMIN)
        led.check("purge ids", resp.status_code, resp.text)
        assert resp.json()["purged"] == 0
        resp = c.post("/v1/purge", json={"user_id": SHARED_USER}, headers=A_ADMIN)
        led.check("purge scope", resp.status_code, resp.text)
        # 5. header tricks: a tenant header, a forged key with the victim's key id, the victim's id in X-API-Key
        v_key_id = tok["v_rw"].split("_")[1]
        forged = f"edb_{v_key_id}_{tok['a_rw'].split('_', 2)[2]}"
        for headers in [
            {**A, "X-Tenant": victim, "X-Engram-Tenant": victim},
            {"Authorization": f"Bearer {forged}"},
            {"X-API-Key": forged},
            {"Authorization": f"Bearer {tok['a_rw']}", "X-API-Key": tok["v_rw"][:-1] + "x"},
        ]:
            resp = c.post("/v1/search", json={"query": secret}, headers=headers)
            led.check(f"search with {list(headers)}", resp.status_code, resp.text)
            resp = c.get(f"/v1/memories/{v_ids[0]}", headers=headers)
            led.check(f"get with {list(headers)}", resp.status_code, resp.text, sent=v_ids[0])
        rest_attempts = led.attempts

        # 6. MCP tools over streamable HTTP with the attacker's key
        async def mcp_attacks(base: str) -> None:
            async with mcp_http_client(base + "/mcp/", tok["a_rw"]) as m:
                calls = [
                    ("recall", {"query": secret}),
                    ("recall", {"query": "vault", "user_id": SHARED_USER}),
                    ("get_context", {"query": secret, "user_id": SHARED_USER}),
                ]
                for mid in guessed:
                    calls += [
                        ("memory_history", {"memory_id": mid}),
                        ("forget", {"memory_id": mid}),
                        ("update_memory", {"memory_id": mid, "text": "pwned"}),
                    ]
                for name, args in calls:
                    res = await m.call_tool(name, args)
                    payload = json.dumps(tool_json(res))
                    status = 404 if res.is_error else 200
                    led.check(f"mcp {name} {args}", status, payload, sent=args.get("memory_id", ""))
                    if "memory_id" in args:
                        assert res.is_error, (name, args, payload)

        with serve_in_thread(env.app) as base:
            asyncio.run(mcp_attacks(base))

        # 7. the victim's data is exactly as it was
        after = c.get("/v1/export", headers=V).text
        led.attempts += 1
        if after != before:
            led.leaks.append("victim's export changed")
        assert c.get(f"/v1/memories/{v_ids[0]}/history", headers=V).json()["entries"][-1]["action"] == "update"

    print(
        f"\nisolation[{backend}]: {led.attempts} attempts ({rest_attempts} REST, "
        f"{led.attempts - rest_attempts - 1} MCP, 1 integrity check), {len(led.leaks)} leaks"
    )
    env.registry.close()
    if url:
        from engramdb.server.tenants import pg_schema

        for tenant in (victim, attacker):
            request.getfixturevalue("pg_server").drop_schema(pg_schema(tenant))
    assert led.leaks == []
    assert led.attempts >= 75
