"""A small, strict client for OpenAI-compatible chat completions.

Why this exists rather than a vendor SDK: small local models (Ollama, llama.cpp)
often return JSON wrapped in prose, code fences or <think> blocks, or JSON that
misses a field. Users of other memory engines see that as "extraction silently
stored nothing". Here every structured call is validated against a pydantic
schema; an invalid answer gets a bounded repair round-trip; a final failure
raises `LLMError` and is counted per operation, so it shows up in `stats`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from ..errors import EngramError
from .config import LLMConfig

T = TypeVar("T", bound=BaseModel)
Message = dict[str, str]

_THINK_RE = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


class LLMError(EngramError):
    """The LLM could not produce a valid answer (after retries and repair). Nothing was written."""


class OpUsage(BaseModel):
    """The account of one operation (extract, summarize, update_judge, ...)."""

    calls: int = 0  # HTTP requests sent
    ok: int = 0  # structured answers that validated
    failures: int = 0  # operations that gave up
    retries: int = 0  # transport retries (timeouts, 429, 5xx)
    repairs: int = 0  # repair round-trips after invalid output
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_tokens: bool = False  # the server sent no usage; counts are chars/4 estimates
    cost_usd: float = 0.0
    seconds: float = 0.0
    last_error: str | None = None


class LLMUsage(BaseModel):
    model: str = ""
    ops: dict[str, OpUsage] = Field(default_factory=dict)

    def op(self, name: str) -> OpUsage:
        return self.ops.setdefault(name, OpUsage())

    def totals(self) -> dict[str, Any]:
        keys = ("calls", "ok", "failures", "retries", "repairs", "prompt_tokens", "completion_tokens")
        out: dict[str, Any] = {k: sum(getattr(u, k) for u in self.ops.values()) for k in keys}
        out["cost_usd"] = round(sum(u.cost_usd for u in self.ops.values()), 6)
        return out


def load_llm_config() -> LLMConfig | None:
    return LLMConfig.from_env()


class LLMClient:
    """Chat completions with JSON validation, bounded retries, a repair step, timeouts and a cost account."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        on_usage: Callable[[str, OpUsage], None] | None = None,
    ) -> None:
        self.config = config
        headers = {"Content-Type": "application/json"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._http = httpx.Client(
            base_url=config.base_url, headers=headers, timeout=config.timeout_s, transport=transport
        )
        self._lock = threading.Lock()
        self.usage = LLMUsage(model=config.model)
        self._on_usage = on_usage  # called after each operation with its delta (Memory persists it)

    def close(self) -> None:
        self._http.close()

    # -- raw ---------------------------------------------------------------------
    def chat(self, messages: Sequence[Message], *, op: str = "chat", json_mode: bool = False) -> str:
        """One completion's text; transport failures are retried (bounded), then raise LLMError."""
        delta = OpUsage()
        try:
            return self._chat(messages, delta, json_mode=json_mode)
        except LLMError as exc:
            delta.failures += 1
            delta.last_error = str(exc)[:300]
            raise
        finally:
            self._account(op, delta)

    def _chat(self, messages: Sequence[Message], delta: OpUsage, *, json_mode: bool) -> str:
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": list(messages),
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
            "stream": False,
        }
        if json_mode and cfg.json_mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        last: str = "no attempt"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                delta.retries += 1
                time.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
            delta.calls += 1
            started = time.monotonic()
            try:
                resp = self._http.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                last = f"timed out after {cfg.timeout_s:g}s"
                continue
            except httpx.HTTPError as exc:
                last = f"cannot reach {cfg.base_url}: {exc}"
                continue
            finally:
                delta.seconds += time.monotonic() - started
            if resp.status_code == 429 or resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code >= 400:
                raise LLMError(f"{cfg.base_url} refused the request (HTTP {resp.status_code}): {resp.text[:300]}")
            try:
                data = resp.json()
                text = data["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                last = f"not an OpenAI chat-completions response: {resp.text[:200]}"
                continue
            self._count_tokens(delta, data.get("usage"), messages, text)
            return text
        raise LLMError(f"LLM request failed after {cfg.max_retries + 1} attempt(s): {last}")

    def _count_tokens(self, delta: OpUsage, usage: Any, messages: Sequence[Message], text: str) -> None:
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            pt, ct = usage["prompt_tokens"], int(usage.get("completion_tokens") or 0)
        else:  # some local servers omit usage: estimate, and say so
            pt = sum(len(m.get("content", "")) for m in messages) // 4
            ct = len(text) // 4
            delta.estimated_tokens = True
        delta.prompt_tokens += pt
        delta.completion_tokens += ct
        delta.cost_usd += pt / 1000 * self.config.price_prompt_per_1k + ct / 1000 * self.config.price_completion_per_1k

    def _account(self, op: str, delta: OpUsage) -> None:
        with self._lock:
            u = self.usage.op(op)
            for k in ("calls", "ok", "failures", "retries", "repairs", "prompt_tokens", "completion_tokens"):
                setattr(u, k, getattr(u, k) + getattr(delta, k))
            u.cost_usd += delta.cost_usd
            u.seconds += delta.seconds
            u.estimated_tokens = u.estimated_tokens or delta.estimated_tokens
            if delta.last_error:
                u.last_error = delta.last_error
        if self._on_usage is not None:
            self._on_usage(op, delta)

    # -- structured --------------------------------------------------------------
    def complete_json(
        self,
        prompt: str | Sequence[Message],
        schema: type[T],
        *,
        op: str = "json",
        system: str | None = None,
    ) -> T:
        """Ask for JSON matching `schema`; returns a validated instance or raises LLMError.

        Invalid output (prose around JSON, fences, <think> blocks are tolerated) gets up to
        `repair_attempts` follow-ups that show the model its error and ask for corrected JSON."""
        messages: list[Message] = []
        if isinstance(prompt, str):
            if system:
                messages.append({"role": "system", "content": system})
            messages.append({"role": "user", "content": prompt})
        else:
            messages = list(prompt)
        delta = OpUsage()
        try:
            text = self._chat(messages, delta, json_mode=True)
            for attempt in range(self.config.repair_attempts + 1):
                try:
                    result = parse_json_as(text, schema)
                    delta.ok += 1
                    return result
                except ValueError as exc:
                    if attempt == self.config.repair_attempts:
                        raise LLMError(f"{op}: the model's answer did not match the schema: {exc}") from exc
                    delta.repairs += 1
                    messages = [*messages, {"role": "assistant", "content": text}, repair_message(exc, schema)]
                    text = self._chat(messages, delta, json_mode=True)
            raise AssertionError("unreachable")  # pragma: no cover
        except LLMError as exc:
            delta.failures += 1
            delta.last_error = str(exc)[:300]
            raise
        finally:
            self._account(op, delta)


def extract_json_text(text: str) -> str:
    """The JSON part of a model answer: drop <think> blocks and code fences, cut to the outermost {...} or [...]."""
    text = _THINK_RE.sub("", text).strip()
    fence = _FENCE_RE.search(text)
    if fence:
        text = fence.group(1).strip()
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object in the answer")
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    if end < start:
        raise ValueError("unterminated JSON in the answer")
    return text[start : end + 1]


def parse_json_as(text: str, schema: type[T]) -> T:
    """Parse and validate; raises ValueError with a short, model-readable reason."""
    raw = extract_json_text(text)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    try:
        return schema.model_validate(data)
    except PydanticValidationError as exc:
        errs = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"schema mismatch: {errs}") from exc


def repair_message(error: Exception, schema: type[BaseModel]) -> Message:
    return {
        "role": "user",
        "content": (
            f"Your previous answer could not be used: {error}.\n"
            "Reply again with ONLY one JSON object, no prose and no code fences, matching this JSON schema:\n"
            + json.dumps(schema.model_json_schema(), separators=(",", ":"))
        ),
    }
