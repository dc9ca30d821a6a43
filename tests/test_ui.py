"""The web UI over HTTP (no browser): sign-in and session cookie, CSRF, permissions, escaping, tenant
isolation on the UI routes, bad input, and the local `engramdb ui` app. The browser flows are in
test_ui_browser.py."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env

from engramdb import Memory
from engramdb.embed import HashingEmbedder
from engramdb.ui import local_app
from engramdb.ui.sample import XSS_IMG, XSS_SCRIPT, seed

PAGES = ["/ui/overview", "/ui/memories", "/ui/memories?q=where+does+alice+live", "/ui/trace?q=where+does+alice+live",
         "/ui/facts?user_id=alice", "/ui/facts", "/ui/procedures", "/ui/purge", "/ui/purge?user_id=alice"]


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" (?:value|content)="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def sign_in(c: TestClient, key: str) -> None:
    token = csrf_of(c.get("/ui/login").text)
    r = c.post("/ui/login", data={"key": key, "csrf": token, "next": "/ui/overview"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/overview"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("ui"))
    ids = seed(env.registry.get("acme"))
    secret = f"CANARY-{uuid.uuid4().hex}"
    g = env.registry.get("globex").add(f"{secret} alice lives in the vault", user_id="alice", session_id="a0")
    yield env, ids, secret, g[0].id
    env.registry.close()


def test_sign_in_sets_an_httponly_strict_cookie_without_the_key(world):
    env, *_ = world
    with TestClient(env.app) as c:
        r = c.get("/ui/memories", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
        token = csrf_of(c.get("/ui/login").text)
        bad = c.post("/ui/login", data={"key": "edb_000000000000_" + "x" * 43, "csrf": token})
        assert bad.status_code == 401 and "invalid API key" in bad.text
        r = c.post("/ui/login", data={"key": env.tokens["acme_rw"], "csrf": token}, follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert "engramdb_ui=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert env.tokens["acme_rw"].split("_", 2)[2] not in cookie  # the secret part of the key never leaves
        page = c.get("/ui/overview")
        assert page.status_code == 200 and "tenant <b>acme</b>" in page.text
        assert "localStorage" not in c.get("/ui/static/ui.js").text
        # signing out ends the session
        c.post("/ui/logout", data={"csrf": csrf_of(page.text)})
        assert c.get("/ui/overview", follow_redirects=False).status_code == 303


def test_sign_in_form_needs_its_csrf_token(world):
    env, *_ = world
    with TestClient(env.app) as c:
        c.get("/ui/login")
        r = c.post("/ui/login", data={"key": env.tokens["acme_rw"], "csrf": "forged"})
        assert r.status_code == 403


def test_every_page_renders_with_security_headers(world):
    env, ids, *_ = world
    mem = env.registry.get("acme")
    tip = mem.list_tips(status=None)[0]
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_admin"])
        for url in [*PAGES, f"/ui/m/{ids['move0']}", f"/ui/m/{ids['move0']}/forget", f"/ui/procedures/{tip.id}"]:
            r = c.get(url)
            assert r.status_code == 200, (url, r.text[:500])
            assert "script-src 'self'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"


def test_memory_text_is_escaped_everywhere(world):
    env, ids, *_ = world
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_rw"])
        pages = [f"/ui/m/{ids['xss_script']}", f"/ui/m/{ids['xss_img']}", "/ui/memories?user_id=mallory",
                 "/ui/memories?q=avatar+bold+claims", "/ui/trace?q=avatar+bold+claims&user_id=mallory"]
        for url in pages:
            body = c.get(url).text
            assert "<script>window.__pwned" not in body and "<img src=x" not in body, url
            assert "&lt;script&gt;" in body or "&lt;img src=x" in body, url
        assert "&lt;img src=x onerror=" in c.get(f"/ui/m/{ids['xss_script']}").text  # metadata too
    assert XSS_SCRIPT.startswith("<script>") and XSS_IMG.startswith("<img")


def test_read_only_key_sees_no_edit_controls_and_cannot_edit(world):
    env, ids, *_ = world
    mem = env.registry.get("acme")
    before = mem.records([ids["move1"]])[0]
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_ro"])
        page = c.get(f"/ui/m/{ids['move1']}")
        assert page.status_code == 200
        assert 'data-testid="edit-controls"' not in page.text and "/forget" not in page.text
        assert 'href="/ui/purge"' not in page.text
        token = csrf_of(page.text)  # the sign-out form's token: valid, but the key is read-only
        for path, data in [(f"/ui/m/{ids['move1']}/edit", {"text": "pwned"}), (f"/ui/m/{ids['move1']}/forget", {}),
                           ("/ui/purge", {"user_id": "alice", "confirm": "alice"})]:
            r = c.post(path, data={**data, "csrf": token})
            assert r.status_code == 403, path
        assert c.get(f"/ui/m/{ids['move1']}/forget").status_code == 403
    after = mem.records([ids["move1"]])[0]
    assert after.text == before.text and after.version == before.version and after.deleted_at is None


def test_writes_need_csrf_and_same_origin(world):
    env, ids, *_ = world
    mem = env.registry.get("acme")
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_rw"])
        token = csrf_of(c.get(f"/ui/m/{ids['move2']}").text)
        url = f"/ui/m/{ids['move2']}/edit"
        assert c.post(url, data={"text": "csrf-less"}).status_code == 403
        assert c.post(url, data={"text": "forged", "csrf": token[:-2] + "xx"}).status_code == 403
        r = c.post(url, data={"text": "other site", "csrf": token}, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        assert "csrf-less" not in mem.records([ids["move2"]])[0].text
        ok = c.post(url, data={"text": "I moved to Paris last week, the flat is small.", "csrf": token},
                    follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"].endswith("saved=1")
        detail = c.get(ok.headers["location"]).text
        assert "<ins>small.</ins>" in detail and "<del>tiny but lovely.</del>" in detail
        # an expiry set on the form, then emptied: the memory no longer expires
        form = {"csrf": token, "expires_at": "2099-01-01T00:00:00+00:00"}
        assert c.post(url, data=form, follow_redirects=False).status_code == 303
        assert mem.records([ids["move2"]])[0].expires_at.year == 2099
        assert 'value="2099-01-01T00:00:00+00:00"' in c.get(f"/ui/m/{ids['move2']}").text
        assert c.post(url, data={"csrf": token, "expires_at": ""}, follow_redirects=False).status_code == 303
        assert mem.records([ids["move2"]])[0].expires_at is None


def test_bad_input_is_4xx_never_500(world):
    env, ids, *_ = world
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_admin"])
        cases = [
            "/ui/memories?offset=-1", "/ui/memories?offset=abc", "/ui/memories?kind=NOT-A-KIND",
            "/ui/memories?since=yesterday", "/ui/memories?until=2024-13-45", "/ui/memories?order=sideways",
            "/ui/memories?user_id=" + "u" * 300, "/ui/trace?q=x&max_tokens=3", "/ui/trace?q=" + "q" * 3000,
            "/ui/facts?as_of=not-a-date", "/ui/procedures?status=maybe", "/ui/procedures?type=magic",
            "/ui/procedures?offset=-5", "/ui/m/nope", "/ui/procedures/nope",
            "/ui/purge?user_id=%00", "/ui/m/" + "x" * 300,
        ]
        for url in cases:
            r = c.get(url)
            assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
        token = csrf_of(c.get("/ui/overview").text)
        for path, data in [(f"/ui/m/{ids['move0']}/edit", {"importance": "lots"}),
                           (f"/ui/m/{ids['move0']}/edit", {"metadata": "{not json"}),
                           (f"/ui/m/{ids['move0']}/edit", {"metadata": "[1, 2]"}),
                           (f"/ui/m/{ids['move0']}/edit", {"text": "   "}),
                           (f"/ui/m/{ids['move0']}/edit", {"expires_at": "next tuesday"}),
                           ("/ui/purge", {"user_id": "alice", "confirm": "bob"}),
                           ("/ui/purge", {"confirm": "x"}), ("/ui/m/nope/forget", {})]:
            r = c.post(path, data={**data, "csrf": token})
            assert 400 <= r.status_code < 500, (path, data, r.status_code, r.text[:300])
        assert env.registry.get("acme").list(user_id="alice").total > 0  # the refused purge erased nothing


def test_tenant_isolation_on_ui_routes(world):
    """The isolation suite's attacks, against the UI: the attacker (acme) uses globex's id and secret."""
    env, ids, secret, victim_id = world
    victim = env.registry.get("globex")
    before = victim.export(__import__("io").StringIO())
    attempts, leaks = 0, []
    guessed = [victim_id, victim_id[:12] + "0" * 16, victim_id.upper(), f"../globex/{victim_id}"]
    with TestClient(env.app) as c:
        sign_in(c, env.tokens["acme_admin"])
        token = csrf_of(c.get("/ui/overview").text)
        gets = [f"/ui/m/{m}" for m in guessed] + [f"/ui/m/{m}/forget" for m in guessed] + [
            f"/ui/memories?q={secret}", "/ui/memories?user_id=alice", "/ui/memories?session_id=a0",
            "/ui/memories?q=vault&user_id=alice", "/ui/memories?order=-recorded_at", "/ui/memories?kind=episode",
            f"/ui/trace?q={secret}&user_id=alice", f"/ui/trace?q={victim_id}", "/ui/facts?user_id=alice",
            "/ui/overview", "/ui/purge?user_id=alice", f"/ui/procedures/{victim_id}",
        ]
        for url in gets:
            r = c.get(url)
            attempts += 1
            body = r.text.replace(victim_id, "") if victim_id in url else r.text
            # the page may echo the attacker's own query (the secret); the victim's text around it must not appear
            reached = victim_id in url and "/ui/m/" in url and r.status_code == 200
            if f"{secret} alice lives" in r.text or victim_id in body or reached:
                leaks.append(f"GET {url}: {r.status_code}")
        for m in guessed:
            for path, data in [(f"/ui/m/{m}/edit", {"text": "pwned"}), (f"/ui/m/{m}/forget", {})]:
                r = c.post(path, data={**data, "csrf": token})
                attempts += 1
                if r.status_code < 400:
                    leaks.append(f"POST {path}: {r.status_code}")
        # purge the scope both tenants use: only the attacker's own alice goes
        r = c.post("/ui/purge", data={"user_id": "alice", "confirm": "alice", "csrf": token})
        attempts += 1
        if secret in r.text or r.status_code != 200:
            leaks.append(f"purge: {r.status_code}")
        # a forged session cookie naming the victim's key id, and a tenant header
        v_key = env.tokens["globex_rw"].split("_")[1]
        cookie = c.cookies.get("engramdb_ui")
        forged = v_key + cookie[12:]
        for jar, headers in [({"engramdb_ui": forged}, {}), ({"engramdb_ui": cookie}, {"X-Tenant": "globex"})]:
            with TestClient(env.app, cookies=jar) as c2:
                r = c2.get(f"/ui/m/{victim_id}", headers=headers, follow_redirects=False)
                attempts += 1
                if r.status_code == 200 or secret in r.text:
                    leaks.append(f"forged cookie/header: {r.status_code}")
    after = victim.export(__import__("io").StringIO())
    attempts += 1
    if before != after or victim.records([victim_id])[0].text.startswith(secret) is False:
        leaks.append("victim's data changed")
    print(f"\nui isolation: {attempts} attempts, {len(leaks)} leaks")
    assert leaks == []
    assert attempts >= 30


def test_local_app_needs_no_key_and_answers_only_on_loopback(tmp_path):
    mem = Memory(tmp_path / "local.db", embedder=HashingEmbedder(64))
    ids = seed(mem)
    try:
        with TestClient(local_app(mem), base_url="http://127.0.0.1:8430") as c:
            page = c.get("/ui/overview")
            assert page.status_code == 200 and "local store" in page.text
            detail = c.get(f"/ui/m/{ids['move0']}")
            assert 'data-testid="edit-controls"' in detail.text
            token = csrf_of(detail.text)
            assert c.post(f"/ui/m/{ids['move0']}/edit", data={"text": "no token"}).status_code == 403
            r = c.post(f"/ui/m/{ids['move0']}/edit", data={"text": "I live in Berlin.", "csrf": token},
                       follow_redirects=False)
            assert r.status_code == 303
        with TestClient(local_app(mem), base_url="http://evil.example") as c:  # DNS rebinding
            assert c.get("/ui/overview").status_code == 403
        with TestClient(local_app(mem, read_only=True), base_url="http://localhost:8430") as c:
            detail = c.get(f"/ui/m/{ids['move0']}")
            assert 'data-testid="edit-controls"' not in detail.text
            assert c.post(f"/ui/m/{ids['move0']}/forget", data={"csrf": csrf_of(detail.text)}).status_code == 403
    finally:
        mem.close()


def test_purge_shows_counts_then_erases(tmp_path):
    mem = Memory(tmp_path / "p.db", embedder=HashingEmbedder(64))
    seed(mem)
    n = mem.list(user_id="alice").total
    try:
        with TestClient(local_app(mem), base_url="http://127.0.0.1") as c:
            page = c.get("/ui/purge?user_id=alice")
            assert f"erases <b>{n}</b> memories" in page.text
            assert mem.list(user_id="alice").total == n  # counting erased nothing
            r = c.post("/ui/purge", data={"user_id": "alice", "confirm": "alice", "csrf": csrf_of(page.text)})
            assert r.status_code == 200 and "Erased" in r.text
        assert mem.list(user_id="alice").total == 0 and mem.list(user_id="maya").total > 0
    finally:
        mem.close()


def test_procedures_page_reads_one_page_and_counts(tmp_path, monkeypatch):
    """The Procedures page asks for one page of tips and a count, never every tip; its page links keep the
    filters. A tip's page shows only the newest changes of its history (a tip is rewritten on every use)."""
    from engramdb.ui.sample import many_tips

    mem = Memory(tmp_path / "t.db", embedder=HashingEmbedder(64))
    calls: list[dict] = []
    real = Memory.list_tips

    def spy(self, **kw):
        calls.append(kw)
        return real(self, **kw)

    try:
        agents = many_tips(mem, 120)  # 160 tips of two agents
        total = mem.count_tips(status=None)
        best = [t.id for t in mem.list_tips(status=None, order="-utility")]
        types = {t.id: t.type for t in mem.list_tips(status=None)}
        monkeypatch.setattr(Memory, "list_tips", spy)
        with TestClient(local_app(mem), base_url="http://127.0.0.1") as c:
            first = c.get("/ui/procedures").text
            assert f"{total} tips learned" in first and "showing 1–50" in first
            shown = re.findall(r'href="/ui/procedures/([^"]+)"', first)
            assert shown == best[:50]
            nxt = re.search(r'href="(/ui/procedures\?[^"]*offset=50[^"]*)" data-testid="next"', first)
            assert nxt, "no next-page link"
            second = c.get(nxt.group(1).replace("&amp;", "&")).text
            assert re.findall(r'href="/ui/procedures/([^"]+)"', second) == best[50:100]
            assert "← previous page" in second and "showing 51–100" in second
            last = c.get(f"/ui/procedures?offset={total // 50 * 50}").text
            assert 'data-testid="next"' not in last
            assert len(re.findall(r'href="/ui/procedures/([^"]+)"', last)) == total % 50
            # the filters: one agent's recovery tips (40 of them)
            url = f"/ui/procedures?agent_id={agents[0]}&status=all&type=recovery"
            page = c.get(url).text
            assert "40 tips learned" in page and 'data-testid="next"' not in page
            ids = re.findall(r'href="/ui/procedures/([^"]+)"', page)
            assert len(ids) == 40 and {types[i] for i in ids} == {"recovery"}
            everything = c.get("/ui/procedures?status=all").text
            link = re.search(r'href="(/ui/procedures\?[^"]*)" data-testid="next"', everything).group(1)
            assert "status=all" in link and "offset=50" in link
            typed = c.get(f"/ui/procedures?type=strategy&agent_id={agents[1]}&offset=0").text
            assert "40 tips learned" in typed
        assert calls and all(kw.get("limit") == 50 for kw in calls)  # every read was one page
        # a tip served and reported on many times: its page shows the newest 50 changes and says so
        busy = best[0]
        for _ in range(55):
            mem.report_outcome([busy], "success")
        assert len(mem.history(busy)) > 55
        with TestClient(local_app(mem), base_url="http://127.0.0.1") as c:
            detail = c.get(f"/ui/m/{busy}").text
            assert detail.count('<span class="tag">v') == 50 and 'data-testid="older-history"' in detail
            small = c.get(f"/ui/m/{best[-1]}").text
            assert 'data-testid="older-history"' not in small
    finally:
        mem.close()


