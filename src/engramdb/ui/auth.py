"""Who is looking at the UI: sign-in with an API key, a signed session cookie, CSRF tokens.

Server mode (`engramdb serve`): a person signs in with an API key once; the server checks it like any
API call and sets a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) that holds the key *id*,
an expiry and a nonce, signed with HMAC-SHA256. The key itself is never stored in the browser. Every
request re-reads the key's row, so a revoked or expired key ends its sessions at once, and permission
changes apply on the next page. Sessions are stateless, so several workers share them through the
secret file `<data-dir>/ui_secret`.

Local mode (`engramdb ui --db agent.db`): one store, one person, no key, bound to 127.0.0.1; the Host
header must name the loopback (a DNS-rebinding page cannot reach it) and writes still need the CSRF token.

CSRF: every state-changing form carries a token derived from the session (HMAC of it); a POST whose
token or Origin does not match is refused (403). SameSite=Strict is a second fence, not the only one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request

from ..api.memory import Memory
from ..errors import NotFoundError
from ..server.keys import KeyStore, permits

SESSION_COOKIE = "engramdb_ui"
PRESESSION_COOKIE = "engramdb_ui_pre"  # binds the sign-in form's CSRF token before a session exists
SESSION_TTL_S = 8 * 3600
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass
class Viewer:
    tenant: str
    key_id: str
    permissions: list[str]
    session: str  # the signed cookie value: the CSRF token is derived from it

    def can(self, permission: str) -> bool:
        return permits(self.permissions, permission)


class Signer:
    """HMAC-SHA256 signatures over short strings."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def mac(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}\x00{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, payload: str) -> str:
        return f"{payload}.{self.mac('session', payload)}"

    def unsign(self, value: str | None) -> str | None:
        if not value or "." not in value or len(value) > 512:
            return None
        payload, _, mac = value.rpartition(".")
        return payload if hmac.compare_digest(mac, self.mac("session", payload)) else None

    def csrf(self, session: str) -> str:
        return self.mac("csrf", session)


def load_secret(path: Path) -> bytes:
    """The UI's signing secret, created once (mode 0600) and shared by every worker on this data dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
        raise
    with os.fdopen(fd, "wb") as fh:
        data = secrets.token_bytes(32)
        fh.write(data)
    return data


class UIBackend(Protocol):
    local: bool
    backend: str
    signer: Signer

    def viewer(self, request: Request) -> Viewer | None: ...

    def memory(self, viewer: Viewer) -> Memory: ...


class KeyBackend:
    """`engramdb serve`: tenants and keys of the REST server."""

    local = False

    def __init__(self, registry: Any, keys: KeyStore, limiter: Any, secret: bytes, backend: str) -> None:
        self.registry = registry
        self.keys = keys
        self.limiter = limiter
        self.signer = Signer(secret)
        self.backend = backend

    def sign_in(self, key: str) -> tuple[Viewer, str]:
        """Check an API key (AuthError when it is not valid); returns the viewer and the cookie value."""
        info = self.keys.verify(key)
        expires = int(time.time()) + SESSION_TTL_S
        cookie = self.signer.sign(f"{info.key_id}|{expires}|{secrets.token_urlsafe(12)}")
        return Viewer(info.tenant, info.key_id, info.permissions, cookie), cookie

    def viewer(self, request: Request) -> Viewer | None:
        raw = request.cookies.get(SESSION_COOKIE)
        payload = self.signer.unsign(raw)
        if payload is None or raw is None:
            return None
        parts = payload.split("|")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) < time.time():
            return None
        try:
            info = self.keys.get(parts[0])
        except NotFoundError:
            return None
        if not info.active:
            return None
        if self.limiter is not None:
            from ..errors import RateLimited

            wait = self.limiter.check(info.key_id)
            if wait > 0:
                raise RateLimited(wait)
        return Viewer(info.tenant, info.key_id, info.permissions, raw)

    def memory(self, viewer: Viewer) -> Memory:
        return self.registry.get(viewer.tenant)


class LocalBackend:
    """`engramdb ui --db agent.db`: one store for the person at this machine; no key."""

    local = True

    def __init__(self, mem: Memory, *, read_only: bool = False, backend: str = "sqlite") -> None:
        self.mem = mem
        self.signer = Signer(secrets.token_bytes(32))
        self.backend = backend
        self._session = self.signer.sign(f"local|{secrets.token_urlsafe(12)}")
        self._perms = ["read"] if read_only else ["admin"]

    def viewer(self, request: Request) -> Viewer | None:
        if (request.url.hostname or "") not in LOOPBACK:  # the Host header: a rebinding page names its own host
            return None
        return Viewer("local", "local", self._perms, self._session)

    def memory(self, viewer: Viewer) -> Memory:
        return self.mem
