"""The domain model: one memory record, its scope, search results and history.

A memory is anything the engine keeps: a raw `episode` (a turn or event), or
something derived from episodes (`fact`, `profile`, `summary`, `procedure`).
Derived memories point back to their sources through `source_ids`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Built-in kinds; any other lowercase identifier is accepted as a custom kind.
EPISODE = "episode"
FACT = "fact"
PROFILE = "profile"
SUMMARY = "summary"
PROCEDURE = "procedure"
BUILTIN_KINDS = (EPISODE, FACT, PROFILE, SUMMARY, PROCEDURE)
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

# Documented input limits (README "Limits").
MAX_TEXT_CHARS = 32_000
MAX_METADATA_BYTES = 64_000
MAX_ID_CHARS = 256


_id_lock = threading.Lock()
_id_last = [0, 0]  # last millisecond, sequence within it


def new_id() -> str:
    """A time-ordered id: 12 hex digits of milliseconds, a 4-digit sequence, 12 random hex digits.

    The sequence keeps ids made in the same millisecond (one batch of turns) in creation
    order, so ties on `occurred_at` still sort the way the conversation went."""
    with _id_lock:
        ms = int(time.time() * 1000)
        if ms <= _id_last[0]:
            ms, seq = _id_last[0], _id_last[1] + 1
            if seq > 0xFFFF:
                ms, seq = ms + 1, 0
        else:
            seq = 0
        _id_last[0], _id_last[1] = ms, seq
    return f"{ms:012x}{seq:04x}{os.urandom(6).hex()}"


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise ValueError(f"kind must be a lowercase identifier (e.g. {', '.join(BUILTIN_KINDS)}), got {kind!r}")
    return kind


class Scope(BaseModel):
    """Who a memory belongs to. At least one of the three ids is required."""

    model_config = ConfigDict(frozen=True)

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def is_empty(self) -> bool:
        return not (self.user_id or self.agent_id or self.session_id)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v}


class MemoryRecord(BaseModel):
    """One memory, as stored and as returned by the API."""

    id: str = Field(default_factory=new_id)
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    kind: str = EPISODE
    text: str
    speaker: str | None = None
    role: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime | None = None
    recorded_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    expires_at: datetime | None = None
    deleted_at: datetime | None = None
    source_ids: list[str] = Field(default_factory=list)
    source_ref: str | None = None
    importance: float = 0.5
    access_count: int = 0
    last_accessed_at: datetime | None = None
    version: int = 1

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return check_kind(v)

    @property
    def scope(self) -> Scope:
        return Scope(user_id=self.user_id, agent_id=self.agent_id, session_id=self.session_id)

    def is_current(self, at: datetime | None = None) -> bool:
        """True when the record is valid at `at` (default: now) — open validity counts as valid."""
        if at is None:
            return self.valid_to is None
        if self.valid_from and self.valid_from > at:
            return False
        return self.valid_to is None or self.valid_to > at


class SearchResult(BaseModel):
    """A hit: the memory, its fused score, and the signals that produced it."""

    memory: MemoryRecord
    score: float
    signals: dict[str, float] = Field(default_factory=dict)
    # the current truth: False for a superseded fact, and for a memory whose facts were all superseded
    current: bool = True
    superseded_by: str | None = None  # the newer fact (or the turn) that made it historical

    def updated(self, **fields: Any) -> SearchResult:
        """`model_copy(update=fields)`: a shallow copy with those fields set, unvalidated. Written out for a
        plain model (no extras, no private state) at half its cost: a search copies ~100 results."""
        if not _PLAIN_RESULT or type(self) is not SearchResult:
            return self.model_copy(update=fields)
        new = _new(SearchResult)
        _set(new, "__dict__", {**self.__dict__, **fields})
        _set(new, "__pydantic_fields_set__", self.__pydantic_fields_set__ | fields.keys())
        _set(new, "__pydantic_extra__", None)
        _set(new, "__pydantic_private__", None)
        return new


_new = object.__new__
_set = object.__setattr__
_PLAIN_RESULT = not SearchResult.__private_attributes__ and SearchResult.model_config.get("extra") != "allow"


HistoryAction = Literal["add", "update", "delete", "restore", "supersede", "merge", "forget", "expire"]


class HistoryEntry(BaseModel):
    """One change to a memory: the record before and after, and when."""

    memory_id: str
    version: int
    action: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: datetime
