"""Offline ("sleep-time") consolidation: a hierarchy above the turns, merges and links.

    turn (episode) -> session summary -> topic cluster

Steps, each unit in its own transaction so an interruption loses at most the unit in flight:
1. expire: memories past `expires_at` are soft-deleted (history action 'expire');
2. near-duplicates merged: identical re-ingested turns, and derived memories (facts)
   with cosine >= `merge_threshold` in the same scope; first, so that everything built
   next cites only surviving memories, and an interrupted run ends like an uninterrupted one;
3. session summaries for sessions that changed (LLM when configured, else extractive: the
   most central turns), linked to their turns ('summarizes'); a changed session supersedes
   its old summary;
4. topic clusters per user/agent scope over episodes (greedy cosine clustering, deterministic),
   linked to the session summaries they span; a topic is identified by its member set;
5. A-MEM-style 'related' links from each new turn to similar turns of other sessions, with
   the reason (cosine and shared words) stored on the link.
Idempotent: everything is keyed on content (source sets, member hashes, link primary keys),
so a second run with no new episodes writes nothing. A watermark (highest episode key seen)
makes runs incremental; it only advances after every step succeeded.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from ..ingest.keys import build_keys
from ..llm import LLMClient, LLMError
from ..model import EPISODE, FACT, SUMMARY, MemoryRecord
from ..store.base import Filters, Link, Store
from ..store.codec import keyword_terms
from ..timeutil import now
from .forget import expire

WATERMARK = "lifecycle.consolidate_key"
SUMMARIZES = "summarizes"
RELATED = "related"
DUPLICATE_OF = "duplicate_of"


class ConsolidateConfig(BaseModel):
    min_session_turns: int = Field(default=2, ge=1)
    summary_turns: int = Field(default=3, ge=1, le=20)  # extractive summary: this many central turns
    summary_max_words: int = Field(default=120, ge=20, le=1000)
    topic_threshold: float = Field(default=0.45, ge=0, le=1)  # cosine to a cluster centroid to join it
    topic_min_members: int = Field(default=3, ge=2)
    topic_min_sessions: int = Field(default=2, ge=1)
    merge_threshold: float = Field(default=0.95, ge=0.5, le=1)
    link_threshold: float = Field(default=0.6, ge=0, le=1)
    link_top_k: int = Field(default=3, ge=0, le=20)


class ConsolidateReport(BaseModel):
    expired: int = 0
    sessions_summarized: int = 0
    summaries_superseded: int = 0
    topics_created: int = 0
    topics_retired: int = 0
    merged: int = 0
    links_added: int = 0
    failures: list[str] = Field(default_factory=list)  # units skipped (e.g. LLM errors); retried next run
    dirty_episodes: int = 0

    @property
    def changed(self) -> bool:
        return any(
            (self.expired, self.sessions_summarized, self.topics_created, self.topics_retired, self.merged,
             self.links_added)
        )  # fmt: skip


class SessionSummary(BaseModel):
    summary: str = Field(min_length=1, max_length=8000)
    topics: list[str] = Field(default_factory=list, max_length=10)


Embed = Callable[[list[str]], np.ndarray]
Progress = Callable[[str, int, int], None]


@dataclass
class Consolidator:
    store: Store
    embed: Embed
    config: ConsolidateConfig
    llm: LLMClient | None = None
    progress: Progress | None = None
    fail_after: Callable[[str], None] | None = None  # test hook: called after each unit

    # -- entry -----------------------------------------------------------------------
    def run(self) -> ConsolidateReport:
        rep = ConsolidateReport()
        rep.expired = expire(self.store)
        watermark = int(self.store.get_meta(WATERMARK) or 0)
        all_keys = np.sort(self.store.candidate_keys(Filters()))
        dirty_keys = all_keys[all_keys > watermark]
        if len(dirty_keys) == 0:
            return rep
        changed = self._records_for_keys(dirty_keys)  # new turns, and new derived memories (facts...)
        rep.dirty_episodes = sum(r.kind == EPISODE for r in changed)
        scopes = sorted({_scope_key(r) for r in changed}, key=_sort_key)
        # Merges first: summaries, topics and links are then built from the surviving memories only, so a run
        # interrupted anywhere and resumed ends in the same state as an uninterrupted one (a merge done late
        # would leave summaries citing merged turns, which a resumed run would then rebuild).
        for scope in scopes:
            self._merge_duplicates(scope, rep)
        dirty = [r for r in self._records_for_keys(dirty_keys) if r.kind == EPISODE]
        sessions = sorted({_session_key(r) for r in dirty if r.session_id}, key=_sort_key)
        for i, skey in enumerate(sessions, 1):
            self._tick("sessions", i, len(sessions))
            self._session_summary(skey, rep)
        for i, scope in enumerate(scopes, 1):
            self._tick("topics", i, len(scopes))
            if dirty:
                self._topics(scope, rep)
        self._related_links(dirty, rep)
        if not rep.failures:  # a failed unit keeps its episodes dirty, so the next run retries it
            top = self.store.candidate_keys(Filters(include_deleted=True, include_expired=True))
            with self.store.transaction():
                self.store.set_meta(WATERMARK, str(int(top.max()) if len(top) else 0))
        return rep

    def _tick(self, what: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(what, done, total)

    def _unit_done(self, name: str) -> None:
        if self.fail_after:
            self.fail_after(name)

    def _records_for_keys(self, keys: np.ndarray) -> list[MemoryRecord]:
        ids = self.store.ids_for([int(k) for k in keys])
        return self.store.get([ids[int(k)] for k in keys if int(k) in ids])

    def _vectors(self, recs: list[MemoryRecord]) -> np.ndarray:
        keys = self.store.keys_for([r.id for r in recs])
        got_keys, mat = self.store.vectors_for([keys[r.id] for r in recs if r.id in keys])
        pos = {int(k): i for i, k in enumerate(got_keys)}
        dim = mat.shape[1] if mat.size else 1
        out = np.zeros((len(recs), dim), dtype=np.float32)
        for i, r in enumerate(recs):
            if r.id in keys and keys[r.id] in pos:
                out[i] = mat[pos[keys[r.id]]]
        return out

    def _insert(self, rec: MemoryRecord, links: list[Link]) -> None:
        idx, emb = build_keys([rec])
        vec = self.embed(emb)
        with self.store.transaction():
            self.store.insert([rec], vec, idx)
            self.store.add_links(links)

    # -- 2. session summaries ----------------------------------------------------------
    def _session_summary(self, skey: tuple, rep: ConsolidateReport) -> None:
        user_id, agent_id, session_id = skey
        eps = self.store.list(
            Filters(user_id=user_id, agent_id=agent_id, session_id=session_id, kinds=[EPISODE]),
            limit=10_000,
            order="occurred_at",
        )
        eps = [e for e in eps if (e.user_id, e.agent_id) == (user_id, agent_id)]
        if len(eps) < self.config.min_session_turns:
            return
        group = "|".join(x or "" for x in skey)
        existing = self.store.list(
            Filters(user_id=user_id, agent_id=agent_id, session_id=session_id, kinds=[SUMMARY], current_only=True,
                    metadata={"level": "session", "group": group}),
            limit=10,
        )  # fmt: skip
        ids = sorted(e.id for e in eps)
        if any(sorted(s.source_ids) == ids for s in existing):
            return  # unchanged session: nothing to do
        try:
            text, topics, how = self._summarize(eps)
        except LLMError as exc:
            rep.failures.append(f"session {session_id}: {exc}")
            return
        rec = MemoryRecord(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            kind=SUMMARY,
            text=text,
            metadata={"level": "session", "group": group, "turns": len(eps), "topics": topics, "method": how},
            occurred_at=eps[0].occurred_at,
            recorded_at=now(),
            valid_from=eps[0].occurred_at,
            source_ids=ids,
            importance=0.6,
        )
        links = [Link(rec.id, e.id, SUMMARIZES, reason="session summary") for e in eps]
        links += [Link(rec.id, old.id, "supersedes", reason="session grew") for old in existing]
        idx, emb = build_keys([rec])
        vec = self.embed(emb)
        with self.store.transaction():
            self.store.insert([rec], vec, idx)
            self.store.add_links(links)
            for old in existing:
                self.store.update(old.model_copy(update={"valid_to": now()}), action="supersede")
        rep.sessions_summarized += 1
        rep.summaries_superseded += len(existing)
        self._unit_done(f"session:{session_id}")

    def _summarize(self, eps: list[MemoryRecord]) -> tuple[str, list[str], str]:
        speakers = sorted({e.speaker for e in eps if e.speaker})
        date = f"{eps[0].occurred_at:%Y-%m-%d}" if eps[0].occurred_at else "undated"
        if self.llm is not None:
            from ..extract.prompts import render_prompt

            turns = "\n".join(f"{e.speaker or e.role or 'user'}: {e.text}" for e in eps)
            prompt = render_prompt(
                "summarize_session",
                max_words=self.config.summary_max_words,
                session_id=eps[0].session_id,
                date=date,
                speakers=", ".join(speakers) or "unknown",
                turns=turns[:24_000],
            )
            ans = self.llm.complete_json(prompt, SessionSummary, op="summarize")
            return ans.summary.strip(), [t[:64] for t in ans.topics], "llm"
        # Extractive: the turns closest to the session's centroid, in time order.
        vecs = self._vectors(eps)
        centroid = vecs.mean(axis=0)
        scores = vecs @ centroid
        top = sorted(np.argsort(-scores)[: self.config.summary_turns].tolist())
        parts = [f"{eps[i].speaker + ': ' if eps[i].speaker else ''}{_clip(eps[i].text, 200)}" for i in top]
        words = _top_words(eps, 5)
        head = f"Session {eps[0].session_id} on {date}" + (f" ({', '.join(speakers)})" if speakers else "")
        return f"{head}, about {', '.join(words)}: " + " | ".join(parts), words, "extractive"

    # -- 3. topics ---------------------------------------------------------------------
    def _topics(self, scope: tuple, rep: ConsolidateReport) -> None:
        user_id, agent_id = scope
        eps = self.store.list(Filters(user_id=user_id, agent_id=agent_id, kinds=[EPISODE]), limit=50_000)
        eps = [e for e in eps if (e.user_id, e.agent_id) == scope]
        if len(eps) < self.config.topic_min_members:
            return
        vecs = self._vectors(eps)
        clusters = _leader_clusters(vecs, self.config.topic_threshold)
        wanted: dict[str, list[MemoryRecord]] = {}
        for members in clusters:
            ms = [eps[i] for i in members]
            if len(ms) < self.config.topic_min_members:
                continue
            if len({m.session_id for m in ms}) < self.config.topic_min_sessions:
                continue
            h = hashlib.sha1("\n".join(sorted(m.id for m in ms)).encode()).hexdigest()[:16]
            wanted[h] = ms
        existing = self.store.list(
            Filters(user_id=user_id, agent_id=agent_id, kinds=[SUMMARY], current_only=True,
                    metadata={"level": "topic"}),
            limit=10_000,
        )  # fmt: skip
        existing = [t for t in existing if (t.user_id, t.agent_id) == scope]
        have = {t.metadata.get("members_hash"): t for t in existing}
        for h, ms in wanted.items():
            if h in have:
                continue
            words = _top_words(ms, 4, background=eps)
            vec_ms = self._vectors(ms)
            rep_i = np.argsort(-(vec_ms @ vec_ms.mean(axis=0)))[:2]
            examples = " | ".join(_clip(ms[int(i)].text, 140) for i in sorted(rep_i.tolist()))
            sessions = sorted({m.session_id for m in ms if m.session_id})
            rec = MemoryRecord(
                user_id=user_id,
                agent_id=agent_id,
                kind=SUMMARY,
                text=f"Topic: {', '.join(words)} ({len(ms)} turns over {len(sessions)} sessions). e.g. {examples}",
                metadata={"level": "topic", "members_hash": h, "keywords": words, "sessions": sessions},
                occurred_at=min(m.occurred_at for m in ms if m.occurred_at) if any(m.occurred_at for m in ms) else None,
                recorded_at=now(),
                source_ids=sorted(m.id for m in ms),
                importance=0.5,
            )
            children = self._session_summaries(user_id, agent_id, sessions)
            links = [Link(rec.id, c.id, SUMMARIZES, reason="topic spans this session") for c in children]
            if not children:  # no session level (session-less turns): link the turns themselves
                links = [Link(rec.id, m.id, SUMMARIZES, reason="topic member") for m in ms]
            self._insert(rec, links)
            rep.topics_created += 1
            self._unit_done(f"topic:{h}")
        retired = [t for h, t in have.items() if h not in wanted]
        if retired:
            with self.store.transaction():
                for t in retired:
                    self.store.update(t.model_copy(update={"valid_to": now()}), action="supersede")
            rep.topics_retired += len(retired)

    def _session_summaries(self, user_id: str | None, agent_id: str | None, sessions: list[str]) -> list[MemoryRecord]:
        out = []
        for sid in sessions:
            out += self.store.list(
                Filters(user_id=user_id, agent_id=agent_id, session_id=sid, kinds=[SUMMARY], current_only=True,
                        metadata={"level": "session"}),
                limit=5,
            )  # fmt: skip
        return out

    # -- 4. near-duplicates ---------------------------------------------------------------
    def _merge_duplicates(self, scope: tuple, rep: ConsolidateReport) -> None:
        user_id, agent_id = scope
        # (a) the same turn ingested twice: same text, speaker, session and time
        eps = self.store.list(Filters(user_id=user_id, agent_id=agent_id, kinds=[EPISODE]), limit=50_000)
        seen: dict[tuple, MemoryRecord] = {}
        pairs: list[tuple[MemoryRecord, MemoryRecord, str]] = []
        for e in eps:
            if (e.user_id, e.agent_id) != scope:
                continue
            k = (" ".join(e.text.split()).casefold(), e.speaker, e.session_id, e.occurred_at)
            if k in seen:
                pairs.append((seen[k], e, "identical turn ingested twice"))
            else:
                seen[k] = e
        # (b) derived memories saying the same thing
        derived = self.store.list(
            Filters(user_id=user_id, agent_id=agent_id, kinds=[FACT], current_only=True), limit=50_000
        )
        derived = [d for d in derived if (d.user_id, d.agent_id) == scope]
        if len(derived) > 1:
            vecs = self._vectors(derived)
            gone: set[str] = set()
            thr = self.config.merge_threshold
            for start in range(0, len(derived), 512):  # blocks: never an n x n matrix in memory
                block = vecs[start : start + 512] @ vecs.T
                for bi, j in zip(*np.nonzero(block >= thr), strict=True):
                    i = start + int(bi)
                    j = int(j)
                    if j <= i or derived[i].id in gone or derived[j].id in gone:
                        continue
                    if derived[i].metadata.get("subject_key") != derived[j].metadata.get("subject_key"):
                        continue
                    pairs.append((derived[i], derived[j], f"cosine {block[bi, j]:.3f}"))
                    gone.add(derived[j].id)
        for keep, dup, why in pairs:
            with self.store.transaction():
                if keep.kind != EPISODE:
                    merged = sorted(set(keep.source_ids) | set(dup.source_ids))
                    cur = self.store.get([keep.id])
                    if cur:
                        self.store.update(cur[0].model_copy(update={"source_ids": merged}), action="merge")
                self.store.soft_delete([dup.id], at=now(), action="merge")
                self.store.add_links([Link(dup.id, keep.id, DUPLICATE_OF, reason=why)])
            rep.merged += 1
            self._unit_done(f"merge:{dup.id}")

    # -- 5. related links ------------------------------------------------------------------
    def _related_links(self, dirty: list[MemoryRecord], rep: ConsolidateReport) -> None:
        k = self.config.link_top_k
        if not k:
            return
        by_scope: dict[tuple, list[MemoryRecord]] = defaultdict(list)
        for r in dirty:
            if r.deleted_at is None:
                by_scope[_scope_key(r)].append(r)
        for scope, news in by_scope.items():
            pool = self.store.list(Filters(user_id=scope[0], agent_id=scope[1], kinds=[EPISODE]), limit=50_000)
            pool = [p for p in pool if (p.user_id, p.agent_id) == scope]
            if len(pool) < 2:
                continue
            pvecs = self._vectors(pool)
            nvecs = self._vectors(news)
            links: list[Link] = []
            for i, new in enumerate(news):
                sims = pvecs @ nvecs[i]  # one row at a time: memory stays O(pool)
                cand = np.nonzero(sims >= self.config.link_threshold)[0]
                order = cand[np.argsort(-sims[cand])]
                got = 0
                for j in order:
                    other = pool[int(j)]
                    s = float(sims[int(j)])
                    if s < self.config.link_threshold or got >= k:
                        break
                    if other.id == new.id or (other.session_id and other.session_id == new.session_id):
                        continue
                    shared = sorted(set(keyword_terms(new.text)) & set(keyword_terms(other.text)))[:5]
                    reason = f"cosine {s:.2f}" + (f"; shared words: {', '.join(shared)}" if shared else "")
                    a, b = sorted((new.id, other.id))  # one undirected edge per pair, whichever side is new
                    links.append(Link(a, b, RELATED, reason=reason))
                    got += 1
            existing = {(lk.src_id, lk.dst_id) for n in news for lk in self.store.links(n.id, type=RELATED)}
            fresh = [lk for lk in links if (lk.src_id, lk.dst_id) not in existing]
            if fresh:
                self.store.add_links(fresh)
            rep.links_added += len({(lk.src_id, lk.dst_id) for lk in fresh})


def _session_key(r: MemoryRecord) -> tuple[str | None, str | None, str | None]:
    return (r.user_id, r.agent_id, r.session_id)


def _scope_key(r: MemoryRecord) -> tuple[str | None, str | None]:
    return (r.user_id, r.agent_id)


def _sort_key(key: tuple) -> tuple:
    return tuple(x or "" for x in key)


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _top_words(recs: list[MemoryRecord], n: int, background: list[MemoryRecord] | None = None) -> list[str]:
    """Most characteristic content words (frequency, damped by how common they are in the background)."""
    counts: Counter[str] = Counter()
    for r in recs:
        counts.update(set(keyword_terms(r.text)))
    bg: Counter[str] = Counter()
    for r in background or []:
        bg.update(set(keyword_terms(r.text)))
    total = max(len(background or []), 1)

    def score(w: str) -> float:
        return counts[w] * (1.0 if not background else np.log(1 + total / (1 + bg[w])))

    words = [w for w in counts if len(w) > 2 and not w.isdigit()]
    words.sort(key=lambda w: (-score(w), w))
    return words[:n]


def _leader_clusters(vecs: np.ndarray, threshold: float) -> list[list[int]]:
    """Deterministic greedy clustering: each vector joins the closest centroid above `threshold`, in order."""
    clusters: list[list[int]] = []
    sums = np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 0), dtype=np.float64)
    for i, v in enumerate(vecs):
        if len(clusters):
            cents = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
            sims = cents @ v
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                clusters[best].append(i)
                sums[best] += v
                continue
        clusters.append([i])
        sums = np.vstack([sums, v.astype(np.float64)[None, :]])
    return clusters
