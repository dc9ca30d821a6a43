"""A small, realistic store for trying the UI, its browser tests and its screenshots: the demo conversation,
a person who moves city (so the facts timeline has a past), an agent's runs with learned tips, and two
hostile texts that must stay text on every page."""

from __future__ import annotations

import json
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
