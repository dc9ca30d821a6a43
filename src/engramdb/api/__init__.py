"""The Python API: `Memory` (sync) and `AsyncMemory` (its async twin over the same core)."""

from .async_memory import AsyncMemory
from .memory import Memory, Page

__all__ = ["AsyncMemory", "Memory", "Page"]
