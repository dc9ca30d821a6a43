"""`engramdb bench ingest`: ingest throughput against the model's own, measured in one process.

Rows, all over the same LoCoMo turns (whole sessions, in file order, until `turns` are reached):

* raw: sentence-transformers `encode` of the turns ('Speaker: text') once, batch 64: what the model can do;
* embed: EngramDB's `embed` of the same texts (packed rows in ONNX Runtime, embed/packed.py);
* add: `Memory.add` of each whole session into a fresh SQLite store (keys, context vectors, token vectors,
  keyword index, rule extraction, the write): the figure the ratio add/raw is about. A short turn's context
  pair is embedded as a text of its own, a longer turn's composed from the turns' own run (embed/local.py),
  all of a session's texts in packed rows;
* add, every pair embedded / every pair composed: the same with the other two context modes (`:exact`, the
  model sees about three times the raw tokens; `:composed`, each turn encoded once);
* ONNX batches / int8: the transformer in ONNX Runtime for padded batches of 64 sorted by length, in float and
  dynamically quantized to int8 (int8's add runs packed, through its own quantized packed copy);
* hashing: `add` with the hashing embedder, which measures the engine without a model.

Each timed step runs `repeat` times, interleaved, and the best run counts: on a shared machine the best is
the least disturbed. With `recall_conversations`, the LoCoMo recall@10 of the default pipeline is measured for
the float and the int8 model, so int8's speed-up is printed beside what it costs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from .locomo import Conversation, Session, load_conversations
from .report import table

Progress = Callable[[str], None]


def pick_sessions(path: str | os.PathLike[str], turns: int) -> list[tuple[Conversation, Session]]:
    """Whole sessions in file order until at least `turns` turns (all of them when the file has fewer)."""
    out: list[tuple[Conversation, Session]] = []
    n = 0
    for conv in load_conversations(path):
        for sess in conv.sessions:
            if n >= turns:
                return out
            out.append((conv, sess))
            n += len(sess.turns)
    return out


def _session_turns(sess: Session) -> list[dict[str, Any]]:
    return [{"speaker": t.speaker, "text": t.text, "timestamp": (sess.when + timedelta(seconds=i)).isoformat(),
             "source_ref": t.dia_id} for i, t in enumerate(sess.turns)]


def _add_all(embedder: Any, sessions: Sequence[tuple[Conversation, Session]], tmp: str) -> float:
    """Seconds to add every session, one `add` per session, into a fresh store."""
    from .. import Memory

    fd, db = tempfile.mkstemp(dir=tmp, suffix=".db")
    os.close(fd)
    os.unlink(db)
    mem = Memory(db, embedder=embedder)
    try:
        _ = mem.embedder  # the store's model record is written before the clock starts
        t = time.perf_counter()
        for conv, sess in sessions:
            mem.add(_session_turns(sess), user_id=conv.sample_id, session_id=f"{conv.sample_id}/{sess.number}")
        return time.perf_counter() - t
    finally:
        mem.close()


def _best(fn: Callable[[], float], repeat: int) -> float:
    return min(fn() for _ in range(repeat))


def _timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def run() -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return run


def run(
    path: str | os.PathLike[str],
    *,
    turns: int = 1024,
    model: str = "all-MiniLM-L6-v2",
    batch_size: int = 64,
    repeat: int = 2,
    variants: bool = True,
    context_modes: bool = True,
    recall_conversations: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    from ..embed import HashingEmbedder
    from ..embed.local import SentenceTransformerEmbedder

    if turns < 1 or repeat < 1 or batch_size < 1:
        raise ValidationError("bench ingest: turns, repeat and batch size must be at least 1")
    say = progress or (lambda _msg: None)
    sessions = pick_sessions(path, turns)
    texts = [f"{t.speaker}: {t.text}" for _, s in sessions for t in s.turns]
    n = len(texts)
    if not n:
        raise ValidationError("bench ingest: no turns in the file")
    emb = SentenceTransformerEmbedder(model, batch_size=batch_size)
    st = emb._model  # the same loaded model: raw and EngramDB share every weight
    exact_emb = SentenceTransformerEmbedder(model, batch_size=batch_size, exact_context=True)
    composed_emb = SentenceTransformerEmbedder(model, batch_size=batch_size, pair_tokens=0)
    rows: list[dict[str, Any]] = []

    def raw() -> None:
        st.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)

    say("warming up")
    st.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    emb.embed(["warm up"])
    emb.embed(["warm up"])  # the second small run loads the query copy (ONNX), outside every clock
    emb.embed_tokens(texts[:16])  # and a session-sized run loads the batch copy
    with tempfile.TemporaryDirectory(prefix="engramdb-bench-ingest-") as tmp:
        timings: dict[str, float] = {}
        steps: dict[str, Callable[[], float]] = {
            "raw": _timed(raw),
            "embed": _timed(lambda: emb.embed(texts)),
            "add": lambda: _add_all(emb, sessions, tmp),
        }
        if context_modes:
            steps["add_exact"] = lambda: _add_all(exact_emb, sessions, tmp)
            steps["add_composed"] = lambda: _add_all(composed_emb, sessions, tmp)
        for r in range(repeat):  # interleaved: a burst of load elsewhere hits every row alike
            for name, fn in steps.items():
                say(f"run {r + 1}/{repeat}: {name}")
                timings[name] = min(timings.get(name, float("inf")), fn())
        got: dict[str, float] = {}
        if variants:
            onnx_emb = SentenceTransformerEmbedder(model, batch_size=batch_size, onnx_batches=True)
            int8_emb = SentenceTransformerEmbedder(model, batch_size=batch_size, int8=True)
            say("ONNX batches and int8: loading the copies")
            onnx_emb.embed(texts[:16])
            int8_emb.embed(texts[:16])
            more = {
                "onnx": _timed(lambda: onnx_emb.embed(texts)),
                "int8": _timed(lambda: int8_emb.embed(texts)),
                "add_int8": lambda: _add_all(int8_emb, sessions, tmp),
                "raw": _timed(raw),  # the raw figure again, next to these rows
            }
            for r in range(repeat):
                for name, fn in more.items():
                    say(f"run {r + 1}/{repeat}: {name}")
                    got[name] = min(got.get(name, float("inf")), fn())
        # every ratio against the best raw run: the machine's quietest moment is the model's own speed
        raw_s = min(timings["raw"], got.get("raw", float("inf")))
        named = [("sentence-transformers encode, once", "texts/s", raw_s), ("EngramDB embed", "texts/s",
                 timings["embed"]), ("EngramDB add (whole sessions)", "turns/s", timings["add"])]
        if context_modes:
            named += [("add, every context pair embedded (:exact)", "turns/s", timings["add_exact"]),
                      ("add, every context pair composed (:composed)", "turns/s", timings["add_composed"])]
        if variants:
            named += [("embed, batches in ONNX Runtime (float)", "texts/s", got["onnx"]),
                      ("embed, int8 (ONNX Runtime)", "texts/s", got["int8"]), ("add, int8", "turns/s", got["add_int8"])]
        rows += [{"name": a, "unit": u, "rate": n / sec, "vs_raw": raw_s / sec} for a, u, sec in named]
        say("hashing embedder (engine only)")
        hashing_s = _best(lambda: _add_all(HashingEmbedder(384), sessions, tmp), repeat)
        rows.append({"name": "add, hashing-384 (engine only)", "unit": "turns/s", "rate": n / hashing_s,
                     "vs_raw": None})
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "file": str(path),
        "model": emb.name,
        "turns": n,
        "sessions": len(sessions),
        "batch_size": batch_size,
        "repeat": repeat,
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "rows": rows,
        "add_vs_raw": raw_s / timings["add"],
    }
    if recall_conversations is not None:
        report["recall"] = int8_recall(path, recall_conversations, model, say)
    return report


def int8_recall(path: str | os.PathLike[str], conversations: Sequence[str], model: str,
                say: Progress) -> dict[str, Any]:
    """LoCoMo turn recall@10 (default pipeline, shipped ranker) of the default model, of it with every context
    pair embedded and every pair composed, and of its int8 copy, with each one's ingest and search speed."""
    from ..embed.local import SentenceTransformerEmbedder
    from .locomo import run_locomo

    out: dict[str, Any] = {"conversations": list(conversations) or "all"}
    modes: dict[str, dict[str, Any]] = {"float": {}, "exact": {"exact_context": True}, "composed": {"pair_tokens": 0},
                                         "int8": {"int8": True}}
    for label, kw in modes.items():
        say(f"LoCoMo recall, {label}")
        rep = run_locomo(path, conversations=list(conversations) or None,
                         embedder=SentenceTransformerEmbedder(model, **kw))
        m = rep["methods"]["default"]
        out[label] = {"recall@10": m["overall"]["recall@10"], "ingest_turns_per_s": rep["ingest_turns_per_s"],
                      "search_p50_ms": m["latency_ms"]["p50"], "questions": m["n"]}
    for label in ("exact", "composed", "int8"):
        out[f"{label}_recall@10_delta"] = out[label]["recall@10"] - out["float"]["recall@10"]
        out[f"{label}_ingest_speedup"] = out[label]["ingest_turns_per_s"] / out["float"]["ingest_turns_per_s"]
    out["recall@10_delta"] = out["int8_recall@10_delta"]  # int8's, as before
    out["ingest_speedup"] = out["int8_ingest_speedup"]
    return out


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# Ingest throughput against the model", "",
             f"{rep['turns']} LoCoMo turns ({rep['sessions']} whole sessions), model `{rep['model']}`, batch "
             f"{rep['batch_size']}, best of {rep['repeat']} interleaved runs; {rep['cpus']} CPUs, load average "
             f"{rep['load_avg']:.1f} at the end.", "",
             table(["step", "rate", "unit", "÷ raw encode"],
                   [[r["name"], f"{r['rate']:.1f}", r["unit"], "–" if r["vs_raw"] is None else f"{r['vs_raw']:.2f}"]
                    for r in rep["rows"]]), ""]
    rc = rep.get("recall")
    if rc:
        kinds = [k for k in ("float", "exact", "composed", "int8") if k in rc]
        lines += ["## Other context modes and int8 against the default (LoCoMo, default pipeline, shipped ranker)", "",
                  table(["model", "recall@10", "ingest turns/s", "search p50 ms"],
                        [[k, f"{rc[k]['recall@10']:.3f}", f"{rc[k]['ingest_turns_per_s']:.1f}",
                          f"{rc[k]['search_p50_ms']:.1f}"] for k in kinds]), ""]
        lines += [f"{k}: recall@10 {rc.get(f'{k}_recall@10_delta', rc['recall@10_delta']):+.3f}, ingest "
                  f"×{rc.get(f'{k}_ingest_speedup', rc['ingest_speedup']):.2f} ({rc['float']['questions']} questions)."
                  for k in kinds if k != "float"]
        lines.append("")
    return "\n".join(lines)


def save(report: dict[str, Any], out: str) -> tuple[Path, Path]:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    jpath, mpath = d / "ingest.json", d / "ingest.md"
    jpath.write_text(json.dumps(report, indent=2))
    mpath.write_text(markdown(report))
    return jpath, mpath
