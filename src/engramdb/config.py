"""Configuration: constructor arguments, else environment variables, else defaults.

Environment:
  ENGRAMDB_PATH      default SQLite file for the CLI (default ./engram.db)
  ENGRAMDB_URL       a database URL (sqlite:///path or postgresql://...)
  ENGRAMDB_EMBEDDER  embedding model spec (default all-MiniLM-L6-v2)
  ENGRAMDB_TOKENIZER token counter for context budgets (default minilm)
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

from .errors import ConfigError
from .index.vector import EXACT_MAX
from .model import MAX_TEXT_CHARS
from .retrieve.search import RetrievalConfig


class MemoryConfig(BaseModel):
    embedder: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_EMBEDDER", "all-MiniLM-L6-v2"))
    tokenizer: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_TOKENIZER", "minilm"))
    max_text_chars: int = MAX_TEXT_CHARS
    exact_max: int = EXACT_MAX  # vector search is exact up to this many candidates, ANN beyond (docs/ann.md)
    track_access: bool = True  # count reads (access_count, last_accessed_at) for decay policies
    # SQLite PRAGMA synchronous: NORMAL (a power cut may lose the last commits, never corrupts) | FULL | EXTRA
    # (every commit survives a power cut). Measured in docs/reliability.md.
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = Field(
        default_factory=lambda: os.environ.get("ENGRAMDB_SQLITE_SYNCHRONOUS", "NORMAL").upper()  # type: ignore[arg-type]
    )
    retrieval: dict = Field(default_factory=dict)  # overrides for RetrievalConfig fields
    # Fact extraction on add: auto (LLM when one is configured, else rules) | rules | llm | off.
    extraction: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_EXTRACTION", "auto"))
    llm: dict | None = None  # LLMConfig fields; None = ENGRAMDB_LLM_* environment or config file (see docs/llm.md)
    lifecycle: dict = Field(default_factory=dict)  # {"consolidate": {...}, "decay": {...}, "derived_weight": 0.x}
    privacy: dict | None = None  # PrivacyConfig fields: labels, secrets, key_file, audit (docs/privacy.md)

    def retrieval_config(self) -> RetrievalConfig:
        if "time_boost" in self.retrieval:
            raise ConfigError("retrieval.time_boost is now lifecycle.time_boost: one time lift, for every ranker")
        try:
            return RetrievalConfig(**self.retrieval)
        except (TypeError, ValueError) as exc:  # an unknown key or a value out of range
            raise ConfigError(f"bad retrieval settings: {exc}") from exc


def default_path() -> str:
    return os.environ.get("ENGRAMDB_PATH", "engram.db")
