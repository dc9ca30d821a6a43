"""Adapters that make EngramDB the memory of agent frameworks.

Each module needs its framework, installed with its extra, e.g. ``pip install '.[langgraph]'``:

- ``engramdb.integrations.langgraph``: ``EngramDBStore``, a LangGraph ``BaseStore``
- ``engramdb.integrations.langchain``: ``EngramDBRetriever``, a LangChain ``BaseRetriever`` (and a tool)
- ``engramdb.integrations.openai_agents``: ``EngramDBSession`` and recall/remember tools for the OpenAI Agents SDK
- ``engramdb.integrations.llamaindex``: ``EngramDBMemoryBlock``, a LlamaIndex memory block
- ``engramdb.integrations.crewai``: ``EngramDBStorage``, a storage backend for CrewAI's ``Memory``

The adapters call only the public ``Memory`` / ``AsyncMemory`` API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["missing", "sync_memory"]


def missing(module: str, extra: str) -> ImportError:
    """The error an adapter raises when its framework is not installed: it names the install line."""
    return ImportError(f"this adapter needs {module!r}, which is not installed: pip install '.[{extra}]'")


def sync_memory(memory: Any) -> Any:
    """The synchronous `Memory` behind a `Memory` or an `AsyncMemory`; anything else is refused."""
    from ..api import AsyncMemory, Memory

    if isinstance(memory, AsyncMemory):
        return memory.sync
    if isinstance(memory, Memory):
        return memory
    raise TypeError(f"expected an engramdb Memory or AsyncMemory, got {type(memory).__name__}")
