"""An ONNX Runtime copy of a sentence-transformers model's transformer, for queries.

PyTorch's eager mode spends most of a short query's time on per-operation overhead, not arithmetic: one
MiniLM query takes ~10 ms there and ~3.4 ms in ONNX Runtime, with the same numbers (cosine 1.0 to 1e-7).
An add's texts run through a second export that packs several texts in a row (embed/packed.py).

The copy is exported once per model (`torch.onnx.export`, the TorchScript exporter) into the model cache
(`<cache>/onnx/`), and loaded from there afterwards (from a process's second query on; see local.py).
Whatever follows the transformer (pooling, normalising) still runs as the model's own torch modules on the
ONNX output, so any sentence-transformers model with a text transformer first can use it. Before a copy is
used it must reproduce the torch model's outputs on probe texts; any failure (onnxruntime or onnx not
installed, an export error, a mismatch) leaves the embedder on torch, with one warning. `ENGRAMDB_ONNX=0` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

log = logging.getLogger("engramdb")

EXPORT_VERSION = 1  # bump when the export itself changes: old cache files are then ignored
PROBES = ["What did Caroline research about adoption groups last May?", "Hi!"]  # one padded batch
TOLERANCE = 1e-4  # max abs difference of token vectors (observed: ~1e-6)
INT8_MIN_COSINE = 0.97  # the int8 copy's sentence vectors against the model's (observed on LoCoMo: 0.984 to 1)
_lock = threading.Lock()
_T = TypeVar("_T")


def enabled() -> bool:
    return os.environ.get("ENGRAMDB_ONNX", "1").strip().lower() not in ("0", "false", "no", "off")


class OnnxTransformer:
    """The first module (a Hugging Face text transformer) of a SentenceTransformer, run by ONNX Runtime."""

    def __init__(self, session: Any, inputs: list[str], output_name: str, path: Path) -> None:
        self.session = session
        self.inputs = inputs  # the tokenizer outputs the graph takes, in order
        self.output_name = output_name  # where the Transformer module puts its output ("token_embeddings")
        self.path = path

    def hidden(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The transformer's token vectors (texts x tokens x width) for the tokenizer's arrays."""
        return self.session.run(None, {k: np.asarray(feed[k], dtype=np.int64) for k in self.inputs})[0]

    def forward(self, model: Any, features: dict[str, Any]) -> dict[str, Any]:
        """The model's outputs for tokenized `features`: the transformer here, the rest in torch."""
        import torch

        hidden = self.hidden({k: features[k].cpu().numpy() for k in self.inputs})
        out = dict(features)
        out[self.output_name] = torch.from_numpy(hidden)
        with torch.inference_mode():
            for module in list(model)[1:]:
                out = module(out)
        return out


def load(model: Any, key: str, cache: Path, *, weights_sha256: str | None = None, int8: bool = False,
         threads: int = 1) -> OnnxTransformer | None:
    """An ONNX copy of `model`'s transformer that reproduces it (exported to `cache` on first use), or None.
    `weights_sha256`: the weights' checked hash, where known (a pack), which saves hashing them here.
    `int8`: the copy with its weights dynamically quantized to int8 (ONNX Runtime `quantize_dynamic`), checked
    against the model by sentence-vector cosine (`INT8_MIN_COSINE`), not to float precision.
    `threads`: ONNX Runtime's intra-op threads (1 for queries; 0: one per core, for batches)."""
    if not enabled():
        return None
    try:
        import onnxruntime  # noqa: F401 - checked before any export work
    except ImportError:
        log.info("onnxruntime is not installed; queries are embedded with torch")
        return None
    try:
        first = model[0]
        hf = getattr(first, "model", None) or first.auto_model
        if getattr(first, "modality_config", {}).get("text", {}).get("method_output_name", "last_hidden_state") \
                != "last_hidden_state":
            return None
        prepare = getattr(model, "preprocess", None) or model.tokenize
        probe = {k: v for k, v in prepare(PROBES).items() if hasattr(v, "shape")}
        inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in probe]
        path = cache / "onnx" / f"{_slug(key)}-{_fingerprint(hf, key, weights_sha256)}.onnx"
        output = getattr(first, "module_output_name", "token_embeddings")

        def open_checked(path: Path) -> OnnxTransformer:
            if int8:
                qpath = _quantized(path)
                copy = OnnxTransformer(_session(qpath, threads), inputs, output, qpath)
                _verify_close(model, copy, prepare(PROBES))
            else:
                copy = OnnxTransformer(_session(path, threads), inputs, output, path)
                _verify(model, copy, prepare(PROBES))
            return copy

        with _lock:
            return cached_copy(path, lambda p: _export(hf, probe, inputs, p), open_checked)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the (correct, slower) torch path
        log.warning("ONNX Runtime query embedding is off (%s); queries are embedded with torch", exc)
        return None


