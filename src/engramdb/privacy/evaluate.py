"""Precision and recall of the offline sensitivity classifier, per category, on a labelled JSONL set.

    python -m engramdb.privacy.evaluate tests/fixtures/privacy_labels.jsonl --split test

Each line: {"text": ..., "labels": [...], "split": "dev" | "test"}. Thresholds were tuned on "dev" only.

The secrets detector, on a corpus of fake secrets (every one must be caught) and on conversation turns that
hold none (false positives):

    python -m engramdb.privacy.evaluate --secrets tests/fixtures/privacy_secrets.jsonl
    python -m engramdb.privacy.evaluate --locomo path/to/locomo.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .labels import CATEGORIES, classify


def load(path: str | Path, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if split in (None, "all") or r.get("split") == split]


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Per category: support, precision, recall, f1; plus 'micro' over every category and 'none' (no label)."""
    out: dict[str, dict[str, float]] = {}
    tp_all = fp_all = fn_all = 0
    for c in CATEGORIES:
        tp = sum(c in g and c in p for g, p in zip(gold, pred, strict=True))
        fp = sum(c not in g and c in p for g, p in zip(gold, pred, strict=True))
        fn = sum(c in g and c not in p for g, p in zip(gold, pred, strict=True))
        tp_all, fp_all, fn_all = tp_all + tp, fp_all + fp, fn_all + fn
        out[c] = _prf(tp, fp, fn)
    out["micro"] = _prf(tp_all, fp_all, fn_all)
    # statements with nothing sensitive that got no label (how quiet the classifier is on everyday talk)
    none_gold = [not g for g in gold]
    tp = sum(ng and not p for ng, p in zip(none_gold, pred, strict=True))
    fp = sum(not ng and not p for ng, p in zip(none_gold, pred, strict=True))
    fn = sum(ng and bool(p) for ng, p in zip(none_gold, pred, strict=True))
    out["none"] = _prf(tp, fp, fn)
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"support": float(tp + fn), "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engramdb.privacy.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="tests/fixtures/privacy_labels.jsonl")
    ap.add_argument("--split", default="test", choices=["dev", "test", "all"])
    ap.add_argument("--embedder", default=None, help="embedding model (default: the configured one)")
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    ap.add_argument("--secrets", metavar="JSONL", help="instead: the secrets corpus, caught or missed")
    ap.add_argument("--locomo", metavar="JSON", help="instead: secrets found in LoCoMo turns (false positives)")
    args = ap.parse_args(argv)
    if args.secrets or args.locomo:
        try:
            return _secrets(args.secrets, args.locomo)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        rows = load(args.path, args.split)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.path}: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no statements in split {args.split!r}", file=sys.stderr)
        return 2
    from ..config import MemoryConfig
    from ..embed import make_embedder

    emb = make_embedder(args.embedder or MemoryConfig().embedder)
    pred = classify(emb, [r["text"] for r in rows])
    scores = score([r["labels"] for r in rows], pred)
    if args.json:
        print(json.dumps({"split": args.split, "n": len(rows), "scores": scores}, indent=2))
        return 0
    print(f"{len(rows)} statements, split {args.split}, embedder {emb.name}")
    print(f"{'category':<18} {'support':>7} {'precision':>9} {'recall':>7} {'f1':>6}")
    for c, s in scores.items():
        print(f"{c:<18} {int(s['support']):>7} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}")
    return 0


def _secrets(corpus: str | None, locomo: str | None) -> int:
    from .secrets import protect, scan

    if corpus:
        rows = load(corpus)
        missed = []
        for r in rows:
            out, found, _ = protect(r["text"], "mask")
            if not found or r["secret"] in out or any(p in out for p in r["secret"].split() if len(p) >= 4):
                missed.append(r["text"])
        print(f"secrets corpus: {len(rows) - len(missed)} of {len(rows)} caught")
        for t in missed:
            print(f"  missed: {t[:100]}")
    if locomo:
        data = json.loads(Path(locomo).read_text())
        turns = [t.get("text", "") for c in (data if isinstance(data, list) else [data])
                 for k, v in c.get("conversation", c).items() if k.startswith("session_") and isinstance(v, list)
                 for t in v if isinstance(t, dict)]
        hits = [(t, scan(t)) for t in turns]
        hits = [(t, f) for t, f in hits if f]
        print(f"LoCoMo turns: {len(turns)}, with a secret found (false positives): {len(hits)}")
        for t, f in hits:
            print(f"  {', '.join(x.kind for x in f)}: {t[:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
