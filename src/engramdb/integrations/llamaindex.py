"""EngramDB as a LlamaIndex memory block: `EngramDBMemoryBlock` serves EngramDB's context to
`llama_index.core.memory.Memory`.

    from llama_index.core.memory import Memory as LlamaMemory
    from engramdb import Memory
    from engramdb.integrations.llamaindex import EngramDBMemoryBlock

    block = EngramDBMemoryBlock(memory=Memory("agent.db"), user_id="alice", max_tokens=400)
    memory = LlamaMemory.from_defaults(session_id="chat-1", token_limit=4000, memory_blocks=[block])
    agent.run("where do I live?", memory=memory)   # or memory.get() / memory.aget() directly

On each read the block searches EngramDB with the latest messages and returns `Memory.context()`'s block
(dates and speakers, oldest first, within `max_tokens`). Messages that LlamaIndex flushes out of its
short-term buffer are written to EngramDB as episodes, in the block's scope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import missing, sync_memory

try:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.memory.memory import BaseMemoryBlock
    from pydantic import Field, field_validator, model_validator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("llama_index.core", "llamaindex") from exc

__all__ = ["EngramDBMemoryBlock"]

_ROLES = {"user", "assistant", "system", "tool", "developer"}


class EngramDBMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory from EngramDB, as a LlamaIndex memory block.

    `user_id` / `agent_id` scope reads and writes; `session_id` (or the LlamaIndex memory's own session id)
    is recorded on written messages but does not narrow reads, so a new chat recalls the old ones.
    """

    name: str = Field(default="engramdb", description="The name of the memory block.")
    description: str | None = Field(default="Relevant long-term memories from EngramDB.")
    memory: Any = Field(description="an engramdb Memory or AsyncMemory")
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    max_tokens: int = Field(default=500, ge=16, description="the token budget of the context block")
    context_window: int = Field(default=2, ge=1, description="how many latest messages form the query")
    audience: str | dict[str, str] | None = Field(default=None, description="who reads the block (privacy)")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return sync_memory(value)

    @model_validator(mode="after")
    def _scope(self) -> EngramDBMemoryBlock:
        if not (self.user_id or self.agent_id):
            raise ValueError("EngramDBMemoryBlock needs a user_id or an agent_id to read and write under")
        return self

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        query = "\n".join(m.content for m in (messages or [])[-self.context_window:] if m.content).strip()
        if not query:
            return ""
        block = await asyncio.to_thread(
            self.memory.context, query[: self.memory.config.max_text_chars], user_id=self.user_id,
            agent_id=self.agent_id, max_tokens=self.max_tokens, audience=self.audience,
        )
        return block.text if block.memory_ids else ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        turns: list[tuple[dict[str, str], str | None]] = []
        for m in messages:
            text = m.content
            if not text or not text.strip():
                continue  # tool-call shells and images carry no text to remember
            role = m.role.value if m.role.value in _ROLES else "user"
            turns.append(({"role": role, "content": text}, m.additional_kwargs.get("session_id") or self.session_id))
        for turn, session in turns:
            await asyncio.to_thread(self.memory.add, turn, user_id=self.user_id, agent_id=self.agent_id,
                                    session_id=session)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop the oldest memory lines first (the block is oldest first), about 4 characters a token; the
        heading line stays while any memory does."""
        lines = content.splitlines()
        head = [lines.pop(0)] if lines and not lines[0].startswith("[") else []
        budget = max(0, len(content) - 4 * tokens_to_truncate)
        while lines and len("\n".join(head + lines)) > budget:
            lines.pop(0)
        return "\n".join(head + lines) if lines else None
