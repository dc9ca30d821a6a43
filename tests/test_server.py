"""REST server: every operation of the Python API, auth, edge validation, limits, logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env

from engramdb.server.keys import KeyStore


@pytest.fixture
def env(tmp_path):
    e = make_env(tmp_path)
    with TestClient(e.app) as client:
        e.client = client  # type: ignore[attr-defined]
        yield e


def test_every_operation_round_trip(env):
    c, h = env.client, env.auth("acme_rw")
    r = c.post(
        "/v1/memories",
        json={
            "messages": [
                {"speaker": "alice", "text": "I moved to Berlin last month", "timestamp": "2024-05-02T10:00:00Z"},
                {"role": "assistant", "content": "Nice, how is the new flat?"},
            ],
            "user_id": "alice",
            "metadata": {"topic": "home"},
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    ids = [m["id"] for m in r.json()["memories"]]
    assert len(ids) == 2

    hits = c.post("/v1/search", json={"query": "Berlin", "user_id": "alice", "limit": 5}, headers=h).json()["results"]
    assert hits[0]["memory"]["id"] == ids[0] and "signals" in hits[0]
    filtered = c.post("/v1/search", json={"query": "Berlin", "filters": {"topic": "nope"}}, headers=h).json()
    assert filtered["results"] == []

    block = c.post("/v1/context", json={"query": "Berlin", "user_id": "alice", "max_tokens": 200}, headers=h).json()
    assert "Berlin" in block["text"] and block["tokens"] <= 200

    # (add may also derive facts from episodes: count the episodes)
    page = c.get("/v1/memories", params={"user_id": "alice", "kind": "episode", "limit": 1}, headers=h).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next_offset"] == 1
    page = c.get("/v1/memories", params={"filters": json.dumps({"topic": "home"}), "kind": "episode"}, headers=h)
    assert page.json()["total"] == 2

    assert c.get(f"/v1/memories/{ids[0]}", headers=h).json()["text"] == "I moved to Berlin last month"
    upd = c.patch(f"/v1/memories/{ids[0]}", json={"text": "I moved to Paris"}, headers=h).json()
    assert upd["version"] == 2 and upd["text"] == "I moved to Paris"
    exp = c.patch(f"/v1/memories/{ids[0]}", json={"expires_at": "2099-01-01T00:00:00Z"}, headers=h).json()
    assert exp["expires_at"].startswith("2099")
    assert c.patch(f"/v1/memories/{ids[0]}", json={"clear": ["expires_at"]}, headers=h).json()["expires_at"] is None
    bad = c.patch(f"/v1/memories/{ids[0]}", json={"clear": ["text"]}, headers=h)
    assert bad.status_code == 422 and c.get(f"/v1/memories/{ids[0]}", headers=h).json()["version"] == 4
    hist = c.get(f"/v1/memories/{ids[0]}/history", headers=h).json()["entries"]
    assert [e["action"] for e in hist] == ["add", "update", "update", "update"]
    # the edit re-derived the turn's fact: Paris is live, the Berlin fact is retracted (kept, soft-deleted)
    facts = c.get("/v1/memories", params={"kind": "fact"}, headers=h).json()["items"]
    assert [f["metadata"]["value"] for f in facts] == ["Paris"]
    n_all = c.get("/v1/memories", headers=h).json()["total"] + 1

    lines = c.get("/v1/export", headers=h).text.strip().splitlines()
    assert json.loads(lines[0])["format"] == "engramdb-jsonl" and len(lines) == 1 + n_all
    stats = c.get("/v1/stats", headers=h).json()
    assert stats["tenant"] == "acme" and stats["stats"]["memories"] == n_all - 1 and "path" not in stats["stats"]

    assert c.delete(f"/v1/memories/{ids[1]}", headers=h).json() == {"deleted": ids[1]}
    assert c.get(f"/v1/memories/{ids[1]}", headers=h).status_code == 404

    purged = c.post("/v1/purge", json={"user_id": "alice"}, headers=env.auth("acme_admin"))
    assert purged.status_code == 200 and purged.json()["purged"] == n_all
    assert c.get("/v1/memories", headers=h).json()["total"] == 0
    assert c.get(f"/v1/memories/{ids[0]}/history", headers=h).status_code == 404
    assert c.get("/v1/whoami", headers=h).json()["tenant"] == "acme"


def _expired_and_revoked(env) -> tuple[str, str]:
    ks: KeyStore = env.keys
    expired = ks.create("acme", ["read"], expires_in=timedelta(seconds=1))
    ks._conn.execute(
        "UPDATE api_keys SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE key_id = ?", (expired.info.key_id,)
    )
    revoked = ks.create("acme", ["read"])
    ks.revoke(revoked.info.key_id)
    return expired.key, revoked.key


def test_bad_input_gets_a_clear_4xx_never_a_500(env):
    c, h = env.client, env.auth("acme_rw")
    mid = c.post("/v1/memories", json={"messages": "hello", "user_id": "u"}, headers=h).json()["memories"][0]["id"]
    expired, revoked = _expired_and_revoked(env)
    js = {**h, "content-type": "application/json"}
    cases = [
        # (method, path, kwargs, status, words in the message)
        ("post", "/v1/memories", {"content": b'{"messages": "x", ', "headers": js}, 400, "not valid JSON"),
        ("post", "/v1/memories", {"content": b"\xff\xfe", "headers": js}, 400, "not valid JSON"),
        ("post", "/v1/memories", {"json": {"messages": 5, "user_id": "u"}, "headers": h}, 422, "messages"),
        ("post", "/v1/memories", {"json": {"messages": "x", "user_id": 7}, "headers": h}, 422, "user_id"),
        ("post", "/v1/memories", {"json": {"messages": "x", "user": "u"}, "headers": h}, 422, "user"),
        ("post", "/v1/memories", {"json": {"messages": "x"}, "headers": h}, 422, "scope is required"),
        ("post", "/v1/memories", {"json": {"messages": "  ", "user_id": "u"}, "headers": h}, 422, "visible character"),
        (
            "post",
            "/v1/memories",
            {"json": {"messages": "x", "user_id": "u", "timestamp": "2024-01-01T10:00:00"}, "headers": h},
            422,
            "time zone",
        ),
        (
            "post",
            "/v1/memories",
            {"json": {"messages": "x", "user_id": "u", "kind": "Bad Kind"}, "headers": h},
            422,
            "kind",
        ),
        ("post", "/v1/memories", {"json": ["x"], "headers": h}, 422, "object"),
        ("post", "/v1/search", {"json": {"query": "x", "limit": 0}, "headers": h}, 422, "limit"),
        ("post", "/v1/search", {"json": {"query": "x", "filters": {"a b": 1}}, "headers": h}, 422, "identifier"),
        ("post", "/v1/search", {"json": {"query": "x", "since": "yesterday-ish"}, "headers": h}, 422, "since"),
        ("post", "/v1/context", {"json": {"query": "x", "max_tokens": 2}, "headers": h}, 422, "max_tokens"),
        ("get", "/v1/memories", {"params": {"filters": "{not json"}, "headers": h}, 422, "filters"),
        ("get", "/v1/memories", {"params": {"limit": "ten"}, "headers": h}, 422, "limit"),
        ("get", "/v1/memories", {"params": {"order": "random"}, "headers": h}, 422, "order"),
        ("get", "/v1/memories/does-not-exist", {"headers": h}, 404, "no memory"),
        ("get", "/v1/memories/does-not-exist/history", {"headers": h}, 404, "no memory"),
        ("patch", "/v1/memories/does-not-exist", {"json": {"text": "y"}, "headers": h}, 404, "no memory"),
        ("patch", f"/v1/memories/{mid}", {"json": {}, "headers": h}, 422, "nothing to change"),
        ("patch", f"/v1/memories/{mid}", {"json": {"importance": 3}, "headers": h}, 422, "importance"),
        ("delete", "/v1/memories/does-not-exist", {"headers": h}, 404, "no memory"),
        ("get", "/v1/stats", {}, 401, "missing API key"),
        ("get", "/v1/stats", {"headers": {"Authorization": "Basic abc"}}, 401, "Bearer"),
        ("get", "/v1/stats", {"headers": {"Authorization": "Bearer nope"}}, 401, "malformed"),
        ("get", "/v1/stats", {"headers": {"X-API-Key": "edb_0123456789ab_" + "A" * 43}}, 401, "invalid"),
        ("get", "/v1/stats", {"headers": {"Authorization": f"Bearer {expired}"}}, 401, "expired"),
        ("get", "/v1/stats", {"headers": {"Authorization": f"Bearer {revoked}"}}, 401, "revoked"),
        (
            "post",
            "/v1/memories",
            {"json": {"messages": "x", "user_id": "u"}, "headers": env.auth("acme_ro")},
            403,
            "write",
        ),
        ("post", "/v1/purge", {"json": {"user_id": "u"}, "headers": h}, 403, "admin"),
        ("post", "/v1/purge", {"json": {}, "headers": env.auth("acme_admin")}, 422, "scope"),
        ("get", "/v1/nope", {"headers": h}, 404, "Not Found"),
        ("put", "/v1/stats", {"headers": h}, 405, "Method Not Allowed"),
        ("post", "/v1/memories", {"content": b"x" * (5 * 1024 * 1024), "headers": js}, 413, "larger than"),
    ]
    for method, path, kwargs, status, words in cases:
        r = getattr(c, method) if method != "delete" else c.delete
        resp = r(path, **kwargs)
        assert resp.status_code == status, (method, path, resp.status_code, resp.text)
        err = resp.json()["error"]
        assert words.lower() in err["message"].lower(), (path, err)
        assert err["request_id"] and err["code"]
    # nothing was written by any of the bad requests
    assert c.get("/v1/memories", params={"kind": "episode"}, headers=h).json()["total"] == 1


def test_streamed_body_over_the_limit_is_413_without_content_length(tmp_path):
    env = make_env(tmp_path, max_body_bytes=2048)
    with TestClient(env.app) as c:

        def chunks():
            for _ in range(10):
                yield b" " * 1024

        r = c.post(
            "/v1/memories", content=chunks(), headers={**env.auth("acme_rw"), "content-type": "application/json"}
        )
        assert r.status_code == 413 and "larger than 2048" in r.json()["error"]["message"]
        assert c.get("/v1/memories", headers=env.auth("acme_rw")).json()["total"] == 0


def test_rate_limit_per_key(tmp_path):
    env = make_env(tmp_path, rate_limit=0.5, rate_burst=3)
    with TestClient(env.app) as c:
        codes = [c.get("/v1/stats", headers=env.auth("acme_rw")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = c.get("/v1/stats", headers=env.auth("acme_rw"))
        assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "rate_limited"
        # another key has its own bucket
        assert c.get("/v1/stats", headers=env.auth("acme_ro")).status_code == 200


def test_request_id_and_json_access_log(env):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("engramdb.server")
    logger.addHandler(handler)
    try:
        r = env.client.get("/v1/stats", headers={**env.auth("acme_rw"), "X-Request-ID": "req-123"})
    finally:
        logger.removeHandler(handler)
    assert r.headers["x-request-id"] == "req-123"
    fields = [getattr(rec, "fields", {}) for rec in records if rec.getMessage() == "request"]
    assert fields and fields[-1]["request_id"] == "req-123" and fields[-1]["tenant"] == "acme"
    assert fields[-1]["status"] == 200 and fields[-1]["path"] == "/v1/stats"
    from engramdb.server.ratelimit import JsonFormatter

    line = json.loads(JsonFormatter().format(records[-1]))
    assert line["request_id"] == "req-123" and line["level"] == "info"
    # a generated id when none is sent
    assert len(env.client.get("/healthz").headers["x-request-id"]) == 32


def test_health_ready_and_openapi(env):
    c = env.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json() == {"status": "ready"}
    spec = c.get("/openapi.json").json()
    ops = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    for op in [
        ("POST", "/v1/memories"),
        ("GET", "/v1/memories"),
        ("GET", "/v1/memories/{memory_id}"),
        ("PATCH", "/v1/memories/{memory_id}"),
        ("DELETE", "/v1/memories/{memory_id}"),
        ("GET", "/v1/memories/{memory_id}/history"),
        ("POST", "/v1/search"),
        ("POST", "/v1/context"),
        ("GET", "/v1/export"),
        ("GET", "/v1/stats"),
        ("POST", "/v1/purge"),
    ]:
        assert op in ops, op
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def test_keys_are_stored_hashed_and_cli_manages_them(tmp_path):
    from typer.testing import CliRunner

    from engramdb.cli.main import app

    runner = CliRunner()
    dd = str(tmp_path / "srv")
    out = runner.invoke(
        app, ["keys", "create", "--tenant", "acme", "--perm", "read", "--name", "bot", "--data-dir", dd, "--json"]
    )
    assert out.exit_code == 0, out.output
    created = json.loads(out.output)
    assert created["key"].startswith("edb_") and created["permissions"] == ["read"]
    raw = (tmp_path / "srv" / "keys.db").read_bytes()
    assert created["key"].encode() not in raw and created["key"].split("_", 2)[2].encode() not in raw
    listed = json.loads(runner.invoke(app, ["keys", "list", "--data-dir", dd, "--json"]).output)
    assert [k["key_id"] for k in listed] == [created["key_id"]] and listed[0]["active"]
    assert "key" not in listed[0]
    revoked = json.loads(runner.invoke(app, ["keys", "revoke", created["key_id"], "--data-dir", dd, "--json"]).output)
    assert revoked["revoked_at"]
    ks = KeyStore(tmp_path / "srv" / "keys.db")
    with pytest.raises(Exception, match="revoked"):
        ks.verify(created["key"])
    bad = runner.invoke(app, ["keys", "create", "--tenant", "../etc", "--data-dir", dd])
    assert bad.exit_code != 0


def test_real_default_model_through_the_server(tmp_path, embedder):
    """One test with the real MiniLM model: semantic recall through REST (not just keyword overlap)."""
    env = make_env(tmp_path, embedder=embedder)
    with TestClient(env.app) as c:
        h = env.auth("acme_rw")
        c.post(
            "/v1/memories",
            json={
                "messages": [
                    "I adopted a small dog named Rex",
                    "My sister lives in Lisbon",
                    "I work as a nurse at the city hospital",
                ],
                "user_id": "ann",
            },
            headers=h,
        )
        hits = c.post(
            "/v1/search", json={"query": "what pet does she have", "user_id": "ann", "limit": 1}, headers=h
        ).json()["results"]
        assert "Rex" in hits[0]["memory"]["text"]
        assert c.get("/v1/stats", headers=h).json()["stats"]["embed_model"] == "all-MiniLM-L6-v2"
