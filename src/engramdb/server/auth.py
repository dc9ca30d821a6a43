"""Authentication and permissions for the REST and MCP servers.

A key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`. It resolves to
a `Principal` (tenant, key id, permissions); every route then reaches data only
through `TenantRegistry.get(principal.tenant)`. Each authenticated request also
spends a token of the key's rate-limit bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..errors import AuthError, ForbiddenError, RateLimited
from .keys import KeyInfo, KeyStore, permits
from .ratelimit import RateLimiter

bearer = HTTPBearer(auto_error=False, description="An EngramDB API key: `Authorization: Bearer edb_...`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key in `X-API-Key`.")


class Principal(BaseModel):
    tenant: str
    key_id: str
    permissions: list[str]
    expires_at: datetime | None = None

    @property
    def audience(self) -> str | None:
        """The audience a key is bound to ("audience:<agent id>" or "audience:purpose:<label>" among its
        permissions): every search and context through it is served as that audience."""
        return next((p.split(":", 1)[1] for p in self.permissions if p.startswith("audience:")), None)

    @classmethod
    def from_info(cls, info: KeyInfo) -> Principal:
        return cls(tenant=info.tenant, key_id=info.key_id, permissions=info.permissions, expires_at=info.expires_at)


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from either header (Bearer wins); None when neither is sent."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("Authorization header must be 'Bearer <key>'")
        return value.strip()
    return x_api_key.strip() if x_api_key else None


def authenticate(keys: KeyStore, limiter: RateLimiter | None, key: str | None) -> Principal:
    info = keys.verify(key)
    if limiter is not None:
        wait = limiter.check(info.key_id)
        if wait > 0:
            raise RateLimited(wait)
    return Principal.from_info(info)


def require(permission: str, *, unfiltered: bool = False) -> Callable[..., Principal]:
    """A FastAPI dependency: the caller's Principal, which must hold `permission` (admin > write > read).
    `unfiltered`: the route returns memories without the disclosure policies (by id, lists, history, facts,
    export), so a key bound to an audience is refused it."""

    def dependency(
        request: Request,
        creds: HTTPAuthorizationCredentials | None = Depends(bearer),
        x_api_key: str | None = Depends(api_key_header),
    ) -> Principal:
        state = request.app.state
        auth_header = f"{creds.scheme} {creds.credentials}" if creds else request.headers.get("authorization")
        principal = authenticate(state.keys, state.limiter, key_from_headers(auth_header, x_api_key))
        # For the access log (EdgeMiddleware reads these from the ASGI scope's state).
        request.scope.setdefault("state", {}).update(tenant=principal.tenant, key_id=principal.key_id)
        if not permits(principal.permissions, permission):
            raise ForbiddenError(f"this key lacks the '{permission}' permission")
        if unfiltered and principal.audience:
            raise ForbiddenError("a key bound to an audience reads memories through search and context only")
        return principal

    return dependency
