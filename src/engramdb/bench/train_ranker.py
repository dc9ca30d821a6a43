"""Train the learned ranker (retrieve/ranker.py) on LoCoMo-format conversations.

    engramdb bench train-ranker locomo_dev.json --out ranker.json [--ablation]

The conversations are ingested through the public API exactly as `bench locomo`
does; each question's candidate pool and features come from the engine's own
`Retriever.candidates` + `candidate_features`, so training and serving compute
the same thing. Labels: a candidate is relevant when its dialogue id is in the
question's evidence (read only after the pool is built).

Honesty checks printed with the model: leave-one-conversation-out recall@10 and
session recall@5 (each conversation ranked by a model that never saw it), per
fold and overall; `--ablation` refits with each feature group held constant.
Training needs LightGBM (`pip install '.[train]'`); serving does not.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import ConfigError, ValidationError
from ..resources import make_filters
from ..retrieve.features import FEATURES, LATE_FEATURES, NEIGHBOURS, QUERY_WORDS, WINDOWS, candidate_features
from .locomo import MemoEmbedder, ingest, load_conversations, load_questions, score_question
from .metrics import average

PARAMS: dict[str, Any] = {  # small trees generalised best across held-out conversations (see docs/retrieval.md)
    "objective": "lambdarank", "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 7,
    "min_child_samples": 50, "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
    "deterministic": True, "force_row_wise": True, "n_jobs": 1, "verbose": -1,
}
GROUPS: dict[str, tuple[str, ...]] = {
    "bm25": ("bm25_norm", "bm25_rank_log"),
    "dense": ("dense_z", "dense_cos", "dense_rank_log"),
    "neighbours": tuple(f"{n}_{f}" for n, _ in NEIGHBOURS for f in ("fused", "dense_z", "bm25_norm")),
    "session": ("session_top3", "session_max", "session_count", "session_rank_log"),
    "speaker": ("speaker_named", "query_names_speaker"),
    "time": ("time_inside", "time_distance_log", "query_has_time"),
    "text form (words, '?', names, numbers, time words, quotes)": (
        "words", "is_question", "names", "has_number", "time_words", "has_quote", "ends_question"),
    "neighbour pool (expanded, windows, offsets)": (
        "expanded", *(f"win{w}_{f}" for w in WINDOWS for f in ("fused", "dense_z", "bm25_norm")),
        "offset_session_best", "distance_top3"),
    "query cues": (*(f"q_starts_{w}" for w in QUERY_WORDS), "q_words", "q_hypothetical", "q_year", "q_how_many",
                   "q_plural"),
    "late interaction (MaxSim)": LATE_FEATURES,  # only where the model gives token vectors
}


def _lightgbm() -> Any:
    try:
        import lightgbm
    except ImportError as exc:
        raise ConfigError("training the ranker needs LightGBM: pip install '.[train]'") from exc
    return lightgbm


def collect(path: str | os.PathLike[str], conversations: Sequence[str] | None = None, *, embedder: Any = None,
            limit: int = 20, max_sessions: int | None = None, progress: bool = False, late: bool = True
            ) -> list[dict[str, Any]]:
    """One row per question with evidence: conversation, category, candidate dia ids, features, labels. With
    `late` and a model that gives token vectors, the rows include the late-interaction features."""
    from rich.progress import Progress, track

    from .. import Memory
    from ..embed import make_embedder

    convs = load_conversations(path, conversations, max_sessions)
    if not convs:
        raise ValidationError("no conversations selected")
    emb = MemoEmbedder(embedder if embedder is not None else make_embedder())
    late = late and emb.has_tokens
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="engramdb-train-") as tmp:
        mem = Memory(os.path.join(tmp, "train.db"), embedder=emb)
        try:
            ids: dict[str, str] = {}
            with Progress(transient=True, disable=not progress) as bar:
                task = bar.add_task("ingesting turns", total=sum(len(s.turns) for c in convs for s in c.sessions))
                for conv in convs:
                    ids.update(ingest(mem, conv, lambda n: bar.advance(task, n)))
            questions = load_questions(path, [c.sample_id for c in convs])  # scoring side: read only now
            have = set(ids.values())
            questions = [q for q in questions if any(e in have for e in q.evidence)]  # a slice: answerable ones
            retriever = mem.retrieval.retriever()
            fetch = mem.retrieval.fetch_size(limit)
            for q in track(questions, description="building candidate features", transient=True, disable=not progress):
                f = make_filters(q.sample_id, None, None, None, None, None, None, current_only=True)
                query = mem.retrieval.retrieval_query(q.question)
                pool = retriever.candidates(query, f, fetch, late=late)
                if pool is None:
                    continue
                dia = [ids.get(i, "") for i in pool.ids]
                gold = set(q.evidence)
                rows.append({"conv": q.sample_id, "category": q.category, "evidence": q.evidence, "dia": dia,
                             "X": candidate_features(pool, query, late=late),
                             "y": np.array([float(d in gold) for d in dia])})
        finally:
            mem.close()
    return rows


def _masked(X: np.ndarray, drop: Sequence[int]) -> np.ndarray:
    """X with the `drop` columns held constant, so no tree can split on them (the ablation)."""
    if not drop:
        return X
    X = X.copy()
    X[:, list(drop)] = 0.0
    return X


def fit(rows: Sequence[dict[str, Any]], params: dict[str, Any] | None = None, drop: Sequence[int] = (),
        seeds: int = 1) -> list[Any]:
    """One LightGBM ranker per seed (row and column subsampling differ); their mean is the model. More seeds
    are steadier but cost serving time: every search walks every tree."""
    lgb = _lightgbm()
    X = _masked(np.vstack([r["X"] for r in rows]), drop)
    y = np.concatenate([r["y"] for r in rows])
    models = []
    for seed in range(seeds):
        model = lgb.LGBMRanker(**{**PARAMS, "random_state": seed, **(params or {})})
        model.fit(X, y, group=[len(r["y"]) for r in rows])
        models.append(model)
    return models


def predict(models: Sequence[Any], X: np.ndarray) -> np.ndarray:
    return np.mean([m.predict(X) for m in models], axis=0)


def _score(rows: Sequence[dict[str, Any]], preds: Sequence[np.ndarray], limit: int) -> dict[str, Any]:
    scored = []
    for r, p in zip(rows, preds, strict=True):
        ranked = [r["dia"][k] for k in np.argsort(-p, kind="stable")[:limit] if r["dia"][k]]
        scored.append(score_question(ranked, r["evidence"]))
    keep = ("recall@5", "recall@10", "recall@20", "session_recall@5")
    out: dict[str, Any] = {k: v for k, v in average(scored).items() if k in keep}
    out["n"] = len(rows)
    return out


def cross_validate(rows: Sequence[dict[str, Any]], *, drop: Sequence[int] = (), limit: int = 20,
                   params: dict[str, Any] | None = None, seeds: int = 1) -> dict[str, Any]:
    """Leave one conversation out: each is ranked by a model fitted on the others."""
    convs = list(dict.fromkeys(r["conv"] for r in rows))
    if len(convs) < 2:
        raise ValidationError("cross-validation needs at least two conversations")
    preds: dict[int, np.ndarray] = {}
    folds = {}
    for held in convs:
        train = [r for r in rows if r["conv"] != held]
        model = fit(train, params, drop, seeds)
        test = [(n, r) for n, r in enumerate(rows) if r["conv"] == held]
        for n, r in test:
            preds[n] = predict(model, _masked(r["X"], drop))
        folds[held] = _score([r for _, r in test], [preds[n] for n, _ in test], limit)
    order = range(len(rows))
    overall = _score(rows, [preds[n] for n in order], limit)
    by_cat: dict[str, Any] = {}
    for c in sorted({r["category"] for r in rows}):
        idx = [n for n in order if rows[n]["category"] == c]
        by_cat[str(c)] = _score([rows[n] for n in idx], [preds[n] for n in idx], limit)
    return {"overall": overall, "by_conversation": folds, "by_category": by_cat}


def train(path: str | os.PathLike[str], *, conversations: Sequence[str] | None = None, ablation: bool = False,
          embedder: Any = None, limit: int = 20, max_sessions: int | None = None, params: dict[str, Any] | None = None,
          progress: bool = False, seeds: int = 1, late: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model JSON, report): the model fitted on every selected conversation, and its honesty checks. `late`:
    with the late-interaction features where the embedding model has token vectors (`False`: the plain model,
    for stores without them)."""
    from ..embed import make_embedder
    from ..retrieve.ranker import TreeEnsemble

    lgb = _lightgbm()
    embedder = embedder if embedder is not None else make_embedder()
    rows = collect(path, conversations, embedder=embedder, limit=limit, max_sessions=max_sessions, progress=progress,
                   late=late)
    if not rows:
        raise ValidationError("no questions with evidence in the selected conversations")
    names = list(FEATURES) + (list(LATE_FEATURES) if rows[0]["X"].shape[1] > len(FEATURES) else [])
    report: dict[str, Any] = {
        "benchmark": "train-ranker", "file": str(path), "conversations": sorted({r["conv"] for r in rows}),
        "questions": len(rows), "embedder": embedder.name, "features": len(names),
        "late_interaction": len(names) > len(FEATURES), "params": PARAMS,
        "lightgbm": lgb.__version__,
        "seeds": seeds, "cross_validation": cross_validate(rows, limit=limit, params=params, seeds=seeds),
    }
    if ablation:
        report["ablation"] = {}
        for name, cols in GROUPS.items():
            if not set(cols) <= set(names):
                continue
            drop = [names.index(c) for c in cols]
            report["ablation"][name] = cross_validate(rows, drop=drop, limit=limit, params=params,
                                                      seeds=seeds)["overall"]
    models = fit(rows, params, seeds=seeds)
    info = {
        "trained_on": os.path.basename(str(path)), "conversations": report["conversations"],
        "questions": len(rows), "embedder": embedder.name, "late_interaction": len(names) > len(FEATURES),
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "lightgbm": lgb.__version__,
        "params": {k: v for k, v in {**PARAMS, **(params or {})}.items() if k != "verbose"}, "seeds": seeds,
        "loo_cv": report["cross_validation"]["overall"],
    }
    ens = TreeEnsemble.average(
        [TreeEnsemble.from_lightgbm(m.booster_.dump_model(), names) for m in models], info)
    X = np.vstack([r["X"] for r in rows[:50]])
    if not np.allclose(ens.predict(X), predict(models, X), atol=1e-6):  # the exported trees must be the model
        raise RuntimeError("exported ranker disagrees with LightGBM; refusing to write it")
    return ens.to_json(), report


