"""Privacy at every door: REST, MCP and the framework adapters enforce the audience; shared spaces keep agents
apart (an isolation suite with counted attempts and leaks) and lose nothing under concurrent writers."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env

from engramdb import Memory
from engramdb.config import MemoryConfig
from engramdb.embed import HashingEmbedder
from engramdb.privacy.spaces import AccessDenied


def _mem(path):
    return Memory(path, embedder=HashingEmbedder(64), config=MemoryConfig(extraction="off"))


SEED = [
    ("alice takes insulin for her diabetes", ["health"]),
    ("alice's card PIN is [REDACTED:password]", ["credentials"]),
    ("alice likes hiking in the alps", []),
]


def test_rest_enforces_the_audience_and_rejects_a_bad_one(tmp_path):
    env = make_env(tmp_path)
    with TestClient(env.app) as c:
        h = env.auth("acme_rw")
        for text, labels in SEED:
            r = c.post("/v1/memories", json={"messages": text, "user_id": "alice",
                                             "metadata": {"sensitivity": labels} if labels else {}}, headers=h)
            assert r.status_code in (200, 201), r.text
        owner = c.post("/v1/search", json={"query": "alice", "user_id": "alice"}, headers=h).json()
        assert len(owner["results"]) == 3
        bot = c.post("/v1/search", json={"query": "alice", "user_id": "alice", "audience": "bot"}, headers=h).json()
        assert [x["memory"]["text"] for x in bot["results"]] == ["alice likes hiking in the alps"]
        block = c.post("/v1/context", json={"query": "alice", "user_id": "alice", "audience": "purpose:travel"},
                       headers=h).json()
        assert "hiking" in block["text"] and "insulin" not in block["text"]
        bad = c.post("/v1/search", json={"query": "alice", "user_id": "alice", "audience": {"team": "x"}}, headers=h)
        assert 400 <= bad.status_code < 500
    mem = env.registry.get("acme")
    assert {d.agent_id for d in mem.privacy.disclosures(user_id="alice")} == {"bot", None}


def test_an_api_key_bound_to_an_audience_reads_as_it(tmp_path):
    env = make_env(tmp_path)
    bound = env.keys.create("acme", ["read", "audience:travel-bot"]).key
    with TestClient(env.app) as c:
        h = env.auth("acme_rw")
        for text, labels in SEED:
            c.post("/v1/memories", json={"messages": text, "user_id": "alice", "metadata": {"sensitivity": labels}},
                   headers=h)
        hb = {"Authorization": f"Bearer {bound}"}
        got = c.post("/v1/search", json={"query": "alice", "user_id": "alice"}, headers=hb).json()
        assert [x["memory"]["text"] for x in got["results"]] == ["alice likes hiking in the alps"]
        # the request cannot claim another audience, nor none
        got = c.post("/v1/search", json={"query": "alice", "user_id": "alice", "audience": "purpose:care"},
                     headers=hb).json()
        assert len(got["results"]) == 1
        block = c.post("/v1/context", json={"query": "alice", "user_id": "alice"}, headers=hb).json()
        assert "insulin" not in block["text"]
        assert c.post("/v1/memories", json={"messages": "x", "user_id": "alice"}, headers=hb).status_code == 403
    from engramdb.errors import ValidationError

    for bad in (["audience:bot"], ["read", "audience:a b"]):
        with pytest.raises(ValidationError):
            env.keys.create("acme", bad)


async def test_mcp_server_answers_its_configured_audience(tmp_path):
    from mcp import Client

    from engramdb.mcp.server import stdio_server

    with _mem(tmp_path / "m.db") as m:
        for text, labels in SEED:
            m.add(text, user_id="alice", metadata={"sensitivity": labels})
        async with Client(stdio_server(m, audience="assistant")) as client:
            res = await client.call_tool("recall", {"query": "alice", "user_id": "alice", "limit": 10})
            text = str(res.structured_content or res.content)
            assert "hiking" in text and "insulin" not in text and "PIN" not in text
            res = await client.call_tool("get_context", {"query": "alice diabetes", "user_id": "alice"})
            assert "insulin" not in str(res.content)
        assert {d.agent_id for d in m.privacy.disclosures(user_id="alice")} == {"assistant"}


def test_langchain_retriever_and_openai_tools_pass_the_audience(tmp_path):
    from engramdb.integrations.langchain import EngramDBRetriever
    from engramdb.integrations.llamaindex import EngramDBMemoryBlock

    with _mem(tmp_path / "a.db") as m:
        for text, labels in SEED:
            m.add(text, user_id="alice", metadata={"sensitivity": labels})
        docs = EngramDBRetriever(memory=m, user_id="alice", k=10, audience="lc-bot").invoke("alice")
        assert [d.page_content for d in docs] == ["alice likes hiking in the alps"]
        block = EngramDBMemoryBlock(memory=m, user_id="alice", audience="li-bot")
        assert block.audience == "li-bot"
        assert {d.agent_id for d in m.privacy.disclosures(user_id="alice")} == {"lc-bot"}


# -- shared spaces -----------------------------------------------------------------------------------------------
AGENTS = ["planner", "coder", "reviewer", "outsider"]


def test_space_isolation_suite(tmp_path):
    """Every agent searches for every memory; a memory seen by an agent that may not see it is a leak."""
    with _mem(tmp_path / "s.db") as m:
        p = m.privacy
        p.grant("team", "planner", "write")
        p.grant("team", "coder", "write")
        p.grant("team", "reviewer", "read")
        mine = {}
        mine["planner-private"] = m.add("planner private note zeta", user_id="u", agent_id="planner")[0]
        mine["team-plan"] = m.add("team plan zeta milestones", user_id="u", agent_id="planner",
                                  metadata={"space": "team"})[0]
        mine["coder-team"] = m.add("coder finding zeta bug", user_id="u", agent_id="coder",
                                   metadata={"space": "team"})[0]
        mine["shared-review"] = m.add("coder to reviewer zeta", user_id="u", agent_id="coder",
                                      metadata={"shared_with": ["reviewer"]})[0]
        mine["user-note"] = m.add("user level zeta note", user_id="u")[0]
        allowed = {
            "planner": {"planner-private", "team-plan", "coder-team", "user-note"},
            "coder": {"team-plan", "coder-team", "shared-review", "user-note"},
            "reviewer": {"team-plan", "coder-team", "shared-review", "user-note"},
            "outsider": {"user-note"},
        }
        attempts = leaks = misses = 0
        names = {r.id: k for k, r in mine.items()}
        for agent in AGENTS:
            for query in ["zeta", "planner private note", "team plan", "coder finding", "reviewer", "note"]:
                attempts += 1
                got = {names[h.memory.id] for h in m.search(query, user_id="u", limit=20, audience=agent)}
                leaks += len(got - allowed[agent])
            seen = {names[h.memory.id] for h in m.search("zeta", user_id="u", limit=20, audience=agent)}
            misses += len(allowed[agent] - seen)
            block = m.context("zeta", user_id="u", audience=agent, max_tokens=2000)
            attempts += 1
            leaks += len({names[i] for i in block.memory_ids} - allowed[agent])
        # a reader cannot write into the space, an outsider neither; nothing is written by a refused add
        for agent in ("reviewer", "outsider"):
            attempts += 1
            with pytest.raises(AccessDenied):
                m.add("sneaky zeta", user_id="u", agent_id=agent, metadata={"space": "team"})
        assert m.list(user_id="u").total == 5
        print(f"isolation: {attempts} attempts, {leaks} leaks")
        assert attempts == 30 and leaks == 0 and misses == 0


def test_revoked_grant_closes_the_space(tmp_path):
    with _mem(tmp_path / "r.db") as m:
        m.privacy.grant("team", "a", "write")
        m.privacy.grant("team", "b", "read")
        m.add("space zeta", user_id="u", agent_id="a", metadata={"space": "team"})
        assert len(m.search("zeta", user_id="u", audience="b")) == 1
        m.privacy.revoke("team", "b")
        assert m.search("zeta", user_id="u", audience="b") == []
        assert m.privacy.grants() == {"team": {"a": "write"}}


def test_conflicting_facts_from_two_agents_are_both_kept_and_attributed(tmp_path):
    with Memory(tmp_path / "c.db", embedder=HashingEmbedder(64)) as m:
        m.privacy.grant("crm", "sales", "write")
        m.privacy.grant("crm", "support", "write")
        m.add({"speaker": "Sam", "text": "I live in Paris"}, user_id="sam", agent_id="sales",
              metadata={"space": "crm"}, timestamp="2024-01-01T00:00:00Z")
        m.add({"speaker": "Sam", "text": "I moved to Rome"}, user_id="sam", agent_id="support",
              metadata={"space": "crm"}, timestamp="2024-03-01T00:00:00Z")
        facts = {f.agent_id: f for f in m.list(user_id="sam", kinds=["fact"]).items}
        # each claim kept, attributed to the agent that heard it, with its own valid time
        assert facts["sales"].text == "Sam lives in Paris" and facts["support"].text == "Sam lives in Rome"
        assert facts["sales"].valid_from < facts["support"].valid_from
        assert facts["sales"].valid_to is None and facts["support"].valid_to is None
        # both are in the space through the turns they came from: any member sees both claims, and who made each
        for reader in ("support", "sales"):
            got = {h.memory.agent_id: h.memory.text for h in m.search("where does Sam live", user_id="sam",
                                                                       kinds=["fact"], audience=reader)}
            assert got == {"sales": "Sam lives in Paris", "support": "Sam lives in Rome"}
        assert m.search("where does Sam live", user_id="sam", kinds=["fact"], audience="outsider") == []


def test_four_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "w.db"
    with _mem(path) as m:
        for a in range(4):
            m.privacy.grant("proj", f"agent{a}", "write")
    errors: list[BaseException] = []

    def writer(a: int) -> None:
        try:
            with _mem(path) as mine:  # one Memory (one connection) per agent, as separate processes would
                for i in range(25):
                    mine.add(f"agent{a} note {i}", user_id="u", agent_id=f"agent{a}", metadata={"space": "proj"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(a,)) for a in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with _mem(path) as m:
        rows = m.list(user_id="u", limit=1000).items
        assert len(rows) == 100
        assert {(r.agent_id, r.text) for r in rows} == {(f"agent{a}", f"agent{a} note {i}")
                                                         for a in range(4) for i in range(25)}
        assert len(m.search("note", user_id="u", limit=200, audience="agent0")) == 100


@pytest.mark.parametrize("meta", [{"space": ""}, {"space": "a b"}, {"shared_with": []}, {"shared_with": "bob"},
                                  {"shared_with": [""]}])
def test_bad_visibility_is_refused(fake_mem, meta):
    with pytest.raises(Exception, match="space|shared_with"):
        fake_mem.add("x", user_id="u", agent_id="a", metadata=meta)
    assert fake_mem.list(user_id="u").total == 0
