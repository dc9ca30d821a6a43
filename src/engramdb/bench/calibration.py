"""Score calibration on LoCoMo-format conversations: fit the maps of retrieve/calibrate.py, and check them.

    engramdb bench calibration locomo_dev.json [--write-model src/engramdb/retrieve/models/calibration.json]

Each conversation is ingested through the public API as `bench locomo` does, and every question with evidence
is asked with `Memory.search` (20 results) in each pipeline: the default (learned ranker, with and without late
interaction), the linear one, and the bm25 / dense / rrf baselines. A result is relevant when one of its
dialogue ids is in the question's evidence.

Out of fold, twice over: each conversation's questions are ranked by a learned ranker fitted on the other
conversations (the shipped ranker saw them all, so its scores there would be too confident; needs
LightGBM, `--shipped-ranker` skips this), and its scores are calibrated by maps fitted on the other
conversations' results. The reliability table (score bucket -> observed precision) is computed from those
out-of-fold scores only. The maps written with `--write-model` are then fitted on every conversation.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..retrieve.calibrate import Calibration, features, fit_logistic, reliability
from .locomo import MemoEmbedder, ingest, load_conversations, load_questions, to_dia_ids

# (key, Memory.search mode, retrieval overrides): one per fitted map
PIPELINES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("learned", "default", {}),
    ("learned_plain", "default", {"late_interaction": False}),
    ("linear", "default", {"ranker": "linear"}),
    ("bm25", "bm25", {}),
    ("dense", "dense", {}),
    ("rrf", "rrf", {}),
)


def _fold_rankers(path: str | os.PathLike[str], convs: Sequence[str], emb: Any, tmp: str, limit: int,
                  progress: bool) -> dict[tuple[str, bool], str]:
    """(held-out conversation, late) -> a ranker model file fitted on the other conversations."""
    from ..retrieve.features import FEATURES, LATE_FEATURES
    from ..retrieve.ranker import TreeEnsemble
    from . import train_ranker

    rows = train_ranker.collect(path, list(convs), embedder=emb, limit=limit, progress=progress)
    out: dict[tuple[str, bool], str] = {}
    n_plain = len(FEATURES)
    for held in convs:
        train = [r for r in rows if r["conv"] != held]
        for late in (True, False):
            if late and train[0]["X"].shape[1] == n_plain:
                continue
            part = train if late else [{**r, "X": r["X"][:, :n_plain]} for r in train]
            names = [*FEATURES, *LATE_FEATURES] if late else list(FEATURES)
            models = train_ranker.fit(part)
            ens = TreeEnsemble.from_lightgbm(models[0].booster_.dump_model(), names,
                                             {"conversations": sorted({r["conv"] for r in part})})
            target = os.path.join(tmp, f"ranker-{held}-{'late' if late else 'plain'}.json")
            with open(target, "w", encoding="utf-8") as fh:
                json.dump(ens.to_json(), fh)
            out[(held, late)] = target
    return out


def collect(path: str | os.PathLike[str], *, conversations: Sequence[str] | None = None, embedder: Any = None,
            limit: int = 20, oof_ranker: bool = True, every: int = 1, progress: bool = False
            ) -> list[dict[str, Any]]:
    """One row per (pipeline, question): conversation, key, the raw features of its results, their labels.
    `every`: search every n-th question only (the fold rankers still learn from all of them)."""
    from rich.progress import Progress

    from .. import Memory
    from ..config import MemoryConfig
    from ..embed import make_embedder

    convs = load_conversations(path, conversations)
    if not convs:
        raise ValidationError("no conversations selected")
    emb = MemoEmbedder(embedder if embedder is not None else make_embedder())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="engramdb-calibration-") as tmp:
        db = os.path.join(tmp, "calibration.db")
        mem = Memory(db, embedder=emb)
        ids: dict[str, str] = {}
        try:
            with Progress(transient=True, disable=not progress) as bar:
                task = bar.add_task("ingesting turns", total=sum(len(s.turns) for c in convs for s in c.sessions))
                for conv in convs:
                    ids.update(ingest(mem, conv, lambda n: bar.advance(task, n)))
        finally:
            mem.close()
        names = [c.sample_id for c in convs]
        rankers = _fold_rankers(path, names, emb, tmp, limit, progress) if oof_ranker else {}
        questions = load_questions(path, names)[::every]  # scoring side: read only now
        with Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task("searching", total=len(questions) * len(PIPELINES))
            for key, mode, retrieval in PIPELINES:
                for sample in names:
                    over = dict(retrieval)
                    late = retrieval.get("late_interaction", True)
                    if key.startswith("learned") and (sample, late) in rankers:
                        over["ranker_path"] = rankers[(sample, late)]
                    m = Memory(db, embedder=emb.inner, config=MemoryConfig(retrieval=over))
                    try:
                        for q in questions:
                            if q.sample_id != sample:
                                continue
                            res = m.search(q.question, user_id=sample, limit=limit, mode=mode)
                            gold = set(q.evidence)
                            y = [float(any(d in gold for d in to_dia_ids([r], ids))) for r in res]
                            rows.append({"conv": sample, "key": key, "category": q.category,
                                         "X": features(_raw(res), key), "y": np.array(y),
                                         "evidence": len(gold)})
                            bar.advance(task)
                    finally:
                        m.close()
    return rows


def _raw(results: list[Any]) -> list[Any]:
    """The results with their raw scores back (search returns calibrated ones; features read the raw)."""
    return [r.model_copy(update={"score": r.signals.get("raw_score", r.score)}) for r in results]


def _apply(cal: Calibration, row: dict[str, Any]) -> np.ndarray:
    """Calibrated scores of one result list, exactly as the search pipeline computes them."""
    p = cal.probabilities(row["X"], row["key"]) if len(row["X"]) else np.zeros(0)
    return np.minimum.accumulate(p) if len(p) else p


def fit_maps(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    maps = {}
    for key in dict.fromkeys(r["key"] for r in rows):
        sub = [r for r in rows if r["key"] == key and len(r["y"])]
        coef, b = fit_logistic(np.vstack([r["X"] for r in sub]), np.concatenate([r["y"] for r in sub]))
        maps[key] = {"coef": coef.tolist(), "intercept": b}
    return maps


def evaluate(rows: Sequence[dict[str, Any]], *, thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.5)
             ) -> dict[str, Any]:
    """Out of fold: each conversation's lists scored by maps fitted on the others."""
    convs = list(dict.fromkeys(r["conv"] for r in rows))
    if len(convs) < 2:
        raise ValidationError("out-of-fold calibration needs at least two conversations")
    preds: dict[int, np.ndarray] = {}
    for held in convs:
        cal = Calibration(fit_maps([r for r in rows if r["conv"] != held]))
        for n, r in enumerate(rows):
            if r["conv"] == held:
                preds[n] = _apply(cal, r)
    out: dict[str, Any] = {}
    for key in dict.fromkeys(r["key"] for r in rows):
        idx = [n for n, r in enumerate(rows) if r["key"] == key]
        p = np.concatenate([preds[n] for n in idx])
        y = np.concatenate([rows[n]["y"] for n in idx])
        top1 = np.array([preds[n][0] for n in idx if len(preds[n])])
        top1_y = np.array([rows[n]["y"][0] for n in idx if len(preds[n])])
        cut = []
        for t in thresholds:
            keep = p >= t
            kept_lists = [n for n in idx if len(preds[n]) and preds[n][0] >= t]
            cut.append({"threshold": t, "kept": float(keep.mean()), "precision": float(y[keep].mean()) if keep.any()
                        else math.nan, "lists_kept": len(kept_lists) / len(idx)})
        out[key] = {
            "lists": len(idx), "results": int(len(p)), "base_rate": float(y.mean()),
            "brier": float(np.mean((p - y) ** 2)),
            "ece": _ece(p, y),
            "top1_mean_score": float(top1.mean()), "top1_precision": float(top1_y.mean()),
            "table": reliability(p, y), "thresholds": cut,
        }
    return out


