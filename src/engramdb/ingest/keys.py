"""Index keys: what the keyword index and the embedder see for each memory.

The stored `text` is what the user said, unchanged. Retrieval works better when
the searchable keys carry more: the speaker's name, and (see `enrich.py`, the
retrieval-quality pipeline) resolved dates and context. This module is the one
place that decides those keys, so every write path and `reindex` agree.
"""

from __future__ import annotations

from ..model import MemoryRecord


def index_text(rec: MemoryRecord) -> str:
    """The text put in the keyword index."""
    return f"{rec.speaker}: {rec.text}" if rec.speaker else rec.text


def embed_text(rec: MemoryRecord) -> str:
    """The text given to the embedding model."""
    return f"{rec.speaker}: {rec.text}" if rec.speaker else rec.text


def build_keys(records: list[MemoryRecord]) -> tuple[list[str], list[str]]:
    """(index_texts, embed_texts) for a batch of records written together, in order."""
    return [index_text(r) for r in records], [embed_text(r) for r in records]
