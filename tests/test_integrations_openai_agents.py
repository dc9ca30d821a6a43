"""EngramDBSession and the memory tools through the Agents SDK's own Runner, with a scripted model (offline)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("agents", reason="needs the openai-agents extra: pip install 'engramdb[openai-agents]'")

from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
from agents.memory import Session, SessionSettings
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from engramdb import AsyncMemory, Memory
from engramdb.integrations.openai_agents import ITEM_KIND, EngramDBSession, memory_tools

set_tracing_disabled(True)  # no trace export: the tests run offline


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                 content=[ResponseOutputText(type="output_text", text=text, annotations=[])])


def _call(name: str, args: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(id=f"fc_{call_id}", type="function_call", call_id=call_id, name=name,
                                    arguments=json.dumps(args), status="completed")


class ScriptedModel(Model):
    """Plays back a script of outputs, one per model call, and records what each call was given."""

    def __init__(self, script: list[list[Any]]) -> None:
        self.script = list(script)
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None, **kw):
        self.inputs.append(input)
        return ModelResponse(output=self.script.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # pragma: no cover
        raise NotImplementedError("the tests do not stream")


def _texts(items: list[Any]) -> list[str]:
    out = []
    for it in items:
        c = it.get("content")
        out.append(c if isinstance(c, str) else " ".join(p.get("text", "") for p in c or []) or it.get("type"))
    return out


async def test_session_protocol_round_trip(fake_mem: Memory) -> None:
    session = EngramDBSession("s1", fake_mem, user_id="alice")
    assert isinstance(session, Session)  # the SDK's runtime-checkable protocol
    items = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "42"}]
    await session.add_items(items)
    assert await session.get_items() == items  # verbatim, in order
    assert await session.get_items(limit=2) == items[2:]
    assert await session.pop_item() == items[3]
    assert await session.get_items() == items[:3]
    kinds = [r.kind for r in fake_mem.list(session_id="s1", order="recorded_at").items]
    assert kinds == ["episode", "episode", ITEM_KIND]
    other = EngramDBSession("s2", fake_mem, user_id="alice")
    assert await other.get_items() == []  # sessions never see each other's items
    await session.clear_session()
    assert await session.get_items() == [] and await session.pop_item() is None
    limited = EngramDBSession("s3", fake_mem, user_id="alice", session_settings=SessionSettings(limit=1))
    await limited.add_items(items[:2])
    assert await limited.get_items() == items[1:2]
    with pytest.raises(ValueError):
        await limited.add_items("not a list")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EngramDBSession("", fake_mem)


async def test_runner_keeps_the_conversation_in_engramdb(tmp_path, embedder) -> None:
    """Runner.run with session=: the second turn's model input holds the first turn, read back from EngramDB;
    the real default model embeds it."""
    amem = AsyncMemory(tmp_path / "r.db", embedder=embedder)  # the session's real default model
    model = ScriptedModel([[_message("Nice to meet you, Ada.")], [_message("You are Ada.")]])
    agent = Agent(name="assistant", instructions="Be brief.", model=model)
    session = EngramDBSession("chat-1", amem, user_id="ada")
    await Runner.run(agent, "My name is Ada and I moved to Lisbon.", session=session)
    result = await Runner.run(agent, "What is my name?", session=session)
    assert result.final_output == "You are Ada."
    assert _texts(model.inputs[1]) == ["My name is Ada and I moved to Lisbon.", "Nice to meet you, Ada.",
                                       "What is my name?"]
    # the turns are ordinary episodes: EngramDB's search finds them for the user
    hits = await amem.search("where does ada live", user_id="ada")
    assert hits[0].memory.text == "My name is Ada and I moved to Lisbon."
    await amem.close()


async def test_tools_carry_memory_across_sessions(fake_mem: Memory) -> None:
    tools = memory_tools(fake_mem, user_id="bob")
    assert [t.name for t in tools] == ["recall_memory", "remember"]
    assert tools[0].params_json_schema["required"] == ["query"]
    first = ScriptedModel([[_call("remember", {"text": "Bob is allergic to peanuts"}, "c1")], [_message("Noted.")]])
    await Runner.run(Agent(name="a", model=first, tools=tools), "Remember my allergy.",
                     session=EngramDBSession("monday", fake_mem, user_id="bob"))
    second = ScriptedModel([[_call("recall_memory", {"query": "allergies"}, "c2")], [_message("Peanuts.")]])
    session = EngramDBSession("friday", fake_mem, user_id="bob")
    result = await Runner.run(Agent(name="a", model=second, tools=tools), "What am I allergic to?", session=session)
    assert result.final_output == "Peanuts."
    outputs = [i for i in second.inputs[1] if i.get("type") == "function_call_output"]
    assert "Bob is allergic to peanuts" in outputs[0]["output"]
    # the new session's history holds only its own turn, the tool call and its output
    assert [i.get("type", "message") for i in await session.get_items()] == [
        "message", "function_call", "function_call_output", "message"]
    with pytest.raises(ValueError, match="user_id"):
        memory_tools(fake_mem)
