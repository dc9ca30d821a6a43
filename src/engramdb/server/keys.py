"""API keys: random, high-entropy, stored only as a hash, each bound to one tenant.

A key looks like `edb_<key_id>_<secret>`. `key_id` (12 hex digits) is public: it is
the lookup handle shown by `engramdb keys list` and used to revoke. The secret is 32
random bytes; the store keeps HMAC-SHA256(key_id, full key), never the key itself,
and compares hashes in constant time. Because the secret has 256 bits of entropy, a
fast hash is enough (no password-stretching needed).

Keys live in `keys.db` (SQLite) inside the server's data directory; every check
reads it, so a revocation takes effect on the next request in every worker.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from ..errors import AuthError, NotFoundError, ValidationError
from ..timeutil import from_store, now, to_store

PERMISSIONS = ("read", "write", "admin")
# Tenant names become file names and PostgreSQL schema names: keep them boring.
TENANT_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_KEY_RE = re.compile(r"^edb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id      TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    permissions TEXT NOT NULL,
    name        TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
)
"""


class KeyInfo(BaseModel):
    """What the server knows about a key (never the key itself)."""

    key_id: str
    tenant: str
    permissions: list[str]
    name: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now())

    def allows(self, permission: str) -> bool:
        return permits(self.permissions, permission)


def permits(permissions: Iterable[str], needed: str) -> bool:
    """admin implies write implies read."""
    rank = {p: i for i, p in enumerate(PERMISSIONS)}
    return any(rank.get(p, -1) >= rank[needed] for p in permissions)


class CreatedKey(BaseModel):
    """A freshly created key: the only moment the plaintext exists."""

    key: str
    info: KeyInfo


def check_tenant(tenant: object) -> str:
    if not isinstance(tenant, str) or not TENANT_RE.match(tenant):
        raise ValidationError(
            f"tenant must be 1-48 characters: a lowercase letter, then lowercase letters, digits or '_'; got {tenant!r}"
        )
    return tenant


def pg_schema(tenant: str) -> str:
    """The PostgreSQL schema that holds a tenant's memories."""
    return f"engram_{check_tenant(tenant)}"


def check_permissions(perms: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in perms:
        p = p.strip()
        if p.lower().startswith("audience:"):  # the key reads as this audience (docs/privacy.md)
            from ..privacy.policy import Audience

            p = "audience:" + Audience.parse(p[len("audience:"):]).label().split(" ")[0].removeprefix("agent:")
        else:
            p = p.lower()
            if p not in PERMISSIONS:
                raise ValidationError(f"unknown permission {p!r}: use read, write, admin or audience:<agent id>")
        if p not in out:
            out.append(p)
    if not any(p in PERMISSIONS for p in out):
        raise ValidationError("a key needs at least one permission (read, write, admin)")
    return out


def _hash(key_id: str, key: str) -> str:
    return hmac.new(key_id.encode(), key.encode(), hashlib.sha256).hexdigest()


class KeyStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def create(
        self,
        tenant: str,
        permissions: Iterable[str] = ("read", "write"),
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        expires_in: timedelta | None = None,
    ) -> CreatedKey:
        tenant = check_tenant(tenant)
        perms = check_permissions(permissions)
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise ValidationError("key name must be a string of at most 200 characters")
        if expires_in is not None:
            if expires_in.total_seconds() <= 0:
                raise ValidationError("expiry must be in the future")
            expires_at = now() + expires_in
        key_id = secrets.token_hex(6)
        key = f"edb_{key_id}_{secrets.token_urlsafe(32)}"
        created = now()
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (key_id, hash, tenant, permissions, name, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    _hash(key_id, key),
                    tenant,
                    ",".join(perms),
                    name,
                    to_store(created),
                    to_store(expires_at) if expires_at else None,
                ),
            )
        return CreatedKey(key=key, info=self.get(key_id))

    def get(self, key_id: str) -> KeyInfo:
        with self._lock:
            row = self._conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no API key with id {key_id!r}")
        return _info(row)

    def list(self, tenant: str | None = None) -> list[KeyInfo]:
        sql, args = "SELECT * FROM api_keys", tuple[str, ...]()
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (check_tenant(tenant),)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at", args).fetchall()
        return [_info(r) for r in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        info = self.get(key_id)
        if info.revoked_at is None:
            with self._lock:
                self._conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (to_store(now()), key_id))
        return self.get(key_id)

    def verify(self, key: str | None) -> KeyInfo:
        """The key's info, or AuthError saying why not. Never says which part of a forged key was wrong."""
        if not key:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        m = _KEY_RE.match(key.strip())
        if not m:
            raise AuthError("malformed API key")
        key_id = m.group(1)
        with self._lock:
            row = self._conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        # Compare against a dummy hash when the id is unknown, so timing does not reveal which ids exist.
        expected = row["hash"] if row is not None else _hash("000000000000", "")
        if not hmac.compare_digest(expected, _hash(key_id, key.strip())) or row is None:
            raise AuthError("invalid API key")
        info = _info(row)
        if info.revoked_at is not None:
            raise AuthError("API key revoked")
        if info.expires_at is not None and info.expires_at <= now():
            raise AuthError("API key expired")
        return info


def _info(row: sqlite3.Row) -> KeyInfo:
    return KeyInfo(
        key_id=row["key_id"],
        tenant=row["tenant"],
        permissions=row["permissions"].split(","),
        name=row["name"],
        created_at=from_store(row["created_at"]),
        expires_at=from_store(row["expires_at"]) if row["expires_at"] else None,
        revoked_at=from_store(row["revoked_at"]) if row["revoked_at"] else None,
    )
