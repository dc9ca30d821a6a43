"""Index keys: what the keyword index and the embedder see for each memory.

The stored `text` is what the user said, unchanged. Retrieval works better when
the searchable keys carry more (measured on LoCoMo, docs/retrieval.md):

* keyword key: the turn ('Speaker: text') twice, so its own words outweigh the
  context, plus the absolute dates its relative ones resolve to, plus the
  previous turn of the conversation;
* vector: the normalised sum of the turn's embedding and the embedding of
  'previous turn + turn', so a short reply is found by what it answers;
* token vectors: the content tokens of the turn alone, from the same model run
  (late interaction, index/late.py), where the model exposes them.

This module is the one place that decides those keys, so every write path
(add, update, import, reindex) agrees. `build_keys` gives context-free keys
for callers without an embedder at hand (derived memories).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..index import late
from ..model import MemoryRecord
from .enrich import date_labels, previous_turns, speaker_line


def index_text(
    rec: MemoryRecord, prev: MemoryRecord | None = None, *, dates: bool = True, weighted: bool = True
) -> str:
    """The text put in the keyword index. `weighted=False` (all enrichment off) gives the plain turn."""
    line = speaker_line(rec)
    labels = date_labels(rec) if dates else ""
    if not weighted:
        return f"{line} ({labels})" if labels else line
    parts = [line, f"{line} ({labels})" if labels else line]
    if prev is not None:
        parts.append(speaker_line(prev))
    return "\n".join(parts)


def embed_text(rec: MemoryRecord) -> str:
    """The text given to the embedding model for the turn alone."""
    return speaker_line(rec)


def context_text(rec: MemoryRecord, prev: MemoryRecord) -> str:
    """The turn with the one before it: the second thing embedded for a turn with context."""
    return f"{speaker_line(prev)}\n{speaker_line(rec)}"


def build_keys(records: list[MemoryRecord]) -> tuple[list[str], list[str]]:
    """(index_texts, embed_texts) without conversational context, for a batch of records."""
    return [index_text(r) for r in records], [embed_text(r) for r in records]


def compute_keys(
    records: Sequence[MemoryRecord], embedder: Any, store: Any = None, *, context: bool = True, dates: bool = True,
    tokens: bool = True,
) -> tuple[list[str], np.ndarray, list[bytes | None]]:
    """(index_texts, vectors, token vectors) for records written together, with conversational context.

    One embedding call covers the turns and their context pairs (`Embedder.embed_in_context`). The token vectors
    are those of the turn alone, packed for the store (index/late.pack); None for each record when the model has
    none or `tokens` is off."""
    prevs = previous_turns(records, store) if context else [None] * len(records)
    texts = [embed_text(r) for r in records]
    at = {id(r): i for i, r in enumerate(records)}  # a previous turn from the same batch is embedded once
    pairs: list[tuple[int, int]] = []
    paired: list[int] = []
    for i, p in enumerate(prevs):
        if p is None:
            continue
        j = at.get(id(p))
        if j is None:  # a stored previous turn: its text joins the batch
            j = at[id(p)] = len(texts)
            texts.append(embed_text(p))
        pairs.append((j, i))
        paired.append(i)
    mat, pair_vecs, toks = embedder.embed_in_context(texts, pairs, tokens=tokens)
    vecs = np.array(mat[: len(records)], dtype=np.float32, copy=True)
    if paired:
        v = vecs[paired] + pair_vecs
        n = np.linalg.norm(v, axis=1, keepdims=True)
        vecs[paired] = np.where(n > 0, v / np.where(n > 0, n, 1.0), vecs[paired])
    weighted = context or dates
    index_texts = [index_text(r, p, dates=dates, weighted=weighted) for r, p in zip(records, prevs, strict=True)]
    packed = [late.pack(t) if t is not None and len(t) else None for t in toks[: len(records)]]
    return index_texts, vecs, packed