def markdown(report: dict[str, Any]) -> str:
    cv = report["cross_validation"]
    cols = ("recall@5", "recall@10", "recall@20", "session_recall@5")
    lines = [
        f"# Learned ranker: leave-one-conversation-out ({report['questions']} questions, "
        f"{len(report['conversations'])} conversations, embedding model {report.get('embedder', 'all-MiniLM-L6-v2')})",
        "",
        "| held out | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols),
    ]
    for name, row in [*cv["by_conversation"].items(), ("**all**", cv["overall"])]:
        lines.append(f"| {name} | {row['n']} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    lines += ["", "| category | n | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    from .locomo import CATEGORIES

    for c, row in cv["by_category"].items():
        lines.append(f"| {CATEGORIES.get(int(c), c)} | {row['n']} | " + " | ".join(f"{row[k]:.3f}" for k in cols)
                     + " |")
    if report.get("ablation"):
        base = cv["overall"]["recall@10"]
        lines += ["", "| features held constant | recall@10 | change | session_recall@5 |", "|---|---:|---:|---:|"]
        for name, row in report["ablation"].items():
            lines.append(f"| {name} | {row['recall@10']:.3f} | {row['recall@10'] - base:+.3f} | "
                         f"{row['session_recall@5']:.3f} |")
    return "\n".join(lines) + "\n"



def save(report: dict[str, Any], out_dir: str) -> tuple[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    jpath, mpath = os.path.join(out_dir, "train_ranker.json"), os.path.join(out_dir, "train_ranker.md")
    with open(jpath, "w") as fh:
        json.dump(report, fh, indent=2)
    with open(mpath, "w") as fh:
        fh.write(markdown(report))
    return jpath, mpath
