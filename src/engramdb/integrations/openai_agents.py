"""EngramDB for the OpenAI Agents SDK: a `Session` that keeps the conversation in EngramDB, and
`function_tool`s to recall and remember across sessions.

    from agents import Agent, Runner
    from engramdb import Memory
    from engramdb.integrations.openai_agents import EngramDBSession, memory_tools

    mem = Memory("agent.db")
    agent = Agent(name="assistant", tools=memory_tools(mem, user_id="alice"))
    session = EngramDBSession("chat-42", mem, user_id="alice")
    result = await Runner.run(agent, "I moved to Berlin", session=session)

Each session item is one memory in scope (user_id, agent_id, session_id): chat messages as episodes (so
EngramDB's retrieval and fact extraction see them), tool calls and other items as kind ``session_item``;
the item itself is kept verbatim in metadata and handed back as it was given.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from . import missing, sync_memory

try:
    from agents import FunctionTool, function_tool
    from agents.memory import SessionSettings
    from agents.memory.session_settings import resolve_session_limit
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("agents", "openai-agents") from exc

__all__ = ["EngramDBSession", "memory_tools", "ITEM_KIND", "RECALL_KINDS"]

ITEM_KIND = "session_item"  # non-message items (tool calls, outputs, reasoning): kept, but not episodes
RECALL_KINDS = ["episode", "fact", "profile", "summary"]  # what the recall tool searches
_PAGE = 1000


class EngramDBSession:
    """An Agents SDK session (the `Session` protocol) stored in an EngramDB memory.

    Args:
        session_id: the conversation's id; also the memories' ``session_id``.
        memory: an engramdb ``Memory`` or ``AsyncMemory``.
        user_id / agent_id: the scope the conversation belongs to, so that other sessions (and the recall
            tool) can find it.
        session_settings: the SDK's settings; ``limit`` caps what ``get_items()`` returns by default.
    """

    def __init__(
        self,
        session_id: str,
        memory: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        session_settings: SessionSettings | None = None,
    ) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        self.session_id = session_id
        self.memory = sync_memory(memory)
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_settings = session_settings or SessionSettings()
        self._lock = threading.Lock()  # pop_item is read-then-delete

    # -- the Session protocol ------------------------------------------------------------------------------
    async def get_items(self, limit: int | None = None) -> list[Any]:
        """The conversation, oldest first; with a limit, the latest `limit` items (still oldest first)."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
        return await asyncio.to_thread(self._get_items, limit)

    async def add_items(self, items: list[Any]) -> None:
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError("items must be a list of input items (dicts)")
        await asyncio.to_thread(self._add_items, items)

    async def pop_item(self) -> Any | None:
        return await asyncio.to_thread(self._pop_item)

    async def clear_session(self) -> None:
        await asyncio.to_thread(self._clear)

    # -- sync work --------------------------------------------------------------------------------------
    def _scope(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id}

    def _records(self, *, newest_first: bool, limit: int | None) -> list[Any]:
        out: list[Any] = []
        offset = 0
        while limit is None or len(out) < limit:
            page = self.memory.list(
                **self._scope(), kinds=["episode", ITEM_KIND], filters={"agents_session": self.session_id},
                order="-recorded_at" if newest_first else "recorded_at",  # insertion order
                limit=_PAGE if limit is None else min(_PAGE, limit - len(out)), offset=offset,
            )
            out += page.items
            if page.next_offset is None:
                break
            offset = page.next_offset
        return out

    def _get_items(self, limit: int | None) -> list[Any]:
        if limit == 0:
            return []
        if limit is None:
            recs = self._records(newest_first=False, limit=None)
        else:
            recs = list(reversed(self._records(newest_first=True, limit=limit)))
        return [r.metadata["agents_item"] for r in recs]

    def _add_items(self, items: list[Any]) -> None:
        for item in items:
            text = _item_text(item)
            role = item.get("role") if item.get("type", "message") == "message" else None
            meta = {"agents_session": self.session_id, "agents_item": item}
            if role in ("user", "assistant", "system", "developer") and text.strip():
                self.memory.add({"role": role, "content": text}, **self._scope(), metadata=meta)
            else:
                self.memory.add(text or item.get("type", "item"), **self._scope(), metadata=meta, kind=ITEM_KIND)

    def _pop_item(self) -> Any | None:
        with self._lock:
            recs = self._records(newest_first=True, limit=1)
            if not recs:
                return None
            self.memory.delete(recs[0].id)
            return recs[0].metadata["agents_item"]

    def _clear(self) -> None:
        with self._lock:
            for rec in self._records(newest_first=False, limit=None):
                self.memory.delete(rec.id)  # soft: history keeps the conversation


def _item_text(item: dict[str, Any]) -> str:
    """The readable text of an input item: a message's text parts, else a compact rendering of the call or
    output (so a tool call is findable by its name and arguments)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") or p.get("refusal") or "" for p in content if isinstance(p, dict)]
        if any(parts):
            return "\n".join(p for p in parts if p)
    kind = item.get("type", "item")
    if kind == "function_call":
        return f"function_call {item.get('name')}({item.get('arguments', '')})"
    if kind == "function_call_output":
        out = item.get("output")
        return f"function_call_output: {out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)}"
    return f"{kind}: {json.dumps(item, ensure_ascii=False, default=str)[:2000]}"


def memory_tools(
    memory: Any,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    limit: int = 5,
    audience: str | dict[str, str] | None = None,
) -> list[FunctionTool]:
    """`recall_memory(query)` and `remember(text)` as Agents SDK function tools, bound to one scope: what one
    session remembers, a later session of the same user recalls."""
    mem = sync_memory(memory)
    if not (user_id or agent_id):
        raise ValueError("memory_tools needs a user_id or an agent_id: long-term memory outlives the session")
    if not isinstance(limit, int) or not 1 <= limit <= 100:
        raise ValueError("limit must be an integer between 1 and 100")

    @function_tool(name_override="recall_memory")
    def recall_memory(query: str) -> str:
        """Search long-term memory (past sessions included) for what is relevant to the query.

        Args:
            query: what to look for, in plain words.
        """
        hits = mem.search(query, user_id=user_id, agent_id=agent_id, limit=limit, kinds=RECALL_KINDS,
                          audience=audience)  # disclosure policies for the agent that recalls (privacy)
        if not hits:
            return "No memories found."
        return "\n".join(
            f"- [{h.memory.occurred_at.date() if h.memory.occurred_at else '?'}] {h.memory.text}" for h in hits
        )

    @function_tool(name_override="remember")
    def remember(text: str) -> str:
        """Store a fact or event in long-term memory, to recall in later sessions.

        Args:
            text: the fact or event, as one self-contained sentence.
        """
        rec = mem.add(text, user_id=user_id, agent_id=agent_id, metadata={"source": "remember_tool"})
        return f"Stored memory {rec[0].id}."

    return [recall_memory, remember]
