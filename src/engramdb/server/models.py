"""Request and response models of the REST API (they are the OpenAPI spec).

The request bodies are the operations' own models (api/params.py), which `Memory`, the
MCP tools and the CLI use too. Requests forbid unknown fields, so a typo is a 422 naming
the field instead of a silently ignored option. What the types cannot say (a scope is
required, metadata depth) is checked by `Memory`, which raises `ValidationError` and
becomes a 422 too, with the same message the library gives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from ..api.params import (
    ANY_SCOPE,
    KIND_RE,
    MAX_LIMIT,
    META_KEY_RE,
    TEXT_RE,
    AddRequest,
    ContextQuery,
    ExpireRequest,
    ExtractRequest,
    FactsQuery,
    ForgetRequest,
    Ident,
    ImportRequest,
    Kind,
    LearnRequest,
    MetaFilter,
    OutcomeRequest,
    Scope,
    SearchQuery,
    Text,
    TipsQuery,
    TrajectoriesRequest,
    UpdateRequest,
    When,
)
from ..model import HistoryEntry, MemoryRecord, SearchResult
from ..retrieve.context import ContextBlock

# The request bodies are the operations' own models (api/params.py): one definition for every interface.
SearchRequest = SearchQuery
ContextRequest = ContextQuery


class FactsParams(FactsQuery):
    """`GET /v1/facts`: FactsQuery read from the query string, where every value arrives as text ("?limit=5")."""

    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"How many facts at most (1 to {MAX_LIMIT}).")] = (
        MAX_LIMIT
    )


class PurgeRequest(Scope):
    """Hard-delete a scope's memories (with history and vectors), and/or exactly the given ids."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [*ANY_SCOPE, {"required": ["memory_ids"]}]})

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


class ForgetResponse(BaseModel):
    forgotten: list[str] = Field(..., description="Ids forgotten, derived ones included.")
    cascaded: int = Field(0, description="How many of them were derived from the others.")


class CountResponse(BaseModel):
    count: int


class LinkOut(BaseModel):
    src_id: str
    dst_id: str
    type: str
    reason: str | None = None
    created_at: datetime | None = None


class ScopeCount(BaseModel):
    value: str
    memories: int


class ScopesResponse(BaseModel):
    total: int = Field(..., description="How many distinct values hold live memories.")
    top: list[ScopeCount]


class PeriodCount(BaseModel):
    period: str = Field(..., description="YYYY-MM, or YYYY-MM-DD by day.")
    memories: int


class DecayScore(BaseModel):
    id: str
    score: float = Field(..., description="The decay policy's score: lower fades sooner.")


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
    "KIND_RE",
    "META_KEY_RE",
    "TEXT_RE",
    "AddRequest",
    "CountResponse",
    "DecayScore",
    "LinkOut",
    "PeriodCount",
    "ScopeCount",
    "ScopesResponse",
    "ExpireRequest",
    "ExtractRequest",
    "FactsParams",
    "FactsQuery",
    "ForgetRequest",
    "ForgetResponse",
    "ImportRequest",
    "Kind",
    "LearnRequest",
    "MetaFilter",
    "OutcomeRequest",
    "Text",
    "TipsQuery",
    "TrajectoriesRequest",
    "When",
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
