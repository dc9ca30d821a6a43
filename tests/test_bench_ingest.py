"""`engramdb bench ingest`: bad input is refused before any model loads; the session picker and the table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engramdb.bench import ingest
from engramdb.cli.main import app


def _turn(speaker: str, session: int, n: int, text: str) -> dict[str, str]:
    """A turn in LoCoMo's shape (a made-up conversation, not the data set)."""
    return {"speaker": speaker, "dia_id": f"D{session}:{n}", "text": text}


CONV = {"sample_id": "c1", "conversation": {
    "speaker_a": "Ann", "speaker_b": "Bo",
    "session_1_date_time": "1:56 pm on 8 May, 2023",
    "session_1": [_turn("Ann", 1, 1, "I adopted a dog."), _turn("Bo", 1, 2, "What breed?")],
    "session_2_date_time": "2:10 pm on 9 May, 2023",
    "session_2": [_turn("Ann", 2, 1, "A beagle.")],
}, "qa": []}


def test_bad_input_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    path.write_text(json.dumps([CONV]))
    r = CliRunner().invoke(app, ["bench", "ingest", str(path), "--turns", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "at least 1" in r.output
    assert not (tmp_path / "o").exists()


def test_whole_sessions_until_enough_turns(tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    path.write_text(json.dumps([CONV]))
    assert [len(s.turns) for _, s in ingest.pick_sessions(path, 1)] == [2]  # a session is never cut
    assert [len(s.turns) for _, s in ingest.pick_sessions(path, 3)] == [2, 1]
    rep = {"turns": 3, "sessions": 2, "model": "m", "batch_size": 64, "repeat": 2, "cpus": 2, "load_avg": 1.0,
           "rows": [{"name": "raw", "unit": "texts/s", "rate": 10.0, "vs_raw": 1.0},
                    {"name": "add, hashing-384 (engine only)", "unit": "turns/s", "rate": 900.0, "vs_raw": None}]}
    md = ingest.markdown(rep)
    assert "| raw | 10.0 | texts/s | 1.00 |" in md and "| – |" in md
