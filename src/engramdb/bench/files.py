"""Reading benchmark files: one clear error for a missing, unreadable or wrongly shaped file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ValidationError


def read_json_list(path: str | os.PathLike[str], what: str) -> tuple[Path, list[Any]]:
    """(path, the file's top-level JSON list); `what` names the benchmark in errors."""
    p = Path(path)
    if not p.is_file():
        raise ValidationError(f"{what} file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{what} file {p} is not readable JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValidationError(f"{p}: expected a JSON list of {what} entries")
    return p, data