def test_memory_methods_the_ui_reads(tmp_path):
    mem = Memory(tmp_path / "m.db", embedder=HashingEmbedder(64))
    try:
        ids = seed(mem)
        total, top = mem.scopes("user_id")
        assert total == 3 and top[0] == ("maya", mem.list(user_id="maya").total)
        assert sum(n for _, n in top) == mem.list(user_id="maya").total + mem.list(user_id="alice").total + 2
        assert mem.scopes("session_id", user_id="alice")[0] == 3
        growth = dict(mem.growth())
        assert growth["2021-05"] == mem.list(since="2021-05-01T00:00:00Z", until="2021-06-01T00:00:00Z").total
        assert sum(growth.values()) == mem.stats()["memories"]
        before = mem.records([ids["move0"]])[0].access_count
        got = mem.records([ids["move1"], "missing", ids["move0"]])
        assert [r.id for r in got] == [ids["move1"], ids["move0"]] and got[1].access_count == before
        derived = mem.derived(ids["move0"])
        assert {d.metadata.get("value") for d in derived} >= {"Berlin", "Siemens"}
        assert all(ids["move0"] in d.source_ids for d in derived)
        fact = next(d for d in derived if d.metadata.get("value") == "Berlin")
        assert any(lk["type"] == "supersedes" for lk in mem.links(fact.id))
        hits: list = []
        block = mem.context("where does alice live", user_id="alice", max_tokens=200, hits=hits)
        assert hits and set(block.memory_ids) <= {h.memory.id for h in hits}
        with pytest.raises(Exception, match="field must be"):
            mem.scopes("text")
        with pytest.raises(Exception, match="period must be"):
            mem.growth(period="week")
    finally:
        mem.close()


