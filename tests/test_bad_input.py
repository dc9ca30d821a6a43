"""Bad input (issue 2 §8): a clear error, exit code 2 at the CLI, no traceback, and the store unchanged."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from typer.testing import CliRunner

from engramdb.cli.main import app
from engramdb.errors import NotFoundError, ValidationError
from engramdb.model import MAX_TEXT_CHARS


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


ENV = {"ENGRAMDB_EMBEDDER": "hashing-64", "ENGRAMDB_TOKENIZER": "minilm", "ENGRAMDB_EXTRACTION": "off"}


def fingerprint(mem) -> tuple:
    buf = io.StringIO()
    mem.export(buf)
    return mem.stats(), buf.getvalue()


@pytest.fixture
def seeded(fake_mem):
    rec = fake_mem.add(["first memory", "second memory"], user_id="u", timestamp="2024-01-01T00:00:00Z")[0]
    return fake_mem, rec


API_CASES = [
    ("empty text", lambda m, r: m.add("", user_id="u")),
    ("blank text", lambda m, r: m.add("   \n", user_id="u")),
    ("empty list", lambda m, r: m.add([], user_id="u")),
    ("int text", lambda m, r: m.add(123, user_id="u")),
    ("int turn", lambda m, r: m.add(["ok", 5], user_id="u")),
    ("unknown turn field", lambda m, r: m.add([{"text": "x", "colour": "red"}], user_id="u")),
    ("int user", lambda m, r: m.add("x", user_id=5)),
    ("no scope", lambda m, r: m.add("x")),
    ("str metadata", lambda m, r: m.add("x", user_id="u", metadata="k=v")),
    ("nan metadata", lambda m, r: m.add("x", user_id="u", metadata={"v": float("nan")})),
    ("int metadata key", lambda m, r: m.add("x", user_id="u", metadata={1: "a"})),
    ("bad kind", lambda m, r: m.add("x", user_id="u", kind="Not A Kind")),
    ("importance", lambda m, r: m.add("x", user_id="u", importance=7)),
    ("naive timestamp", lambda m, r: m.add("x", user_id="u", timestamp="2024-05-01T10:00:00")),
    ("naive datetime", lambda m, r: m.add("x", user_id="u", timestamp=datetime(2024, 5, 1))),
    ("garbage timestamp", lambda m, r: m.add("x", user_id="u", timestamp="last tuesday-ish")),
    ("turn timestamp", lambda m, r: m.add([{"text": "x", "timestamp": "2024-13-45T00:00:00Z"}], user_id="u")),
    ("too long", lambda m, r: m.add("a" * (MAX_TEXT_CHARS + 1), user_id="u")),
    ("lone surrogate text", lambda m, r: m.add("bad \udc80 bytes", user_id="u")),
    ("lone surrogate user", lambda m, r: m.add("x", user_id="\ud800")),
    ("lone surrogate metadata", lambda m, r: m.add("x", user_id="u", metadata={"k": "\udcff"})),
    ("nul", lambda m, r: m.add("a\x00b", user_id="u")),
    ("long id", lambda m, r: m.add("x", user_id="u" * 300)),
    ("empty query", lambda m, r: m.search("", user_id="u")),
    ("surrogate query", lambda m, r: m.search("\udc80", user_id="u")),
    ("limit type", lambda m, r: m.search("x", limit="10")),
    ("limit zero", lambda m, r: m.search("x", limit=0)),
    ("since naive", lambda m, r: m.search("x", since="2024-01-01")),
    ("filter value", lambda m, r: m.search("x", filters={"k": [1]})),
    ("filter key", lambda m, r: m.search("x", filters={"a b": 1})),
    ("list offset", lambda m, r: m.list(offset=-1)),
    ("list order", lambda m, r: m.list(order="sideways")),
    ("update nothing", lambda m, r: m.update(r.id)),
    ("update empty text", lambda m, r: m.update(r.id, text="")),
    ("update naive", lambda m, r: m.update(r.id, occurred_at="2024-01-01T00:00:00")),
    ("id type", lambda m, r: m.get(42)),
    ("history id type", lambda m, r: m.history(["x"])),
    ("context budget", lambda m, r: m.context("x", user_id="u", max_tokens=2)),
]


@pytest.mark.parametrize("name,call", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_rejects_and_changes_nothing(seeded, name, call):
    mem, rec = seeded
    before = fingerprint(mem)
    with pytest.raises(ValidationError) as exc:
        call(mem, rec)
    assert str(exc.value) and "\n" not in str(exc.value)
    assert fingerprint(mem) == before


@pytest.mark.parametrize("method", ["get", "update", "delete", "history"])
def test_unknown_id(seeded, method):
    mem, _ = seeded
    before = fingerprint(mem)
    kwargs = {"text": "new"} if method == "update" else {}
    with pytest.raises(NotFoundError, match="no memory with id 'nope'"):
        getattr(mem, method)("nope", **kwargs)
    assert fingerprint(mem) == before


# -- CLI ------------------------------------------------------------------------------------------
@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    db = str(tmp_path / "cli.db")
    runner = CliRunner()
    r = runner.invoke(app, ["add", "a memory to keep", "--user", "u", "--db", db])
    assert r.exit_code == 0, r.output
    return runner, db, tmp_path


def cli_state(runner, db) -> tuple:
    st = runner.invoke(app, ["stats", "--json", "--db", db])
    ex = runner.invoke(app, ["export", "-", "--db", db])
    stats = json.loads(st.stdout)
    stats.pop("bytes_on_disk")  # the WAL may be checkpointed: size is not content
    return stats, ex.stdout


def cli_cases(tmp_path) -> list[tuple[str, list[str]]]:
    bad_utf8 = tmp_path / "bad.json"
    bad_utf8.write_bytes(b'[{"speaker": "A", "text": "caf\xe9"}]')
    not_turns = tmp_path / "obj.json"
    not_turns.write_text('{"speaker": "A"}')
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"record": {"user_id": "u", "text": "fine"}}\n{oops\n')
    long_text = "x" * (MAX_TEXT_CHARS + 1)
    return [
        ("empty text", ["add", "", "--user", "u"]),
        ("no scope", ["add", "hello"]),
        ("text and file", ["add", "hi", "--file", str(not_turns), "--user", "u"]),
        ("naive timestamp", ["add", "hi", "--user", "u", "--timestamp", "2024-01-01T10:00:00"]),
        ("garbage timestamp", ["add", "hi", "--user", "u", "--timestamp", "soonish"]),
        ("metadata not json", ["add", "hi", "--user", "u", "--metadata", "{nope"]),
        ("metadata wrong type", ["add", "hi", "--user", "u", "--metadata", "[1, 2]"]),
        ("too long", ["add", long_text, "--user", "u"]),
        ("invalid utf-8 file", ["add", "--file", str(bad_utf8), "--user", "u"]),
        ("file not turns", ["add", "--file", str(not_turns), "--user", "u"]),
        ("missing file", ["add", "--file", str(tmp_path / "nope.json"), "--user", "u"]),
        ("bad kind", ["add", "hi", "--user", "u", "--kind", "BAD"]),
        ("show unknown", ["show", "nope"]),
        ("update unknown", ["update", "nope", "--text", "x"]),
        ("delete unknown", ["delete", "nope"]),
        ("history unknown", ["history", "nope"]),
        ("search empty", ["search", ""]),
        ("search limit", ["search", "x", "--limit", "0"]),
        ("search since", ["search", "x", "--since", "2024-01-01"]),
        ("search where", ["search", "x", "--where", '{"k": {"nested": 1}}']),
        ("import malformed", ["import", str(bad_jsonl)]),
        ("import missing", ["import", str(tmp_path / "none.jsonl")]),
        ("limit not int", ["list", "--limit", "many"]),
    ]


def test_cli_rejects_with_exit_2_and_changes_nothing(cli_db):
    runner, db, tmp_path = cli_db
    before = cli_state(runner, db)
    for name, args in cli_cases(tmp_path):
        r = runner.invoke(app, [*args, "--db", db])
        assert r.exit_code == 2, (name, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (name, r.exception)
        assert "Traceback" not in r.output, name
        if name != "limit not int":  # usage errors come from click: usage line + message
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), (name, r.stderr)
    assert cli_state(runner, db) == before
    # import reports the line number
    r = runner.invoke(app, ["import", str(tmp_path / "bad.jsonl"), "--db", db])
    assert "line 2" in r.stderr


def test_cli_subprocess_no_traceback(tmp_path):
    """The real entry point in a real process: exit code 2, one line on stderr, nothing written."""
    from engramdb import Memory
    from engramdb.embed import HashingEmbedder

    db = str(tmp_path / "p.db")
    with Memory(db, embedder=HashingEmbedder(64)) as m:
        m.add("keep me", user_id="u")
        before = fingerprint(m)
    env = {**os.environ, **ENV}
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'["ok", "\xff\xfe"]')
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"record": {"user_id": "u", "text": "fine"}}\nnot json at all\n')
    cases = [
        ["add", "", "--user", "u"],
        ["add", "--file", str(bad), "--user", "u"],
        ["import", str(jsonl)],
    ]
    for args in cases:
        p = subprocess.run(
            [sys.executable, "-m", "engramdb.cli.main", *args, "--db", db], env=env, capture_output=True, text=True
        )
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr + p.stdout
        assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "line 2" in p.stderr and "invalid UTF-8" not in p.stderr
    with Memory(db, embedder=HashingEmbedder(64)) as m:
        after = fingerprint(m)
    assert after[0].pop("bytes_on_disk") and before[0].pop("bytes_on_disk")
    assert after == before


def test_nul_in_metadata_is_refused_and_writes_nothing(fake_mem):
    import pytest

    from engramdb import ValidationError

    before = fake_mem.stats()["memories"]
    with pytest.raises(ValidationError, match="NUL"):
        fake_mem.add("hello", user_id="u", metadata={"note": ["ok", {"x": "a\x00b"}]})
    assert fake_mem.stats()["memories"] == before
