"""Request and response models of the REST API (they are the OpenAPI spec).

Requests forbid unknown fields, so a typo is a 422 naming the field instead of a
silently ignored option. Types are checked here; the domain rules (scope required,
timestamps with a time zone, text limits) are checked by `Memory`, which raises
`ValidationError` and becomes a 422 too, with the same message the library gives.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from ..model import MAX_ID_CHARS, MAX_TEXT_CHARS, HistoryEntry, MemoryRecord, SearchResult
from ..retrieve.context import ContextBlock
from ..store.base import MAX_META_KEY_CHARS, META_KEY_PATTERN

# The spec says what the engine accepts, so a client (or a fuzzer) that follows it is never refused:
# text has a non-blank character and no NUL, ids are short, kinds are identifiers, times carry a zone.
TEXT_RE = r"^[^\x00]*[^\s\x00][^\x00]*$"
KIND_RE = r"^[a-z][a-z0-9_]{0,31}$"
META_KEY_RE = META_KEY_PATTERN  # no empty dot segments ('a.', 'a..b'): the store's own rule
Text = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS, pattern=TEXT_RE)]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=TEXT_RE)]
Kind = Annotated[str, StringConstraints(pattern=KIND_RE)]
MetaKey = Annotated[str, StringConstraints(max_length=MAX_META_KEY_CHARS, pattern=META_KEY_RE)]


def _utc(dt: datetime) -> datetime:
    try:
        return dt.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise ValueError("time out of range once converted to UTC") from exc


def _iso_only(value: Any) -> Any:
    # pydantic would also read numbers (and numeric strings) as epoch seconds; the spec says ISO-8601 text.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_RE.match(value):
        raise ValueError("expected an ISO-8601 date-time with a time zone, e.g. 2024-05-08T13:56:00Z")
    return value


_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
When = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_utc)]


def _json_int(value: Any) -> Any:
    # JSON Schema's "integer": 5 and 5.0 are integers; "5" and true are not (pydantic's lax mode takes both).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    return value


def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    return value


Importance = Annotated[
    float, Field(ge=0, le=1, description="0 (trivial) to 1 (critical)"), BeforeValidator(_json_number)
]
Limit = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_json_int)]
# Metadata filters: top-level keys, matched by equality on scalar values.
MetaFilter = Annotated[
    dict[MetaKey, str | int | float | bool | None],
    Field(max_length=32, json_schema_extra={"additionalProperties": False}),
]


class _Req(BaseModel):
    """Unknown fields are refused; an optional field is omitted, never sent as null."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None]
            if nulls:
                raise ValueError(f"{', '.join(map(str, nulls))}: null is not allowed; leave the field out instead")
        return data


class Scope(_Req):
    user_id: Ident | SkipJsonSchema[None] = Field(None, description="Whose memory (a user).")
    agent_id: Ident | SkipJsonSchema[None] = Field(None, description="Which agent.")
    session_id: Ident | SkipJsonSchema[None] = Field(None, description="Which conversation/session.")


_ANY_SCOPE = [{"required": ["user_id"]}, {"required": ["agent_id"]}, {"required": ["session_id"]}]


class Turn(_Req):
    """One chat message ({role, content}) or speaker turn ({speaker, text, timestamp})."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["content"]}]}
    )

    role: Ident | SkipJsonSchema[None] = None
    content: Text | SkipJsonSchema[None] = None
    name: Ident | SkipJsonSchema[None] = None
    speaker: Ident | SkipJsonSchema[None] = None
    text: Text | SkipJsonSchema[None] = None
    timestamp: When | SkipJsonSchema[None] = None
    metadata: dict[str, Any] | SkipJsonSchema[None] = None
    source_ref: Ident | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _one_text(self) -> Turn:
        if (self.text is None) == (self.content is None):
            raise ValueError("a turn needs exactly one of 'text' or 'content'")
        return self


class AddRequest(Scope):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": _ANY_SCOPE})

    messages: Text | Turn | Annotated[list[Text | Turn], Field(min_length=1, max_length=1000)] = Field(
        ..., description="Text, one message/turn, or a list of them: stored in one transaction."
    )
    timestamp: When | SkipJsonSchema[None] = Field(None, description="When it happened (ISO-8601 with a zone).")
    metadata: dict[str, Any] | SkipJsonSchema[None] = None
    kind: Kind = Field("episode", description="episode, fact, profile, summary, procedure, or your own identifier.")
    source_ref: Ident | SkipJsonSchema[None] = None
    importance: Importance | SkipJsonSchema[None] = None
    expires_at: When | SkipJsonSchema[None] = None


class SearchRequest(Scope):
    query: Text = Field(..., description="What to look for (natural language).")
    limit: Limit = 10
    filters: MetaFilter | SkipJsonSchema[None] = Field(None, description="Metadata equality, e.g. {'topic': 'work'}.")
    kinds: Annotated[list[Kind], Field(max_length=20)] | SkipJsonSchema[None] = None
    since: When | SkipJsonSchema[None] = Field(None, description="occurred_at >= since")
    until: When | SkipJsonSchema[None] = Field(None, description="occurred_at < until")


class ContextRequest(Scope):
    query: Text
    max_tokens: Annotated[int, Field(ge=16, le=100_000), BeforeValidator(_json_int)] = 1000
    limit: Limit = 50
    filters: MetaFilter | SkipJsonSchema[None] = None
    since: When | SkipJsonSchema[None] = None
    until: When | SkipJsonSchema[None] = None


class UpdateRequest(_Req):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    text: Text | SkipJsonSchema[None] = None
    metadata: dict[str, Any] | SkipJsonSchema[None] = None
    importance: Importance | SkipJsonSchema[None] = None
    expires_at: When | SkipJsonSchema[None] = None
    occurred_at: When | SkipJsonSchema[None] = None
    valid_to: When | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> UpdateRequest:
        if not self.model_dump(exclude_none=True):
            raise ValueError("update: nothing to change (give text, metadata, importance or a time)")
        return self


class PurgeRequest(Scope):
    """Hard-delete a scope's memories (with history and vectors), and/or exactly the given ids."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [*_ANY_SCOPE, {"required": ["memory_ids"]}]})

    memory_ids: Annotated[list[Ident], Field(min_length=1, max_length=10_000)] | SkipJsonSchema[None] = Field(
        None, description="Purge exactly these ids (ids of other tenants are simply not found)."
    )


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
