"""Validate and normalise what callers pass to `add`.

Accepted shapes:
- a string: one turn;
- a chat message dict: {"role": "user", "content": "...", "name": optional};
- a turn dict: {"speaker": "Caroline", "text": "...", "timestamp": optional ISO-8601,
  "metadata": optional dict, "source_ref": optional str};
- a list of any of these.

Everything is checked before anything is written, so bad input changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import ValidationError
from ..model import MAX_ID_CHARS, MAX_METADATA_BYTES, MAX_TEXT_CHARS
from ..timeutil import parse_time

MAX_METADATA_DEPTH = 32  # levels of nested objects/arrays, the top-level object included

_TURN_KEYS = {"role", "content", "name", "speaker", "text", "timestamp", "time", "metadata", "source_ref", "id"}


@dataclass
class Turn:
    text: str
    speaker: str | None = None
    role: str | None = None
    occurred_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source_ref: str | None = None


def check_text(text: object, *, where: str = "text", max_chars: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{where}: expected a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{where}: not valid UTF-8 (lone surrogate at position {exc.start})") from exc
    if "\x00" in text:
        raise ValidationError(f"{where}: contains a NUL character")
    if not text.strip():
        raise ValidationError(f"{where}: empty text")
    if len(text) > max_chars:
        raise ValidationError(f"{where}: {len(text):,} characters is over the limit of {max_chars:,}")
    return text


def check_metadata(metadata: object, *, where: str = "metadata") -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationError(f"{where}: expected a JSON object (dict), got {type(metadata).__name__}")
    bad_keys = [k for k in metadata if not isinstance(k, str)]
    if bad_keys:
        raise ValidationError(f"{where}: keys must be strings, got {bad_keys[0]!r}")
    depth, has_nul = _scan(metadata)
    if depth > MAX_METADATA_DEPTH:
        # Deeper trees break JSON serialisers further on (export, the REST response): refuse them here.
        raise ValidationError(f"{where}: nested more than {MAX_METADATA_DEPTH} levels deep")
    try:
        # allow_nan=False: NaN/Infinity are not JSON, and one such row would break SQLite's json_extract filters.
        raw = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
        raw.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise ValidationError(f"{where}: must be JSON-serialisable UTF-8: {exc}") from exc
    if len(raw.encode("utf-8")) > MAX_METADATA_BYTES:
        raise ValidationError(f"{where}: over the limit of {MAX_METADATA_BYTES:,} bytes as JSON")
    if has_nul:
        # PostgreSQL's jsonb cannot hold U+0000; refuse it on every backend so stores stay portable.
        raise ValidationError(f"{where}: contains a NUL character")
    return metadata


def _scan(value: object) -> tuple[int, bool]:
    """(nesting depth of objects and arrays, whether any key or string holds NUL); iterative, so no depth
    can overflow the Python stack, and it stops past the limit (a cyclic dict is infinitely deep)."""
    deepest, nul = 0, False
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return depth, nul
        if isinstance(item, str):
            nul = nul or "\x00" in item
        elif isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            for k, v in item.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(item, (list, tuple)):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in item)
    return deepest, nul


def check_id(value: object, *, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"{where}: must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise ValidationError(f"{where}: longer than {MAX_ID_CHARS} characters")
    check_text(value, where=where)
    return value


def normalize(messages: object, *, max_chars: int = MAX_TEXT_CHARS) -> list[Turn]:
    """Turn any accepted input shape into a list of validated Turns."""
    if isinstance(messages, (str, dict)):
        items: list[Any] = [messages]
    elif isinstance(messages, (list, tuple)):
        items = list(messages)
        if not items:
            raise ValidationError("messages: empty list, nothing to add")
    else:
        raise ValidationError(
            f"messages: expected text, a message dict or a list of them, got {type(messages).__name__}"
        )
    return [_turn(item, i, max_chars) for i, item in enumerate(items)]


def _turn(item: object, i: int, max_chars: int) -> Turn:
    where = f"messages[{i}]"
    if isinstance(item, str):
        return Turn(text=check_text(item, where=where, max_chars=max_chars))
    if not isinstance(item, dict):
        raise ValidationError(f"{where}: expected a string or dict, got {type(item).__name__}")
    unknown = set(item) - _TURN_KEYS
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_TURN_KEYS)}")
    text = item.get("text", item.get("content"))
    if text is None:
        raise ValidationError(f"{where}: needs 'text' or 'content'")
    role = check_id(item.get("role"), where=f"{where}.role")
    speaker = check_id(item.get("speaker") or item.get("name") or role, where=f"{where}.speaker")
    stamp = item.get("timestamp", item.get("time"))
    return Turn(
        text=check_text(text, where=f"{where}.text", max_chars=max_chars),
        speaker=speaker,
        role=role,
        occurred_at=parse_time(stamp, field=f"{where}.timestamp"),
        metadata=check_metadata(item.get("metadata"), where=f"{where}.metadata"),
        source_ref=check_id(item.get("source_ref", item.get("id")), where=f"{where}.source_ref"),
    )
