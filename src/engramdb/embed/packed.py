"""Packed runs for ingest: several texts share one row of the transformer, so a run is not padded.

A batch pads every text to its longest: an add's runs of 8 turns sorted by length still feed the model
~1.3x the real tokens (LoCoMo sessions). Here the texts are laid end to end in rows of `ROW_TOKENS`, each
with its own position ids (0, 1, ...) and a block-diagonal attention mask, so no token sees another text:
each text's token vectors are those of running it alone (checked to 1e-4 on probe texts), and the model sees
~1.1x the real tokens. The mask costs attention over the whole row, which at 128 tokens is a few percent of a
MiniLM layer's work (the dense layers grow with the tokens, attention with their square).

The copy is exported once per model into the model cache, next to the query copy (embed/onnx.py), from the
model's eager attention (which takes a 4-D additive mask as given). A model whose positions are not 0, 1, ...
per text (RoBERTa-style offsets, relative positions) fails the check and keeps the padded runs.
"""

from __future__ import annotations

import bisect
import copy as copy_module
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import onnx

log = logging.getLogger("engramdb")

EXPORT_VERSION = 1  # bump when the export changes: old cache files are then ignored
ROW_TOKENS = 128  # tokens per row (a longer text gets a row of its own length)
RUN_ROWS = 8  # rows per model run
_INPUTS = ("input_ids", "token_type_ids", "position_ids", "attention_mask")
_PROBES = [*onnx.PROBES, "Melanie: I went camping with the kids last weekend, and we saw the Perseids!", "ok"]


