"""The web UI in a real browser: Debian's Chromium (/usr/bin/chromium, installed by `make test`) driven by
Playwright, against `engramdb serve`'s app on a loopback port.

With UI_SCREENSHOTS=docs/ui each flow also saves a screenshot of the view it exercises (docs/ui.md).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from server_helpers import make_env, serve_in_thread

from engramdb.ui.sample import XSS_IMG, XSS_SCRIPT, many_tips, seed

CHROMIUM = os.environ.get("ENGRAMDB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("UI_SCREENSHOTS")

sync_api = pytest.importorskip("playwright.sync_api")
if not shutil.which(CHROMIUM):  # `make test` installs it; a bare pytest run elsewhere says why it skipped
    pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    embedder = None
    if SHOTS:  # the screenshots in docs/ui.md show the real model's scores; the test run uses the hashing one
        from engramdb.embed import make_embedder

        embedder = make_embedder()
    env = make_env(tmp_path_factory.mktemp("ui-browser"), embedder=embedder)
    acme = env.registry.get("acme")
    ids = seed(acme)
    many_tips(acme, 56, tasks=28)  # with the sample's own: more than one page of tips
    ids["kayak"] = acme.add("I keep a red kayak at the Zanzibar boathouse.", user_id="maya", session_id="s9",
                            timestamp="2024-07-01T10:00:00+00:00")[0].id
    secret = f"CANARY-{uuid.uuid4().hex}"
    ids["victim"] = env.registry.get("globex").add(f"{secret} the vault code is 4711", user_id="maya")[0].id
    with serve_in_thread(env.app) as base:
        yield env, base, ids, secret
    env.registry.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Tab:
    """One signed-in browser context; records script errors and dialogs (an XSS would raise one)."""

    def __init__(self, browser, base: str, key: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
        self.page = self.ctx.new_page()
        self.base = base
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(base + "/ui/overview")
        assert "/ui/login" in self.page.url  # signed out: the sign-in page first
        self.page.fill("input[name=key]", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(re.compile(r".*/ui/overview$"))

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)

    def pwned(self) -> object:
        return self.page.evaluate("window.__pwned")

    def close(self) -> None:
        self.ctx.close()


def test_sign_in_session_cookie_and_overview(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_admin"])
    p = tab.page
    cookies = {c["name"]: c for c in tab.ctx.cookies()}
    assert cookies["engramdb_ui"]["httpOnly"] and cookies["engramdb_ui"]["sameSite"] == "Strict"
    assert "engramdb_ui" not in p.evaluate("document.cookie")  # scripts cannot read the session
    assert p.evaluate("localStorage.length + sessionStorage.length") == 0
    assert int(p.inner_text("[data-testid=total]").replace(",", "")) == env.registry.get("acme").stats()["memories"]
    assert p.locator("svg.chart rect.gbar").count() > 5
    tab.shot("overview")
    tab.close()


def test_search_then_trace(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_rw"])
    p = tab.page
    tab.go("/ui/memories")
    tab.shot("memories")
    p.fill("input[name=q]", "where does Maya live now")
    p.fill("input[name=user_id]", "maya")
    p.click("form.filters button[type=submit]")
    rows = p.locator("[data-testid=results] tbody tr")
    assert rows.count() > 3
    assert "Lisbon" in p.inner_text("[data-testid=results]")
    tab.shot("search")
    p.click("[data-testid=trace-link]")
    p.wait_for_url(re.compile(r".*/ui/trace\?.*"))
    assert p.locator("[data-testid=trace] tbody tr").count() > 3
    assert p.locator("[data-testid=why]").first.inner_text().strip()
    block = p.inner_text("[data-testid=context]")
    assert "Relevant memories (oldest first):" in block and "Lisbon" in block
    assert re.search(r"\d+ of 300 tokens", p.inner_text("[data-testid=tokens]"))
    assert p.locator("[data-testid=left-out] tbody tr").count() >= 1  # a 300-token budget leaves some out
    tab.shot("trace")
    tab.close()


def test_detail_history_edit_then_forget(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_rw"])
    p = tab.page
    tab.go(f"/ui/m/{ids['move2']}")
    assert "Paris" in p.inner_text("[data-testid=text]")
    assert p.locator("[data-testid=derived] a").count() >= 1  # the lives_in fact made from it
    p.fill("[data-testid=edit-text]", "I moved to Paris last week, the flat is small but bright.")
    p.click("[data-testid=save]")
    p.wait_for_selector("[data-testid=saved]")
    assert p.inner_text("[data-testid=version]") == "2"
    hist = p.locator("[data-testid=history]")
    assert hist.locator("ins").first.inner_text().startswith("small")
    assert "tiny" in hist.locator("del").first.inner_text()
    tab.shot("detail")
    # forget: the kayak memory is found, then forgotten, then gone from search
    tab.go("/ui/memories?q=Zanzibar+kayak&user_id=maya")
    assert "Zanzibar" in p.inner_text("[data-testid=results]")
    p.click("text=Zanzibar boathouse")
    p.click("[data-testid=forget]")
    tab.shot("forget-confirm")
    p.click("[data-testid=confirm-forget]")
    assert "Forgot 1 memory" in p.inner_text("[data-testid=done]")
    tab.go("/ui/memories?q=Zanzibar+kayak&user_id=maya")
    assert "Zanzibar" not in p.inner_text("[data-testid=results]")
    tab.go(f"/ui/m/{ids['kayak']}")
    assert p.locator("[data-testid=forgotten]").count() == 1 and p.locator("[data-testid=edit-controls]").count() == 0
    tab.close()


def test_as_of_slider_brings_the_old_city_back(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_rw"])
    p = tab.page
    tab.go("/ui/facts?user_id=alice")
    state = p.locator("[data-testid=state]")
    assert "Paris" in state.inner_text() and "Berlin" not in state.inner_text()

    def slide(day: str) -> None:
        ms = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
        p.locator("[data-testid=asof]").evaluate(
            "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", ms)

    slide("2022-01-15")
    assert p.inner_text("[data-testid=asof-label]") == "2022-01-15"
    assert "Berlin" in state.inner_text() and "Paris" not in state.inner_text()
    tab.shot("facts-2022")
    slide("2023-06-01")
    assert "Hamburg" in state.inner_text()
    tab.go("/ui/facts?user_id=maya")
    tab.shot("facts")
    tab.close()


def test_procedures_and_purge_count(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_admin"])
    p = tab.page
    tab.go("/ui/procedures")
    links = p.locator("[data-testid=tips] tbody td a")
    first = [links.nth(i).get_attribute("href") for i in range(links.count())]
    total = env.registry.get("acme").count_tips(status=None)
    assert len(first) == 50 and total > 50
    assert f"{total} tips learned" in p.inner_text("[data-testid=count]")
    # the next page holds the other tips, the most useful first page none of them
    p.click("[data-testid=next]")
    p.wait_for_url(re.compile(r".*/ui/procedures\?.*offset=50"))
    second = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(second) == total - 50 and not set(first) & set(second)
    assert "showing 51–" in p.inner_text("[data-testid=count]")
    assert p.locator("[data-testid=next]").count() == 0
    tab.shot("procedures")
    p.click("[data-testid=prev]")
    p.wait_for_url(re.compile(r".*/ui/procedures\?.*offset=0"))
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == first
    # a filter holds across pages: only recovery tips of the sample's shop agent
    p.fill("input[name=agent_id]", "shop")
    p.select_option("select[name=type]", "recovery")
    p.click("form.filters button[type=submit]")
    p.wait_for_url(re.compile(r".*type=recovery.*"))
    assert p.locator("[data-testid=tips] tbody tr").count() >= 1
    assert set(p.locator("[data-testid=tips] tbody .tag").all_inner_texts()) <= {"recovery", "active", "retired"}
    p.locator("[data-testid=tips] tbody a").first.click()
    assert p.locator("[data-testid=steps] li").count() >= 1
    tab.shot("tip")
    tab.go("/ui/purge?user_id=mallory")
    assert "erases 2 memories" in p.inner_text("[data-testid=purge-counts]")
    tab.shot("purge")
    tab.close()


def test_read_only_key_sees_no_edit_controls(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_ro"])
    p = tab.page
    tab.go(f"/ui/m/{ids['move1']}")
    assert p.inner_text("[data-testid=perm]") == "read-only"
    assert p.locator("[data-testid=edit-controls]").count() == 0 and p.locator("text=Forget").count() == 0
    assert p.locator("nav >> text=Purge").count() == 0
    # the server refuses anyway: a hand-made POST with the page's own CSRF token
    token = p.get_attribute("meta[name=csrf]", "content")
    resp = p.request.post(f"{base}/ui/m/{ids['move1']}/edit", form={"text": "pwned", "csrf": token})
    assert resp.status == 403
    assert "pwned" not in env.registry.get("acme").records([ids["move1"]])[0].text
    tab.shot("read-only")
    tab.close()


def test_tenant_cannot_reach_another_tenants_memory_by_url(site, browser):
    env, base, ids, secret = site
    tab = Tab(browser, base, env.tokens["acme_rw"])
    p = tab.page
    tab.go(f"/ui/m/{ids['victim']}")
    assert "Not found" in p.inner_text("h1") and secret not in p.content()
    tab.go("/ui/memories?q=vault+code&user_id=maya")
    assert "4711" not in p.content()
    tab.close()


def test_xss_payloads_stay_text(site, browser):
    env, base, ids, _ = site
    tab = Tab(browser, base, env.tokens["acme_rw"])
    p = tab.page
    for path in [f"/ui/m/{ids['xss_script']}", f"/ui/m/{ids['xss_img']}", "/ui/memories?user_id=mallory",
                 "/ui/memories?q=avatar+bold+claims", "/ui/trace?q=avatar+bold+claims&user_id=mallory"]:
        tab.go(path)
        p.wait_for_load_state("load")
        assert tab.pwned() is None, path
        assert p.locator("img[src=x]").count() == 0 and p.locator("main script").count() == 0, path
    tab.go(f"/ui/m/{ids['xss_script']}")
    assert p.inner_text("[data-testid=text]").endswith(XSS_SCRIPT)  # shown literally, as text
    tab.go(f"/ui/m/{ids['xss_img']}")
    assert p.inner_text("[data-testid=text]").endswith(XSS_IMG)
    tab.shot("xss")
    assert tab.dialogs == []
    tab.close()
