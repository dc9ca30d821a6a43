"""Prompt files: shipped under extract/prompts/, overridable per file from $ENGRAMDB_PROMPTS_DIR."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from ..errors import ConfigError


@lru_cache(maxsize=32)
def _read(name: str, override_dir: str | None) -> str:
    if override_dir:
        p = Path(override_dir) / f"{name}.md"
        if p.exists():
            return p.read_text(encoding="utf-8")
    try:
        return files("engramdb.extract").joinpath(f"prompts/{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"no prompt file named {name}.md") from exc


def load_prompt(name: str) -> str:
    return _read(name, os.environ.get("ENGRAMDB_PROMPTS_DIR"))


def render_prompt(name: str, **values: object) -> str:
    return load_prompt(name).format(**values)
