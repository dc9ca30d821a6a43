"""LoCoMo retrieval benchmark (Maharana et al., ACL 2024), no LLM anywhere.

Each conversation is ingested into its own scope (`user_id` = sample id) through
the public `Memory` API only: one `add` per session, every turn with its speaker,
the session's date as timestamp, `blip_caption` appended for shared images and
the `dia_id` as `source_ref`. Then every question that has evidence is asked
with `Memory.search`, and the ranked memories are mapped back to dialogue ids
(derived memories through their `source_ids`).

Separation of concerns: `load_conversations` reads only the dialogue; questions,
answers and evidence are read by `load_questions` and used after search, to
score. Nothing the engine sees is derived from answers or evidence.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ..embed.base import Embedder
from ..errors import ValidationError
from .files import read_json_list
from .metrics import average, dedupe, hit_all_at, ndcg_at, percentile, recall_at, reciprocal_rank

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
TURN_K = (1, 5, 10, 20)
HIT_K = (5, 10, 20)
SESSION_K = (1, 3, 5)
BASELINES = ("bm25", "dense", "rrf")
_DATE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.I)
_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"], start=1)}
_DIA_RE = re.compile(r"D(\d+):(\d+)")


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str


@dataclass
class Session:
    number: int
    when: datetime
    turns: list[Turn]


@dataclass
class Conversation:
    sample_id: str
    speakers: tuple[str, str]
    sessions: list[Session]


@dataclass
class Question:
    sample_id: str
    question: str
    category: int
    evidence: list[str]


@dataclass
class Method:
    """One configuration to measure: a `Memory.search` mode plus retrieval and lifecycle overrides."""

    name: str
    mode: str = "default"
    retrieval: dict[str, Any] = field(default_factory=dict)
    lifecycle: dict[str, Any] = field(default_factory=dict)  # read-time only (e.g. current_truth)


def parse_session_time(text: str) -> datetime:
    """'1:56 pm on 8 May, 2023' -> an aware datetime (LoCoMo gives no zone; UTC is assumed)."""
    m = _DATE_RE.match(text or "")
    if not m:
        raise ValidationError(f"LoCoMo: cannot parse session date {text!r}")
    hour, minute, ampm, day, month, year = m.groups()
    mon = _MONTHS.get(month.lower())
    if mon is None:
        raise ValidationError(f"LoCoMo: unknown month in {text!r}")
    h = int(hour) % 12 + (12 if ampm.lower() == "pm" else 0)
    return datetime(int(year), mon, int(day), h, int(minute), tzinfo=UTC)


def _read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p, data = read_json_list(path, "LoCoMo")
    if not all(isinstance(s, dict) and "conversation" in s for s in data):
        raise ValidationError(f"{p}: expected a JSON list of LoCoMo samples with 'conversation'")
    return data


def _select(data: list[dict[str, Any]], conversations: Sequence[str] | None) -> list[dict[str, Any]]:
    if not conversations:
        return data
    ids = [str(s.get("sample_id")) for s in data]
    wanted: list[dict[str, Any]] = []
    for c in conversations:
        if c in ids:
            wanted.append(data[ids.index(c)])
        elif c.isdigit() and int(c) < len(data):  # an index into the file
            wanted.append(data[int(c)])
        else:
            raise ValidationError(f"unknown conversation {c!r}; the file has {', '.join(ids)}")
    return wanted


def load_conversations(
    path: str | os.PathLike[str], conversations: Sequence[str] | None = None, max_sessions: int | None = None
) -> list[Conversation]:
    """The dialogues only (never `qa`); `max_sessions` keeps the first N sessions of each (a quick slice)."""
    out = []
    for s in _select(_read(path), conversations):
        c = s["conversation"]
        sessions = []
        n = 1
        while f"session_{n}" in c and (max_sessions is None or n <= max_sessions):
            turns = []
            for t in c[f"session_{n}"]:
                text = str(t.get("text", "")).strip()
                if t.get("blip_caption"):
                    text = f"{text} [shares an image: {t['blip_caption']}]".strip()
                if text:
                    turns.append(Turn(dia_id=str(t["dia_id"]), speaker=str(t["speaker"]), text=text))
            if turns:
                sessions.append(Session(number=n, when=parse_session_time(c[f"session_{n}_date_time"]), turns=turns))
            n += 1
        out.append(Conversation(str(s["sample_id"]), (str(c.get("speaker_a")), str(c.get("speaker_b"))), sessions))
    return out


def _norm_evidence(raw: Any) -> list[str]:
    """Evidence ids as 'D<s>:<t>'; LoCoMo has a few malformed ones ('D8:6; D9:17', 'D:11:26')."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        for s, t in _DIA_RE.findall(str(item).replace("D:", "D")):
            out.append(f"D{int(s)}:{int(t)}")
    return dedupe(out)


