"""Edge limits: per-key rate limiting, request-body size, request ids and JSON access logs.

The rate limiter is a token bucket per API key, in process memory: with N workers a
key gets up to N times the rate in the worst case, which is the usual trade-off for
a limiter without shared state (put a shared limiter in the load balancer if that
matters). The body limit is enforced on the bytes actually received, not only on the
Content-Length header, so a lying or chunked client cannot slip past it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("engramdb.server")


class RateLimiter:
    """Token bucket per key: `rate` requests/second sustained, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, int(rate * 2)))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float:
        """0.0 when the request may go ahead, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        t = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, t)
                return 0.0
            self._buckets[key] = (tokens, t)
            return (1 - tokens) / self.rate


class BodyTooLarge(HTTPException):
    """Raised from inside `receive`: an HTTPException, so the framework answers 413 instead of a parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class EdgeMiddleware:
    """Request id, body size limit and one JSON log line per request (pure ASGI: works for streaming too)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        # Accept a caller's id only when it is short and printable, so logs cannot be forged or flooded.
        rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = {"code": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body_bytes
            except ValueError:
                too_big = False
            if too_big:
                await self._reject(send_wrapper, rid)
                self._log(scope, rid, 413, started)
                return

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if status["code"] == 0:
                await self._reject(send_wrapper, rid)
            status["code"] = 413
        finally:
            self._log(scope, rid, status["code"] or 500, started)

    async def _reject(self, send: Send, rid: str) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body larger than {self.max_body_bytes} bytes",
                    "request_id": rid,
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _log(self, scope: Scope, rid: str, status: int, started: float) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        log.info(
            "request",
            extra={
                "fields": {
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "tenant": state.get("tenant"),
                    "key_id": state.get("key_id"),
                }
            },
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy to ship to any log pipeline."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for the server's own logger (idempotent)."""
    if any(getattr(h, "_engramdb", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._engramdb = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False
