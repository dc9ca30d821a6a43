"""LLM configuration: explicit arguments, else environment, else a config file.

Environment:
  ENGRAMDB_LLM_BASE_URL   e.g. http://localhost:11434/v1 (Ollama), http://localhost:8000/v1 (vLLM), https://api.openai.com/v1
  ENGRAMDB_LLM_MODEL      e.g. qwen2.5:3b-instruct, gpt-4o-mini
  ENGRAMDB_LLM_API_KEY    sent as a Bearer token when set (local servers usually need none)
  ENGRAMDB_LLM_TIMEOUT    seconds per HTTP request (default 60)
  ENGRAMDB_LLM_CONFIG     path of a TOML or JSON file with the same fields (default ~/.config/engramdb/llm.toml)
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from ..errors import ConfigError

DEFAULT_FILE = Path("~/.config/engramdb/llm.toml")
_ENV = {
    "base_url": "ENGRAMDB_LLM_BASE_URL",
    "model": "ENGRAMDB_LLM_MODEL",
    "api_key": "ENGRAMDB_LLM_API_KEY",
    "timeout_s": "ENGRAMDB_LLM_TIMEOUT",
}


class LLMConfig(BaseModel):
    """One OpenAI-compatible chat endpoint and how hard to try."""

    base_url: str
    model: str
    api_key: str | None = Field(default=None, repr=False)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)  # transport errors, 429 and 5xx
    repair_attempts: int = Field(default=1, ge=0, le=5)  # re-asks after invalid JSON / schema errors
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=16, le=32_768)
    json_mode: Literal["json_object", "none"] = "json_object"  # sends response_format={"type": "json_object"}
    # USD per 1,000 tokens, for the cost account (0 for local models).
    price_prompt_per_1k: float = Field(default=0.0, ge=0)
    price_completion_per_1k: float = Field(default=0.0, ge=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {v!r}")
        return v

    @classmethod
    def from_env(cls, path: str | os.PathLike[str] | None = None) -> LLMConfig | None:
        """The configured endpoint, or None when no LLM is configured (the normal, offline case)."""
        data: dict = {}
        file = Path(path or os.environ.get("ENGRAMDB_LLM_CONFIG") or DEFAULT_FILE).expanduser()
        if path or os.environ.get("ENGRAMDB_LLM_CONFIG") or file.exists():
            data.update(_read_file(file))
        for field, var in _ENV.items():
            if os.environ.get(var):
                data[field] = os.environ[var]
        if not data.get("base_url") and not data.get("model"):
            return None
        if not data.get("base_url") or not data.get("model"):
            raise ConfigError("an LLM needs both base_url and model (ENGRAMDB_LLM_BASE_URL and ENGRAMDB_LLM_MODEL)")
        try:
            return cls(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid LLM configuration: {exc.errors()[0]['msg']}") from exc


def _read_file(file: Path) -> dict:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read LLM config {file}: {exc.strerror}") from exc
    try:
        data = json.loads(raw) if file.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        fmt = "JSON" if file.suffix == ".json" else "TOML"
        raise ConfigError(f"LLM config {file} is not valid {fmt}: {exc}") from exc
    # Accept either top-level fields or an [llm] table.
    data = data.get("llm", data) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise ConfigError(f"LLM config {file} must be a table of fields (base_url, model, ...)")
    return data
