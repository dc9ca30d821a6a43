"""The LangGraph store read by an audience: get and search serve only what the disclosure policies allow."""

from __future__ import annotations

import pytest

pytest.importorskip("langgraph.store.base", reason="needs the langgraph extra: pip install 'engramdb[langgraph]'")

from engramdb import Memory
from engramdb.config import MemoryConfig
from engramdb.embed import HashingEmbedder
from engramdb.errors import ValidationError
from engramdb.integrations.langgraph import KIND, EngramDBStore

NS = ("memories", "alice")


def _label(mem: Memory, key: str, labels: list[str]) -> None:
    rec = next(r for r in mem.list(kinds=[KIND], limit=100).items if r.metadata["lg_key"] == key)
    mem.update(rec.id, metadata={**rec.metadata, "sensitivity": labels})


def test_store_with_an_audience_filters_get_and_search(tmp_path):
    with Memory(tmp_path / "lg.db", embedder=HashingEmbedder(64), config=MemoryConfig(extraction="off")) as mem:
        owner = EngramDBStore(mem, agent_id="helper", user_label=1)
        owner.put(NS, "meds", {"note": "alice takes insulin for her diabetes"})
        owner.put(NS, "hobby", {"note": "alice likes hiking in the alps"})
        owner.put(NS, "bank", {"note": "alice banks with First Bank. She hikes on sundays."})
        _label(mem, "meds", ["health"])
        _label(mem, "bank", ["finance"])
        mem.privacy.set_policy([{"category": "finance", "audience": "any", "action": "redact"}])

        bot = EngramDBStore(mem, agent_id="helper", user_label=1, audience="helper")
        assert bot.get(NS, "meds") is None
        assert bot.get(NS, "hobby").value == {"note": "alice likes hiking in the alps"}
        bank = bot.get(NS, "bank").value
        assert bank["redacted"] == ["finance"] and "First Bank" not in str(bank)
        for query in ("alice insulin diabetes", None):
            got = {it.key: it.value for it in bot.search(NS, query=query, limit=10)}
            assert set(got) == {"hobby", "bank"}, query
            assert "First Bank" not in str(got["bank"]) and "insulin" not in str(got)
        assert {it.key for it in bot.search(NS, query="alice", filter={"note": "alice takes insulin for her "
                                                                              "diabetes"})} == set()
        # the owner's store (no audience) sees everything; another agent sees none of helper's items
        assert owner.get(NS, "meds") is not None and len(owner.search(NS, query="alice", limit=10)) == 3
        other = EngramDBStore(mem, agent_id="helper", user_label=1, audience="stranger")
        assert other.get(NS, "hobby") is None and other.search(NS, limit=10) == []
        seen = {(d.agent_id, d.op) for d in mem.privacy.disclosures(user_id="alice")}
        assert {"helper"} == {a for a, _ in seen} and {"get", "search"} <= {op for _, op in seen}
        with pytest.raises(ValidationError):
            EngramDBStore(mem, audience="a b")
