"""The LLM client against a local OpenAI-protocol server replaying recorded answers (incl. malformed ones)."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from engramdb.errors import ConfigError
from engramdb.llm import LLMClient, LLMConfig, LLMError
from engramdb.llm.client import extract_json_text
from engramdb.llm.replay import ReplayServer


class Answer(BaseModel):
    city: str
    year: int


def _client(srv: ReplayServer, **kw) -> LLMClient:
    cfg = {"base_url": srv.base_url, "model": "replay", "timeout_s": 2.0, "max_retries": 1, **kw}
    return LLMClient(LLMConfig(**cfg))


def test_valid_json_and_token_account():
    entries = [
        {
            "match": "capital",
            "responses": [
                {
                    "content": '{"city": "Lisbon", "year": 2024}',
                    "usage": {"prompt_tokens": 120, "completion_tokens": 12},
                }
            ],
        }
    ]
    with ReplayServer(entries) as srv:
        c = _client(srv, price_prompt_per_1k=0.5, price_completion_per_1k=1.0)
        assert c.complete_json("capital please", Answer, op="extract") == Answer(city="Lisbon", year=2024)
        u = c.usage.ops["extract"]
        assert (u.calls, u.ok, u.failures, u.prompt_tokens, u.completion_tokens) == (1, 1, 0, 120, 12)
        assert u.cost_usd == pytest.approx(120 / 1000 * 0.5 + 12 / 1000 * 1.0)
        body = srv.requests[0]
        assert body["model"] == "replay" and body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    "content",
    [
        'Sure! Here you go:\n```json\n{"city": "Oslo", "year": 2020}\n```',
        '<think>the user wants json</think>\n{"city": "Oslo", "year": 2020}',
        'Result: {"city": "Oslo", "year": 2020} -- hope that helps',
    ],
)
def test_tolerates_wrapping_that_small_models_add(content):
    with ReplayServer([{"match": "q", "responses": [{"content": content}]}]) as srv:
        assert _client(srv).complete_json("q", Answer).city == "Oslo"


def test_repair_step_fixes_a_schema_error():
    entries = [
        {
            "match": "q",
            "responses": [
                {"content": '{"city": "Oslo", "year": "last year"}'},
                {"content": '{"city": "Oslo", "year": 2023}'},
            ],
        }
    ]
    with ReplayServer(entries) as srv:
        c = _client(srv)
        assert c.complete_json("q", Answer, op="x").year == 2023
        assert c.usage.ops["x"].repairs == 1 and c.usage.ops["x"].ok == 1
        repair = srv.requests[1]["messages"][-1]["content"]
        assert "year" in repair and "JSON schema" in repair  # the model is told what was wrong


def test_gives_up_after_bounded_repairs_and_counts_the_failure():
    entries = [{"match": "q", "responses": [{"content": "I cannot answer that."}]}]
    with ReplayServer(entries) as srv:
        c = _client(srv, repair_attempts=2)
        with pytest.raises(LLMError, match="did not match the schema"):
            c.complete_json("q", Answer, op="extract")
        assert len(srv.requests) == 3  # first try + 2 repairs, then stop
        u = c.usage.ops["extract"]
        assert (u.failures, u.repairs, u.ok) == (1, 2, 0)


def test_retries_server_errors_then_succeeds():
    entries = [
        {
            "match": "q",
            "responses": [{"status": 503, "content": "overloaded"}, {"content": '{"city": "Rome", "year": 1}'}],
        }
    ]
    with ReplayServer(entries) as srv:
        c = _client(srv, max_retries=2)
        assert c.complete_json("q", Answer, op="x").city == "Rome"
        assert c.usage.ops["x"].retries == 1


def test_client_error_is_not_retried():
    with ReplayServer([]) as srv:  # nothing matches: the server answers 400
        c = _client(srv, max_retries=3)
        with pytest.raises(LLMError, match="HTTP 400"):
            c.complete_json("anything", Answer)
        assert len(srv.requests) == 1


def test_timeout_is_bounded():
    entries = [{"match": "slow", "responses": [{"content": '{"city": "X", "year": 1}', "delay_s": 1.5}]}]
    with ReplayServer(entries) as srv:
        c = _client(srv, timeout_s=0.3, max_retries=1)
        with pytest.raises(LLMError, match="timed out"):
            c.complete_json("slow", Answer, op="extract")
        assert c.usage.ops["extract"].calls == 2 and c.usage.ops["extract"].failures == 1


def test_unreachable_server():
    c = LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=0.5, max_retries=0))
    with pytest.raises(LLMError, match="cannot reach"):
        c.chat([{"role": "user", "content": "hi"}])


def test_extract_json_text_edge_cases():
    assert json.loads(extract_json_text('[{"a": 1}]')) == [{"a": 1}]
    with pytest.raises(ValueError):
        extract_json_text("no json here")


def test_config_from_env_and_file(tmp_path, monkeypatch):
    for var in ("ENGRAMDB_LLM_BASE_URL", "ENGRAMDB_LLM_MODEL", "ENGRAMDB_LLM_API_KEY", "ENGRAMDB_LLM_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ENGRAMDB_LLM_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match="cannot read"):
        LLMConfig.from_env()
    f = tmp_path / "llm.toml"
    f.write_text('[llm]\nbase_url = "http://localhost:11434/v1/"\nmodel = "qwen2.5:3b"\ntimeout_s = 20\n')
    monkeypatch.setenv("ENGRAMDB_LLM_CONFIG", str(f))
    cfg = LLMConfig.from_env()
    assert (cfg.base_url, cfg.model, cfg.timeout_s) == ("http://localhost:11434/v1", "qwen2.5:3b", 20)
    monkeypatch.setenv("ENGRAMDB_LLM_MODEL", "llama3.2")  # environment beats the file
    monkeypatch.setenv("ENGRAMDB_LLM_API_KEY", "sk-test")
    cfg = LLMConfig.from_env()
    assert cfg.model == "llama3.2" and "sk-test" not in repr(cfg)
    f.write_text('[llm]\nbase_url = "ftp://x"\nmodel = "m"\n')
    with pytest.raises(ConfigError, match="invalid LLM configuration"):
        LLMConfig.from_env()


def test_no_llm_configured_means_none(tmp_path, monkeypatch):
    for var in ("ENGRAMDB_LLM_BASE_URL", "ENGRAMDB_LLM_MODEL", "ENGRAMDB_LLM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert LLMConfig.from_env() is None
    monkeypatch.setenv("ENGRAMDB_LLM_BASE_URL", "http://localhost:1/v1")
    with pytest.raises(ConfigError, match="both base_url and model"):
        LLMConfig.from_env()
