"""Temporal truth (issue 4 §4): resolved times stored with episodes, time words in queries, time order."""

from __future__ import annotations

import pytest

from engramdb.errors import ValidationError


def test_relative_times_are_resolved_and_stored_alongside(fake_mem):
    (ep,) = fake_mem.add(
        "I went hiking yesterday and I'm flying out next month.", user_id="u", timestamp="2024-05-08T13:00:00Z"
    )
    refs = ep.metadata["time_refs"]
    assert [(r["text"], r["start"][:10], r["granularity"]) for r in refs] == [
        ("yesterday", "2024-05-07", "day"),
        ("next month", "2024-06-01", "month"),
    ]
    assert fake_mem.get(ep.id).text.endswith("next month.")  # the text stays verbatim


def test_fact_validity_starts_at_the_resolved_time(fake_mem):
    fake_mem.add("I moved to Lisbon.", user_id="u", timestamp="2023-01-10T09:00:00Z")
    fake_mem.add("I moved to Berlin two weeks ago!", user_id="u", timestamp="2023-04-20T09:00:00Z")
    (berlin,) = fake_mem.facts(user_id="u")
    assert berlin.valid_from.date().isoformat() == "2023-04-03"  # "two weeks ago" = that week, from Monday
    assert [f.metadata["value"] for f in fake_mem.facts(user_id="u", as_of="2023-04-10T00:00:00Z")] == ["Berlin"]


def test_query_time_words_lift_memories_of_that_time(fake_mem):
    for month in ("03", "05", "07"):
        fake_mem.add("We went to a jazz concert downtown.", user_id="u", timestamp=f"2023-{month}-12T20:00:00Z")
    hits = fake_mem.search("jazz concert in May 2023", user_id="u", kinds=["episode"], limit=3)
    assert hits[0].memory.occurred_at.month == 5 and "time" in hits[0].signals
    plain = fake_mem.search("jazz concert", user_id="u", kinds=["episode"], limit=3)
    assert all("time" not in h.signals for h in plain)


def test_before_and_after_an_event_of_the_fact_history(fake_mem):
    fake_mem.add("I moved to Paris.", user_id="u", timestamp="2024-01-01T00:00:00Z")
    fake_mem.add("I bought a new bike for the commute.", user_id="u", timestamp="2024-03-01T00:00:00Z")
    fake_mem.add("I moved to Berlin.", user_id="u", timestamp="2024-06-01T00:00:00Z")
    fake_mem.add("I bought a new car for the commute.", user_id="u", timestamp="2024-08-01T00:00:00Z")
    before = fake_mem.search("what did I buy for the commute before I moved", user_id="u", kinds=["episode"], limit=2)
    after = fake_mem.search("what did I buy for the commute after I moved", user_id="u", kinds=["episode"], limit=2)
    assert "bike" in before[0].memory.text and "car" in after[0].memory.text


def test_order_by_time(fake_mem):
    for month in ("07", "03", "05"):
        fake_mem.add(f"concert number {month}", user_id="u", timestamp=f"2023-{month}-12T20:00:00Z")
    got = fake_mem.search("concert", user_id="u", kinds=["episode"], order="time")
    assert [h.memory.occurred_at.month for h in got] == [3, 5, 7]
    got = fake_mem.search("concert", user_id="u", kinds=["episode"], order="-time")
    assert [h.memory.occurred_at.month for h in got] == [7, 5, 3]
    with pytest.raises(ValidationError):
        fake_mem.search("concert", user_id="u", order="sideways")