def load_questions(path: str | os.PathLike[str], conversations: Sequence[str] | None = None) -> list[Question]:
    """Questions with evidence (scoring side only)."""
    out = []
    for s in _select(_read(path), conversations):
        for q in s.get("qa", []):
            ev = _norm_evidence(q.get("evidence", []))
            if ev and q.get("question"):
                out.append(Question(str(s["sample_id"]), str(q["question"]), int(q.get("category", 0)), ev))
    return out


def session_of(dia_id: str) -> str:
    return dia_id.split(":")[0]


def ingest(mem: Any, conv: Conversation, on_session: Callable[[int], None] | None = None) -> dict[str, str]:
    """Add one conversation to `mem` (scope user_id=sample_id); returns memory id -> dia_id."""
    ids: dict[str, str] = {}
    for sess in conv.sessions:
        # one add per session: the session is one write batch; turns keep their order
        # through a one-second step (LoCoMo dates sessions, not turns)
        turns = [
            {
                "speaker": t.speaker,
                "text": t.text,
                "timestamp": (sess.when + timedelta(seconds=i)).isoformat(),
                "source_ref": t.dia_id,
            }
            for i, t in enumerate(sess.turns)
        ]
        recs = mem.add(turns, user_id=conv.sample_id, session_id=f"{conv.sample_id}/session_{sess.number}")
        for r in recs:
            if r.source_ref:
                ids[r.id] = r.source_ref
        if on_session:
            on_session(len(sess.turns))
    return ids


def to_dia_ids(results: Sequence[Any], ids: dict[str, str]) -> list[str]:
    """Ranked dialogue ids: episodes by their own id, derived memories by their sources (provenance)."""
    out: list[str] = []
    for r in results:
        m = r.memory
        if m.id in ids:
            out.append(ids[m.id])
        elif m.source_ref and _DIA_RE.fullmatch(m.source_ref) and m.kind == "episode":
            out.append(m.source_ref)
        else:
            out.extend(ids[s] for s in m.source_ids if s in ids)
    return dedupe(out)


def score_question(ranked: list[str], gold: list[str]) -> dict[str, float]:
    g = set(gold)
    sess_ranked = dedupe([session_of(d) for d in ranked])
    sess_gold = {session_of(d) for d in gold}
    row = {f"recall@{k}": recall_at(ranked, g, k) for k in TURN_K}
    row.update({f"hit_all@{k}": hit_all_at(ranked, g, k) for k in HIT_K})
    row.update({f"session_recall@{k}": recall_at(sess_ranked, sess_gold, k) for k in SESSION_K})
    row["mrr"] = reciprocal_rank(ranked, g)
    row["ndcg@10"] = ndcg_at(ranked, g, 10)
    return row


def summarize(rows: list[dict[str, float]], cats: list[int], latencies: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows), "overall": average(rows), "by_category": {}}
    for c in sorted(set(cats)):
        sub = [r for r, k in zip(rows, cats, strict=True) if k == c]
        out["by_category"][str(c)] = {"name": CATEGORIES.get(c, str(c)), "n": len(sub), **average(sub)}
    out["latency_ms"] = {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)}
    return out


WRITE_TIME = ("context_keys", "date_keys")  # retrieval settings that change what is indexed
PLAIN_KEYS = {"context_keys": False, "date_keys": False}


