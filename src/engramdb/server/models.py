"""Request and response models of the REST API (they are the OpenAPI spec).

Requests forbid unknown fields, so a typo is a 422 naming the field instead of a
silently ignored option. Types are checked here; the domain rules (scope required,
timestamps with a time zone, text limits) are checked by `Memory`, which raises
`ValidationError` and becomes a 422 too, with the same message the library gives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..model import MAX_ID_CHARS, HistoryEntry, MemoryRecord, SearchResult
from ..retrieve.context import ContextBlock

TimeValue = str | float  # ISO-8601 with a time zone, or epoch seconds


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scope(_Req):
    user_id: str | None = Field(None, max_length=MAX_ID_CHARS, description="Whose memory (a user).")
    agent_id: str | None = Field(None, max_length=MAX_ID_CHARS, description="Which agent.")
    session_id: str | None = Field(None, max_length=MAX_ID_CHARS, description="Which conversation/session.")


class Turn(_Req):
    """One chat message ({role, content}) or speaker turn ({speaker, text, timestamp})."""

    role: str | None = None
    content: str | None = None
    name: str | None = None
    speaker: str | None = None
    text: str | None = None
    timestamp: TimeValue | None = None
    metadata: dict[str, Any] | None = None
    source_ref: str | None = None


class AddRequest(Scope):
    messages: str | Turn | list[str | Turn] = Field(
        ..., description="Text, one message/turn, or a list of them: stored in one transaction."
    )
    timestamp: TimeValue | None = Field(None, description="When it happened (ISO-8601 with zone, or epoch seconds).")
    metadata: dict[str, Any] | None = None
    kind: str = Field("episode", max_length=32, description="episode, fact, profile, summary, procedure, ...")
    source_ref: str | None = Field(None, max_length=MAX_ID_CHARS)
    importance: float | None = Field(None, ge=0, le=1)
    expires_at: TimeValue | None = None


class SearchRequest(Scope):
    query: str = Field(..., description="What to look for (natural language).")
    limit: int = Field(10, ge=1, le=1000)
    filters: dict[str, Any] | None = Field(None, description="Metadata equality filters, e.g. {'topic': 'work'}.")
    kinds: list[str] | None = None
    since: TimeValue | None = Field(None, description="occurred_at >= since")
    until: TimeValue | None = Field(None, description="occurred_at < until")


class ContextRequest(Scope):
    query: str
    max_tokens: int = Field(1000, ge=16, le=100_000)
    limit: int = Field(50, ge=1, le=1000)
    filters: dict[str, Any] | None = None
    since: TimeValue | None = None
    until: TimeValue | None = None


class UpdateRequest(_Req):
    text: str | None = None
    metadata: dict[str, Any] | None = None
    importance: float | None = Field(None, ge=0, le=1)
    expires_at: TimeValue | None = None
    occurred_at: TimeValue | None = None
    valid_to: TimeValue | None = None


class PurgeRequest(Scope):
    """Hard-delete every memory of a scope, with its history and vectors (GDPR erasure)."""

    memory_ids: list[str] | None = Field(None, max_length=10_000, description="Purge exactly these ids instead.")


class AddResponse(BaseModel):
    memories: list[MemoryRecord]


class SearchResponse(BaseModel):
    results: list[SearchResult]


class PageResponse(BaseModel):
    items: list[MemoryRecord]
    total: int
    offset: int
    next_offset: int | None


class HistoryResponse(BaseModel):
    memory_id: str
    entries: list[HistoryEntry]


class DeleteResponse(BaseModel):
    deleted: str


class PurgeResponse(BaseModel):
    purged: int = Field(..., description="How many memories were erased.")
    report: dict[str, Any] | None = Field(None, description="Details of a user/agent purge (derived memories, bytes).")


class StatsResponse(BaseModel):
    tenant: str
    stats: dict[str, Any]


class WhoAmI(BaseModel):
    tenant: str
    key_id: str
    permissions: list[str]
    expires_at: datetime | None = None


class ErrorBody(BaseModel):
    code: str = Field(..., description="Stable machine-readable code, e.g. validation_error, not_found.")
    message: str = Field(..., description="What was wrong, for a person.")
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str


__all__ = [
    "AddRequest",
    "AddResponse",
    "ContextBlock",
    "ContextRequest",
    "DeleteResponse",
    "ErrorResponse",
    "Health",
    "HistoryResponse",
    "PageResponse",
    "PurgeRequest",
    "PurgeResponse",
    "SearchRequest",
    "SearchResponse",
    "StatsResponse",
    "UpdateRequest",
    "WhoAmI",
]
