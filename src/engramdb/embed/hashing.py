"""A deterministic feature-hashing embedder: no model, no download.

For unit tests and for the synthetic scale benchmark's largest sizes, where
embedding a million texts with a neural model would measure the model, not the
engine. It is never the default and the store records its name like any other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .base import Embedder

_TOKEN = re.compile(r"\w+")


class HashingEmbedder(Embedder):
    slow_queries = False  # microseconds a query: nothing to read beside it

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"
        self.batch_size = 4096

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in _TOKEN.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        return out
