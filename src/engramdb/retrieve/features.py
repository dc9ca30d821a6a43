"""Features of a search candidate, for the learned ranker (retrieve/ranker.py).

One function computes them for serving and for training (bench/train_ranker.py),
so the two cannot drift. Every feature comes from what the engine already has
at query time: the BM25 and dense scores of the candidates, their neighbours and
session in write order, who spoke, when, the text's length and form, a few
cues of the query's wording, and (where the store has token vectors) the
late-interaction MaxSim. Nothing is specific to one benchmark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

import numpy as np

from ..model import MemoryRecord
from ..store.base import RankMeta
from .query import analyze

NEIGHBOURS = (("prev1", -1), ("next1", 1), ("prev2", -2), ("next2", 2))
WINDOWS = (3, 6)  # turns either side, same thread: the strongest candidate nearby (an answer sits near its cue)
QUERY_WORDS = ("what", "when", "where", "who", "how", "why", "which", "would", "did", "does", "is", "do", "has",
               "have", "was", "are")
FEATURES: tuple[str, ...] = (
    "bm25_norm", "dense_z", "dense_cos", "bm25_rank_log", "dense_rank_log", "fused",
    *(f"{n}_{f}" for n, _ in NEIGHBOURS for f in ("fused", "dense_z", "bm25_norm")),
    "session_top3", "session_max", "session_count", "session_rank_log",
    "speaker_named", "query_names_speaker",
    "time_inside", "time_distance_log", "query_has_time",
    "words", "is_question",
    *(f"q_starts_{w}" for w in QUERY_WORDS),
    "q_words", "q_hypothetical", "q_year", "q_how_many", "q_plural",
    # added with the neighbour pool expansion (search.Retriever._neighbours)
    "expanded",
    *(f"win{w}_{f}" for w in WINDOWS for f in ("fused", "dense_z", "bm25_norm")),
    "offset_session_best", "distance_top3",
    "names", "has_number", "time_words", "has_quote", "ends_question",
)
# late interaction (index/late.py), where the store holds token vectors: the candidate's MaxSim with the query,
# the better of its two neighbours', the best of the three, and its MaxSim as a z-score over the pool
LATE_FEATURES: tuple[str, ...] = ("late_maxsim", "late_neighbour", "late_best", "late_z")
_YEAR = re.compile(r"\b(19|20)\d\d\b")
# what a turn holds, for answer-type cues (a "what city" answer names something, a "when" answer dates it)
# a capitalised word that does not start a sentence (the look-behinds after the capital: tried only there)
_NAME = re.compile(r"\b[A-Z](?<!^[A-Z])(?<![.!?]\s[A-Z])[a-z]+")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"\b\d+\b")
_NUMBER_WORDS = frozenset("one two three four five six seven eight nine ten twice once first second third".split())
_TIME_WORDS = frozenset(
    "yesterday today tomorrow tonight ago last next week weekend month year monday tuesday wednesday thursday friday "
    "saturday sunday january february march april may june july august september october november december since "
    "recently soon".split())
_QUOTE = re.compile(r"[\"\u201c][^\"\u201d]{2,}[\"\u201d]")


@dataclass
class Candidates:
    """The candidate pool of one search, before ranking."""

    ids: list[str]
    meta: dict[str, RankMeta]
    bm25: dict[str, float]  # raw BM25 of the keyword hits
    dense: dict[str, float]  # cosine, for every candidate
    bm25_rank: dict[str, int]  # 0-based position in the keyword list
    dense_rank: dict[str, int]  # 0-based position in the vector list
    pool: int  # how many each list was asked for
    fused: dict[str, float]  # score_fusion's base score
    signals: dict[str, dict[str, float]] = field(default_factory=dict)  # raw scores per candidate, shown to users
    expanded: set[str] = field(default_factory=set)  # joined as neighbours of strong candidates, not by a search
    # MaxSim with the query for candidates with token vectors; None when none has them (or the model has none)
    late: dict[str, float] | None = None
    records: dict[str, MemoryRecord] = field(default_factory=dict)  # whole records read already (the keyword hits')


def query_features(query: str) -> list[float]:
    words = query.lower().split()
    first = words[0] if words else ""
    return [
        *(float(first == w) for w in QUERY_WORDS),
        float(len(words)),
        float(any(w in words for w in ("likely", "would", "might"))),
        float(bool(_YEAR.search(query))),
        float("how many" in query.lower()),
        float(first in ("what", "which") and any(w.endswith("s") for w in words[1:3])),
    ]


def thread_of(m: RankMeta) -> tuple[str | None, str | None, str | None]:
    """The conversation a memory belongs to: its scope and session."""
    return m.user_id, m.agent_id, m.session_id


def candidate_features(c: Candidates, query: str, *, grace_days: int = 7, late: bool | None = None) -> np.ndarray:
    """One row per candidate (in `c.ids` order), one column per name in FEATURES, then LATE_FEATURES when `late`
    (default: when the pool has MaxSim scores)."""
    if late is None:
        late = c.late is not None
    if late and c.late is None:
        raise ValueError("late-interaction features need a pool with MaxSim scores")
    ids, meta = c.ids, c.meta
    n = len(ids)
    top_bm = max((c.bm25.get(i, 0.0) for i in ids), default=0.0) or 1.0
    bm = np.array([c.bm25.get(i, 0.0) / top_bm for i in ids])
    cos = np.array([c.dense.get(i, 0.0) for i in ids])
    z = (cos - cos.mean()) / (cos.std() + 1e-9) if n > 1 else np.zeros(n)
    fused = np.array([c.fused[i] for i in ids])
    cols: list[np.ndarray] = [
        bm, z, cos,
        np.log1p([c.bm25_rank.get(i, c.pool) for i in ids]),
        np.log1p([c.dense_rank.get(i, c.pool) for i in ids]),
        fused,
    ]
    # neighbours in write order within the same conversation thread (only those in the pool are known)
    thread, keys = _threads(ids, meta)
    near = _near(thread, keys, max(*WINDOWS, *(abs(off) for _, off in NEIGHBOURS)))
    for _, off in NEIGHBOURS:
        j = near[off]
        has = j >= 0
        cols += [np.where(has, fused[j], 0.0), np.where(has, z[j], -3.0), np.where(has, bm[j], 0.0)]
    # session: how much of the pool its conversation holds, and how strongly
    groups: dict[int, list[float]] = {}
    for t, v in zip(thread.tolist(), fused.tolist(), strict=True):
        if t >= 0:
            groups.setdefault(t, []).append(v)
    stats: dict[int, tuple[float, float, int]] = {}
    for g, v in groups.items():
        v.sort(reverse=True)
        # the mean of the best three, added left to right as numpy adds them (the trained model saw those sums)
        top = v[0] if len(v) == 1 else v[0] + v[1] if len(v) == 2 else v[0] + v[1] + v[2]
        stats[g] = (top / min(len(v), 3), v[0], len(v))
    rank = {g: r for r, g in enumerate(sorted(stats, key=lambda g: -stats[g][0]))}
    table = np.zeros((int(thread.max(initial=-1)) + 2, 4))  # row t: thread t's stats; the last row: none
    table[-1, 3] = len(rank)
    for g, st in stats.items():
        table[g] = (*st, rank[g])
    per = table[thread]  # thread -1 reads the last row
    cols += [per[:, 0], per[:, 1], per[:, 2], np.log1p(per[:, 3])]
    info = analyze(query, {m.speaker for m in meta.values() if m.speaker})
    cols.append(np.array([float(meta[i].speaker in info.speakers) for i in ids]))
    cols.append(np.full(n, float(bool(info.speakers))))
    inside, dist = np.zeros(n), np.full(n, -1.0)
    if info.time is not None:
        lo, hi = info.time.start, info.time.end
        for k, i in enumerate(ids):
            when = meta[i].occurred_at
            if when is None:
                continue
            inside[k] = float(lo <= when < hi + timedelta(days=grace_days))
            gap = (lo - when) if when < lo else (when - hi) if when >= hi else timedelta(0)
            dist[k] = math.log1p(gap.total_seconds() / 86400)
    cols += [inside, dist, np.full(n, float(info.time is not None))]
    text = np.array([_text_columns(meta[i].text) for i in ids], dtype=np.float64).reshape(n, 7)
    cols += [text[:, 0], text[:, 1]]
    tail = [np.array([float(i in c.expanded) for i in ids])]
    for w in WINDOWS:  # the best of the pool's turns within w places, same thread ("none nearby" as for neighbours)
        idx = np.stack([near[d] for d in range(-w, w + 1) if d])
        has = idx >= 0
        tail += [np.where(has, arr[idx], floor).max(axis=0) for arr, floor in ((fused, 0.0), (z, -3.0), (bm, 0.0))]
    tail += _offsets(thread, keys, fused)
    tail += list(text[:, 2:].T)
    X = np.hstack([np.column_stack(cols), np.tile(query_features(query), (n, 1)), np.column_stack(tail)])
    assert X.shape[1] == len(FEATURES)
    if late:
        X = np.hstack([X, _late_columns(ids, c.late or {}, near)])
    return X


def _late_columns(ids: list[str], scores: dict[str, float], near: dict[int, np.ndarray]) -> np.ndarray:
    """LATE_FEATURES. A candidate without token vectors (a derived memory) scores 0, and -3 as a z-score."""
    has = np.array([i in scores for i in ids])
    own = np.array([scores.get(i, 0.0) for i in ids])
    nb = np.zeros(len(ids))
    for off in (-1, 1):
        j = near[off]
        nb = np.maximum(nb, np.where(j >= 0, own[j], 0.0))
    z = np.full(len(ids), -3.0)
    if has.sum() > 1:
        vals = own[has]
        z[has] = (vals - vals.mean()) / (vals.std() + 1e-9)
    return np.column_stack([own, nb, np.maximum(own, nb), z])


def _threads(ids: list[str], meta: dict[str, RankMeta]) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's conversation thread as a small integer (-1: no session), and its key (write order)."""
    codes: dict[tuple, int] = {}
    thread = np.array([codes.setdefault(thread_of(m), len(codes)) if (m := meta[i]).session_id else -1
                       for i in ids], dtype=np.int64)
    return thread, np.array([meta[i].key for i in ids], dtype=np.int64)


