"""The current truth on the read path: time intent, current/historical results, present-first order, the
context block's current facts, recency without a fact, and derived facts following their sources (Python,
REST and MCP)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env, mcp_http_client, serve_in_thread, tool_json

from engramdb import Memory
from engramdb.config import MemoryConfig
from engramdb.retrieve.currency import announces_change, states_present, time_intent


@pytest.mark.parametrize(
    ("query", "intent"),
    [
        ("Where do I live now?", "present"),
        ("Which company does Sam work for these days?", "present"),
        ("Does she still drive the Civic?", "present"),
        ("Where did Sam live before he moved?", "past"),
        ("What was his previous job?", "past"),
        ("Where did Sam live?", "past"),
        ("Where did she use to work, now that she left?", "past"),  # an explicit past word wins
        ("Sam's employer", "neutral"),
        ("What is Caroline's relationship status?", "neutral"),
    ],
)
def test_time_intent(query, intent):
    assert time_intent(query) == intent


def test_reminiscence_and_plans_do_not_state_the_present():
    assert states_present("Just signed a lease in Denver, the move is done")
    assert not states_present("I miss Boston's bagels so much")
    assert not states_present("Ran into my old boss from Acme")
    assert not states_present("We might move to Austin next year")
    assert not states_present("Do you like Denver?")
    # a change announced next to the old value still states the present
    assert states_present("Picked up a Tesla today, my old Civic went to my cousin")
    assert not states_present("What's new with you?")


def test_change_words_and_slot_cues():
    assert not announces_change("I've been a teacher for years now")
    assert announces_change("Coldplay has become my favourite band")
    # "got" announces something had ("got a Miata", "got married"), not a mood ("got homesick")
    assert announces_change("Just got a Miata") and announces_change("We got married in June")
    assert not announces_change("Watched a film about Oslo and got homesick")
    assert announces_change("I live in Denver now")
    from engramdb.retrieve.slots import CUE_BONUS, SLOTS, _cues

    names = list(SLOTS)
    bonus = dict(zip(names, _cues(names, "Which vehicle does Priya drive?"), strict=True))
    assert bonus["car"] == CUE_BONUS and bonus["home"] == 0


SAM = [
    ("2024-01-10T09:00:00+00:00", [("I live in Boston, near the river.", "Boston is lovely."),
                                   ("I work at Acme as an accountant.", "Sounds steady.")]),
    ("2024-06-12T09:00:00+00:00", [("Big news: I started working at Globex this week!", "Congratulations!"),
                                   ("The commute from Boston is long though.", "That sounds tiring.")]),
    ("2024-11-20T09:00:00+00:00", [("I moved to Seattle last month!", "Exciting! How do you like it?"),
                                   ("It rains a lot. I miss Boston's bagels.", "Understandable.")]),
]


def _chat(mem: Memory) -> None:
    for ts, turns in SAM:
        for user, assistant in turns:
            mem.context(user, user_id="sam", max_tokens=200)  # a chat loop reads before it writes
            mem.add([{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
                    user_id="sam", timestamp=ts)


@pytest.fixture
def sam(tmp_path, embedder):
    m = Memory(tmp_path / "sam.db", embedder=embedder)
    _chat(m)
    yield m
    m.close()


def _first_naming(results, values):
    for r in results:
        for v in values:
            if v.lower() in r.memory.text.lower():
                return v
    return None


def test_present_questions_get_the_current_value_first(sam):
    hits = sam.search("Where do I live now?", user_id="sam")
    assert _first_naming(hits, ["Seattle", "Boston"]) == "Seattle"
    hits = sam.search("Which company does Sam work for now", user_id="sam")
    assert _first_naming(hits, ["Globex", "Acme"]) == "Globex"


def test_results_say_what_is_historical_and_what_replaced_it(sam):
    facts = {f.metadata["value"]: f for f in sam.facts(user_id="sam", attribute="lives_in", include_history=True)}
    assert set(facts) >= {"Boston", "Seattle"}
    hits = sam.search("Where did Sam live before?", user_id="sam", limit=20)
    by_text = {r.memory.text: r for r in hits}
    old_fact = next(r for r in hits if r.memory.id == facts["Boston"].id)  # past questions find old facts
    assert old_fact.current is False and old_fact.superseded_by == facts["Seattle"].id
    assert by_text["I live in Boston, near the river."].current is False  # it supported only the old value
    assert by_text["I moved to Seattle last month!"].current is True
    # unscoped (an admin's search over every user): the same reading, found through each hit's own scope
    sam.add("I live in Boston too, by the harbour.", user_id="zoe", timestamp="2024-02-01T09:00:00+00:00")
    every = {r.memory.text: r for r in sam.search("Where did Sam live before?", limit=40, order="time")}
    assert every["I live in Boston, near the river."].current is False
    assert every["I moved to Seattle last month!"].current is True
    assert every["I live in Boston too, by the harbour."].current is True  # zoe never moved
    # as_of answers the past, order="time" keeps history
    then = sam.search("where does sam live", user_id="sam", as_of="2024-03-01T00:00:00Z", limit=5)
    assert _first_naming(then, ["Seattle", "Boston"]) == "Boston"
    timeline = sam.search("where does sam live", user_id="sam", order="time", limit=20)
    assert facts["Boston"].id in [r.memory.id for r in timeline]


def test_context_leads_with_current_facts_and_never_shows_old_as_current(sam):
    block = sam.context("Where does Sam live and work?", user_id="sam", max_tokens=200)
    head = block.text.split("\n\n")[0]
    assert head.startswith("Current facts:")
    assert "Seattle" in head and "before: Boston" in head and "Globex" in head
    assert "Acme" not in head.replace("before: Acme", "")
    for line in block.text.splitlines():
        if "Boston" in line and "before: Boston" not in line and "miss" not in line and "commute" not in line:
            assert "(past)" in line or "until" in line, line
    # a tight budget drops supporting memories before the current facts
    tight = sam.context("Where do I live now?", user_id="sam", max_tokens=40)
    assert "Seattle" in tight.text and tight.fact_ids and tight.truncated


def test_context_is_unchanged_with_current_truth_off(tmp_path, embedder):
    m = Memory(tmp_path / "off.db", embedder=embedder, config=MemoryConfig(lifecycle={"current_truth": False}))
    _chat(m)
    block = m.context("Where does Sam live and work?", user_id="sam", max_tokens=200)
    assert "Current facts" not in block.text and not block.fact_ids
    assert all(r.current for r in m.search("Where did Sam live before?", user_id="sam"))  # nothing marked
    m.close()


def test_newest_statement_wins_without_an_extracted_fact(tmp_path, embedder):
    m = Memory(tmp_path / "nofacts.db", embedder=embedder, config=MemoryConfig(extraction="off"))
    m.add("I live in Boston, near the river.", user_id="u", timestamp="2024-01-05T10:00:00Z")
    m.add("Work was busy today.", user_id="u", timestamp="2024-03-05T10:00:00Z")
    m.add("Just signed a lease in Denver, the move is done", user_id="u", timestamp="2024-06-05T10:00:00Z")
    m.add("I still miss Boston's harbour walks", user_id="u", timestamp="2024-07-05T10:00:00Z")
    assert not m.facts(user_id="u")
    hits = m.search("Where do I live now?", user_id="u", limit=4)
    assert hits[0].memory.text.startswith("Just signed a lease in Denver")
    # a question about the past keeps the plain ranking
    past = m.search("Where did I live at first?", user_id="u", limit=4)
    assert past[0].memory.text.startswith("I live in Boston")
    # as_of: the same order, as of that date (Denver was not said yet)
    then = m.search("Where do I live now?", user_id="u", as_of="2024-04-01T00:00:00Z", limit=4)
    assert then[0].memory.text.startswith("I live in Boston")
    # a question with no time cue keeps the ranker's order (only historical memories would move down)
    off = Memory(tmp_path / "nofacts.db", embedder=embedder,
                 config=MemoryConfig(extraction="off", lifecycle={"current_truth": False}))
    q = "Which city is home for me?"
    assert [r.memory.id for r in m.search(q, user_id="u")] == [r.memory.id for r in off.search(q, user_id="u")]
    off.close()
    m.close()


def test_a_question_with_no_time_cue_gets_the_current_value_once_it_changed(tmp_path, embedder):
    m = Memory(tmp_path / "cars.db", embedder=embedder, config=MemoryConfig(extraction="rules"))
    m.add("I drive a Honda Civic, it never breaks down.", user_id="u", timestamp="2024-01-05T10:00:00Z")
    m.add("My Honda Civic needs new tyres soon.", user_id="u", timestamp="2024-02-05T10:00:00Z")
    m.add("Work was busy today.", user_id="u", timestamp="2024-03-05T10:00:00Z")
    m.add("We traded our Civic in for a Subaru Forester last weekend.", user_id="u", timestamp="2024-08-05T10:00:00Z")
    cars = {f.metadata["value"]: f.valid_to for f in m.facts(user_id="u", attribute="car", include_history=True)}
    assert cars["Subaru Forester"] is None and cars["Honda Civic"] is not None
    hits = [r.memory.text for r in m.search("What car does the user drive?", user_id="u", limit=5)]
    first = next(t for t in hits if "Civic" in t or "Forester" in t)
    assert "Forester" in first
    m.close()


def test_employer_and_job_title_questions_each_get_their_own_attribute(tmp_path, embedder):
    from engramdb.retrieve.slots import attribute_focus

    assert attribute_focus("Who employed Kai in July?") == {"works_at"}
    assert attribute_focus("What does Kai do for a living?") == {"job_title"}
    assert attribute_focus("Tell me about Kai") == frozenset()
    m = Memory(tmp_path / "work.db", embedder=embedder, config=MemoryConfig(extraction="rules"))
    m.add("I work at Initech, mostly on billing.", user_id="u", timestamp="2024-01-05T10:00:00Z")
    m.add("I work as a nurse on the night shift.", user_id="u", timestamp="2024-01-06T10:00:00Z")
    m.add("The weather was lovely today.", user_id="u", timestamp="2024-03-05T10:00:00Z")
    m.add("I started working at Globex this week.", user_id="u", timestamp="2024-06-05T10:00:00Z")
    m.add("I got promoted to charge nurse!", user_id="u", timestamp="2024-11-05T10:00:00Z")

    def first(query: str, **kw: str) -> str:
        texts = [r.memory.text for r in m.search(query, user_id="u", limit=10, **kw)]
        return next(t for t in texts if "Initech" in t or "Globex" in t)

    assert "Globex" in first("Who employs me now?")
    assert "Initech" in first("Who was I working for back then?", as_of="2024-03-01T00:00:00Z")
    m.close()


# -- derived facts follow their sources ------------------------------------------------------------------------


def _values(mem: Memory, attribute: str = "lives_in") -> list[str]:
    return sorted(f.metadata["value"] for f in mem.facts(user_id="u", attribute=attribute))


def test_update_re_derives_facts(fake_mem):
    (a,) = fake_mem.add("I live in Boston.", user_id="u", timestamp="2024-01-01T00:00:00Z")
    assert _values(fake_mem) == ["Boston"]
    fake_mem.update(a.id, text="I live in Chicago.")
    assert _values(fake_mem) == ["Chicago"]
    old = [f for f in fake_mem.facts(user_id="u", include_history=True) if f.metadata["value"] == "Boston"]
    assert old == []  # retracted: gone from every read...
    boston = [h for h in fake_mem.store.history(a.id)]
    assert [h.action for h in boston] == ["add", "update"]
    # ...with the reason kept in the fact's history
    retracted = [r for r in fake_mem.store.list(_all_facts(), limit=50) if r.metadata.get("value") == "Boston"]
    assert retracted and retracted[0].metadata["retracted"]["reason"] == "source edited"
    assert retracted[0].valid_to == retracted[0].valid_from
    # an edit that keeps the fact keeps it as it is
    (chicago,) = fake_mem.facts(user_id="u")
    fake_mem.update(a.id, text="I live in Chicago!")
    assert [f.id for f in fake_mem.facts(user_id="u")] == [chicago.id]


def _all_facts():
    from engramdb.store.base import Filters

    return Filters(kinds=["fact"], include_deleted=True, include_expired=True)


def test_delete_retracts_and_reopens_the_value_it_replaced(fake_mem):
    fake_mem.add("I live in Boston.", user_id="u", timestamp="2024-01-01T00:00:00Z")
    (denver,) = fake_mem.add("I moved to Denver.", user_id="u", timestamp="2024-06-01T00:00:00Z")
    assert _values(fake_mem) == ["Denver"]
    fake_mem.delete(denver.id)
    assert _values(fake_mem) == ["Boston"]
    assert [h.action for h in fake_mem.history(denver.id)] == ["add", "delete"]


def test_forget_keeps_a_fact_that_has_other_sources(fake_mem):
    (a,) = fake_mem.add("I live in Boston.", user_id="u", timestamp="2024-01-01T00:00:00Z")
    (b,) = fake_mem.add("I live in Boston.", user_id="u", timestamp="2024-02-01T00:00:00Z")
    (fact,) = fake_mem.facts(user_id="u")
    assert sorted(fact.source_ids) == sorted([a.id, b.id])
    fake_mem.forget(a.id)
    (still,) = fake_mem.facts(user_id="u")
    assert still.id == fact.id and still.source_ids == [b.id]
    fake_mem.forget(b.id)
    assert fake_mem.facts(user_id="u") == []


def test_summaries_follow_their_sources(fake_mem):
    eps = fake_mem.add(["We planned the Lisbon trip.", "Booked flights for May."], user_id="u", session_id="s1",
                       timestamp="2024-01-01T00:00:00Z")
    fake_mem.consolidate()
    summaries = fake_mem.list(user_id="u", kinds=["summary"]).items
    assert summaries
    for e in eps:
        fake_mem.delete(e.id)
    assert fake_mem.list(user_id="u", kinds=["summary"]).items == []


def test_rest_delete_retracts_derived_facts(tmp_path):
    env = make_env(tmp_path)
    with TestClient(env.app) as c:
        h = env.auth("acme_rw")
        r = c.post("/v1/memories", json={"messages": "I moved to Lisbon", "user_id": "alice",
                                         "timestamp": "2024-05-01T00:00:00Z"}, headers=h)
        mid = r.json()["memories"][0]["id"] if "memories" in r.json() else r.json()[0]["id"]
        block = c.post("/v1/context", json={"query": "where does alice live", "user_id": "alice"}, headers=h).json()
        assert "lives in Lisbon" in block["text"]
        assert c.delete(f"/v1/memories/{mid}", headers=h).status_code in (200, 204)
        block = c.post("/v1/context", json={"query": "where does alice live", "user_id": "alice"}, headers=h).json()
        assert "Lisbon" not in block["text"]
        hits = c.post("/v1/search", json={"query": "where does alice live", "user_id": "alice"}, headers=h).json()
        assert all("current" in hit for hit in hits["results"])


async def test_mcp_forget_retracts_derived_facts(tmp_path):
    env = make_env(tmp_path)
    scope = {"user_id": "alice"}
    with serve_in_thread(env.app) as base:
        async with mcp_http_client(base + "/mcp/", env.tokens["acme_rw"]) as client:
            stored = tool_json(await client.call_tool("remember", {"text": "I moved to Lisbon", "speaker": "user",
                                                                    "timestamp": "2024-05-01T00:00:00Z", **scope}))
            mid = stored["stored"][0]["id"]
            before = tool_json(await client.call_tool("get_context", {"query": "where does alice live", **scope}))
            assert "lives in Lisbon" in json.dumps(before)
            hits = tool_json(await client.call_tool("recall", {"query": "where does alice live", **scope}))
            assert all("current" in hit for hit in hits["results"])
            assert not (await client.call_tool("forget", {"memory_id": mid})).is_error
            after = tool_json(await client.call_tool("get_context", {"query": "where does alice live", **scope}))
            assert "Lisbon" not in json.dumps(after)
