"""`engramdb bench privacy`: the suite runs end to end, and policies cut violations without losing utility."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from engramdb.bench import privacy
from engramdb.cli.main import app
from engramdb.embed import HashingEmbedder


def test_policies_stop_violations_and_keep_utility():
    r = privacy.run(people=6, embedder=HashingEmbedder(64), labels="patterns")
    without, with_ = r["without_policies"], r["with_policies"]
    assert without["violation_rate"] > 0.9  # everything reaches an owner's context
    assert with_["violation_rate"] == 0.0
    assert r["utility_ratio"] >= 0.95
    assert r["disclosures_audited"] > 0
    assert "| with policies |" in privacy.markdown(r)


def test_cli(tmp_path):
    res = CliRunner().invoke(app, ["bench", "privacy", "--people", "2", "--embedder", "hashing", "--json",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert report["setup"]["people"] == 2 and (tmp_path / "privacy.md").exists()
    bad = CliRunner().invoke(app, ["bench", "privacy", "--embedder", "nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2