def baseline_methods() -> list[Method]:
    """The default with the current-truth order off (same store), the baselines: BM25 / dense / RRF over plain
    turns ('Speaker: text'), and the hand-set linear fusion + lifts that the learned ranker replaced."""
    return [Method("default, current truth off", lifecycle={"current_truth": False}),
            Method("learned, no late interaction", retrieval={"late_interaction": False}),
            Method("linear", retrieval={"ranker": "linear"}),
            *(Method(b, mode=b, retrieval=dict(PLAIN_KEYS)) for b in BASELINES)]


def ablation_methods() -> list[Method]:
    """The default (learned ranker), the hand-set linear pipeline, and that one with each part removed, then with
    everything removed. (The learned ranker's own ablation refits it: `engramdb bench train-ranker --ablation`.)"""
    lin = {"ranker": "linear"}
    return [
        Method("default"),
        Method("- late interaction (the plain learned ranker)", retrieval={"late_interaction": False}),
        Method("linear (hand-set lifts)", retrieval=dict(lin)),
        Method("- speaker boost", retrieval={**lin, "speaker_boost": 0.0}),
        Method("- session lift", retrieval={**lin, "session_weight": 0.0}),
        Method("- neighbour lift", retrieval={**lin, "neighbor_weight": 0.0}),
        Method("- two-away lift", retrieval={**lin, "neighbor2_weight": 0.0}),
        Method("- session best turn", retrieval={**lin, "session_max_weight": 0.0}),
        Method("- time boost", retrieval=dict(lin), lifecycle={"time_boost": 0.0}),
        Method("- date keys", retrieval={**lin, "date_keys": False}),
        Method("- context keys", retrieval={**lin, "context_keys": False}),
        Method("score fusion only, plain keys",
               retrieval={**lin, **PLAIN_KEYS, "speaker_boost": 0.0, "session_weight": 0.0, "neighbor_weight": 0.0,
                          "neighbor2_weight": 0.0, "session_max_weight": 0.0}, lifecycle={"time_boost": 0.0}),
        Method("rrf, plain keys", mode="rrf", retrieval=dict(PLAIN_KEYS)),
    ]


