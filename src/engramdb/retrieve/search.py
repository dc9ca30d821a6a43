"""Hybrid search: BM25 (store's keyword index) + dense (vector index), fused, then lifted by structure.

The default pipeline (no LLM, measured on LoCoMo in docs/retrieval.md):

1. candidates: the top `candidates` of BM25 and of the dense index (keys carry
   the previous turn and resolved dates, see ingest/keys.py);
2. fusion by score: BM25 scaled by its best hit, plus `dense_weight` x the
   cosine as a z-score over the candidates (scales differ, ranks lose margins);
3. context: a candidate gains `neighbor_weight` x the score of the turns just
   before and after it in the same session (an answer and its question), and
   `neighbor2_weight` x those of the turns two places away;
4. session: each candidate gains `session_weight` x the mean of the best
   `session_top` scores of its session plus `session_max_weight` x its best
   score (a relevant conversation lifts its turns);
5. who: turns spoken by someone the query names gain `speaker_boost`;
6. when: memories dated within a time the query names ("in May 2023") are lifted
   after retrieval, once for every ranker (retrieve/rerank.py, `lifecycle.time_boost`).

With `ranker="learned"` (the default) the pool first gains the turns within
`expand_window` places of its `expand_top` best candidates (same conversation,
same filters: `_neighbours`), then steps 3-6 are replaced by a small tree
ensemble over the same evidence (retrieve/features.py, retrieve/ranker.py):
it learned from LoCoMo dev how much each signal counts, and when. Where the
store holds token vectors (index/late.py), the pool also gets each candidate's
late-interaction MaxSim with the query, and the ranker trained with it is used.

`mode` exists so the benchmark can run the baselines (bm25, dense, rrf) through
the same code path as the default pipeline; users get `default`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

import numpy as np

from ..embed.base import Embedder
from ..errors import ConfigError
from ..index import late
from ..index.vector import VectorIndex
from ..model import MemoryRecord, SearchResult
from ..store.base import Filters, RankMeta, Store
from .features import Candidates, candidate_features, thread_of
from .fuse import rrf, score_fusion
from .query import analyze
from .ranker import load_ranker

MODES = ("default", "bm25", "dense", "rrf")
RANKERS = ("learned", "linear")
_T = TypeVar("_T")


@dataclass
class RetrievalConfig:
    candidates: int = 50  # per signal, before fusion (more costs latency, adds no recall on LoCoMo)
    rrf_k: int = 60
    weights: dict[str, float] = field(default_factory=lambda: {"bm25": 1.0, "dense": 1.0})  # rrf mode
    dense_weight: float = 0.6
    neighbor_weight: float = 0.3
    neighbor2_weight: float = 0.2  # turns two away: a question, its answer and the follow-up span three turns
    session_weight: float = 0.6
    session_top: int = 3
    session_max_weight: float = 0.2  # + the session's single best turn: one strong hit lifts its session
    speaker_boost: float = 0.1
    time_grace_days: int = 7  # the learned ranker's time feature: a named time, or this many days after it
    # "learned": a tree ensemble over the candidates' features ranks them (retrieve/ranker.py, trained on
    # LoCoMo dev with leave-one-conversation-out checks); "linear": the hand-set fusion + lifts above
    ranker: str = "learned"
    ranker_path: str | None = None  # a model from `engramdb bench train-ranker`; None: the shipped one
    # write-time keys (ingest/keys.py); changing them needs `reindex`
    context_keys: bool = True
    date_keys: bool = True
    # learned ranker only: the turns within `expand_window` (write order, same conversation thread) of the
    # `expand_top` best fused candidates join the pool, so an answer that shares no words with the query
    # ("Edinburgh!" after "Where are you headed?") can still be ranked; 0 turns it off
    expand_top: int = 20
    expand_window: int = 4
    # learned ranker only: MaxSim of the query's token vectors with each candidate's (index/late.py), where the
    # embedding model gives token vectors and the store holds them; off: the plain ranker
    late_interaction: bool = True

    def __post_init__(self) -> None:
        for name, top in (("expand_top", 200), ("expand_window", 20)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
                raise ValueError(f"retrieval.{name} must be an integer between 0 and {top}")


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?")


_normal_cached = lru_cache(maxsize=32768)(_normal)


def _normal_text(text: str) -> str:
    """`_normal` of a candidate's text: the same turns come back search after search, so the usual short ones
    are cached (bounded memory), long documents computed each time."""
    return _normal_cached(text) if len(text) <= 2000 else _normal(text)


@dataclass
class _KeywordSide:
    """What a search reads beside its query's embedding: the keyword hits, and (`Retriever._keyword_side`)
    their rank fields and records."""

    hits: list[tuple[str, float]]
    meta: dict[str, RankMeta] = field(default_factory=dict)
    records: dict[str, MemoryRecord] = field(default_factory=dict)
    near_keys: set[int] = field(default_factory=set)  # keys looked up around the best hits (found or not)
    near: dict[int, tuple[str, RankMeta]] = field(default_factory=dict)  # rank_meta_for_keys of them


class Retriever:
    def __init__(self, store: Store, vectors: VectorIndex, embedder: Embedder, config: RetrievalConfig) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.config = config
        self.query_vector: np.ndarray | None = None  # the last search's, for the steps after ranking

    def search(self, query: str, filters: Filters, limit: int, *, mode: str = "default") -> list[SearchResult]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode == "default":
            return self._search_default(query, filters, limit)
        n = max(self.config.candidates, limit)
        ranked: dict[str, list[tuple[str, float]]] = {}
        if mode in ("bm25", "rrf"):
            ranked["bm25"] = self.store.keyword_search(query, filters, n)
        if mode in ("dense", "rrf"):
            qvec = self.query_vector = self.embedder.embed_one(query)
            hits = self.vectors.search(qvec, filters, n)
            ids = self.store.ids_for([k for k, _ in hits])
            ranked["dense"] = [(ids[k], s) for k, s in hits if k in ids]
        fused = rrf(ranked, k=self.config.rrf_k)[:limit]
        records = {r.id: r for r in self.store.get([m for m, _, _ in fused])}
        return [SearchResult(memory=records[m], score=score, signals=sig) for m, score, sig in fused if m in records]

    def candidates(self, query: str, filters: Filters, limit: int, *, expand: bool = True, late: bool = True
                   ) -> Candidates | None:
        """The pool both rankers start from: top BM25 and top dense hits, each with both scores, fused;
        with `expand`, plus the conversational neighbours of the best of them (`_neighbours`); with `late` (and
        `late_interaction` on), each candidate's MaxSim, which only a learned ranker with those features reads."""
        cfg = self.config
        n = max(cfg.candidates, limit)
        # what needs no query vector SQLite reads while the model runs: the filter's keys, the keyword hits (the
        # latter still running while the vectors are searched, where the model is quick), and what the search
        # will want of those hits (_keyword_side), the last only where the store's reads do run beside the model
        prefetch = self.embedder.slow_queries and self.store.reads_beside
        scope_soon = self._soon(lambda: self.vectors.scope(filters))
        bm_soon = self._soon(lambda: self._keyword_side(query, filters, n, prefetch=prefetch, expand=expand))
        try:
            qvec, qtok = self._embed_query(query, late=late)
            scope = scope_soon()
            hits = self.vectors.search(qvec, filters, n, scope=scope)
        finally:
            side = bm_soon()  # waited for even when embedding fails: the store is not left busy
        bm = side.hits
        id_of = self.store.ids_for([k for k, _ in hits])
        dense_list = [id_of[k] for k, _ in hits if k in id_of]
        dense = {id_of[k]: float(s) for k, s in hits if k in id_of}
        # one light query for what ranking reads (less what the keyword side read already); whole records only
        # for the results returned. In id order, whichever read found them, so ties rank alike on every backend.
        wanted = [i for i in dict.fromkeys([*dense, *(i for i, _ in bm)]) if i not in side.meta]
        meta = {**side.meta, **self.store.rank_meta(wanted)} if wanted else dict(side.meta)
        if not meta:
            return None
        meta = dict(sorted(meta.items()))
        # BM25-only candidates still get a cosine, so fusion sees both signals for all
        self._add_cosines([i for i, _ in bm if i not in dense and i in meta], meta, dense, qvec)
        ids = list(meta)
        base, signals = score_fusion(ids, dict(bm), dense, dense_weight=cfg.dense_weight)
        expanded: set[str] = set()
        if expand and cfg.expand_top > 0 and cfg.expand_window > 0:
            extra = self._neighbours(ids, meta, base, filters, side)
            if extra:
                meta.update(extra)
                expanded = set(extra)
                self._add_cosines(list(extra), meta, dense, qvec)
                ids = list(meta)
                base, signals = score_fusion(ids, dict(bm), dense, dense_weight=cfg.dense_weight)
        return Candidates(
            ids=ids, meta=meta, bm25=dict(bm), dense=dense,
            bm25_rank={i: r for r, (i, _) in enumerate(bm)}, dense_rank={i: r for r, i in enumerate(dense_list)},
            pool=n, fused=base, signals=signals, expanded=expanded,
            late=self._maxsim(ids, meta, qtok, signals) if qtok is not None else None, records=side.records,
        )

    def _soon(self, read: Callable[[], _T]) -> Callable[[], _T]:
        """`read` on the store's worker beside the query's embedding where that takes long; at once where it
        takes microseconds (a hashing embedder): with nothing to hide behind, handing reads to a thread only
        adds the hand-off and a second thread wanting the interpreter (measured at 10k and 1M memories: 0.4 and
        1.0-1.2 ms a search more than reading in line)."""
        if self.embedder.slow_queries:
            return self.store.read_soon(read)
        value = read()
        return lambda: value

    def _keyword_side(self, query: str, filters: Filters, n: int, *, prefetch: bool, expand: bool
                      ) -> _KeywordSide:
        """The keyword hits, read beside the query's embedding. With `prefetch`, also what the search would
        otherwise read after the embedding, while a model's run leaves the other core free: the hits' rank
        fields and records, and with `expand` the rank fields of the turns around the best of them."""
        hits = self.store.keyword_search(query, filters, n)
        if not prefetch or not hits:
            return _KeywordSide(hits)
        ids = [i for i, _ in hits]
        meta = self.store.rank_meta(ids)
        side = _KeywordSide(hits, meta, {r.id: r for r in self.store.get(ids)})
        cfg = self.config
        if expand and cfg.expand_top > 0 and cfg.expand_window > 0:
            # the turns around the best keyword hits, which the pool's expansion most often asks for
            have = {m.key for m in meta.values()}
            near = {m.key + d for i in ids[: cfg.expand_top] if (m := meta.get(i)) is not None and m.session_id
                    for d in range(-cfg.expand_window, cfg.expand_window + 1)}
            side.near_keys = {k for k in near if k > 0 and k not in have}
            side.near = self.store.rank_meta_for_keys(sorted(side.near_keys), filters) if side.near_keys else {}
        return side

    def _embed_query(self, query: str, *, late: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The query's vector, and its token vectors when late interaction is wanted and the model has them."""
        if late and self.config.late_interaction and self.embedder.has_tokens:  # one model run gives both
            vecs, toks = self.embedder.embed_tokens([query])
            self.query_vector = vecs[0]
            return vecs[0], toks[0]
        self.query_vector = self.embedder.embed_one(query)
        return self.query_vector, None

    def _maxsim(self, ids: list[str], meta: dict[str, RankMeta], qtok: np.ndarray,
                signals: dict[str, dict[str, float]]) -> dict[str, float] | None:
        """Late interaction: each candidate's MaxSim with the query's tokens, for those with token vectors
        (None when no candidate has them: a store written without them ranks as before)."""
        blobs = self.vectors.token_vectors([meta[i].key for i in ids], refreshed=True)  # candidates() searched it
        have = [i for i in ids if meta[i].key in blobs]
        if not have:
            return None
        codes, scales, counts = late.unpack_many([blobs[meta[i].key] for i in have], int(qtok.shape[1]))
        scores = late.maxsim_many(qtok, codes, counts, scales)
        out = dict(zip(have, scores.tolist(), strict=True))
        for i, v in out.items():
            signals[i]["maxsim"] = v
        return out

    def _add_cosines(self, ids: list[str], meta: dict[str, RankMeta], dense: dict[str, float], qvec: np.ndarray
                     ) -> None:
        """The query's cosine with the stored vectors of `ids` (candidates that the vector search did not return)."""
        if not ids:
            return
        keys, mat = self.vectors.vectors_for([meta[i].key for i in ids], refreshed=True)  # candidates() searched it
        id_by_key = {meta[i].key: i for i in ids}
        if len(keys):
            for k, s in zip(keys.tolist(), (mat @ qvec).tolist(), strict=True):
                dense[id_by_key[k]] = float(s)

    def _neighbours(self, ids: list[str], meta: dict[str, RankMeta], fused: dict[str, float], filters: Filters,
                    side: _KeywordSide) -> dict[str, RankMeta]:
        """Memories within `expand_window` places (write order) of the `expand_top` best candidates, in the same
        conversation thread, that pass the search's filters and are not candidates yet."""
        cfg = self.config
        best = [i for i in sorted(ids, key=lambda i: -fused[i]) if meta[i].session_id][: cfg.expand_top]
        have = {m.key for m in meta.values()}
        threads: dict[int, set[tuple[str | None, str | None, str | None]]] = {}
        for i in best:
            m = meta[i]
            for d in range(-cfg.expand_window, cfg.expand_window + 1):
                if d and m.key + d > 0 and m.key + d not in have:
                    threads.setdefault(m.key + d, set()).add(thread_of(m))
        if not threads:
            return {}
        wanted = sorted(threads)
        # one query: filter, ids and meta (less what was read beside the query's embedding), in key order
        read = self.store.rank_meta_for_keys([k for k in wanted if k not in side.near_keys], filters)
        found = {k: got for k in wanted if (got := side.near.get(k) or read.get(k)) is not None}
        return {j: m for k, (j, m) in found.items() if thread_of(m) in threads[k]}

    def _search_default(self, query: str, filters: Filters, limit: int) -> list[SearchResult]:
        cfg = self.config
        if cfg.ranker not in RANKERS:
            raise ValueError(f"retrieval.ranker must be one of {RANKERS}")
        learned = cfg.ranker == "learned"
        # MaxSim costs a blob read and a product per search: only for a ranker that reads it (the shipped one, or
        # a user's model trained with it), not for the linear pipeline
        late_wanted = learned and (cfg.ranker_path is None or load_ranker(cfg.ranker_path).late)
        pool = self.candidates(query, filters, limit, expand=learned, late=late_wanted)
        if pool is None:
            return []
        ids, meta, signals = pool.ids, pool.meta, pool.signals
        if learned:
            model = load_ranker(cfg.ranker_path, late=pool.late is not None)
            if model.late and pool.late is None:
                raise ConfigError(f"ranker model {cfg.ranker_path} reads late-interaction features, but no candidate "
                                  "has token vectors (another embedding model, or a store written without them); "
                                  "train one without: `engramdb bench train-ranker --no-late`")
            raw = model.predict(candidate_features(pool, query, grace_days=cfg.time_grace_days, late=model.late))
            # the score is the model's output squashed to 0..1 (same order); the raw output is a signal
            scores = dict(zip(ids, (1 / (1 + np.exp(-raw))).tolist(), strict=True))
            for i, v in zip(ids, raw, strict=True):
                signals[i]["fused"] = pool.fused[i]
                signals[i]["learned"] = float(v)
        else:
            scores = dict(pool.fused)
            self._lift(ids, meta, pool.fused, scores, signals, query)
        wanted = _normal(query)
        exact = [i for i in ids if _normal_text(meta[i].text) == wanted]
        if exact:  # a memory whose text is the query itself comes first, whatever the ranker thinks
            top = max(scores.values()) + 1.0
            for i in exact:
                scores[i] = top
                signals[i]["exact"] = 1.0
        order = sorted(ids, key=lambda i: -scores[i])[:limit]
        records = {i: pool.records[i] for i in order if i in pool.records}
        records.update((r.id, r) for r in self.store.get([i for i in order if i not in records]))
        return [SearchResult(memory=records[i], score=scores[i], signals=signals[i]) for i in order if i in records]

    def _lift(
        self,
        ids: list[str],
        meta: dict[str, RankMeta],
        base: dict[str, float],
        scores: dict[str, float],
        signals: dict[str, dict[str, float]],
        query: str,
    ) -> None:
        """Context, session and speaker lifts (in place), all from the fused base scores."""
        cfg = self.config

        if cfg.neighbor_weight or cfg.neighbor2_weight:
            # neighbours: keys one and two apart (write order) in the same conversation thread
            by_key = {meta[i].key: i for i in ids if meta[i].session_id}
            for k, i in by_key.items():
                lift = 0.0
                for nk, w in ((k - 1, cfg.neighbor_weight), (k + 1, cfg.neighbor_weight),
                              (k - 2, cfg.neighbor2_weight), (k + 2, cfg.neighbor2_weight)):
                    j = by_key.get(nk)
                    if w and j is not None and thread_of(meta[j]) == thread_of(meta[i]):
                        lift += w * base[j]
                if lift:
                    scores[i] += lift
                    signals[i]["context"] = lift
        if cfg.session_weight or cfg.session_max_weight:
            groups: dict[tuple[str | None, str | None, str | None], list[float]] = {}
            for i in ids:
                if meta[i].session_id:
                    groups.setdefault(thread_of(meta[i]), []).append(base[i])
            top: dict[tuple[str | None, str | None, str | None], float] = {}
            for g, v in groups.items():
                v.sort(reverse=True)
                top[g] = cfg.session_weight * float(np.mean(v[: cfg.session_top])) + cfg.session_max_weight * v[0]
            for i in ids:
                if meta[i].session_id:
                    lift = top[thread_of(meta[i])]
                    scores[i] += lift
                    signals[i]["session"] = lift
        # the time a query names is lifted once, for every ranker, after retrieval (rerank.lift_and_decay)
        if not cfg.speaker_boost:
            return
        info = analyze(query, {m.speaker for m in meta.values() if m.speaker})
        for i in ids:
            if meta[i].speaker in info.speakers:
                scores[i] += cfg.speaker_boost
                signals[i]["speaker"] = cfg.speaker_boost
