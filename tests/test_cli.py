"""The `engramdb` CLI end to end (in-process CliRunner): every core command, --json everywhere, --db and env."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from engramdb.cli.main import app


@pytest.fixture(autouse=True)
def _core_only(monkeypatch):
    """These tests pin the core engine: no derived memories from fact extraction (lifecycle/service.py)."""
    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    monkeypatch.setenv("ENGRAMDB_PATH", str(tmp_path / "env.db"))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        r = runner.invoke(app, list(args))
        if ok:
            assert r.exit_code == 0, (args, r.output, r.exception)
        return r

    return run, tmp_path


def as_json(r):
    return json.loads(r.stdout)


def test_core_commands_round_trip(cli):
    run, tmp = cli
    turns = tmp / "turns.json"
    turns.write_text(
        json.dumps(
            [
                {"role": "user", "content": "I am learning the cello."},
                {"speaker": "Ana", "text": "My cello teacher is called Rui.", "timestamp": "2024-02-02T10:00:00Z"},
            ]
        )
    )
    added = as_json(run("add", "--file", str(turns), "--user", "ana", "--session", "s1", "--json"))
    assert [a["speaker"] for a in added] == ["user", "Ana"]
    one = as_json(
        run("add", "Ana moved to Braga", "--user", "ana", "--kind", "fact", "--metadata", '{"t": 1}', "--json")
    )
    mid = one[0]["id"]
    assert "added 1 memory" in run("add", "plain text", "--user", "bob").stdout

    hits = as_json(run("search", "cello teacher", "--user", "ana", "--json"))
    assert hits[0]["memory"]["text"] == "My cello teacher is called Rui." and "signals" in hits[0]
    assert {h["memory"]["kind"] for h in as_json(run("search", "Ana", "--kind", "fact", "--json"))} == {"fact"}
    assert as_json(run("search", "Braga", "--where", '{"t": 1}', "--json"))[0]["memory"]["id"] == mid
    assert (
        as_json(run("search", "cello", "--since", "2024-02-01T00:00:00Z", "--until", "2024-03-01T00:00:00Z", "--json"))[
            0
        ]["memory"]["speaker"]
        == "Ana"
    )
    assert "search: cello" in run("search", "cello").stdout  # the table

    page = as_json(run("list", "--user", "ana", "--limit", "2", "--json"))
    assert page["total"] == 3 and page["next_offset"] == 2
    assert as_json(run("show", mid, "--json"))["text"] == "Ana moved to Braga"
    assert as_json(run("update", mid, "--text", "Ana moved to Porto", "--json"))["version"] == 2
    later = as_json(run("update", mid, "--expires-at", "2099-01-01T00:00:00Z", "--json"))
    assert later["expires_at"].startswith("2099")
    assert as_json(run("update", mid, "--clear", "expires_at", "--json"))["expires_at"] is None
    r = run("update", mid, "--clear", "text", ok=False)
    assert r.exit_code == 2 and "expires_at" in r.stderr
    assert as_json(run("show", mid, "--json"))["version"] == 4  # the rejected update changed nothing
    run("delete", mid)
    hist = as_json(run("history", mid, "--json"))
    assert [h["action"] for h in hist] == ["add", "update", "update", "update", "delete"]
    assert "history of" in run("history", mid).stdout

    st = as_json(run("stats", "--json"))
    assert st["memories"] == 3 and st["deleted"] == 1 and st["embed_model"] == "hashing-64"
    block = as_json(run("context", "cello", "--user", "ana", "--max-tokens", "100", "--json"))
    assert "cello" in block["text"]

    dump = tmp / "dump.jsonl"
    assert as_json(run("export", str(dump), "--json"))["exported"] == 4
    other = str(tmp / "other.db")
    rep = as_json(run("import", str(dump), "--db", other, "--json"))
    assert rep["imported"] == 4 and rep["skipped"] == 0
    assert as_json(run("stats", "--db", other, "--json"))["memories"] == 3
    # the same through a sqlite:/// URL
    assert as_json(run("stats", "--url", f"sqlite:///{other}", "--json"))["memories"] == 3


def test_import_skip_bad_and_stdin(cli):
    run, tmp = cli
    run("add", "alpha", "--user", "u")
    dump = tmp / "d.jsonl"
    run("export", str(dump))
    lines = dump.read_text().splitlines()
    bad = tmp / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{broken", lines[1]]) + "\n")
    target = str(tmp / "t.db")
    r = run("import", str(bad), "--db", target, ok=False)
    assert r.exit_code == 2 and "line 2" in r.stderr
    rep = as_json(run("import", str(bad), "--db", target, "--skip-bad", "--json"))
    assert rep["imported"] == 1 and rep["skipped"] == 1 and rep["errors"][0].startswith("line 2")
    # export to stdout
    out = run("export", "-").stdout.splitlines()
    assert json.loads(out[0])["format"] == "engramdb-jsonl" and len(out) == 2


def test_reindex_after_model_change(cli, monkeypatch):
    run, tmp = cli
    run("add", "the lighthouse keeper", "--user", "u")
    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-32")
    r = run("search", "lighthouse", ok=False)
    assert r.exit_code == 2 and "reindex" in r.stderr
    assert as_json(run("reindex", "--model", "hashing-32", "--json")) == {"reindexed": 1, "model": "hashing-32"}
    assert as_json(run("search", "lighthouse", "--json"))[0]["memory"]["text"] == "the lighthouse keeper"


def test_bench_commands_validate(cli):
    run, _ = cli
    r = run("bench", "scale", "--sizes", "ten", ok=False)
    assert r.exit_code == 2 and "--sizes" in r.stderr
    r = run("bench", "ann", "--libraries", "annoy", ok=False)
    assert r.exit_code == 2 and "libraries" in r.stderr


def test_demo_fits_80_columns(tmp_path, monkeypatch, embedder):
    """The demo with the real model: readable in an 80-column terminal."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("ENGRAMDB_EMBEDDER", raising=False)
    r = CliRunner().invoke(app, ["demo", "--db", str(tmp_path / "demo.db")])
    assert r.exit_code == 0, r.output
    assert "context(" in r.stdout and "search:" in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    # the hits' text is shown, not squeezed out: the text cell of every first row holds words
    first_rows = [line for line in r.stdout.split("context(")[0].splitlines() if line.startswith("│1 ")]
    assert first_rows and all(len(row.split("│")[5].strip()) >= 20 for row in first_rows), first_rows