def cached_copy(path: Path, export: Callable[[Path], None], open_checked: Callable[[Path], _T]) -> _T:
    """`open_checked(path)`, the file exported first where it is missing; a file that fails (damaged, or stale)
    is exported once more. Call with `_lock` held."""
    for attempt in (0, 1):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            export(path)
        try:
            return open_checked(path)
        except Exception:
            if attempt:
                raise
            path.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def cached(key: str, cache: Path) -> list[Path]:
    """The query copies of model `key` in `cache` (one per weights, torch and transformers version; not the
    int8 and packed copies made beside them)."""
    plain = re.compile(re.escape(_slug(key)) + r"-[0-9a-f]{16}\.onnx")
    return sorted(p for p in (cache / "onnx").glob(f"{_slug(key)}-*.onnx") if plain.fullmatch(p.name))


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key.rsplit("/", 1)[-1])[:60]


def _fingerprint(hf: Any, key: str, weights_sha256: str | None) -> str:
    """Names the export by the weights and the code that traced them: a new model, transformers or torch gets
    a new file."""
    import torch
    import transformers

    h = hashlib.sha256(f"{key}|{torch.__version__}|{transformers.__version__}|{EXPORT_VERSION}".encode())
    if weights_sha256:
        h.update(weights_sha256.encode())
    else:
        for name, t in hf.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _export(hf: Any, probe: dict[str, Any], inputs: list[str], path: Path) -> None:
    """Trace `hf` on a padded probe batch (so the graph keeps the general attention-mask path) into `path`,
    written under a temporary name and renamed: a reader never sees half a file."""
    import warnings

    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(inputs, args, strict=True))).last_hidden_state

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(fd)
    axes = {k: {0: "batch", 1: "tokens"} for k in [*inputs, "last_hidden_state"]}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(LastHidden(hf).eval(), tuple(probe[k] for k in inputs), tmp, input_names=inputs,
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantized(path: Path) -> Path:
    """The int8 copy of the ONNX file at `path`, made once beside it (weights int8, activations quantized per
    batch at run time: no calibration data needed)."""
    out = path.with_name(path.stem + "-int8pc.onnx")
    if not out.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
        os.close(fd)
        try:
            # per channel: per tensor moves MiniLM's sentence vectors to cosine ~0.93 of the model's; this, ~0.99
            quantize_dynamic(str(path), tmp, weight_type=QuantType.QInt8, per_channel=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def _session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 1: a query is too little work to share (see local.py `_run`)
    opts.inter_op_num_threads = 1
    if threads != 1:  # idle worker threads sleep instead of spinning: on a shared machine spinning steals cores
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _verify(model: Any, copy: OnnxTransformer, features: dict[str, Any]) -> None:
    import torch

    with torch.inference_mode():
        want = model(dict(features))
    got = copy.forward(model, dict(features))
    for name in ("token_embeddings", "sentence_embedding"):
        if name in want:
            diff = float((want[name] - got[name]).abs().max())
            if not diff <= TOLERANCE:
                raise ValueError(f"the ONNX copy differs from the model ({name}: {diff:.2g})")


def _verify_close(model: Any, copy: OnnxTransformer, features: dict[str, Any]) -> None:
    import torch

    with torch.inference_mode():
        want = model(dict(features))["sentence_embedding"]
    got = copy.forward(model, dict(features))["sentence_embedding"]
    cos = float(torch.nn.functional.cosine_similarity(want, got, dim=-1).min())
    if not cos >= INT8_MIN_COSINE:
        raise ValueError(f"the int8 copy is too far from the model (cosine {cos:.3f})")