class PackedTransformer:
    """The first module (a Hugging Face text transformer) of a SentenceTransformer, in ONNX Runtime, taking
    several texts per row."""

    def __init__(self, session: Any, path: Path) -> None:
        self.session = session
        self.path = path

    def token_vectors(self, ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]] | None = None,
                      width: int = ROW_TOKENS) -> list[np.ndarray]:
        """Each text's token vectors (its tokens x the model's width), from the texts' token ids (special
        tokens included, already truncated to the model's length). `width`: tokens per row."""
        out: list[np.ndarray] = [np.zeros((0, 0), dtype=np.float32)] * len(ids)
        rows = pack_rows([len(x) for x in ids], width)
        for k in range(0, len(rows), RUN_ROWS):
            run = rows[k : k + RUN_ROWS]
            hidden = self.session.run(None, feed(run, ids, type_ids))[0]
            for r, row in enumerate(run):
                at = 0
                for i in row:
                    n = len(ids[i])
                    out[i] = hidden[r, at : at + n]
                    at += n
        return out


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Text indices grouped into rows of at most `width` tokens (or one text's length, if longer): longest
    first, each into the row it fills best (the least room that still holds it), which leaves little unused
    (LoCoMo sessions: ~1.1x the real tokens, against ~1.3x for runs of 8 texts padded to their longest)."""
    rows: list[list[int]] = []
    rooms: list[tuple[int, int]] = []  # (room left, row), sorted: the best fit is the first that holds a text
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = lengths[i]
        at = bisect.bisect_left(rooms, (n, -1))
        if at < len(rooms):
            room, r = rooms.pop(at)
        else:
            room, r = max(width, n), len(rows)
            rows.append([])
        rows[r].append(i)
        if room - n:
            bisect.insort(rooms, (room - n, r))
    return rows


def feed(rows: Sequence[Sequence[int]], ids: Sequence[Sequence[int]],
         type_ids: Sequence[Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """The graph's inputs for `rows` (indices into `ids`): tokens end to end, positions restarting per text,
    and an additive mask letting each token see only its own text's tokens."""
    width = max(sum(len(ids[i]) for i in row) for row in rows)
    tokens = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros_like(tokens)
    positions = np.zeros_like(tokens)
    mask = np.full((len(rows), 1, width, width), np.finfo(np.float32).min, dtype=np.float32)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = len(ids[i])
            tokens[r, at : at + n] = ids[i]
            if type_ids is not None:
                types[r, at : at + n] = type_ids[i]
            positions[r, at : at + n] = np.arange(n)
            mask[r, 0, at : at + n, at : at + n] = 0.0
            at += n
        mask[r, 0, at:, at:] = 0.0  # the padding sees itself: no row of the softmax is all masked
    return {"input_ids": tokens, "token_type_ids": types, "position_ids": positions, "attention_mask": mask}


def load(model: Any, key: str, cache: Path, *, weights_sha256: str | None = None, int8: bool = False
         ) -> PackedTransformer | None:
    """A packed copy of `model`'s transformer that reproduces it (exported to `cache` on first use), or None
    (the caller keeps padded runs). `int8`: its weights quantized as the int8 query copy's (embed/onnx.py),
    checked by sentence-vector cosine instead."""
    if not onnx.enabled():
        return None
    try:
        import onnxruntime  # noqa: F401 - checked before any export work
    except ImportError:
        return None
    try:
        first = model[0]
        hf = getattr(first, "model", None) or first.auto_model
        tok = getattr(first, "tokenizer", None)
        if tok is None or "token_type_ids" not in getattr(tok, "model_input_names", []):
            return None  # the graph takes token types (BERT-style models)
        name = f"{onnx._slug(key)}-{onnx._fingerprint(hf, key, weights_sha256)}-packed{EXPORT_VERSION}.onnx"
        path = cache / "onnx" / name

        def open_checked(path: Path) -> PackedTransformer:
            if int8:
                qpath = onnx._quantized(path)
                copy = PackedTransformer(onnx._session(qpath, threads=0), qpath)
                _verify(model, copy, min_cosine=onnx.INT8_MIN_COSINE)
            else:
                copy = PackedTransformer(onnx._session(path, threads=0), path)
                _verify(model, copy)
            return copy

        with onnx._lock:
            return onnx.cached_copy(path, lambda p: _export(hf, p), open_checked)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the padded runs, which are correct
        log.info("packed ingest runs are off (%s)", exc)
        return None


def _export(hf: Any, path: Path) -> None:
    """Trace a copy of `hf` with eager attention on one packed row into `path` (written under a temporary
    name and renamed)."""
    import warnings

    import torch

    inner = copy_module.deepcopy(hf).eval()  # the loaded model keeps its own attention implementation
    inner.set_attn_implementation("eager")

    class Packed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, token_type_ids: Any, position_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                              attention_mask=attention_mask).last_hidden_state

    ids = [[101, 7592, 102], [101, 2748, 2003, 102]]  # shapes only: the check runs real texts
    example = feed([[0, 1]], ids)
    args = tuple(torch.from_numpy(example[k]) for k in _INPUTS)
    axes: dict[str, dict[int, str]] = {k: {0: "rows", 1: "tokens"} for k in _INPUTS[:3]}
    axes["attention_mask"] = {0: "rows", 2: "tokens", 3: "keys"}
    axes["last_hidden_state"] = {0: "rows", 1: "tokens"}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Packed().eval(), args, tmp, input_names=list(_INPUTS),
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _verify(model: Any, copy: PackedTransformer, min_cosine: float | None = None) -> None:
    """Each probe's token vectors, packed, against the model run on that text alone (with `min_cosine`: its
    sentence vector, the mean of them, by cosine)."""
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize
    feats = [prepare([t]) for t in _PROBES]
    ids = [f["input_ids"][0].tolist() for f in feats]
    types = [f["token_type_ids"][0].tolist() for f in feats]
    got = copy.token_vectors(ids, types, width=24)  # narrow rows: several texts a row, several rows a run
    with torch.inference_mode():
        for f, vectors in zip(feats, got, strict=True):
            out = model(dict(f))
            if min_cosine is not None:
                want, mean = out["sentence_embedding"][0].numpy(), vectors.mean(axis=0)
                cos = float(want @ mean / (np.linalg.norm(want) * np.linalg.norm(mean)))
                if not cos >= min_cosine:
                    raise ValueError(f"the packed int8 copy is too far from the model (cosine {cos:.3f})")
                continue
            want = out["token_embeddings"][0].numpy()
            diff = float(np.abs(want - vectors).max()) if want.shape == vectors.shape else float("inf")
            if not diff <= onnx.TOLERANCE:
                raise ValueError(f"the packed copy differs from the model ({diff:.2g})")
