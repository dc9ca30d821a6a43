"""LoCoMo harness: parsing, scoring, report, and the CI regression guard on a real slice.

The data is CC BY-NC and is never copied into the repository: the guard reads it from
../shared/data/locomo/ beside the clone (as CI lays it out) and skips only when it is absent."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from engramdb.bench import locomo
from engramdb.bench.report import locomo_markdown, write_report
from engramdb.errors import ValidationError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "locomo" / "locomo_dev.json"

# Measured on this slice (conv-26, sessions 1-4, 50 questions) when the guard was written: default recall@10 0.92,
# BM25 over plain turns 0.73.
# The floor leaves room for model/CPU noise but fails on a real retrieval regression.
FLOOR_RECALL_AT_10 = 0.82


def test_parse_session_time_and_evidence():
    assert locomo.parse_session_time("1:56 pm on 8 May, 2023").isoformat() == "2023-05-08T13:56:00+00:00"
    assert locomo.parse_session_time("12:05 am on 1 January, 2024").hour == 0
    with pytest.raises(ValidationError):
        locomo.parse_session_time("yesterday")
    assert locomo._norm_evidence(["D8:6; D9:17", "D:11:26", "D1:3"]) == ["D8:6", "D9:17", "D11:26", "D1:3"]


def test_to_dia_ids_maps_derived_memories_through_sources():
    ep = SimpleNamespace(memory=SimpleNamespace(id="m1", kind="episode", source_ref="D1:1", source_ids=[]))
    fact = SimpleNamespace(memory=SimpleNamespace(id="f1", kind="fact", source_ref=None, source_ids=["m2", "m1"]))
    assert locomo.to_dia_ids([fact, ep], {"m1": "D1:1", "m2": "D2:5"}) == ["D2:5", "D1:1"]


def test_summary_with_many_sources_fills_k_turns_not_one_slot():
    """A derived memory at rank 1 expands into its sources BEFORE the cut at k: top-k is always k turns,
    so a summary of many turns cannot inflate recall@k."""
    ids = {f"m{i}": f"D1:{i}" for i in range(1, 9)}
    summary = SimpleNamespace(memory=SimpleNamespace(id="s1", kind="summary", source_ref=None,
                                                     source_ids=[f"m{i}" for i in range(1, 9)]))
    ranked = locomo.to_dia_ids([summary], ids)
    assert ranked == [f"D1:{i}" for i in range(1, 9)]
    row = locomo.score_question(ranked, ["D1:1", "D1:7"])
    assert row["recall@1"] == 0.5 and row["recall@5"] == 0.5 and row["recall@10"] == 1.0


def test_score_question():
    row = locomo.score_question(["D1:1", "D2:3", "D1:2"], ["D2:3", "D3:1"])
    assert row["recall@1"] == 0.0 and row["recall@5"] == 0.5 and row["hit_all@5"] == 0.0
    assert row["session_recall@1"] == 0.0 and row["session_recall@3"] == 0.5
    assert row["mrr"] == 0.5


def test_bad_input():
    with pytest.raises(ValidationError):
        locomo.load_conversations("/nonexistent/locomo.json")


@pytest.mark.skipif(not DATA.is_file(), reason="LoCoMo dev data not beside the clone (../shared/data/locomo/)")
def test_regression_guard_real_slice(tmp_path, embedder):
    methods = [locomo.Method("default"), *(m for m in locomo.baseline_methods() if m.name == "bm25")]
    rep = locomo.run_locomo(DATA, conversations=["conv-26"], max_sessions=4, methods=methods, embedder=embedder)
    d = rep["methods"]["default"]
    assert rep["questions"] >= 30
    assert d["overall"]["recall@10"] >= FLOOR_RECALL_AT_10, d["overall"]
    # the default pipeline beats BM25 over plain turns, measured in the same run
    assert d["overall"]["recall@10"] > rep["methods"]["bm25"]["overall"]["recall@10"] + 0.05
    paths = write_report(rep, tmp_path, "locomo")
    md = Path(paths["markdown"]).read_text()
    assert "| default |" in md and "adversarial" in md and Path(paths["chart"]).read_text().startswith("<svg")
    assert json.loads(Path(paths["json"]).read_text())["questions"] == rep["questions"]
    assert "recall@10" in locomo_markdown(rep)
    # the shipped ranker was fitted on the dev conversations: the report must say its figures are in-sample
    assert rep["in_sample"] == ["conv-26"] and "In-sample warning" in md


@pytest.mark.skipif(not DATA.is_file(), reason="LoCoMo dev data not beside the clone (../shared/data/locomo/)")
def test_train_ranker_cross_validates_and_exports_a_loadable_model(tmp_path, embedder):
    pytest.importorskip("lightgbm")
    from engramdb.bench import train_ranker
    from engramdb.retrieve.ranker import TreeEnsemble

    model, rep = train_ranker.train(DATA, conversations=["conv-26", "conv-30"], max_sessions=3, embedder=embedder,
                                    params={"n_estimators": 30}, seeds=2)
    cv = rep["cross_validation"]
    assert set(cv["by_conversation"]) == {"conv-26", "conv-30"} and rep["questions"] >= 20
    assert 0.3 < cv["overall"]["recall@10"] <= 1.0  # out of fold, on a tiny slice: a sanity floor only
    path = tmp_path / "r.json"
    path.write_text(json.dumps(model))
    ens = TreeEnsemble.load(path)
    # two seeds: both fits' trees, averaged (train() refuses a model whose export disagrees with LightGBM's mean)
    assert len(ens.sizes) == 60 and ens.info["conversations"] == ["conv-26", "conv-30"] and ens.info["seeds"] == 2
    assert "leave-one-conversation-out" in train_ranker.markdown(rep)