class MemoEmbedder(Embedder):
    """Wraps an embedder and remembers vectors by text, so re-ingesting the same turns under another
    key setting (baselines, ablations) does not run the model twice. The model is deterministic."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.batch_size = max(inner.batch_size, 1)
        self.has_tokens = inner.has_tokens
        self.memo: dict[str, np.ndarray] = {}
        self.memo_tokens: dict[str, np.ndarray | None] = {}
        self.memo_context: dict[tuple, tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]] = {}

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        need = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if need:
            for t, v in zip(need, self.inner.embed(need), strict=True):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts])

    def embed_tokens(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        need = list(dict.fromkeys(t for t in texts if t not in self.memo_tokens))
        if need:
            vecs, toks = self.inner.embed_tokens(need)
            for t, v, k in zip(need, vecs, toks, strict=True):
                self.memo[t], self.memo_tokens[t] = v, k
        return np.stack([self.memo[t] for t in texts]), [self.memo_tokens[t] for t in texts]

    def embed_in_context(
        self, texts: Sequence[str], pairs: Sequence[tuple[int, int]], *, tokens: bool = True
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        key = (tuple(texts), tuple(pairs), tokens)  # the same session ingested again asks the same
        if key not in self.memo_context:
            self.memo_context[key] = self.inner.embed_in_context(texts, pairs, tokens=tokens)
        return self.memo_context[key]


def _in_sample(methods: Sequence[Method], sample_ids: Sequence[str]) -> list[str]:
    """Conversations that a learned ranker used by some method was trained on (its figures there are in-sample)."""
    from ..retrieve.ranker import load_ranker
    from ..retrieve.search import RetrievalConfig

    seen: set[str] = set()
    for meth in methods:
        cfg = RetrievalConfig(**{k: v for k, v in meth.retrieval.items() if k not in WRITE_TIME})
        if meth.mode == "default" and cfg.ranker == "learned":
            seen.update(load_ranker(cfg.ranker_path).info.get("conversations", []))
    return [s for s in sample_ids if s in seen]


def run_locomo(
    path: str | os.PathLike[str],
    *,
    conversations: Sequence[str] | None = None,
    compare: bool = False,
    ablation: bool = False,
    methods: Sequence[Method] | None = None,
    embedder: Any = None,
    limit: int = 20,
    max_sessions: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Ingest, ask, score. Returns the report dict (see `report.locomo_markdown`).

    Methods that differ in write-time settings (`WRITE_TIME`) get their own store, ingested the same way."""
    from .. import Memory
    from ..config import MemoryConfig
    from ..embed import make_embedder

    convs = load_conversations(path, conversations, max_sessions)
    if not convs:
        raise ValidationError("no conversations selected")
    if methods is None:
        methods = ablation_methods() if ablation else [Method("default")]
        if compare:
            methods = [*methods, *(m for m in baseline_methods() if m.name not in {x.name for x in methods})]
    emb = MemoEmbedder(embedder if embedder is not None else make_embedder())
    n_turns = sum(len(s.turns) for c in convs for s in c.sessions)
    stores: dict[tuple, dict[str, str]] = {}  # write-time settings -> memory id -> dia_id
    ingest_s: dict[tuple, float] = {}
    with tempfile.TemporaryDirectory(prefix="engramdb-locomo-") as tmp:

        def db_for(meth: Method) -> tuple[str, dict[str, str]]:
            wt = tuple((k, meth.retrieval[k]) for k in WRITE_TIME if k in meth.retrieval)
            path_ = os.path.join(tmp, f"locomo{len(stores) if wt not in stores else list(stores).index(wt)}.db")
            if wt not in stores:
                mem = Memory(path_, embedder=emb, config=MemoryConfig(retrieval=dict(wt)))
                ids: dict[str, str] = {}
                t0 = time.perf_counter()
                if progress:
                    from rich.progress import Progress

                    with Progress(transient=True) as bar:
                        label = "ingesting LoCoMo turns" + (f" ({', '.join(f'{k}={v}' for k, v in wt)})" if wt else "")
                        task = bar.add_task(label, total=n_turns)
                        for conv in convs:
                            ids.update(ingest(mem, conv, lambda n: bar.advance(task, n)))
                else:
                    for conv in convs:
                        ids.update(ingest(mem, conv))
                ingest_s[wt] = time.perf_counter() - t0
                mem.close()
                stores[wt] = ids
            return path_, stores[wt]

        _ = emb.inner.dim  # the model is loaded before any clock starts
        emb.inner.embed(["warm up"])
        db_for(methods[0])  # the first method's store is timed first, on a cold memo
        # scoring side: questions are read only now
        questions = load_questions(path, [c.sample_id for c in convs])
        if max_sessions is not None:  # a slice: only questions answerable from the ingested sessions
            have = {(c.sample_id, session_of(t.dia_id)) for c in convs for s in c.sessions for t in s.turns}
            questions = [q for q in questions if all((q.sample_id, session_of(e)) in have for e in q.evidence)]
        report: dict[str, Any] = {
            "benchmark": "locomo",
            "file": str(path),
            "conversations": [c.sample_id for c in convs],
            "embedder": emb.inner.name,
            "turns": n_turns,
            "sessions": sum(len(c.sessions) for c in convs),
            "questions": len(questions),
            "ingest_s": next(iter(ingest_s.values())),
            "ingest_turns_per_s": n_turns / max(next(iter(ingest_s.values())), 1e-9),
            "limit": limit,
            "in_sample": _in_sample(methods, [c.sample_id for c in convs]),
            "methods": {},
        }
        for meth in methods:
            db, ids = db_for(meth)
            m = Memory(db, embedder=emb.inner,
                       config=MemoryConfig(retrieval=dict(meth.retrieval), lifecycle=dict(meth.lifecycle)))
            try:
                m.search("warm up", user_id=convs[0].sample_id, limit=limit, mode=meth.mode)
                rows, cats, lat = [], [], []
                for q in questions:
                    t = time.perf_counter()
                    res = m.search(q.question, user_id=q.sample_id, limit=limit, mode=meth.mode)
                    lat.append((time.perf_counter() - t) * 1000)
                    rows.append(score_question(to_dia_ids(res, ids), q.evidence))
                    cats.append(q.category)
                report["methods"][meth.name] = {"mode": meth.mode, "retrieval": meth.retrieval,
                                                "lifecycle": meth.lifecycle, **summarize(rows, cats, lat)}
            finally:
                m.close()
        return report
