"""A small, realistic store for trying the UI, its browser tests and its screenshots: the demo conversation,
a person who moves city (so the facts timeline has a past), an agent's runs with learned tips, and two
hostile texts that must stay text on every page. `many_tips` adds as many tips as a test or a benchmark
needs, learned from synthetic runs of other agents."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from importlib import resources
from typing import Any

from ..api.memory import Memory

XSS_SCRIPT = '<script>window.__pwned = "script"</script>Remember: <b>bold</b> claims'
XSS_IMG = '<img src=x onerror="window.__pwned=\'img\'"> my avatar'

PAY = "PaymentError: payment of 39.80 EUR needs confirmation"


def _run(city: str) -> dict[str, Any]:
    return {
        "task": f"Order 2 x mug for delivery to {city}",
        "steps": [
            {"tool": "search", "args": {"query": "mug"}, "observation": "sku-1 ceramic mug, 9.90 EUR"},
            {"tool": "checkout", "args": {"address": city}, "error": PAY},
            {"tool": "checkout", "args": {"address": city, "confirm": True}, "observation": "order placed"},
        ],
        "outcome": "success",
    }


def seed(mem: Memory) -> dict[str, Any]:
    """Fill `mem`; returns the ids the tests look for."""
    data = json.loads(resources.files("engramdb.data").joinpath("sample_conversation.json").read_text("utf-8"))
    user = data["user_id"]
    for s in data["sessions"]:
        mem.add(s["turns"], user_id=user, session_id=s["session_id"], timestamp=s["date"])
    moves = [
        ("2021-05-03T09:00:00+00:00", "I live in Berlin and I work at Siemens as an engineer."),
        ("2022-09-14T18:30:00+00:00", "Big news: I moved to Hamburg for a new job."),
        ("2024-02-01T08:15:00+00:00", "I moved to Paris last week, the flat is tiny but lovely."),
    ]
    ids = {}
    for i, (when, text) in enumerate(moves):
        ids[f"move{i}"] = mem.add({"speaker": "Alice", "text": text}, user_id="alice", session_id=f"a{i}",
                                  timestamp=when)[0].id
    ids["xss_script"] = mem.add({"speaker": "Mallory", "text": XSS_SCRIPT}, user_id="mallory", session_id="x1",
                                timestamp="2024-05-01T10:00:00+00:00", metadata={"note": XSS_IMG})[0].id
    ids["xss_img"] = mem.add({"speaker": "Mallory", "text": XSS_IMG}, user_id="mallory", session_id="x1",
                             timestamp="2024-05-01T10:01:00+00:00")[0].id
    mem.add_trajectories([_run(c) for c in ("Munich", "Hamburg", "Bonn")], agent_id="shop")
    mem.learn_tips(agent_id="shop")
    return ids


_VERBS = ("book", "reserve", "refund", "ship", "invoice", "cancel", "quote", "schedule")
_NOUNS = ("room", "flight", "table", "courier", "ticket", "car", "parcel", "meeting")
_FLAGS = ("confirm", "dry_run", "idempotency_key", "currency", "region", "priority", "consent", "notify")
_CITIES = ("Bonn", "Kiel", "Lyon", "Porto", "Turin", "Ghent", "Graz", "Split")
TASKS_PER_AGENT = 40  # each run twice (support 2): a recovery tip and a strategy tip per task


def _agent_run(agent: str, j: int, city: str) -> dict[str, Any]:
    """A run of task j: look the item up, call the API, which fails for a missing flag, and retry with it."""
    verb, noun, flag = _VERBS[j % 8], _NOUNS[j // 8 % 8], _FLAGS[(j * 3 + len(agent)) % 8]
    tool = f"{noun}s.{verb}"
    steps: list[dict[str, Any]] = [
        {"tool": f"{noun}s.search", "args": {"city": city}, "observation": f"3 {noun}s in {city}"},
        {"tool": tool, "args": {"city": city}, "error": f"{noun.title()}Error: {verb} needs {flag} ({agent})"},
        {"tool": tool, "args": {"city": city, flag: True}, "observation": f"{noun} {verb} done"},
    ]
    return {"task": f"{verb.title()} a {noun} in {city} for {agent}", "steps": steps, "outcome": "success"}


def many_tips(mem: Memory, n: int, *, tasks: int = TASKS_PER_AGENT, seed: int = 11, prefix: str = "ops-bot",
              progress: Callable[[int, int], None] | None = None) -> list[str]:
    """About `n` more tips (2 * `tasks` an agent, agents `prefix`-0, -1, ...), learned from two runs of each
    task (up to 64 an agent). A third of the tasks then come again: their tips are served (`tips`) and an
    outcome reported, one to four times, so utility and times served differ. Returns the agents."""
    if not 1 <= tasks <= 64:
        raise ValueError("tasks: 1 to 64 an agent")
    rng = random.Random(seed)
    agents = [f"{prefix}-{a}" for a in range(max(1, -(-n // (2 * tasks))))]
    for a, agent in enumerate(agents):
        runs = [_agent_run(agent, j, city) for j in range(tasks) for city in rng.sample(_CITIES, 2)]
        mem.add_trajectories(runs, agent_id=agent)
        mem.learn_tips(agent_id=agent)
        for j in rng.sample(range(tasks), tasks // 3):
            run = _agent_run(agent, j, rng.choice(_CITIES))
            for _ in range(rng.randint(1, 4)):
                served = mem.tips(run["task"], errors=[run["steps"][1]["error"]], agent_id=agent, limit=2)
                if served.tip_ids:
                    mem.report_outcome(served.tip_ids, rng.choice(["success", "success", "failure", "partial"]))
        if progress:
            progress(a + 1, len(agents))
    return agents
