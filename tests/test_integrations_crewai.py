"""EngramDBStorage against CrewAI's StorageBackend protocol and crewai.Memory (offline, no LLM call).

crewai pins mcp<2, openai<3 and pydantic<2.13, so it cannot live in the main test environment (the server
extra needs mcp 2). These tests run in a venv of their own: `make test-crewai`. Elsewhere they skip.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

pytest.importorskip(
    "crewai", reason="crewai conflicts with the main test environment (mcp<2, openai<3); run: make test-crewai"
)

from crewai.memory.storage.backend import StorageBackend
from crewai.memory.types import MemoryRecord

from engramdb import Memory
from engramdb.integrations.crewai import KIND, EngramDBStorage


def _records() -> list[MemoryRecord]:
    return [
        MemoryRecord(content="The client prefers weekly status emails", scope="/acme/sales",
                     categories=["preferences"], importance=0.8, metadata={"client": "acme"}),
        MemoryRecord(content="Deploys happen on Tuesdays", scope="/acme/eng", categories=["process"],
                     metadata={"client": "acme"}),
        MemoryRecord(content="Globex wants a fixed-price contract", scope="/globex/sales",
                     categories=["preferences"], metadata={"client": "globex"},
                     created_at=datetime.utcnow() - timedelta(days=3)),
    ]


def test_storage_protocol(fake_mem: Memory) -> None:
    storage = EngramDBStorage(fake_mem)
    assert isinstance(storage, StorageBackend)  # CrewAI's runtime-checkable protocol
    recs = _records()
    storage.save(recs)
    assert storage.count() == 3 and storage.count("/acme") == 2 and storage.count("/ac") == 0  # by segment
    assert storage.get_record(recs[0].id).content == recs[0].content
    assert storage.get_record("nope") is None
    assert storage.list_scopes("/") == ["/acme", "/globex"] and storage.list_scopes("/acme") == ["/acme/eng",
                                                                                                 "/acme/sales"]
    assert storage.list_categories() == {"preferences": 2, "process": 1}
    info = storage.get_scope_info("/acme")
    assert info.record_count == 2 and info.child_scopes == ["/acme/eng", "/acme/sales"]
    assert [r.content for r in storage.list_records(limit=1)] == [recs[1].content]  # newest first
    assert storage.list_records()[-1].id == recs[2].id

    [vec] = storage.embedder(["what does the client prefer for status updates"])
    hits = storage.search(vec, scope_prefix="/acme", limit=5)
    assert hits[0][0].content == "The client prefers weekly status emails" and 0 <= hits[0][1] <= 1
    assert all(r.scope.startswith("/acme") for r, _ in hits)
    hits = storage.search(vec, categories=["preferences"], metadata_filter={"client": "globex"})
    assert [r.id for r, _ in hits] == [recs[2].id]
    with pytest.raises(ValueError, match="embedder=storage.embedder"):
        storage.search([0.5] * len(vec))

    rec = storage.get_record(recs[1].id)
    rec.content = "Deploys happen on Thursdays"
    storage.update(rec)
    assert storage.get_record(recs[1].id).content == "Deploys happen on Thursdays"
    history = fake_mem.history(fake_mem.list(kinds=[KIND], filters={"crew_id": recs[1].id}).items[0].id)
    assert [h.action for h in history][:2] == ["add", "update"]  # EngramDB keeps the old version

    assert storage.delete(older_than=datetime.utcnow() - timedelta(days=1)) == 1
    assert storage.delete(record_ids=[recs[0].id]) == 1
    storage.reset("/acme")
    assert storage.count() == 0


def test_crewai_memory_remembers_and_recalls(mem: Memory) -> None:
    """crewai.Memory over the storage, on the real default model: explicit scope, categories and importance
    take CrewAI's no-LLM path; shallow recall is one storage search."""
    from crewai import Memory as CrewMemory

    storage = EngramDBStorage(mem)
    crew_memory = CrewMemory(storage=storage, embedder=storage.embedder, llm="unused-offline")
    crew_memory.remember("Our biggest customer Acme renews in March", scope="/sales", categories=["accounts"],
                         importance=0.9)
    crew_memory.remember("The office coffee machine is broken", scope="/office", categories=["facilities"],
                         importance=0.2)
    matches = crew_memory.recall("when does acme renew", depth="shallow", limit=2)
    assert matches[0].record.content == "Our biggest customer Acme renews in March"
    assert crew_memory.list_scopes("/") == ["/office", "/sales"]
    rec = mem.list(agent_id="crewai", kinds=[KIND]).items[0]
    assert rec.metadata["crew_scope"] in ("/sales", "/office") and rec.kind == KIND
    crew_memory.close()


