"""Precision/recall of an extractor against hand-labelled statements (JSONL: text, facts[attribute, value]).

Matching: a predicted fact is correct when its attribute equals a gold attribute and the
normalised values are equal or one is a word-prefix of the other ("New York" ~ "New York
City", "a hospital" ~ "a hospital downtown"). Facts that end a value ("I quit my job at X")
are written with a leading "-" in the labels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel

from .base import Fact, norm_value
from .rules import extract_statements


def _group(attribute: str) -> str:
    if attribute.startswith("opinion:"):
        return "opinion"
    if attribute.startswith("favorite:"):
        return "favorite"
    if attribute in {"lives_in", "lived_in", "from", "born_in"}:
        return "place"
    if attribute in {"works_at", "job_title"}:
        return "work"
    if attribute in {"name", "age", "relationship_status", "studies", "education", "learning", "diet", "allergy"}:
        return "identity"
    return "people/pets"


def _values_match(a: str, b: str) -> bool:
    ta, tb = norm_value(a).split(), norm_value(b).split()
    if not ta or not tb:
        return ta == tb
    short, long_ = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    return long_[: len(short)] == short


def _as_pair(f: Fact) -> tuple[str, str]:
    return f.attribute, ("-" + f.value if f.ends else f.value)


class PRRow(BaseModel):
    group: str
    gold: int
    predicted: int
    correct: int
    precision: float
    recall: float


def evaluate(path: str | Path, extract=None) -> tuple[list[PRRow], list[dict]]:
    """Rows per attribute group plus 'all', and the list of errors (false positives / misses)."""
    extract = extract or (lambda text: extract_statements(text, "user"))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # gold, predicted, correct
    errors: list[dict] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        gold = [(g["attribute"], g["value"]) for g in item["facts"]]
        pred = [_as_pair(f) for f in extract(item["text"])]
        used: set[int] = set()
        for ga, _ in gold:
            counts[_group(ga)][0] += 1
        for pa, pv in pred:
            counts[_group(pa)][1] += 1
            hit = next(
                (i for i, (ga, gv) in enumerate(gold) if i not in used and ga == pa and _values_match(gv, pv)), None
            )
            if hit is None:
                errors.append({"id": item["id"], "text": item["text"], "false_positive": [pa, pv]})
            else:
                used.add(hit)
                counts[_group(pa)][2] += 1
        for i, g in enumerate(gold):
            if i not in used:
                errors.append({"id": item["id"], "text": item["text"], "missed": list(g)})
    rows = []
    total = [0, 0, 0]
    for group in sorted(counts):
        ng, npred, nc = counts[group]
        total = [total[0] + ng, total[1] + npred, total[2] + nc]
        rows.append(
            PRRow(group=group, gold=ng, predicted=npred, correct=nc, precision=nc / npred if npred else 1.0,
                  recall=nc / ng if ng else 1.0)
        )
    ng, npred, nc = total
    rows.append(
        PRRow(group="all", gold=ng, predicted=npred, correct=nc, precision=nc / npred if npred else 1.0,
              recall=nc / ng if ng else 1.0)
    )
    return rows, errors


def format_table(rows: list[PRRow]) -> str:
    lines = ["| group | gold | predicted | correct | precision | recall |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.group} | {r.gold} | {r.predicted} | {r.correct} | {r.precision:.2f} | {r.recall:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m engramdb.extract.evaluate FILE.jsonl...`: the rule extractor's table for each labelled file."""
    import sys

    paths = argv if argv is not None else sys.argv[1:]
    if not paths:
        print("usage: python -m engramdb.extract.evaluate LABELLED.jsonl [...] [--errors]", file=sys.stderr)
        return 2
    show_errors = "--errors" in paths
    for p in (x for x in paths if x != "--errors"):
        rows, errors = evaluate(p)
        print(f"\n{p}\n{format_table(rows)}")
        for e in errors if show_errors else []:
            print("  error:", e)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