def _near(thread: np.ndarray, keys: np.ndarray, w: int) -> dict[int, np.ndarray]:
    """For each offset d in -w..w (not 0), the pool position of each candidate's turn d places away (write order) in the
    same conversation thread, or -1."""
    n = len(thread)
    has = thread >= 0
    # one sortable number per (thread, key): keys stay below 2**40 (store key space), so offsets never cross threads
    tag = (thread << 42) + keys
    at = np.flatnonzero(has)
    order = at[np.argsort(tag[at], kind="stable")]
    sorted_tags = tag[order]
    offsets = [d for d in range(-w, w + 1) if d]
    pos = np.full((len(offsets), n), -1, dtype=np.int64)  # row k: offset offsets[k]; one search for all of them
    if len(order):
        want = tag[None, :] + np.array(offsets, dtype=np.int64)[:, None]
        j = np.minimum(np.searchsorted(sorted_tags, want), len(order) - 1)
        found = has[None, :] & (sorted_tags[j] == want)
        pos[found] = order[j[found]]
    return dict(zip(offsets, pos, strict=True))


def _offsets(thread: np.ndarray, keys: np.ndarray, fused: np.ndarray) -> list[np.ndarray]:
    """Signed places from the best candidate of the same thread (clipped to +-8), and the distance in places to the
    nearest of the three best candidates overall when one shares the thread (else 20)."""
    order = np.argsort(-fused, kind="stable")
    has = thread >= 0
    best = np.zeros(int(thread.max(initial=0)) + 1, dtype=np.int64)
    ranked = order[has[order]]
    codes, first = np.unique(thread[ranked], return_index=True)  # each thread's first place in score order
    best[codes] = keys[ranked[first]]
    off = np.where(has, np.clip(keys - best[np.maximum(thread, 0)], -8, 8), 0).astype(np.float64)
    dist = np.full(len(thread), np.inf)
    for t in order[:3][has[order[:3]]]:
        same = has & (thread == thread[t])
        dist[same] = np.minimum(dist[same], np.abs(keys[same] - keys[t]).astype(np.float64))
    return [off, np.where(np.isinf(dist), 20.0, dist)]


