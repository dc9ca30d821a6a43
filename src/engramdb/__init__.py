"""EngramDB: long-term memory for LLM agents.

from engramdb import Memory
mem = Memory("agent.db")
mem.add("I moved to Berlin last month", user_id="alice")
print(mem.context("where does alice live?", user_id="alice"))
"""

from .api import AsyncMemory, Memory, Page
from .config import MemoryConfig
from .errors import ConfigError, EngramError, ModelMismatchError, NotFoundError, StoreError, ValidationError
from .model import HistoryEntry, MemoryRecord, Scope, SearchResult
from .retrieve.context import ContextBlock

__version__ = "0.1.0"

__all__ = [
    "AsyncMemory",
    "ConfigError",
    "ContextBlock",
    "EngramError",
    "HistoryEntry",
    "Memory",
    "MemoryConfig",
    "MemoryRecord",
    "ModelMismatchError",
    "NotFoundError",
    "Page",
    "Scope",
    "SearchResult",
    "StoreError",
    "ValidationError",
    "__version__",
]