def _ece(p: np.ndarray, y: np.ndarray) -> float:
    """Expected calibration error over ten equal-width buckets."""
    return float(sum(r["n"] * abs(r["mean_score"] - r["precision"]) for r in reliability(p, y) if r["n"]) / len(p))


def run(path: str | os.PathLike[str], *, conversations: Sequence[str] | None = None, embedder: Any = None,
        limit: int = 20, oof_ranker: bool = True, every: int = 1, progress: bool = False
        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(calibration JSON fitted on everything, report with the out-of-fold tables)."""
    if not isinstance(every, int) or every < 1:
        raise ValidationError("every must be a positive integer")
    rows = collect(path, conversations=conversations, embedder=embedder, limit=limit, oof_ranker=oof_ranker,
                   every=every, progress=progress)
    convs = sorted({r["conv"] for r in rows})
    info = {"fitted_on": os.path.basename(str(path)), "conversations": convs,
            "questions": len({(r["conv"], n) for n, r in enumerate(rows) if r["key"] == "learned"}),
            "question_sample": f"every {every}", "limit": limit, "out_of_fold_ranker": oof_ranker,
            "fitted_at": datetime.now(UTC).strftime("%Y-%m-%d")}
    report = {"benchmark": "calibration", "file": str(path), **info, "out_of_fold": evaluate(rows)}
    model = Calibration(fit_maps(rows), info).to_json()
    report["maps"] = model["maps"]
    return model, report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Score calibration, out of fold ({report['questions']} questions, "
             f"{len(report['conversations'])} conversations, {report['limit']} results each)", ""]
    if report.get("out_of_fold_ranker"):
        lines += ["Each conversation ranked by a learned ranker fitted on the others, and calibrated by maps fitted "
                  "on the others.", ""]
    for key, ev in report["out_of_fold"].items():
        lines += [f"## {key}", "",
                  f"{ev['lists']} lists, {ev['results']} results; relevant: {ev['base_rate']:.3f}; "
                  f"Brier {ev['brier']:.4f}; ECE {ev['ece']:.4f}; rank 1: mean score {ev['top1_mean_score']:.3f}, "
                  f"precision {ev['top1_precision']:.3f}", "",
                  "| score | results | mean score | precision |", "|---|---:|---:|---:|"]
        for r in ev["table"]:
            if r["n"]:
                lines.append(f"| {r['lo']:.1f}-{r['hi']:.1f} | {r['n']} | {r['mean_score']:.3f} | "
                             f"{r['precision']:.3f} |")
        lines += ["", "| threshold | results kept | precision of kept | lists with a result kept |",
                  "|---:|---:|---:|---:|"]
        for c in ev["thresholds"]:
            lines.append(f"| {c['threshold']:.2f} | {c['kept']:.3f} | {c['precision']:.3f} | {c['lists_kept']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def save(report: dict[str, Any], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jpath, mpath = os.path.join(out_dir, "calibration.json"), os.path.join(out_dir, "calibration.md")
    with open(jpath, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    with open(mpath, "w", encoding="utf-8") as fh:
        fh.write(markdown(report))
    return jpath, mpath
