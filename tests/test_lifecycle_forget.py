"""Forgetting: TTL honoured on every read, expiry sweep, soft forget with history and cascade, decay policy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engramdb.errors import NotFoundError, ValidationError
from engramdb.lifecycle.forget import DecayPolicy, decay_score
from engramdb.model import MemoryRecord
from engramdb.timeutil import now


def test_ttl_is_honoured_everywhere(fake_mem):
    soon = now() + timedelta(seconds=1)
    (gone,) = fake_mem.add("temporary door code 4417", user_id="u", expires_at=now() - timedelta(seconds=1))
    (kept,) = fake_mem.add("permanent note about the door", user_id="u", expires_at=soon + timedelta(days=1))
    assert [r.memory.id for r in fake_mem.search("door code", user_id="u")] == [kept.id]
    assert gone.id not in fake_mem.context("door code", user_id="u").memory_ids
    assert [r.id for r in fake_mem.list(user_id="u").items] == [kept.id]
    assert fake_mem.list(user_id="u").total == 1
    with pytest.raises(NotFoundError, match="expired"):
        fake_mem.get(gone.id)
    assert fake_mem.expire() == 1  # the sweep turns it into a soft delete with history
    assert [h.action for h in fake_mem.history(gone.id)] == ["add", "expire"]
    assert fake_mem.expire() == 0


def test_forget_by_id_filters_and_cascade(fake_mem):
    a, b = fake_mem.add(
        ["I moved to Paris.", "I love jazz."], user_id="u", session_id="s1", timestamp="2024-01-01T00:00:00Z"
    )
    (c,) = fake_mem.add("Unrelated note.", user_id="u", session_id="s2", timestamp="2024-01-02T00:00:00Z")
    facts = {f.metadata["attribute"]: f for f in fake_mem.facts(user_id="u")}
    rep = fake_mem.forget(a.id)
    assert rep.forgotten[0] == a.id and facts["lives_in"].id in rep.forgotten and rep.cascaded == 1
    assert [h.action for h in fake_mem.history(a.id)] == ["add", "forget"]  # soft: history keeps it
    assert sorted(f.metadata["attribute"] for f in fake_mem.facts(user_id="u")) == ["opinion:jazz"]
    rep = fake_mem.forget(user_id="u", session_id="s2", cascade=False)
    assert rep.forgotten == [c.id]
    assert [r.id for r in fake_mem.list(user_id="u", kinds=["episode"]).items] == [b.id]
    with pytest.raises(ValidationError):
        fake_mem.forget()
    with pytest.raises(NotFoundError):
        fake_mem.forget("nope")


def test_decay_is_off_by_default_and_spares_facts(fake_mem):
    fake_mem.add("I moved to Paris.", user_id="u", timestamp="2020-01-01T00:00:00Z")
    assert fake_mem.archive_decayed() == 0  # off by default
    policy = DecayPolicy(enabled=True, half_life_days=30)
    old = MemoryRecord(user_id="u", text="x", occurred_at=now() - timedelta(days=60), importance=1.0)
    fresh = old.model_copy(update={"occurred_at": now()})
    assert decay_score(old, policy) == pytest.approx(0.25, rel=1e-3)
    assert decay_score(fresh, policy) == pytest.approx(1.0, rel=1e-3)
    used = old.model_copy(update={"importance": 0.2, "access_count": 50})
    assert decay_score(used, policy) > decay_score(old.model_copy(update={"importance": 0.2}), policy)
    fake_mem.config = fake_mem.config.model_copy(
        update={"lifecycle": {"decay": {"enabled": True, "half_life_days": 30, "archive_below": 0.1}}}
    )
    assert fake_mem.archive_decayed() == 1  # the old episode; its fact is exempt
    assert [f.metadata["value"] for f in fake_mem.facts(user_id="u")] == ["Paris"]
    assert fake_mem.list(user_id="u", kinds=["episode"]).total == 0


def test_decay_can_down_rank_stale_memories(fake_mem):
    fake_mem.add("the garden shed needs a new roof", user_id="u", timestamp="2020-01-01T00:00:00Z")
    fake_mem.add("the garden shed needs a new roof", user_id="u", timestamp=now() - timedelta(days=1))
    fake_mem.config = fake_mem.config.model_copy(
        update={"lifecycle": {"decay": {"enabled": True, "half_life_days": 30, "rank_weight": 1.0}},
                "retrieval": {"ranker": "linear"}}
    )  # two equal copies score equal under the linear fusion (the learned ranker's rank features break the tie)
    ranked = fake_mem.search("garden shed roof", user_id="u", kinds=["episode"])
    assert len(ranked) == 2 and ranked[0].memory.occurred_at.year > 2020
    assert ranked[1].signals["decay"] < ranked[0].signals.get("decay", 0) <= 0
