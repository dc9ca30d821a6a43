"""Hybrid search: BM25 (store's keyword index) + dense (vector index), fused.

`mode` exists so the benchmark can run the baselines (bm25, dense, rrf) through
the same code path as the default pipeline; users get `default`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..embed.base import Embedder
from ..index.vector import VectorIndex
from ..model import SearchResult
from ..store.base import Filters, Store
from .fuse import rrf

MODES = ("default", "bm25", "dense", "rrf")


@dataclass
class RetrievalConfig:
    candidates: int = 100  # per signal, before fusion
    rrf_k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})


class Retriever:
    def __init__(self, store: Store, vectors: VectorIndex, embedder: Embedder, config: RetrievalConfig) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.config = config

    def search(self, query: str, filters: Filters, limit: int, *, mode: str = "default") -> list[SearchResult]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        n = max(self.config.candidates, limit)
        ranked: dict[str, list[tuple[str, float]]] = {}
        if mode in ("default", "bm25", "rrf"):
            ranked["bm25"] = self.store.keyword_search(query, filters, n)
        if mode in ("default", "dense", "rrf"):
            qvec = self.embedder.embed_one(query)
            hits = self.vectors.search(qvec, filters, n)
            ids = self.store.ids_for([k for k, _ in hits])
            ranked["dense"] = [(ids[k], s) for k, s in hits if k in ids]
        weights = self.config.weights if mode == "default" else None
        fused = rrf(ranked, weights=weights, k=self.config.rrf_k)[:limit]
        records = {r.id: r for r in self.store.get([m for m, _, _ in fused])}
        return [SearchResult(memory=records[m], score=score, signals=sig) for m, score, sig in fused if m in records]
