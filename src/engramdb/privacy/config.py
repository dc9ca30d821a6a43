"""Privacy settings: MemoryConfig(privacy={...}) or ENGRAMDB_PRIVACY_* environment variables."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError


def _env(name: str, default: str) -> Any:
    return os.environ.get(name, default)  # validated against the Literal like any other value


class PrivacyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Labels on write: auto (the LLM when one is configured, else offline) | offline (embedding prototypes and
    # patterns) | patterns (no model: for the hashing embedder) | llm | off
    labels: Literal["auto", "offline", "patterns", "llm", "off"] = Field(
        default_factory=lambda: _env("ENGRAMDB_PRIVACY_LABELS", "auto")
    )
    # A secret found on write: mask it (default) | refuse the write | encrypt it | off (store as given)
    secrets: Literal["mask", "refuse", "encrypt", "off"] = Field(
        default_factory=lambda: _env("ENGRAMDB_PRIVACY_SECRETS", "mask")
    )
    key_env: str = "ENGRAMDB_SECRETS_KEY"  # base64 of 32 bytes, for secrets="encrypt"
    key_file: str | None = Field(default_factory=lambda: os.environ.get("ENGRAMDB_SECRETS_KEY_FILE") or None)
    audit: bool = True  # record each disclosure to an audience
    audit_retention_days: int | None = Field(default=365, ge=1)  # older audit rows are dropped; None keeps all
    # An audience-scoped read on a read-only store (file or replica), where no audit entry can be written: skip
    # (serve it; a warning is logged and the skipped entries counted) | refuse (raise, nothing is served)
    audit_read_only: Literal["skip", "refuse"] = "skip"


def privacy_config(raw: dict | None) -> PrivacyConfig:
    try:
        return PrivacyConfig(**(raw or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad privacy settings: {exc}") from exc
