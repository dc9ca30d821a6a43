"""Late interaction: token vectors and MaxSim (ColBERT's scoring, over the embedding model's own token outputs).

A sentence vector averages a turn into one point; a rare word in the query ("pottery", "Boston") can drown in
it. MaxSim keeps one vector per token: each query token finds its best match among the turn's tokens, and the
score is the mean of those best cosines. The model is the one that embeds the sentences (all-MiniLM-L6-v2 by
default), so its token vectors come from the same forward pass and cost no extra model time. Measured on
LoCoMo dev as ranker features: +1.2 points recall@10 out of fold (docs/retrieval.md#late-interaction).

Storage: content tokens only (no special tokens, no stopwords), at most `MAX_TOKENS` per text, each as int8
with its own float32 scale: (4 + dim) bytes a token, about 7.8 KB for a typical 20-token turn with MiniLM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SMP_MIN_WORK = 200_000  # multiply-adds per product below which OpenBLAS stays on one thread (its 4 x 65,536)
MAX_TOKENS = 96  # content tokens kept per text (a LoCoMo turn has ~20; 95% have under 40)
# function words: as query tokens they match everything; as document tokens they are never the best match
STOPWORDS = frozenset(
    "i you he she it we they me him her us them my your his its our their a an the and or but if so to of in on "
    "at for with from by as is am are was were be been being do does did have has had not that this what when "
    "where who why how which would could should will can ? . , ' s".split())


def stop_ids(tokenizer: object) -> frozenset[int]:
    """Token ids that carry no content for this tokenizer: its special tokens and the stopwords it has whole."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    unk = getattr(tokenizer, "unk_token_id", None)
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    ids.update(vocab[w] for w in STOPWORDS if w in vocab and vocab[w] != unk)
    return frozenset(ids)


def content_tokens(vectors: np.ndarray, token_ids: Sequence[int], drop: frozenset[int],
                   limit: int | None = MAX_TOKENS) -> np.ndarray:
    """The vectors of the content tokens (all non-special ones when a text has no content token), unnormalised:
    the embedder scales them to unit length (embed.base.normalise), as it does its sentence vectors."""
    ids = list(token_ids)[: len(vectors)]
    keep = [k for k, t in enumerate(ids) if t not in drop]
    if not keep:
        keep = list(range(len(ids)))
    return np.asarray(vectors, dtype=np.float32)[keep][:limit]


def pack(mat: np.ndarray) -> bytes:
    """int8 with one float32 scale per token: the scales (n x 4 bytes), then the codes (n x dim bytes)."""
    mat = np.asarray(mat, dtype=np.float32)
    scale = np.abs(mat).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(mat / scale[:, None]), -127, 127).astype(np.int8)
    return scale.astype("<f4").tobytes() + codes.tobytes()


def unpack_many(blobs: Sequence[bytes], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The int8 codes of many `pack` blobs as one (total, dim) matrix, each token's scale, and each blob's token
    count: one join and one view for the lot (a search reads ~150). The scales are applied after the matmul,
    on the small result (`maxsim_many`), not on every code."""
    counts = [len(b) // (4 + dim) for b in blobs]
    if any(len(b) != n * (4 + dim) for b, n in zip(blobs, counts, strict=True)):
        raise ValueError(f"a token vector blob does not hold {dim}-d tokens")
    scales = np.frombuffer(b"".join(b[: 4 * n] for b, n in zip(blobs, counts, strict=True)), dtype="<f4")
    codes = np.frombuffer(b"".join(b[4 * n :] for b, n in zip(blobs, counts, strict=True)), dtype=np.int8)
    return codes.reshape(-1, dim), scales, np.array(counts, dtype=np.int64)


def maxsim_many(query: np.ndarray, docs: np.ndarray, counts: np.ndarray, scales: np.ndarray | None = None
                ) -> np.ndarray:
    """For each document, the mean over query tokens of the best cosine with any of its tokens (one matmul).
    `docs`: every document's token rows stacked (float, or int8 codes with their `scales`, as `unpack_many`
    gives them); `counts`: each document's number of rows."""
    if not len(counts):
        return np.zeros(0)
    if (counts <= 0).any():
        raise ValueError("every document needs at least one token vector")
    q = np.asarray(query, dtype=np.float32).T
    sims = np.empty((len(docs), q.shape[1]), dtype=np.float32)  # (doc tokens, query tokens)
    # in blocks small enough that OpenBLAS keeps each product on one core: a search's ~3,000 doc tokens in one
    # product go to its thread pool, whose wake-up costs more than the product (5-40x, most on a busy machine;
    # index/vector.py's dot_rows does the same for the dense search)
    step = max(16, _SMP_MIN_WORK // max(1, q.shape[0] * q.shape[1]))
    for i in range(0, len(docs), step):
        np.matmul(np.asarray(docs[i : i + step], dtype=np.float32), q, out=sims[i : i + step])
    if scales is not None:
        sims *= scales[:, None]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    best = np.maximum.reduceat(sims, starts, axis=0)  # (documents, query tokens)
    # the mean over a contiguous row per document, summed in the same order as before
    return np.ascontiguousarray(best.T).mean(axis=0).astype(np.float64)