def test_crew_kickoff_remembers_across_crews(fake_mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Crew(memory=...) runs on one EngramDB storage, with a scripted LLM: the second crew's agent gets
    what the first crew stored, through CrewAI's own recall and save paths."""
    from crewai import Agent, Crew, Task
    from crewai import Memory as CrewMemory
    from crewai.llms.base_llm import BaseLLM

    for var, value in {"CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
                       "CREWAI_TRACING_ENABLED": "false"}.items():
        monkeypatch.setenv(var, value)

    class ScriptedLLM(BaseLLM):
        """Answers CrewAI's memory prompts with fixed JSON, and a task from the memories in its prompt."""

        def call(self, messages: Any, tools: Any = None, callbacks: Any = None, available_functions: Any = None,
                 from_task: Any = None, from_agent: Any = None, response_model: Any = None) -> str:
            text = messages if isinstance(messages, str) else "\n".join(str(m.get("content")) for m in messages)
            if "Extract memory statements" in text:
                return '{"memories": ["Acme renews its contract in March"]}'
            if "Return the analysis as structured output" in text:
                return '{"suggested_scope": "/customers", "categories": ["accounts"], "importance": 0.8}'
            recalled = [line.split(") ", 1)[1] for line in text.splitlines() if line.startswith("- (score=")]
            answer = f"From memory: {recalled[0]}" if recalled else "Noted."
            return f"Thought: I now know the final answer\nFinal Answer: {answer}"

    storage = EngramDBStorage(fake_mem)
    llm = ScriptedLLM(model="scripted")

    def crew(description: str) -> Crew:
        agent = Agent(role="account manager", goal="keep track of customers", backstory="Careful.", llm=llm,
                      allow_delegation=False)
        task = Task(description=description, expected_output="one sentence", agent=agent)
        memory = CrewMemory(storage=storage, embedder=storage.embedder, llm=llm)
        return Crew(agents=[agent], tasks=[task], memory=memory)

    assert crew("Record this: Acme renews its contract in March.").kickoff().raw == "Noted."
    stored = [r.text for r in fake_mem.list(agent_id="crewai", kinds=[KIND]).items]
    assert stored == ["Acme renews its contract in March"]
    answer = crew("When does Acme renew its contract?").kickoff().raw
    assert answer == "From memory: Acme renews its contract in March"


def test_listing_for_an_audience_follows_the_policies(fake_mem: Memory) -> None:
    crew = EngramDBStorage(fake_mem, agent_id="crew")
    recs = [
        MemoryRecord(content="The client's CFO has a heart condition", scope="/acme/hr",
                     metadata={"client": "acme"}),
        MemoryRecord(content="The client owes us forty thousand", scope="/acme/finance", categories=["billing"]),
        MemoryRecord(content="Deploys happen on Tuesdays", scope="/acme/eng", categories=["process"]),
    ]
    crew.save(recs)
    for rec, label in zip(recs[:2], ["health", "finance"], strict=True):  # label them as the classifier would
        stored = fake_mem.list(kinds=[KIND], filters={"crew_id": rec.id}, agent_id="crew").items[0]
        fake_mem.update(stored.id, metadata={**stored.metadata, "sensitivity": [label]})
    fake_mem.privacy.set_policy([{"category": "finance", "audience": "agent:crew", "action": "redact"}])
    seen = EngramDBStorage(fake_mem, agent_id="crew", audience="crew")
    assert crew.count() == 3 and seen.count() == 2 and seen.count("/acme/hr") == 0  # health: not without consent
    assert seen.get_record(recs[0].id) is None and crew.get_record(recs[0].id) is not None
    assert seen.get_record(recs[1].id).content == "[redacted: finance]"
    assert seen.list_scopes("/acme") == ["/acme/eng", "/acme/finance"]
    assert seen.list_categories() == {"billing": 1, "process": 1}
    assert seen.get_scope_info("/acme").record_count == 2
    listed = seen.list_records()
    assert {r.content for r in listed} == {"[redacted: finance]", "Deploys happen on Tuesdays"}
    sent = fake_mem.privacy.disclosures(audience="crew", limit=100)
    assert {d.op for d in sent} == {"list"} and {d.action for d in sent} == {"allow", "redact"}
    assert {d.memory_id for d in sent} == {fake_mem.list(kinds=[KIND], filters={"crew_id": r.id},
                                                         agent_id="crew").items[0].id for r in recs[1:]}
    assert EngramDBStorage(fake_mem, agent_id="crew", audience="someone-else").count() == 0  # the crew's own
