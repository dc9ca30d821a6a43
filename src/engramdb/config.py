"""Configuration: constructor arguments, else environment variables, else defaults.

Environment:
  ENGRAMDB_PATH      default SQLite file for the CLI (default ./engram.db)
  ENGRAMDB_URL       a database URL (sqlite:///path or postgresql://...)
  ENGRAMDB_EMBEDDER  embedding model spec (default all-MiniLM-L6-v2)
  ENGRAMDB_TOKENIZER token counter for context budgets (default minilm)
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from .model import MAX_TEXT_CHARS
from .retrieve.search import RetrievalConfig


class MemoryConfig(BaseModel):
    embedder: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_EMBEDDER", "all-MiniLM-L6-v2"))
    tokenizer: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_TOKENIZER", "minilm"))
    max_text_chars: int = MAX_TEXT_CHARS
    exact_max: int = 50_000  # vector search is exact up to this many candidates, ANN beyond
    track_access: bool = True  # count reads (access_count, last_accessed_at) for decay policies
    retrieval: dict = Field(default_factory=dict)  # overrides for RetrievalConfig fields

    def retrieval_config(self) -> RetrievalConfig:
        return RetrievalConfig(**self.retrieval)


def default_path() -> str:
    return os.environ.get("ENGRAMDB_PATH", "engram.db")
