"""A LangGraph agent that remembers a user across two threads, with EngramDB as its long-term store.

Thread 1: the user asks the agent to remember something; the agent calls its `save_memory` tool, which
writes to the store. Thread 2 starts with an empty conversation, yet the agent answers from what it was told
in thread 1: before each model call it searches the store (EngramDB's hybrid retrieval) for the user.

It runs offline: the chat model is scripted (no LLM, no API key), and its answer in thread 2 is built only
from the memories in its prompt, so what it says is what the store recalled.

    pip install 'engramdb[langgraph,local]'
    python examples/langgraph_memory.py            # or: python examples/langgraph_memory.py agent.db
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

from engramdb import Memory
from engramdb.integrations.langgraph import EngramDBStore

MEMORY_HEADER = "What you remember about this user:"


class ScriptedChatModel(BaseChatModel):
    """A stand-in for an LLM: asked to remember, it calls save_memory; otherwise it answers from the
    memories in its system prompt (and says so when there are none)."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content="Saved. I'll remember that.")
        elif "remember that" in str(last.content).lower():
            fact = str(last.content).split("remember that", 1)[1].strip(" .")
            fact = "the user " + fact.replace("I'm ", "is ").replace("I live", "lives")  # a scripted paraphrase
            reply = AIMessage(content="", tool_calls=[{"name": "save_memory", "args": {"fact": fact},
                                                       "id": f"call_{uuid.uuid4().hex[:8]}"}])
        else:
            system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
            memories = [line[2:] for line in system.splitlines() if line.startswith("- ")]
            if memories:
                reply = AIMessage(content=f"From what you told me before ({'; '.join(memories)}), "
                                          f"I'd suggest a dish that fits.")
            else:
                reply = AIMessage(content="I don't know anything about you yet.")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def build_graph(store: BaseStore, model: BaseChatModel) -> Any:
    def agent(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, list[BaseMessage]]:
        user_id = config["configurable"]["user_id"]
        question = str(state["messages"][-1].content)
        hits = store.search(("memories", user_id), query=question, limit=3)
        system = SystemMessage(MEMORY_HEADER + "".join(f"\n- {h.value['fact']}" for h in hits))
        return {"messages": [model.invoke([system, *state["messages"]])]}

    def tools(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, list[BaseMessage]]:
        user_id = config["configurable"]["user_id"]
        out: list[BaseMessage] = []
        for call in state["messages"][-1].tool_calls:  # the only tool: save_memory(fact)
            store.put(("memories", user_id), uuid.uuid4().hex, {"fact": call["args"]["fact"]})
            out.append(ToolMessage(content="saved", tool_call_id=call["id"]))
        return {"messages": out}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState).add_node("agent", agent).add_node("tools", tools)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=InMemorySaver(), store=store)


def run(mem: Memory, user_id: str = "ada") -> list[str]:
    """Two threads for one user; returns the transcript lines."""
    store = EngramDBStore(mem, user_label=1, index={"fields": ["fact"]})  # ("memories", user_id)
    graph = build_graph(store, ScriptedChatModel())
    lines: list[str] = []
    turns = [("thread-1", "Please remember that I'm vegetarian and I live in Lisbon."),
             ("thread-2", "What should I cook tonight?")]
    for thread, text in turns:
        config = {"configurable": {"thread_id": thread, "user_id": user_id}}
        before = graph.get_state(config).values.get("messages", [])
        lines.append(f"[{thread}] history: {len(before)} messages before this turn")
        lines.append(f"[{thread}] user: {text}")
        result = graph.invoke({"messages": [HumanMessage(text)]}, config)
        for msg in result["messages"][len(before) + 1:]:
            if isinstance(msg, AIMessage) and msg.tool_calls:
                lines += [f"[{thread}] tool call: {c['name']}({c['args']})" for c in msg.tool_calls]
            elif isinstance(msg, AIMessage):
                lines.append(f"[{thread}] assistant: {msg.content}")
    for rec in mem.list(user_id=user_id, kinds=["langgraph"]).items:
        lines.append(f"[engramdb] {rec.kind} memory {rec.id[:8]}: user_id={rec.user_id} agent_id={rec.agent_id} "
                     f"text={rec.text!r}")
    return lines


def main() -> None:
    if len(sys.argv) > 1:
        path = Path(sys.argv[1])
    else:
        path = Path(tempfile.mkdtemp()) / "agent.db"
    with Memory(path) as mem:  # the default local embedding model, offline
        for line in run(mem):
            print(line)


if __name__ == "__main__":
    main()
