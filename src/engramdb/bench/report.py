"""Benchmark reports: markdown tables and a dependency-free SVG chart (recall@k curves per method)."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _f(x: float) -> str:
    return f"{x:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(_f(c) if isinstance(c, float) else str(c) for c in r) + " |")
    return "\n".join(lines)


def _frame(w: int, h: int, left: int, right: int, pw: int, title: str, py: Callable[[float], float]) -> list[str]:
    """The start of a chart: the svg element, a white ground, the title and the y grid from 0 to 1."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2 - right / 2}" y="18" text-anchor="middle" font-size="13">{html.escape(title)}</text>']
    for i in range(6):
        y = i / 5
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
    return out


def svg_curves(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str) -> str:
    """A small line chart: one polyline per series of (x, y) points; y in [0, 1]."""
    w, h, left, right, top, bottom = 560, 340, 50, 150, 30, 40
    xs = sorted({x for pts in series.values() for x, _ in pts}) or [0.0, 1.0]
    pw, ph = w - left - right, h - top - bottom

    def px(x: float) -> float:  # categorical x axis: the k values are evenly spaced
        return left + (xs.index(x) / max(1, len(xs) - 1)) * pw

    def py(y: float) -> float:
        return top + (1 - max(0.0, min(1.0, y))) * ph

    out = _frame(w, h, left, right, pw, title, py)
    for x in xs:
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 6}" text-anchor="middle">{html.escape(xlabel)}</text>')
    out.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
               f'text-anchor="middle">{html.escape(ylabel)}</text>')
    for n, (name, pts) in enumerate(series.items()):
        color = _COLORS[n % len(_COLORS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly = top + 14 + 18 * n
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 32}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 38}" y="{ly}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def ascii_bars(values: dict[str, float], width: int = 40) -> str:
    """A text bar chart for terminals and markdown code blocks."""
    pad = max((len(k) for k in values), default=0)
    return "\n".join(f"{k.ljust(pad)} {'#' * round(v * width):<{width}} {v:.3f}" for k, v in values.items())


# -- LoCoMo --------------------------------------------------------------------------
_LOCOMO_COLS = ("recall@1", "recall@5", "recall@10", "recall@20", "hit_all@10", "session_recall@1",
                "session_recall@3", "session_recall@5", "mrr", "ndcg@10")


def locomo_markdown(rep: dict[str, Any], chart_name: str | None = None) -> str:
    meths = rep["methods"]
    parts = [
        "# LoCoMo retrieval (no LLM)",
        "",
        f"File `{rep['file']}`: conversations {', '.join(rep['conversations'])}; {rep['turns']} turns in "
        f"{rep['sessions']} sessions; {rep['questions']} questions with evidence; embedding model "
        f"`{rep.get('embedder', 'all-MiniLM-L6-v2')}`. "
        f"Ingest {rep['ingest_s']:.1f} s ({rep['ingest_turns_per_s']:.0f} turns/s).",
        "",
        *([f"**In-sample warning**: the learned ranker (default) was trained on {', '.join(rep['in_sample'])}; "
           "its figures on those conversations are optimistic. The honest estimate is the leave-one-"
           "conversation-out figure of `engramdb bench train-ranker`.", ""] if rep.get("in_sample") else []),
        "## Overall",
        "",
        table(["method", *_LOCOMO_COLS, "p50 ms", "p95 ms"],
              [[name, *(m["overall"][c] for c in _LOCOMO_COLS), f"{m['latency_ms']['p50']:.1f}",
                f"{m['latency_ms']['p95']:.1f}"] for name, m in meths.items()]),
        "",
    ]
    cats = sorted({c for m in meths.values() for c in m["by_category"]}, key=int)
    for metric in ("recall@10", "recall@5", "session_recall@5", "mrr"):
        parts += [f"## By category: {metric}", ""]
        head = ["method"] + [f"{c} {meths[next(iter(meths))]['by_category'].get(c, {}).get('name', '')} "
                             f"(n={meths[next(iter(meths))]['by_category'].get(c, {}).get('n', 0)})" for c in cats]
        rows = [[name, *(m["by_category"].get(c, {}).get(metric, 0.0) for c in cats)] for name, m in meths.items()]
        parts += [table(head, rows), ""]
    if chart_name:
        parts += ["## Turn-level recall@k", "", f"![recall@k per method]({chart_name})", ""]
    parts += ["```", ascii_bars({n: m["overall"]["recall@10"] for n, m in meths.items()}), "```", "",
              "(recall@10 per method)"]
    return "\n".join(parts) + "\n"


