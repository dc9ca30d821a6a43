"""LongMemEval retrieval benchmark (Wu et al., ICLR 2025), scored exactly as its own
`src/retrieval/eval_utils.py` does (ported in `metrics.py`).

Per question, its haystack is ingested into its own scope (`user_id` = question
id) through the public `Memory` API: one `add` per session, with the session's
date, and, as LongMemEval's retrieval code does, user-side turns only (pass
`roles=("user", "assistant")` to index both). A turn's id is
`<session id>_<turn number, 1-based over the whole session>`. Gold turns are the
`has_answer` turns of the `answer_session_ids`; `has_answer` is read only when
scoring, never written. Abstention questions (`_abs`) and questions without a
gold user turn are skipped, as in LongMemEval's evaluation.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import ValidationError
from .files import read_json_list
from .metrics import lme_evaluate, lme_evaluate_turn2session, percentile
from .report import table

KS = (1, 3, 5, 10, 30, 50)
METRICS = ("recall_any", "recall_all", "ndcg_any")
_DATE_RE = re.compile(r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:\s*\([A-Za-z]+\))?(?:\s+(\d{1,2}):(\d{2}))?\s*$")
_REQUIRED = ("question_id", "question_type", "question", "haystack_session_ids", "haystack_dates",
             "haystack_sessions", "answer_session_ids")


def parse_lme_date(text: str) -> datetime:
    """'2023/05/20 (Sat) 02:21' -> aware datetime (LongMemEval gives no zone; UTC is assumed)."""
    m = _DATE_RE.match(str(text))
    if not m:
        raise ValidationError(f"LongMemEval: cannot parse date {text!r}")
    y, mo, d, h, mi = m.groups()
    return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), tzinfo=UTC)


def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p, data = read_json_list(path, "LongMemEval")
    for i, e in enumerate(data):
        missing = [k for k in _REQUIRED if not isinstance(e, dict) or k not in e]
        if missing:
            raise ValidationError(f"{p}: entry {i} lacks {', '.join(missing)}")
        if not (len(e["haystack_session_ids"]) == len(e["haystack_dates"]) == len(e["haystack_sessions"])):
            raise ValidationError(f"{p}: entry {e['question_id']}: haystack lists differ in length")
    return data


def corpus(entry: dict[str, Any], roles: Sequence[str]) -> tuple[list[str], list[str]]:
    """(turn ids in haystack order, gold turn ids) for the indexed roles. Scoring side."""
    ids, gold = [], []
    answer_sessions = set(entry["answer_session_ids"])
    for sid, sess in zip(entry["haystack_session_ids"], entry["haystack_sessions"], strict=True):
        for i, turn in enumerate(sess, start=1):
            if turn.get("role") in roles:
                tid = f"{sid}_{i}"
                ids.append(tid)
                if sid in answer_sessions and turn.get("has_answer") is True:
                    gold.append(tid)
    return ids, gold


def ingest(mem: Any, entry: dict[str, Any], roles: Sequence[str]) -> int:
    """Add one question's haystack (role and content only) to scope user_id=question_id."""
    n = 0
    qid = str(entry["question_id"])
    for sid, date, sess in zip(entry["haystack_session_ids"], entry["haystack_dates"], entry["haystack_sessions"],
                               strict=True):
        turns = [
            {"role": t["role"], "content": t["content"], "source_ref": f"{sid}_{i}"}
            for i, t in enumerate(sess, start=1)
            if t.get("role") in roles and str(t.get("content", "")).strip()
        ]
        if turns:
            mem.add(turns, user_id=qid, session_id=f"{qid}/{sid}", timestamp=parse_lme_date(date))
            n += len(turns)
    return n


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}