def test_bench_scale_and_ann_run_tiny(cli):
    """The benchmark commands run end to end on tiny sizes and print measured figures."""
    run, tmp = cli
    out = tmp / "bench"
    cache = str(tmp / "scale-cache")  # not the user's cache: another checkout may have written it
    r = run("bench", "scale", "--sizes", "1000", "--backends", "postgres", "--queries", "10", "--rounds", "1",
            "--out", str(out / "pg"), "--cache", cache)
    assert "| postgres | 1,000 | hashing-384 |" in r.stdout
    r = run("bench", "scale", "--sizes", "500,1000", "--backends", "sqlite", "--minilm-turns", "0", "--queries", "10",
            "--rounds", "2", "--out", str(out), "--cache", cache)
    assert "| sqlite | 1,000 | hashing-384 |" in r.stdout
    rep = json.loads(next(out.glob("scale*.json")).read_text())
    small, row = rep["rows"]
    assert row["memories"] == 1000 and row["bytes_per_memory"] > 0 and "1000" in rep["builds"]
    assert row["unscoped"]["p50_ms"] > 0 and row["scoped"]["p95_ms"] >= row["scoped"]["p50_ms"] > 0
    # each size measured twice, in turn; the ratio is the median of the rounds' own ratios
    assert len(row["rounds"]) == len(small["rounds"]) == 2
    per = [z["scoped_p50_ms"] / a["scoped_p50_ms"] for a, z in zip(small["rounds"], row["rounds"], strict=True)]
    assert f"is {sum(per) / 2:.2f}x the 500 figure of the same run (the median of 2 rounds" in r.stdout
    # and the two stores open in one process, their searches taking turns: each round's own p50s and ratio
    (it,) = rep["interleaved"]
    assert (it["backend"], it["small"], it["large"], len(it["rounds"])) == ("sqlite", 500, 1000, 2)
    assert all(x["ratio"] == x["large_p50_ms"] / x["small_p50_ms"] and x["small_p50_ms"] > 0 for x in it["rounds"])
    assert f"taking turns query by query: {sum(x['ratio'] for x in it['rounds']) / 2:.2f}x" in r.stdout
    assert run("bench", "scale", "--rounds", "0", ok=False).exit_code == 2
    r = run("bench", "ann", "--n", "1000", "--queries", "10", "--libraries", "numpy,usearch-i8", "--out", str(out))
    assert "usearch-i8" in r.stdout and "| 1,000 |" in r.stdout
    ann = json.loads((out / "ann_lowrank_1000.json").read_text())
    assert {row["library"] for row in ann["libraries"]} == {"numpy", "usearch-i8"}
    assert ann["libraries"][0]["runs"][0]["recall"] == 1.0


def test_read_commands_refuse_a_missing_store_instead_of_creating_one(tmp_path):
    from typer.testing import CliRunner

    from engramdb.cli.main import app

    missing = tmp_path / "typo" / "nothere.db"
    for args in (["stats"], ["search", "x"], ["list"], ["history", "abc"]):
        out = CliRunner().invoke(app, [*args, "--db", str(missing)])
        assert out.exit_code == 2, (args, out.output)
        assert "no EngramDB store" in out.output
    assert not missing.parent.exists()
