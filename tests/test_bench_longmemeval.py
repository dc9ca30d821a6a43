"""LongMemEval harness on a small fixture written in LongMemEval's format (tests/fixtures/longmemeval_small.json)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engramdb.bench import longmemeval as lme
from engramdb.errors import ValidationError

FIXTURE = Path(__file__).parent / "fixtures" / "longmemeval_small.json"


def test_parse_date_and_corpus():
    assert lme.parse_lme_date("2023/05/20 (Sat) 02:21").isoformat() == "2023-05-20T02:21:00+00:00"
    with pytest.raises(ValidationError):
        lme.parse_lme_date("May 20")
    entry = json.loads(FIXTURE.read_text())[1]
    ids, gold = lme.corpus(entry, ("user",))
    assert gold == ["answer_m1_1", "answer_m2_3"]  # turn numbers count assistant turns too
    assert all(i.endswith(("_1", "_3")) for i in ids)


def test_run_on_fixture(tmp_path, embedder):
    rep = lme.run_longmemeval(FIXTURE, methods=("default", "bm25"), embedder=embedder)
    assert rep["skipped_abstention"] == 1 and rep["questions"] == 4
    d = rep["methods"]["default"]
    assert set(d["session"]) == {f"{m}@{k}" for m in lme.METRICS for k in lme.KS}
    # every haystack is tiny, so at k=50 everything is retrieved
    assert d["session"]["recall_all@50"] == 1.0 and d["turn"]["recall_all@50"] == 1.0
    assert d["session"]["recall_any@5"] == 1.0  # the default pipeline finds each answer session in the top 5
    assert 0.0 < d["turn"]["ndcg_any@1"] <= 1.0
    assert d["by_type"]["multi-session"]["n"] == 1
    # BM25 has no word in common for the corgi question ("breed ... dog"): its turn-level recall@1 is lower
    assert rep["methods"]["bm25"]["turn"]["recall_any@1"] < d["turn"]["recall_any@1"]


def test_cli_json_and_bad_file(tmp_path):
    from engramdb.cli.main import app

    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text('[{"question_id": "x"}]')
    r = runner.invoke(app, ["bench", "longmemeval", str(bad), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "lacks" in r.output
    r = runner.invoke(app, ["bench", "locomo", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not found" in r.output