def run_longmemeval(
    path: str | os.PathLike[str],
    *,
    methods: Sequence[str] = ("default",),
    roles: Sequence[str] = ("user",),
    max_questions: int | None = None,
    embedder: Any = None,
    db_path: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Ingest every question's haystack, search, and score; returns the report dict."""
    from .. import Memory

    data = [e for e in load(path) if not str(e["question_id"]).endswith("_abs")]
    skipped_abs = len(load(path)) - len(data)
    if max_questions:
        data = data[:max_questions]
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="engramdb-lme-")
        db_path = os.path.join(tmp.name, "lme.db")
    try:
        mem = Memory(db_path, embedder=embedder)
        _ = mem.embedder
        t0 = time.perf_counter()
        n_turns = 0
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("ingesting LongMemEval haystacks", total=len(data))
                for e in data:
                    n_turns += ingest(mem, e, roles)
                    bar.advance(task)
        else:
            for e in data:
                n_turns += ingest(mem, e, roles)
        ingest_s = time.perf_counter() - t0
        report: dict[str, Any] = {"benchmark": "longmemeval", "file": str(path), "questions": 0, "turns": n_turns,
                                  "skipped_abstention": skipped_abs, "skipped_no_gold": 0, "roles": list(roles),
                                  "ingest_s": ingest_s, "ks": list(KS), "methods": {}}
        scored = []
        for e in data:
            ids, gold = corpus(e, roles)
            if gold:
                scored.append((e, ids, gold))
        report["questions"] = len(scored)
        report["skipped_no_gold"] = len(data) - len(scored)
        for meth in methods:
            sess_rows, turn_rows, types, lat = [], [], [], []
            for e, ids, gold in scored:
                pos = {t: i for i, t in enumerate(ids)}
                t = time.perf_counter()
                res = mem.search(e["question"], user_id=str(e["question_id"]), limit=min(1000, len(ids)), mode=meth)
                lat.append((time.perf_counter() - t) * 1000)
                rankings: list[int] = []
                for r in res:
                    i = pos.get(r.memory.source_ref or "")
                    if i is not None and i not in rankings:
                        rankings.append(i)
                srow, trow = {}, {}
                for k in KS:
                    for name, val in zip(METRICS, lme_evaluate_turn2session(rankings, gold, ids, k), strict=True):
                        srow[f"{name}@{k}"] = val
                    for name, val in zip(METRICS, lme_evaluate(rankings, gold, ids, k), strict=True):
                        trow[f"{name}@{k}"] = val
                sess_rows.append(srow)
                turn_rows.append(trow)
                types.append(str(e["question_type"]))
            by_type = {}
            for qt in sorted(set(types)):
                idx = [i for i, x in enumerate(types) if x == qt]
                by_type[qt] = {"n": len(idx), "session": _mean([sess_rows[i] for i in idx]),
                               "turn": _mean([turn_rows[i] for i in idx])}
            report["methods"][meth] = {"session": _mean(sess_rows), "turn": _mean(turn_rows), "by_type": by_type,
                                       "latency_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95)}}
        mem.close()
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def longmemeval_markdown(rep: dict[str, Any], chart_name: str | None = None) -> str:
    parts = ["# LongMemEval retrieval (no LLM)", "",
             f"File `{rep['file']}`: {rep['questions']} questions scored ({rep['skipped_abstention']} abstention and "
             f"{rep['skipped_no_gold']} without a gold {'/'.join(rep['roles'])} turn skipped); {rep['turns']} turns "
             f"indexed in {rep['ingest_s']:.1f} s. Metrics as LongMemEval's eval_utils.py defines them.", ""]
    for lvl in ("session", "turn"):
        parts += [f"## {lvl.capitalize()} level", ""]
        head = ["method", *(f"{m}@{k}" for m in METRICS for k in rep["ks"])]
        rows = [[name, *(m[lvl][f"{mm}@{k}"] for mm in METRICS for k in rep["ks"])]
                for name, m in rep["methods"].items()]
        parts += [table(head, rows), ""]
    parts += ["## By question type (recall_any@5 / recall_all@5, session and turn)", ""]
    rows = []
    for name, m in rep["methods"].items():
        for qt, v in m["by_type"].items():
            rows.append([name, qt, v["n"], v["session"]["recall_any@5"], v["session"]["recall_all@5"],
                         v["turn"]["recall_any@5"], v["turn"]["recall_all@5"]])
    parts += [table(["method", "type", "n", "session any@5", "session all@5", "turn any@5", "turn all@5"], rows), ""]
    lat = [[n, f"{m['latency_ms']['p50']:.1f}", f"{m['latency_ms']['p95']:.1f}"] for n, m in rep["methods"].items()]
    parts += [table(["method", "p50 ms", "p95 ms"], lat), ""]
    if chart_name:
        parts += [f"![recall_any@k]({chart_name})", ""]
    return "\n".join(parts)
