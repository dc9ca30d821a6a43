"""Every error EngramDB raises on purpose derives from EngramError.

The CLI maps these to exit code 2 with the message only (no traceback); the REST
server maps them to 4xx responses.
"""

from __future__ import annotations


class EngramError(Exception):
    """Base class for EngramDB errors."""


class ValidationError(EngramError, ValueError):
    """Bad input: nothing was written."""


class NotFoundError(EngramError, KeyError):
    """An id that does not exist (or is not visible in this scope)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "not found"


class ModelMismatchError(EngramError):
    """The store was built with another embedding model or dimension."""


class StoreError(EngramError):
    """The storage backend failed (locked, corrupt, unreachable)."""


class ReadOnlyError(StoreError):
    """A write to a store opened read-only (a read-only file or replica)."""


class ConfigError(EngramError):
    """Invalid configuration (unknown backend, missing optional dependency...)."""


class AuthError(EngramError):
    """A missing, malformed, unknown, expired or revoked key (HTTP 401)."""


class ForbiddenError(EngramError):
    """A valid key without the permission an operation needs (HTTP 403)."""


class RateLimited(Exception):  # a signal with a retry time, not an input error
    """Over the key's request rate (HTTP 429, with Retry-After)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded: retry in {retry_after:.2f}s")
        self.retry_after = retry_after
