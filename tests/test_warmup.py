"""No cold start: `Memory.warmup` loads what a search needs, the server warms before it reports ready, and the CLI
shows a spinner on stderr (never in --json output) while a model loads."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env


def test_after_warmup_a_search_loads_nothing(tmp_path, embedder, monkeypatch):
    from engramdb import Memory
    from engramdb.embed import local, onnx
    from engramdb.retrieve import calibrate, ranker

    fresh = local.SentenceTransformerEmbedder()  # the weights come from the process cache; no query run yet
    local._onnx.clear()
    ranker.load_ranker.cache_clear()
    calibrate.load_calibration.cache_clear()
    with Memory(tmp_path / "w.db", embedder=fresh) as mem:
        mem.warmup()

        def no_load(*_a: object, **_k: object) -> None:
            raise AssertionError("a search loaded a model after warmup")

        monkeypatch.setattr(onnx, "load", no_load)
        monkeypatch.setattr(ranker.TreeEnsemble, "load", no_load)
        monkeypatch.setattr(calibrate.Calibration, "load", no_load)
        mem.add(["I moved to Berlin last month", "My cat is called Tom"], user_id="alice")
        assert mem.search("where do I live", user_id="alice")[0].memory.text == "I moved to Berlin last month"
        assert mem.list(user_id="__engramdb_warmup__").total == 0  # warming up stored nothing


def test_readyz_answers_200_only_once_the_model_is_loaded(tmp_path):
    env = make_env(tmp_path)
    cold = TestClient(env.app)  # no lifespan: nothing was warmed
    r = cold.get("/readyz")
    assert r.status_code == 503 and "not loaded" in r.json()["status"]
    assert cold.get("/healthz").status_code == 200  # alive all the same
    with TestClient(env.app) as c:  # the lifespan warms before the app takes requests
        assert env.registry.warm
        assert c.get("/readyz").json() == {"status": "ready"}


def test_cli_spinner_goes_to_stderr_not_into_json(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from engramdb import embed
    from engramdb.cli.main import app

    shown: list[str] = []

    class Spy:
        def __init__(self, name: str) -> None:
            shown.append(name)

        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(embed, "_on_load", None)  # restored after the test: the CLI sets it process-wide
    monkeypatch.setattr("engramdb.cli.output.model_spinner", Spy)
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    res = runner.invoke(app, ["add", "My cat is called Tom", "--user", "alice", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", "cat", "--user", "alice", "--db", db, "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["memory"]["text"] == "My cat is called Tom"
    assert shown and shown[0] == "all-MiniLM-L6-v2"  # the load was announced (on stderr, by the real spinner)


@pytest.mark.parametrize("spec", ["hashing-32"])
def test_warmup_is_cheap_for_a_model_without_weights(tmp_path, spec):
    from engramdb import Memory

    with Memory(tmp_path / "h.db", embedder=spec) as mem:
        mem.warmup()
        mem.warmup()  # idempotent
        assert mem.list(user_id="__engramdb_warmup__").total == 0
