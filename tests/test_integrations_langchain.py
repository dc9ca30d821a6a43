"""EngramDBRetriever through langchain-core's own Runnable paths (invoke, ainvoke, batch, tools)."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra: pip install 'engramdb[langchain]'")

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.retrievers import BaseRetriever

from engramdb import AsyncMemory, Memory
from engramdb.integrations.langchain import EngramDBRetriever, memory_tools


def _fill(mem: Memory) -> None:
    mem.add("I moved to Berlin last month", user_id="alice", timestamp="2024-05-02T10:00:00+00:00",
            metadata={"topic": "home"})
    mem.add("I adopted a cat called Miso", user_id="alice", timestamp="2024-05-03T10:00:00+00:00",
            metadata={"topic": "pets"})
    mem.add("I live in Oslo", user_id="bob", timestamp="2024-05-02T10:00:00+00:00")


def test_retriever_returns_documents_with_metadata_and_score(mem: Memory) -> None:
    """On the real default model."""
    _fill(mem)
    retriever = EngramDBRetriever(memory=mem, user_id="alice", k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("where does alice live?")
    assert docs and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.page_content == "I moved to Berlin last month"
    assert top.id == top.metadata["id"] and mem.get(top.id).text == top.page_content
    assert top.metadata["score"] > 0 and top.metadata["user_id"] == "alice" and top.metadata["topic"] == "home"
    assert top.metadata["occurred_at"].startswith("2024-05-02") and "signals" in top.metadata
    assert all(d.metadata["user_id"] == "alice" for d in docs)  # scope: bob's memories never come back


def test_filters_batch_and_async(fake_mem: Memory) -> None:
    _fill(fake_mem)
    retriever = EngramDBRetriever(memory=fake_mem, user_id="alice", filters={"topic": "pets"})
    assert [d.page_content for d in retriever.invoke("anything")] == ["I adopted a cat called Miso"]
    both = retriever.batch(["cat", "Berlin"])
    assert [len(x) for x in both] == [1, 1]


async def test_ainvoke_with_async_memory(tmp_path) -> None:
    from engramdb.embed import HashingEmbedder

    amem = AsyncMemory(tmp_path / "a.db", embedder=HashingEmbedder(64))
    await amem.add("Carol drinks green tea", user_id="carol")
    docs = await EngramDBRetriever(memory=amem, user_id="carol").ainvoke("tea")
    assert [d.page_content for d in docs] == ["Carol drinks green tea"]
    await amem.close()


def test_bad_configuration_is_refused(fake_mem: Memory) -> None:
    with pytest.raises(TypeError, match="Memory"):
        EngramDBRetriever(memory="not a memory")
    with pytest.raises(ValueError):
        EngramDBRetriever(memory=fake_mem, k=0)
    with pytest.raises(ValueError, match="scope"):
        memory_tools(EngramDBRetriever(memory=fake_mem))


def test_tools_in_a_tool_calling_loop(fake_mem: Memory) -> None:
    """A scripted chat model calls remember, then recall; the tools run as LangChain runs tool calls."""
    retriever = EngramDBRetriever(memory=fake_mem, user_id="dana")
    recall, remember = memory_tools(retriever)
    tools = {t.name: t for t in (recall, remember)}
    model = GenericFakeChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "remember", "args": {"text": "Dana is allergic to peanuts"},
                                           "id": "c1", "type": "tool_call"}]),
        AIMessage(content="", tool_calls=[{"name": "recall_memory", "args": {"query": "allergies"},
                                           "id": "c2", "type": "tool_call"}]),
        AIMessage(content="done"),
    ]))
    messages: list = [HumanMessage("remember my allergy, then check it")]
    while True:
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        messages += [tools[call["name"]].invoke(call) for call in reply.tool_calls]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert results[0].content.startswith("Stored memory ")
    assert "Dana is allergic to peanuts" in results[1].content
    assert fake_mem.list(user_id="dana").total == 1
    assert recall.args_schema.model_json_schema()["required"] == ["query"]  # what the model is shown
