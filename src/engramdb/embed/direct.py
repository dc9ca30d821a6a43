"""Tokens straight from the tokenizer's Rust backend: a query's, and an add's texts in one call (embed/local.py).

A sentence-transformers model tokenizes through `preprocess`, whose per-call set-up (modality dispatch,
keyword merging, the transformers tokenizer wrapper) costs ~0.4 ms of a query; the backend's own `encode`
takes ~0.03 ms. An add tokenizes all its texts in one `encode_batch` call, which also gives the token counts
that choose which context pairs to embed, and pads each run of the model from those encodings. It is used
only where it gives the same features as `preprocess`, checked on probe texts (short, long enough to be cut at
the model's length, unusual characters; one at a time and padded together) when it is set up; otherwise
`preprocess` runs as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("engramdb")

PROBES = ("What did Caroline research about adoption groups last May?", "Hi!", "  naïve café 東京 😀\t", "")
_INPUTS = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}


class DirectTokenizer:
    """The model's tokenizer backend, set to truncate as `preprocess` does; `features` gives what
    `preprocess([text])` gives."""

    def __init__(self, backend: Any, names: list[str], extras: dict[str, Any], pad_id: int | None = None) -> None:
        self.backend = backend
        self.names = names  # the tensors `preprocess` returns, in its order
        self.extras = extras  # its other entries (e.g. the modality), the same for every text
        self.pad_id = pad_id  # where `padded` reproduces `preprocess` of several texts; else None

    def features(self, text: str) -> dict[str, Any]:
        import torch

        enc = self.backend.encode(text)
        out: dict[str, Any] = {n: torch.tensor([getattr(enc, _INPUTS[n])], dtype=torch.int64) for n in self.names}
        out.update(self.extras)
        return out

    def arrays(self, text: str) -> tuple[Any, dict[str, np.ndarray]]:
        """`text`'s encoding, and `features(text)` as numpy arrays: for a model run with no torch either side."""
        enc = self.backend.encode(text)
        return enc, {n: np.array([getattr(enc, _INPUTS[n])], dtype=np.int64) for n in self.names}

    def encode(self, texts: Sequence[str]) -> list[Any]:
        """The backend's encodings of `texts`, unpadded, in one call."""
        return list(self.backend.encode_batch(list(texts)))

    @staticmethod
    def content_count(enc: Any) -> int:
        """The tokens of an encoding that are the text's own (special tokens not counted)."""
        return len(enc.special_tokens_mask) - sum(enc.special_tokens_mask)

    def padded(self, encs: Sequence[Any]) -> dict[str, Any]:
        """What `preprocess` gives for the texts of `encs` together: each row padded on the right to the longest
        (call only where `pad_id` is set)."""
        import torch

        width = max(len(e.ids) for e in encs)
        out: dict[str, Any] = {}
        for n in self.names:
            fill = self.pad_id if n == "input_ids" else 0
            rows = [list(getattr(e, _INPUTS[n])) for e in encs]
            out[n] = torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.int64)
        out.update(self.extras)
        return out


def load(model: Any) -> DirectTokenizer | None:
    """A `DirectTokenizer` for a SentenceTransformer `model`, or None where it would not match `preprocess`."""
    try:
        tok = getattr(model, "tokenizer", None)
        backend = getattr(tok, "backend_tokenizer", None)
        prepare = getattr(model, "preprocess", None)
        max_length = getattr(model, "max_seq_length", None)
        if backend is None or prepare is None or not isinstance(max_length, int):
            return None
        from tokenizers import Tokenizer

        own = Tokenizer.from_str(backend.to_str())  # a copy: the wrapper resets its backend's settings per call
        own.no_padding()
        own.enable_truncation(max_length=max_length, stride=0, strategy="longest_first",
                              direction=getattr(tok, "truncation_side", "right"))
        probes = [*PROBES, "word " * (max_length + 8)]
        first = prepare([probes[0]])
        names = [k for k, v in first.items() if hasattr(v, "shape")]
        if not names or any(n not in _INPUTS for n in names):
            return None
        direct = DirectTokenizer(own, names, {k: v for k, v in first.items() if not hasattr(v, "shape")})
        for text in probes:
            if not _same(prepare([text]), direct.features(text)):
                return None
        pad = getattr(tok, "pad_token_id", None)
        if isinstance(pad, int) and getattr(tok, "padding_side", "right") == "right":
            direct.pad_id = pad
            if not _same(prepare(list(probes)), direct.padded(direct.encode(probes))):
                direct.pad_id = None  # single texts only
        return direct
    except Exception as exc:  # noqa: BLE001 - any failure leaves the (correct, slower) preprocess path
        log.info("direct query tokenization is off (%s)", exc)
        return None


def _same(want: dict[str, Any], got: dict[str, Any]) -> bool:
    import torch

    if list(want) != list(got):
        return False
    for k, v in want.items():
        if hasattr(v, "shape"):
            if not (v.dtype == got[k].dtype and v.shape == got[k].shape and torch.equal(v, got[k])):
                return False
        elif v != got[k]:
            return False
    return True
