"""Lifecycle CLI commands: extract, facts, chain, consolidate, expire, forget, purge — each with --json."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engramdb.cli.main import app


def test_lifecycle_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "rules")
    monkeypatch.setenv("ENGRAMDB_PATH", str(tmp_path / "l.db"))
    runner = CliRunner()

    def run(*args: str):
        r = runner.invoke(app, list(args))
        assert r.exit_code == 0, (args, r.output, r.exception)
        return json.loads(r.stdout) if "--json" in args else r.stdout

    run("add", "I moved to Paris.", "--user", "bob", "--session", "s1", "--timestamp", "2024-01-01T00:00:00Z")
    run("add", "I moved to Rome.", "--user", "bob", "--session", "s2", "--timestamp", "2024-05-01T00:00:00Z")
    assert run("extract", "--json")["episodes"] == 0  # already extracted on add
    now = run("facts", "--user", "bob", "--json")
    assert [f["metadata"]["value"] for f in now] == ["Rome"]
    then = run("facts", "--user", "bob", "--as-of", "2024-02-01T00:00:00Z", "--json")
    assert [f["metadata"]["value"] for f in then] == ["Paris"]
    assert len(run("facts", "--user", "bob", "--all", "--json")) == 2
    assert "Paris" in run("facts", "--user", "bob", "--all")
    hits = run(
        "search", "where does bob live", "--user", "bob", "--kind", "fact", "--as-of", "2024-02-01T00:00:00Z", "--json"
    )
    assert [h["memory"]["metadata"]["value"] for h in hits] == ["Paris"]
    block = run("context", "where does bob live", "--user", "bob", "--as-of", "2024-02-01T00:00:00Z", "--json")
    assert "Paris" in block["text"] and "Rome" not in block["text"]
    ordered = run("search", "moved", "--user", "bob", "--kind", "episode", "--order", "-time", "--json")
    assert [h["memory"]["text"] for h in ordered] == ["I moved to Rome.", "I moved to Paris."]
    chain = run("chain", now[0]["id"], "--json")
    assert [c["metadata"]["value"] for c in chain] == ["Paris", "Rome"]
    rep = run("consolidate", "--json")
    assert rep["failures"] == [] and run("consolidate", "--json")["dirty_episodes"] == 0
    assert run("expire", "--json") == {"expired": 0}
    stats = run("stats", "--json")
    assert stats["lifecycle"]["facts_current"] == 1 and stats["lifecycle"]["pending_extraction"] == 0
    forgot = run("forget", "--user", "bob", "--session", "s1", "--json")
    assert len(forgot["forgotten"]) >= 1
    r = runner.invoke(app, ["purge", "--user", "bob", "--json"])  # irreversible: needs --yes
    assert r.exit_code == 2 and "--yes" in r.output
    purged = run("purge", "--user", "bob", "--yes", "--json")
    assert purged["memories"] >= 4 and run("stats", "--json")["memories"] == 0
