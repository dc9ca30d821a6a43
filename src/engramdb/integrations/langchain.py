"""EngramDB as a LangChain retriever: `EngramDBRetriever`, a `langchain_core.retrievers.BaseRetriever`.

    from engramdb import Memory
    from engramdb.integrations.langchain import EngramDBRetriever, memory_tools

    retriever = EngramDBRetriever(memory=Memory("agent.db"), user_id="alice", k=5)
    docs = retriever.invoke("where does alice live?")      # Documents with metadata and score
    recall, remember = memory_tools(retriever)              # tools for a tool-calling agent

Each hit becomes a `Document`: `page_content` is the memory's text, `id` its EngramDB id, and `metadata`
carries the score, the retrieval signals, the scope, the times and the memory's own metadata.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from . import missing, sync_memory

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import BaseTool, StructuredTool
    from pydantic import ConfigDict, Field, field_validator
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("langchain_core", "langchain") from exc

__all__ = ["EngramDBRetriever", "memory_tools", "to_document"]


class EngramDBRetriever(BaseRetriever):
    """Hybrid search over an EngramDB memory, as LangChain `Document`s.

    `user_id` / `agent_id` / `session_id` scope every search (EngramDB's scopes, unchanged); `filters` match
    memory metadata by equality; `as_of` asks what was true at a past time (superseded facts come back as
    they were then).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any = Field(description="an engramdb Memory or AsyncMemory")
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    k: int = Field(default=5, ge=1, le=1000)
    filters: dict[str, Any] | None = None
    kinds: list[str] | None = None
    as_of: datetime | str | None = None
    audience: str | dict[str, str] | None = None  # who reads the documents: disclosure policies apply (privacy)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return sync_memory(value)

    def _search_kwargs(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "session_id": self.session_id, "limit": self.k,
                "filters": self.filters, "kinds": self.kinds, "as_of": self.as_of, "audience": self.audience}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(hit) for hit in self.memory.search(query, **self._search_kwargs())]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = await asyncio.to_thread(self.memory.search, query, **self._search_kwargs())
        return [to_document(hit) for hit in hits]


def to_document(hit: Any) -> Document:
    """One EngramDB `SearchResult` as a LangChain `Document`."""
    m = hit.memory
    meta: dict[str, Any] = {
        **m.metadata,  # the memory's own metadata first: the fields below always win a name clash
        "id": m.id,
        "score": hit.score,
        "signals": dict(hit.signals),
        "kind": m.kind,
        "user_id": m.user_id,
        "agent_id": m.agent_id,
        "session_id": m.session_id,
        "speaker": m.speaker,
        "occurred_at": m.occurred_at.isoformat() if m.occurred_at else None,
        "valid_from": m.valid_from.isoformat() if m.valid_from else None,
        "valid_to": m.valid_to.isoformat() if m.valid_to else None,
        "current": hit.current,
    }
    return Document(id=m.id, page_content=m.text, metadata=meta)


def memory_tools(
    retriever: EngramDBRetriever, *, recall_name: str = "recall_memory", remember_name: str = "remember"
) -> tuple[BaseTool, BaseTool]:
    """Two tools for a tool-calling agent: recall (search the retriever's scope) and remember (add a memory
    to that scope). Both return plain text for the model."""
    if not any((retriever.user_id, retriever.agent_id, retriever.session_id)):
        raise ValueError("memory_tools needs a retriever with a scope (user_id, agent_id or session_id) to write to")

    def recall(query: str) -> str:
        docs = retriever.invoke(query)
        if not docs:
            return "No memories found."
        return "\n".join(f"- [{d.metadata['occurred_at'][:10] if d.metadata['occurred_at'] else '?'}] "
                         f"{d.page_content}" for d in docs)

    def remember(text: str) -> str:
        rec = retriever.memory.add(text, user_id=retriever.user_id, agent_id=retriever.agent_id,
                                   session_id=retriever.session_id)
        return f"Stored memory {rec[0].id}."

    return (
        StructuredTool.from_function(recall, name=recall_name,
                                     description="Search long-term memory for facts and past conversations "
                                                 "relevant to the query."),
        StructuredTool.from_function(remember, name=remember_name,
                                     description="Store a fact or event in long-term memory, to recall later."),
    )
