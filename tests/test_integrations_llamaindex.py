"""EngramDBMemoryBlock inside llama_index.core.memory.Memory, read by a chat engine with a mock LLM (offline)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core", reason="needs the llamaindex extra: pip install 'engramdb[llamaindex]'")

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import Memory as LlamaMemory
from llama_index.core.memory.memory import BaseMemoryBlock

from engramdb import Memory
from engramdb.integrations.llamaindex import EngramDBMemoryBlock


async def test_block_serves_context_to_a_chat_engine(mem: Memory) -> None:
    """On the real default model: a new chat session's LLM call carries what an earlier chat stored."""
    mem.add("I moved to Lisbon last spring", user_id="ada", timestamp="2024-05-02T10:00:00+00:00")
    mem.add("My sister Maria is a pilot", user_id="ada", timestamp="2024-05-03T10:00:00+00:00")
    mem.add("I moved to Oslo", user_id="bob", timestamp="2024-05-02T10:00:00+00:00")
    block = EngramDBMemoryBlock(memory=mem, user_id="ada", max_tokens=200)
    assert isinstance(block, BaseMemoryBlock)
    memory = LlamaMemory.from_defaults(session_id="chat-2", token_limit=4000, memory_blocks=[block])
    engine = SimpleChatEngine.from_defaults(llm=MockLLM(), memory=memory)
    # MockLLM answers with the prompt it was given: the system part is what the memory assembled
    seen = str(await engine.achat("Which city do I live in now?"))
    assert seen.startswith("system: <memory>\n<engramdb>\n")  # LlamaIndex's memory-block template
    assert "I moved to Lisbon last spring" in seen
    assert "Oslo" not in seen  # another user's memory never leaks in


async def test_flushed_messages_are_written_to_engramdb(fake_mem: Memory) -> None:
    block = EngramDBMemoryBlock(memory=fake_mem, user_id="cy")
    # a tiny short-term buffer: older messages are flushed into the block's aput
    memory = LlamaMemory.from_defaults(session_id="s1", token_limit=60, chat_history_token_ratio=0.5,
                                       token_flush_size=20, memory_blocks=[block])
    for i in range(6):
        await memory.aput(ChatMessage(role="user", content=f"fact number {i}: I own {i + 1} bicycles"))
        await memory.aput(ChatMessage(role="assistant", content=f"Noted, {i + 1} bicycles."))
    await memory.aget()
    stored = fake_mem.list(user_id="cy", kinds=["episode"], order="recorded_at").items
    assert stored and stored[0].text == "fact number 0: I own 1 bicycles" and stored[0].session_id == "s1"
    assert {r.role for r in stored} == {"user", "assistant"}
    # the block reads them back for a later question
    text = await block.aget([ChatMessage(role="user", content="how many bicycles in fact number 0")])
    assert "fact number 0: I own 1 bicycles" in text


async def test_empty_query_and_truncation(fake_mem: Memory) -> None:
    fake_mem.add("a first memory", user_id="u", timestamp="2024-01-01T00:00:00+00:00")
    fake_mem.add("a second memory", user_id="u", timestamp="2024-01-02T00:00:00+00:00")
    block = EngramDBMemoryBlock(memory=fake_mem, user_id="u")
    assert await block.aget([]) == ""
    text = await block.aget([ChatMessage(role="user", content="memory")])
    assert "a first memory" in text and "a second memory" in text
    cut = await block.atruncate(text, 6)
    assert "a first memory" not in cut and "a second memory" in cut  # oldest dropped first
    assert await block.atruncate(text, 10_000) is None


def test_bad_configuration_is_refused(fake_mem: Memory) -> None:
    with pytest.raises(ValueError, match="user_id or an agent_id"):
        EngramDBMemoryBlock(memory=fake_mem)
    with pytest.raises(TypeError, match="Memory"):
        EngramDBMemoryBlock(memory=object(), user_id="u")
    with pytest.raises(ValueError):
        EngramDBMemoryBlock(memory=fake_mem, user_id="u", max_tokens=2)
