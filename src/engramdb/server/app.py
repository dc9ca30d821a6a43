"""The REST server: `create_app(settings)` builds the FastAPI application.

Every route is a thin shell over a `Memory` method of the caller's tenant (see
tenants.py), so the REST API, the CLI and the library behave the same. Routes are
plain `def`s: FastAPI runs them in a worker thread, so SQLite and the embedding model
never block the event loop. Each write is one store transaction, so a client that
disconnects mid-request leaves either all of its write or none of it.

Run it with `engramdb serve` (see docs/server.md), or `uvicorn --factory
engramdb.server.app:create_app_from_env` with the settings in ENGRAMDB_SERVER_SETTINGS.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__ as engram_version
from ..api.memory import Memory
from ..api.params import MAX_LIMIT, MAX_OFFSET, MAX_PAGE, TEXT_RE, error_details, summary
from ..errors import (
    AuthError,
    ConfigError,
    EngramError,
    ForbiddenError,
    ModelMismatchError,
    NotFoundError,
    RateLimited,
    StoreError,
    ValidationError,
)
from ..model import MAX_ID_CHARS, MemoryRecord
from ..retrieve.context import ContextBlock
from .auth import Principal, require
from .keys import KeyStore
from .models import (
    AddRequest,
    AddResponse,
    ContextRequest,
    CountResponse,
    DecayScore,
    DeleteResponse,
    ErrorResponse,
    ExpireRequest,
    ExtractRequest,
    FactsParams,
    ForgetRequest,
    ForgetResponse,
    Health,
    HistoryResponse,
    ImportRequest,
    Kind,
    LearnRequest,
    LinkOut,
    MetaFilter,
    OutcomeRequest,
    PageResponse,
    PeriodCount,
    PurgeRequest,
    PurgeResponse,
    ScopeCount,
    ScopesResponse,
    SearchRequest,
    SearchResponse,
    StatsResponse,
    TipsQuery,
    TrajectoriesRequest,
    UpdateRequest,
    When,
    WhoAmI,
)
from .ratelimit import EdgeMiddleware, RateLimiter, configure_logging
from .tenants import TenantRegistry

log = logging.getLogger("engramdb.server")

SETTINGS_ENV = "ENGRAMDB_SERVER_SETTINGS"


class ServerSettings(BaseModel):
    """Everything the server needs; `engramdb serve` fills it from flags and the environment."""

    data_dir: str = Field(default_factory=lambda: os.environ.get("ENGRAMDB_DATA_DIR", "engramdb-data"))
    url: str | None = Field(None, description="postgresql://... to keep tenants as schemas in one database")
    embedder: str | None = Field(None, description="embedding model spec (default: the configured one)")
    rate_limit: float = Field(100.0, ge=0, description="requests per second per key (0 = unlimited)")
    rate_burst: int | None = Field(None, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    mcp: bool = Field(True, description="also serve MCP (streamable HTTP) at /mcp with the same keys")
    log_level: str = "info"
    host: str = Field("127.0.0.1", description="the address served on (loopback turns on MCP's DNS-rebinding guard)")
    ui: bool = Field(True, description="serve the web UI at /ui (sign in with an API key)")

    @classmethod
    def from_env(cls) -> ServerSettings:
        raw = os.environ.get(SETTINGS_ENV)
        return cls.model_validate_json(raw) if raw else cls()


_ERRORS = {
    400: "malformed request (e.g. invalid JSON)",
    401: "missing, invalid, expired or revoked API key",
    403: "the key lacks the permission",
    404: "no such memory in this tenant",
    413: "request body too large",
    415: "request body is not application/json",
    422: "invalid input",
    429: "rate limit exceeded (see Retry-After)",
    503: "storage unavailable",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in _ERRORS.items()
}

MemoryId = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, description="A memory id.")]
ScopeQ = Annotated[str | None, Query(max_length=MAX_ID_CHARS)]
ScopeParam = Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS, pattern=TEXT_RE)]


def _error(status: int, code: str, message: str, request: Request, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": _rid(request)}
    body.update({k: v for k, v in extra.items() if k != "headers"})
    return JSONResponse({"error": body}, status_code=status, headers=extra.get("headers"))


def _rid(request: Request) -> str | None:
    return (request.scope.get("state") or {}).get("request_id")


def _install_error_handlers(app: FastAPI) -> None:
    mapping: list[tuple[type[Exception], int, str]] = [
        (AuthError, 401, "unauthorized"),
        (ForbiddenError, 403, "forbidden"),
        (NotFoundError, 404, "not_found"),
        (ValidationError, 422, "validation_error"),
        (ModelMismatchError, 409, "model_mismatch"),
        (StoreError, 503, "store_unavailable"),
        (ConfigError, 500, "config_error"),
    ]

    async def engram_error(request: Request, exc: Exception) -> JSONResponse:
        for cls, status, code in mapping:
            if isinstance(exc, cls):
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                if status >= 500:
                    log.error("server error", extra={"fields": {"request_id": _rid(request), "error": str(exc)}})
                return _error(status, code, str(exc), request, headers=headers)
        return _error(400, "bad_request", str(exc), request)

    async def rate_limited(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimited)
        return _error(
            429, "rate_limited", str(exc), request, headers={"Retry-After": str(max(1, round(exc.retry_after)))}
        )

    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "malformed_json", "request body is not valid JSON", request)
        details = error_details(errors)
        return _error(422, "validation_error", summary(details), request, details=details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; one path has several routes here.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return _error(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), request, headers=headers or None
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"fields": {"request_id": _rid(request)}})
        return _error(500, "internal_error", "internal server error (see the server log for this request id)", request)

    app.add_exception_handler(EngramError, engram_error)
    app.add_exception_handler(RateLimited, rate_limited)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

    @app.middleware("http")
    async def json_bodies_only(request: Request, call_next: Any) -> Any:
        # The API reads JSON only: a form or text body is a 415 with the reason, not a confusing 422.
        if request.method in ("POST", "PUT", "PATCH") and request.url.path.startswith("/v1/"):
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
            if has_body and media and media != "application/json" and not media.endswith("+json"):
                return _error(
                    415, "unsupported_media_type", f"request body must be application/json, not {media}", request
                )
        return await call_next(request)


def create_app(
    settings: ServerSettings | None = None,
    *,
    registry: TenantRegistry | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """Build the app. Tests pass a `registry` (e.g. with the hashing embedder) and a `keys` store."""
    settings = settings or ServerSettings()
    configure_logging(settings.log_level)
    # Close at shutdown only what this function opened; a caller that passes its own keeps ownership.
    own_registry, own_keys = registry is None, keys is None
    registry = registry or TenantRegistry(settings.data_dir, url=settings.url, embedder=settings.embedder)
    keys = keys or KeyStore(os.path.join(settings.data_dir, "keys.db"))
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
    # The MCP session manager runs once per instance, so each lifespan (server start) builds a fresh one.
    mcp_current: dict[str, Any] = {"app": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if settings.mcp:
                from .mcp_http import http_app

                mcp_app = http_app(registry, keys, limiter=limiter, path="/", host=settings.host)
                await stack.enter_async_context(mcp_app.router.lifespan_context(mcp_app))
                mcp_current["app"] = mcp_app
            # the model loads before the server accepts a connection: /readyz never answers 200 to a cold process
            t0 = time.perf_counter()
            registry.warmup()
            log.info("started", extra={"fields": {"data_dir": settings.data_dir, "backend": _backend(settings),
                                                  "warmup_s": round(time.perf_counter() - t0, 3)}})
            try:
                yield
            finally:
                # Graceful shutdown: uvicorn has stopped accepting and drained in-flight requests by now.
                mcp_current["app"] = None
                if own_registry:
                    registry.close()
                if own_keys:
                    keys.close()
                log.info("stopped")

    app = FastAPI(
        title="EngramDB",
        version=engram_version,
        description="Long-term memory for LLM agents. Every call is scoped to the tenant of its API key.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.keys = keys
    app.state.limiter = limiter
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    if settings.ui:
        from ..ui import install_server_ui

        install_server_ui(app, registry, keys, limiter, settings.data_dir, _backend(settings))

    reader = Depends(require("read"))
    writer = Depends(require("write"))
    admin = Depends(require("admin"))
    # routes whose answers bypass the disclosure policies: not for a key bound to an audience
    owner_reader = Depends(require("read", unfiltered=True))
    owner_writer = Depends(require("write", unfiltered=True))

    def memory(p: Principal) -> Memory:
        return registry.get(p.tenant)

    # -- health ----------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["health"], responses={})
    def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"])
    def readyz() -> Any:
        """Readiness: the embedding model is loaded (a search pays for no model load), and the key store and
        the storage backend answer."""
        try:
            if not registry.warm:
                raise RuntimeError("the embedding model is not loaded yet")
            keys.list(tenant=None)
            registry.ready()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
            return JSONResponse({"status": f"not ready: {type(exc).__name__}: {exc}"}, status_code=503)
        return Health(status="ready")

    @app.get("/v1/whoami", response_model=WhoAmI, tags=["auth"])
    def whoami(p: Principal = reader) -> WhoAmI:
        """The tenant and permissions of the calling key."""
        return WhoAmI(tenant=p.tenant, key_id=p.key_id, permissions=p.permissions, expires_at=p.expires_at)

    # -- write -----------------------------------------------------------------
    @app.post("/v1/memories", response_model=AddResponse, status_code=201, tags=["memories"])
    def add(req: AddRequest, p: Principal = writer) -> AddResponse:
        """Store text, a message, or a list of messages/turns, in one transaction."""
        msgs = req.messages
        messages: Any = (
            [m if isinstance(m, str) else m.model_dump(exclude_none=True) for m in msgs]
            if isinstance(msgs, list)
            else msgs
            if isinstance(msgs, str)
            else msgs.model_dump(exclude_none=True)
        )
        recs = memory(p).add(
            messages,
            user_id=req.user_id,
            agent_id=req.agent_id,
            session_id=req.session_id,
            timestamp=req.timestamp,
            metadata=req.metadata,
            kind=req.kind,
            source_ref=req.source_ref,
            importance=req.importance,
            expires_at=req.expires_at,
        )
        return AddResponse(memories=recs)

    @app.patch("/v1/memories/{memory_id}", response_model=MemoryRecord, tags=["memories"])
    def update(memory_id: MemoryId, req: UpdateRequest, p: Principal = owner_writer) -> MemoryRecord:
        """Change a memory; the previous version is kept in its history."""
        return memory(p).update(memory_id, **req.model_dump(exclude_none=True))

    @app.delete("/v1/memories/{memory_id}", response_model=DeleteResponse, tags=["memories"])
    def delete(memory_id: MemoryId, p: Principal = writer) -> DeleteResponse:
        """Soft-delete a memory: it leaves every read; its history keeps it."""
        memory(p).delete(memory_id)
        return DeleteResponse(deleted=memory_id)

    @app.post("/v1/purge", response_model=PurgeResponse, tags=["admin"])
    def purge(req: PurgeRequest, p: Principal = admin) -> PurgeResponse:
        """Hard-delete (erase) a scope's memories, or the given ids, with history and vectors. Needs admin."""
        return _purge(memory(p), req)

    # -- read ------------------------------------------------------------------
    @app.get("/v1/memories/{memory_id}", response_model=MemoryRecord, tags=["memories"])
    def get(memory_id: MemoryId, p: Principal = owner_reader) -> MemoryRecord:
        """One memory by id."""
        return memory(p).get(memory_id)

    @app.get("/v1/memories", response_model=PageResponse, tags=["memories"])
    def list_memories(
        p: Principal = owner_reader,
        user_id: ScopeQ = None,
        agent_id: ScopeQ = None,
        session_id: ScopeQ = None,
        kind: Annotated[list[Kind] | None, Query(max_length=20)] = None,
        since: Annotated[When | None, Query()] = None,
        until: Annotated[When | None, Query()] = None,
        filters: Annotated[str | None, Query(max_length=64_000, description="metadata filter, a JSON object")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        order: Literal["occurred_at", "-occurred_at", "recorded_at", "-recorded_at"] = "occurred_at",
    ) -> PageResponse:
        """A page of memories (default oldest first)."""
        page = memory(p).list(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            kinds=kind,
            since=since,
            until=until,
            filters=_meta_filter(filters),
            limit=limit,
            offset=offset,
            order=order,
        )
        return PageResponse(**page.model_dump())

    @app.post("/v1/search", response_model=SearchResponse, tags=["search"])
    def search(req: SearchRequest, p: Principal = reader) -> SearchResponse:
        """Hybrid (keyword + vector) search, with the signals behind each hit."""
        data = req.model_dump(exclude_none=True)
        if p.audience:  # a key bound to an audience reads as it, whatever the request says
            data["audience"] = p.audience
        return SearchResponse(results=memory(p).search(data.pop("query"), **data))

    @app.post("/v1/context", response_model=ContextBlock, tags=["search"])
    def context(req: ContextRequest, p: Principal = reader) -> ContextBlock:
        """A prompt-ready block of the most relevant memories, oldest first, within max_tokens."""
        data = req.model_dump(exclude_none=True)
        if p.audience:
            data["audience"] = p.audience
        return memory(p).context(data.pop("query"), **data)

    @app.get("/v1/memories/{memory_id}/history", response_model=HistoryResponse, tags=["memories"])
    def history(
        memory_id: MemoryId,
        p: Principal = owner_reader,
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="only the newest changes")] = None,
    ) -> HistoryResponse:
        """Every change to a memory, oldest first: before, after, when (`limit`: only the newest ones)."""
        return HistoryResponse(memory_id=memory_id, entries=memory(p).history(memory_id, limit=limit))

    @app.get(
        "/v1/export",
        tags=["admin"],
        response_class=Response,
        responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
    )
    def export(
        p: Principal = owner_reader,
        user_id: ScopeQ = None,
        agent_id: ScopeQ = None,
        session_id: ScopeQ = None,
        include_embeddings: bool = False,
    ) -> Response:
        """The tenant's memories (or one scope's) as JSONL: the same format as `engramdb export`."""
        buf = io.StringIO()
        memory(p).export(
            buf, user_id=user_id, agent_id=agent_id, session_id=session_id, include_embeddings=include_embeddings
        )
        return Response(buf.getvalue(), media_type="application/x-ndjson")

    @app.get("/v1/stats", response_model=StatsResponse, tags=["admin"])
    def stats(p: Principal = reader) -> StatsResponse:
        """Counts and sizes of the tenant's store."""
        st = {k: v for k, v in memory(p).stats().items() if k != "path"}  # server paths are not the tenant's business
        return StatsResponse(tenant=p.tenant, stats=_jsonable(st))

    @app.get("/v1/memories/{memory_id}/links", response_model=list[LinkOut], tags=["memories"])
    def links(memory_id: MemoryId, p: Principal = owner_reader) -> list[LinkOut]:
        """Typed links touching a memory, both ways (supersedes, summarizes, related, ...)."""
        return [LinkOut(**lk) for lk in memory(p).links(memory_id)]

    @app.get("/v1/memories/{memory_id}/derived", response_model=list[MemoryRecord], tags=["memories"])
    def derived(memory_id: MemoryId, p: Principal = owner_reader) -> list[MemoryRecord]:
        """Memories derived from this one: facts, summaries and profiles that name it as a source."""
        return memory(p).derived(memory_id)

    @app.get("/v1/scopes", response_model=ScopesResponse, tags=["memories"])
    def scopes(
        p: Principal = reader,
        field: Literal["user_id", "agent_id", "session_id"] = "user_id",
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> ScopesResponse:
        """How many users (agents, sessions) hold live memories, and the busiest with their counts."""
        total, top = memory(p).scopes(field, user_id=user_id, agent_id=agent_id, limit=limit)
        return ScopesResponse(total=total, top=[ScopeCount(value=v, memories=n) for v, n in top])

    @app.get("/v1/growth", response_model=list[PeriodCount], tags=["memories"])
    def growth(
        p: Principal = reader,
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        session_id: ScopeParam = None,
        period: Literal["month", "day"] = "month",
    ) -> list[PeriodCount]:
        """Live memories per month (or day) of when they happened, oldest first."""
        rows = memory(p).growth(user_id=user_id, agent_id=agent_id, session_id=session_id, period=period)
        return [PeriodCount(period=k, memories=n) for k, n in rows]

    # -- facts -----------------------------------------------------------------
    @app.get("/v1/facts", response_model=list[MemoryRecord], tags=["facts"])
    def facts(q: Annotated[FactsParams, Query()], p: Principal = owner_reader) -> list[MemoryRecord]:
        """Structured facts: current ones by default; `as_of` = those valid then; `include_history` = all."""
        return memory(p).facts(**q.model_dump(exclude_none=True))

    @app.get("/v1/facts/{fact_id}/history", response_model=list[MemoryRecord], tags=["facts"])
    def fact_history(fact_id: MemoryId, p: Principal = owner_reader) -> list[MemoryRecord]:
        """The chain of values a fact went through, oldest first."""
        return memory(p).fact_history(fact_id)

    @app.post("/v1/extract", response_model=dict[str, Any], tags=["facts"])
    def extract(req: ExtractRequest, p: Principal = writer) -> dict[str, Any]:
        """Extract facts from episodes not yet processed (or re-extract `episode_ids`) and apply them."""
        return _jsonable(memory(p).extract(**req.model_dump(exclude_none=True)).model_dump())

    # -- lifecycle -------------------------------------------------------------
    @app.post("/v1/consolidate", response_model=dict[str, Any], tags=["lifecycle"])
    def consolidate(p: Principal = writer) -> dict[str, Any]:
        """Offline consolidation: expire, extract pending, session summaries, topics, merges, related links."""
        return _jsonable(memory(p).consolidate().model_dump())

    @app.post("/v1/forget", response_model=ForgetResponse, tags=["lifecycle"])
    def forget(req: ForgetRequest, p: Principal = writer) -> ForgetResponse:
        """Soft-delete by ids, or by a scope and filters (history keeps them); derived memories follow."""
        rep = memory(p).forget(**req.model_dump(exclude_none=True))
        return ForgetResponse(forgotten=list(rep.forgotten), cascaded=rep.cascaded)

    @app.post("/v1/expire", response_model=CountResponse, tags=["lifecycle"])
    def expire(p: Principal = writer, req: ExpireRequest | None = None) -> CountResponse:
        """Soft-delete memories whose expires_at has passed (reads already hide them)."""
        return CountResponse(count=memory(p).expire(at=req.at if req else None))

    @app.get("/v1/decay", response_model=list[DecayScore], tags=["lifecycle"])
    def decay_scores(
        p: Principal = reader,
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
    ) -> list[DecayScore]:
        """The decay score of each memory the decay policy covers, lowest first."""
        got = memory(p).decay_scores(user_id=user_id, agent_id=agent_id, limit=limit)
        return [DecayScore(id=i, score=s) for i, s in got]

    @app.post("/v1/archive", response_model=CountResponse, tags=["lifecycle"])
    def archive_decayed(p: Principal = writer) -> CountResponse:
        """Soft-delete the memories under the decay policy's archive_below (none when decay is off)."""
        return CountResponse(count=memory(p).archive_decayed())

    # -- procedural memory -----------------------------------------------------
    @app.post("/v1/trajectories", response_model=list[dict[str, Any]], status_code=201, tags=["procedural"])
    def add_trajectories(req: TrajectoriesRequest, p: Principal = writer) -> list[dict[str, Any]]:
        """Store agent runs (native or framework JSON) in one transaction; returns them with their ids."""
        data = req.model_dump(exclude_none=True)
        trajs = memory(p).add_trajectories(data.pop("trajectories"), **data)
        return [_jsonable(t.model_dump()) for t in trajs]

    @app.get("/v1/trajectories", response_model=list[dict[str, Any]], tags=["procedural"])
    def trajectories(
        p: Principal = reader,
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        session_id: ScopeParam = None,
        ids: Annotated[list[str] | None, Query(max_length=MAX_LIMIT, description="Only these trajectory ids.")] = None,
    ) -> list[dict[str, Any]]:
        """Stored trajectories in scope, with their steps and step ids."""
        got = memory(p).trajectories(user_id=user_id, agent_id=agent_id, session_id=session_id, ids=ids)
        return [_jsonable(t.model_dump()) for t in got]

    @app.post("/v1/tips/learn", response_model=dict[str, Any], tags=["procedural"])
    def learn_tips(req: LearnRequest, p: Principal = writer) -> dict[str, Any]:
        """Mine tips from the stored trajectories of a scope, validate them and merge them with the stored ones."""
        return _jsonable(memory(p).learn_tips(**req.model_dump(exclude_none=True)).model_dump())

    @app.post("/v1/tips/query", response_model=dict[str, Any], tags=["procedural"])
    def tips(req: TipsQuery, p: Principal = writer) -> dict[str, Any]:
        """Tips for a new task: `text` is a prompt-ready block, `tip_ids` what to report an outcome for. Needs
        write: each tip served is counted (its utility is learnt from the outcomes reported)."""
        data = req.model_dump(exclude_none=True)
        g = memory(p).tips(data.pop("task_description"), **data)
        return {**_jsonable(g.model_dump()), "tip_ids": g.tip_ids}

    @app.get("/v1/tips", response_model=list[dict[str, Any]], tags=["procedural"])
    def list_tips(
        p: Principal = reader,
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        session_id: ScopeParam = None,
        status: Literal["active", "retired", "all"] = "active",
        tip_type: Literal["strategy", "recovery", "optimization", "warning"] | None = None,
        order: Literal["recorded_at", "-recorded_at", "-utility"] = "recorded_at",
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[dict[str, Any]]:
        """Stored tips of a scope: active ones by default, oldest first (`order=-utility`: most useful first).
        `limit`/`offset` read one page (every tip without `limit`); `/v1/tips/count` counts them."""
        got = memory(p).list_tips(
            user_id=user_id, agent_id=agent_id, session_id=session_id, status=None if status == "all" else status,
            tip_type=tip_type, order=order, limit=limit, offset=offset,
        )
        return [_jsonable(t.model_dump()) for t in got]

    @app.get("/v1/tips/count", response_model=dict[str, int], tags=["procedural"])
    def count_tips(
        p: Principal = reader,
        user_id: ScopeParam = None,
        agent_id: ScopeParam = None,
        session_id: ScopeParam = None,
        status: Literal["active", "retired", "all"] = "active",
        tip_type: Literal["strategy", "recovery", "optimization", "warning"] | None = None,
    ) -> dict[str, int]:
        """How many tips `GET /v1/tips` lists with the same filters: `{"count": n}`."""
        n = memory(p).count_tips(
            user_id=user_id, agent_id=agent_id, session_id=session_id, status=None if status == "all" else status,
            tip_type=tip_type,
        )
        return {"count": n}

    @app.get("/v1/tips/{tip_id}/provenance", response_model=dict[str, Any], tags=["procedural"])
    def tip_provenance(tip_id: MemoryId, p: Principal = reader) -> dict[str, Any]:
        """The tip, the exact steps it was drawn from, and their trajectories."""
        return _jsonable(memory(p).tip_provenance(tip_id))

    @app.post("/v1/tips/outcome", response_model=list[dict[str, Any]], tags=["procedural"])
    def report_outcome(req: OutcomeRequest, p: Principal = writer) -> list[dict[str, Any]]:
        """How the task the tips were served for went (success, failure, partial); returns the updated tips."""
        return [_jsonable(t.model_dump()) for t in memory(p).report_outcome(req.tip_ids, req.outcome)]

    # -- administration --------------------------------------------------------
    @app.post("/v1/import", response_model=dict[str, Any], tags=["admin"])
    def import_(req: ImportRequest, p: Principal = admin) -> dict[str, Any]:
        """Import records written by export (each line one object). Every record is checked first; one bad
        record imports nothing unless `skip_bad`. Needs admin."""
        lines = [json.dumps(r) for r in req.records]
        rep = memory(p).import_(lines, recompute_embeddings=req.recompute_embeddings, skip_bad=req.skip_bad)
        return _jsonable(rep.model_dump())

    @app.post("/v1/reindex", response_model=CountResponse, tags=["admin"])
    def reindex(p: Principal = admin) -> CountResponse:
        """Re-embed and re-key every memory with the server's model. Needs admin."""
        return CountResponse(count=memory(p).reindex())

    from . import privacy_routes

    app.include_router(privacy_routes.router(memory, reader, writer, admin))

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    if settings.mcp:

        async def mcp_endpoint(scope: Any, receive: Any, send: Any) -> None:
            current = mcp_current["app"]
            if current is None:  # only between shutdown and exit
                await JSONResponse({"error": {"code": "unavailable", "message": "shutting down"}}, 503)(
                    scope, receive, send
                )
                return
            await current(scope, receive, send)

        app.mount("/mcp", mcp_endpoint)
    return app


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


def _backend(settings: ServerSettings) -> str:
    return "postgresql" if settings.url else "sqlite"


_META_FILTER = TypeAdapter(MetaFilter)


def _meta_filter(raw: str | None) -> dict[str, Any] | None:
    """The `filters` query parameter: a JSON object (declared as such in the spec, see _openapi)."""
    if raw is None:
        return None
    try:
        return _META_FILTER.validate_json(raw)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationError(f"filters{'.' + where if where else ''}: {first['msg']}") from exc


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's spec, with the JSON-valued `filters` query parameter described as JSON (OpenAPI `content`)."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for param in spec["paths"]["/v1/memories"]["get"].get("parameters", []):
            if param["name"] == "filters":
                param.pop("schema", None)
                param["content"] = {"application/json": {"schema": _META_FILTER.json_schema()}}
        app.openapi_schema = spec
    return app.openapi_schema


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _purge(mem: Memory, req: PurgeRequest) -> PurgeResponse:
    """Erase for real. A user/agent scope goes through `Memory.purge` (rows, index, vectors, history, derived
    memories, then VACUUM); a session scope or a list of ids through `Memory.erase`."""
    scope = {k: v for k, v in req.model_dump(include={"user_id", "agent_id", "session_id"}).items() if v}
    if not scope and not req.memory_ids:
        raise ValidationError("purge needs a scope (user_id, agent_id, session_id) or memory_ids")
    purged, report = 0, None
    if req.memory_ids:
        purged += mem.erase(req.memory_ids)
    if scope and "session_id" not in scope:
        rep = mem.purge(**scope)
        purged += int(rep.memories)
        report = _jsonable(rep.model_dump())
    elif scope:
        purged += mem.erase(**scope)
    return PurgeResponse(purged=purged, report=report)


def create_app_from_env() -> FastAPI:
    """uvicorn factory for multi-worker runs: each worker rebuilds the app from ENGRAMDB_SERVER_SETTINGS."""
    return create_app(ServerSettings.from_env())