def _text_columns(text: str) -> tuple[float, ...]:
    """The columns read from a candidate's text alone: words, holds '?', then `_text_form_of`'s."""
    # a pure function of the text, and the same memories come back search after search: cache the usual short
    # turns (bounded memory), compute long documents each time
    return _text_columns_cached(text) if len(text) <= 2000 else _text_columns_of(text)


def _text_columns_of(text: str) -> tuple[float, ...]:
    return (float(len(text.split())), float("?" in text), *_text_form_of(text))


def _text_form_of(text: str) -> tuple[float, ...]:
    """Names, a number, time words, a quoted title, ends with '?' (one lower-case word pass; case-blind regexes
    cost ten times more)."""
    words = _WORD.findall(text.lower())
    # the cheap scans first: most turns hold no digit and no quote mark
    number = (_DIGIT.search(text) is not None and _DIGITS.search(text) is not None) \
        or not _NUMBER_WORDS.isdisjoint(words)
    quote = ('"' in text or "\u201c" in text) and _QUOTE.search(text) is not None
    return (float(len(_NAME.findall(text))), float(number), float(sum(map(_TIME_WORDS.__contains__, words))),
            float(quote), float(text.rstrip().endswith("?")))


_text_columns_cached = lru_cache(maxsize=32768)(_text_columns_of)
