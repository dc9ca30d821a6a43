"""`engramdb demo`: a tour a newcomer can read in one screen.

Ingests the bundled four-session conversation (with session dates and
speakers), then runs a few searches and prints a context block.
"""

from __future__ import annotations

import json
import tempfile
import time
from importlib import resources
from pathlib import Path

from .output import console, emit_json, results_table


def load_sample() -> dict:
    return json.loads(resources.files("engramdb.data").joinpath("sample_conversation.json").read_text("utf-8"))


def run_demo(db: str | None, *, as_json: bool = False) -> None:
    from ..api.memory import Memory

    sample = load_sample()
    tmpdir = None
    if db is None:
        tmpdir = tempfile.mkdtemp(prefix="engramdb-demo-")
        db = str(Path(tmpdir) / "demo.db")
    elif Path(db).exists():
        Path(db).unlink()
    user = sample["user_id"]
    out: dict = {"db": db, "searches": []}
    t0 = time.perf_counter()
    with Memory(db) as mem:
        load_s = time.perf_counter() - t0
        if not as_json:
            console.rule("[bold]EngramDB demo")
            console.print(f"store: {db}   embedding model: {mem.embedder.name} ({mem.embedder.dim}-d, offline)")
        t1 = time.perf_counter()
        n = 0
        for session in sample["sessions"]:
            recs = mem.add(session["turns"], user_id=user, session_id=session["session_id"], timestamp=session["date"])
            n += len(recs)
        ingest_s = time.perf_counter() - t1
        out["ingested"] = n
        if not as_json:
            console.print(
                f"ingested {n} turns from {len(sample['sessions'])} sessions in {ingest_s:.2f}s "
                f"(model load {load_s:.1f}s)\n"
            )
        for q in sample["queries"]:
            results = mem.search(q, user_id=user, limit=3)
            out["searches"].append(
                {
                    "query": q,
                    "results": [
                        {
                            "score": r.score,
                            "when": r.memory.occurred_at.isoformat() if r.memory.occurred_at else None,
                            "speaker": r.memory.speaker,
                            "text": r.memory.text,
                        }
                        for r in results
                    ],
                }
            )
            if not as_json:
                console.print(results_table(results, title=f"search: {q}"))
        facts = mem.facts(user_id=user)
        out["facts"] = [f.text for f in facts]
        if not as_json:
            console.rule("facts(user_id) — extracted by rules, current values only")
            for f in facts:
                since = f" (since {f.valid_from:%Y-%m-%d})" if f.valid_from else ""
                console.print(f"  • {f.text}{since}", markup=False, highlight=False)
        block = mem.context("What should I know about Maya's life right now?", user_id=user, max_tokens=300)
        out["context"] = block.model_dump()
        if not as_json:
            console.rule("context(query, max_tokens=300)")
            console.print(block.text, markup=False, highlight=False)
            console.print(f"\n[dim]{block.tokens}/{block.max_tokens} tokens, counted with {block.tokenizer}[/dim]")
    if as_json:
        emit_json(out)
