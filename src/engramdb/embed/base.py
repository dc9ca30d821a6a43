"""The embedding provider interface.

Providers return L2-normalised float32 rows, so a dot product is the cosine.
`name` and `dim` are recorded in the store; opening a store with another model
is refused instead of mixing vector spaces.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


def normalise(mat: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (mat / norms).astype(np.float32, copy=False)


class Embedder(ABC):
    name: str
    dim: int
    batch_size: int = 64
    calls: int = 0  # model invocations, so tests can check that adds are batched
    has_tokens: bool = False  # can `embed_tokens` give token vectors (late interaction, index/late.py)?
    # Does a query's embedding take long, off the GIL (a model run, an API call)? A search then reads what it
    # can beside it on a worker thread (retrieve/search.py); beside an instant one, it reads in line.
    slow_queries: bool = True

    @abstractmethod
    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many texts in batches of `batch_size`; returns (n, dim) normalised float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            self.calls += 1
            parts.append(np.asarray(self._embed_batch(texts[i : i + self.batch_size]), dtype=np.float32))
        return normalise(np.vstack(parts))

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Sentence vectors, as `embed`, and each text's content-token vectors from the same model run.
        Models without token outputs (hashing, remote APIs) give None for each text."""
        return self.embed(texts), [None] * len(texts)

    def embed_in_context(
        self, texts: Sequence[str], pairs: Sequence[tuple[int, int]], *, tokens: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """(vectors of `texts`, a vector per pair (i, j) for texts[i] followed by texts[j] on the next line,
        token vectors of `texts`: None each when `tokens` is off or the model has none).

        Here each pair's joined text is embedded too, in the same batch; a model whose sentence vector is a mean
        of its token vectors composes them from the texts' own run instead (embed/local.py)."""
        joined = [f"{texts[i]}\n{texts[j]}" for i, j in pairs]
        every = [*texts, *joined]
        if tokens:
            mat, toks = self.embed_tokens(every)
        else:
            mat, toks = self.embed(every), [None] * len(every)
        n = len(texts)
        return mat[:n], mat[n:], toks[:n]
