"""MCP over streamable HTTP, behind the server's API keys.

Every HTTP request must carry a key (`Authorization: Bearer edb_...`), checked before the MCP
layer sees it; each tool call then resolves the key's tenant again and opens only that tenant's
store, so tools can never cross tenants either. The tools themselves are in mcp/server.py.
"""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import Context
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api.memory import Memory
from ..errors import EngramError, ForbiddenError, RateLimited
from ..mcp.server import Resolver, build_server
from .auth import authenticate, key_from_headers
from .keys import KeyStore, permits
from .ratelimit import RateLimiter
from .tenants import TenantRegistry


def key_resolver(registry: TenantRegistry, keys: KeyStore) -> Resolver:
    """Resolve each tool call to the tenant of the API key on its HTTP request."""

    def resolve(ctx: Context | None, permission: str) -> Memory:
        headers = (ctx.headers if ctx is not None else None) or {}
        key = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
        principal = authenticate(keys, None, key)
        if not permits(principal.permissions, permission):
            raise ForbiddenError(f"this key lacks the '{permission}' permission")
        return registry.get(principal.tenant)

    return resolve


def key_audience(keys: KeyStore) -> Callable[[Context | None], str | None]:
    """The audience the API key on a tool call's HTTP request is bound to (`audience:<agent>`), if any: the
    call is served as it, whatever the tool arguments say."""

    def audience_of(ctx: Context | None) -> str | None:
        headers = (ctx.headers if ctx is not None else None) or {}
        key = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
        return authenticate(keys, None, key).audience

    return audience_of


class KeyAuthMiddleware:
    """Refuse any HTTP request without a valid key (401) or over its rate (429) before MCP sees it."""

    def __init__(self, app: ASGIApp, keys: KeyStore, limiter: RateLimiter | None) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            key = key_from_headers(headers.get("authorization"), headers.get("x-api-key"))
            principal = authenticate(self.keys, self.limiter, key)
        except EngramError as exc:
            resp = JSONResponse(
                {"error": {"code": "unauthorized", "message": str(exc)}},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await resp(scope, receive, send)
            return
        except RateLimited as exc:
            resp = JSONResponse(
                {"error": {"code": "rate_limited", "message": str(exc)}},
                status_code=429,
                headers={"Retry-After": str(max(1, round(exc.retry_after)))},
            )
            await resp(scope, receive, send)
            return
        scope.setdefault("state", {}).update(tenant=principal.tenant, key_id=principal.key_id)
        await self.app(scope, receive, send)


def http_app(
    registry: TenantRegistry,
    keys: KeyStore,
    *,
    limiter: RateLimiter | None = None,
    path: str = "/mcp",
    host: str = "127.0.0.1",
) -> Starlette:
    """Streamable HTTP (stateless, JSON responses: any worker can answer any request) behind key auth."""
    server = build_server(key_resolver(registry, keys), audience_of=key_audience(keys))
    app = server.streamable_http_app(streamable_http_path=path, stateless_http=True, json_response=True, host=host)
    app.add_middleware(KeyAuthMiddleware, keys=keys, limiter=limiter)
    return app