def test_pages_and_isolation_on_postgres(tmp_path, pg_server):
    """The same pages over PostgreSQL (a schema per tenant): its GROUP BY paths for scopes and growth."""
    from engramdb.server.tenants import pg_schema

    suffix = uuid.uuid4().hex[:8]
    me, other = f"acme_{suffix}", f"globex_{suffix}"
    env = make_env(tmp_path, url=pg_server.uri)
    key = env.keys.create(me, ["admin"]).key
    try:
        ids = seed(env.registry.get(me))
        secret = f"CANARY-{uuid.uuid4().hex}"
        victim = env.registry.get(other).add(f"{secret} alice lives in the vault", user_id="alice")[0].id
        tip = env.registry.get(me).list_tips(status=None)[0]
        # the tips order in SQL, as Python sorts it: utility, support, text in code point order
        from engramdb.ui.sample import many_tips

        mine = env.registry.get(me)
        many_tips(mine, 20, tasks=10)
        everything = mine.list_tips(status=None)
        want = [t.id for t in sorted(everything, key=lambda t: (-t.utility, -t.support, t.text))]
        pages = [mine.list_tips(status=None, order="-utility", limit=6, offset=o) for o in range(0, len(want), 6)]
        assert [t.id for p in pages for t in p] == want and mine.count_tips(status=None) == len(want)
        assert mine.count_tips(tip_type="recovery", agent_id="ops-bot-0") == 10
        with TestClient(env.app) as c:
            sign_in(c, key)
            for url in [*PAGES, f"/ui/m/{ids['move0']}", f"/ui/procedures/{tip.id}"]:
                r = c.get(url)
                assert r.status_code == 200, (url, r.text[:300])
                assert secret not in r.text
            assert "Berlin" in c.get("/ui/facts?user_id=alice").text
            assert c.get(f"/ui/m/{victim}").status_code == 404
            mem = env.registry.get(me)
            growth = dict(mem.growth())
            assert growth["2021-05"] == mem.list(since="2021-05-01T00:00:00Z", until="2021-06-01T00:00:00Z").total
            assert sum(growth.values()) == mem.stats()["memories"]
    finally:
        env.registry.close()
        for tenant in (me, other):
            pg_server.drop_schema(pg_schema(tenant))