def locomo_chart(rep: dict[str, Any]) -> str:
    series = {name: [(float(k), m["overall"][f"recall@{k}"]) for k in (1, 5, 10, 20)]
              for name, m in rep["methods"].items()}
    return svg_curves(series, title="LoCoMo turn-level recall@k", xlabel="k", ylabel="recall@k")


def write_report(
    rep: dict[str, Any],
    out_dir: str | os.PathLike[str],
    stem: str,
    markdown: Callable[..., str] | None = None,
) -> dict[str, str]:
    """Write <stem>.json, <stem>.md and <stem>.svg; returns their paths. `markdown(rep, chart_name=...)` renders
    a benchmark other than LoCoMo (bench/longmemeval.py's `longmemeval_markdown`)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(d / f"{stem}.json"), "markdown": str(d / f"{stem}.md")}
    Path(paths["json"]).write_text(json.dumps(rep, indent=2, default=str), encoding="utf-8")
    if rep.get("benchmark") == "locomo":
        paths["chart"] = str(d / f"{stem}.svg")
        Path(paths["chart"]).write_text(locomo_chart(rep), encoding="utf-8")
        md = locomo_markdown(rep, chart_name=f"{stem}.svg")
    else:
        if markdown is None:
            raise ValueError(f"no markdown renderer for {rep.get('benchmark')!r}")
        paths["chart"] = str(d / f"{stem}.svg")
        Path(paths["chart"]).write_text(longmemeval_chart(rep), encoding="utf-8")
        md = markdown(rep, chart_name=f"{stem}.svg")
    Path(paths["markdown"]).write_text(md, encoding="utf-8")
    return paths


def longmemeval_chart(rep: dict[str, Any]) -> str:
    series = {f"{name} {lvl}": [(float(k), m[lvl][f"recall_any@{k}"]) for k in rep["ks"]]
              for name, m in rep["methods"].items() for lvl in ("session", "turn")}
    return svg_curves(series, title="LongMemEval recall_any@k", xlabel="k", ylabel="recall_any@k")


def svg_bars(groups: dict[str, dict[str, float]], *, title: str, ylabel: str) -> str:
    """A grouped bar chart: one group per key of `groups`, one bar per series inside it; values in [0, 1]."""
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    w, h, left, right, top, bottom = 680, 340, 90, 160, 30, 60
    pw, ph = w - left - right, h - top - bottom
    gw = pw / max(1, len(groups))
    bw = gw * 0.8 / max(1, len(series))

    def py(y: float) -> float:
        return top + (1 - max(0.0, min(1.0, y))) * ph

    out = _frame(w, h, left, right, pw, title, py)
    out.append(f'<text x="12" y="{top + ph / 2}" transform="rotate(-90 12 {top + ph / 2})" '
               f'text-anchor="middle">{html.escape(ylabel)}</text>')
    for gi, (gname, vals) in enumerate(groups.items()):
        x0 = left + gi * gw + gw * 0.1
        for si, s in enumerate(series):
            if s not in vals:
                continue
            v = vals[s]
            out.append(f'<rect x="{x0 + si * bw:.1f}" y="{py(v):.1f}" width="{bw - 1:.1f}" '
                       f'height="{top + ph - py(v):.1f}" fill="{_COLORS[si % len(_COLORS)]}"/>')
        lx, ly = left + gi * gw + gw / 2, top + ph + 14
        out.append(f'<text x="{lx:.1f}" y="{ly}" text-anchor="end" transform="rotate(-25 {lx:.1f} {ly})">'
                   f'{html.escape(gname)}</text>')
    for si, s in enumerate(series):
        ly = top + 14 + 18 * si
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 9}" width="20" height="10" '
                   f'fill="{_COLORS[si % len(_COLORS)]}"/>')
        out.append(f'<text x="{left + pw + 38}" y="{ly}">{html.escape(s)}</text>')
    out.append("</svg>")
    return "\n".join(out)
