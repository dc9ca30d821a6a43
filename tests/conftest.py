from __future__ import annotations

import os
from pathlib import Path

import pytest
from pgserver import pg_server, pg_url  # noqa: F401 - a real PostgreSQL 18 + pgvector, for the postgres backend tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    """The real default model, loaded once per test session."""
    from engramdb.embed import make_embedder

    return make_embedder()


@pytest.fixture
def mem(tmp_path, embedder):
    from engramdb import Memory

    m = Memory(tmp_path / "t.db", embedder=embedder)
    yield m
    m.close()


@pytest.fixture
def fake_mem(tmp_path):
    """A store with the deterministic hashing embedder: for unit tests that need no model."""
    from engramdb import Memory
    from engramdb.embed import HashingEmbedder

    m = Memory(tmp_path / "u.db", embedder=HashingEmbedder(64))
    yield m
    m.close()


# Whole-system test files: a real PostgreSQL, servers and subprocesses, fuzzing, benchmarks, a browser, framework
# adapters, the ONNX export. They are marked slow, so `make test-fast` (pytest -m "not slow") runs the rest in
# under a minute; `make test` runs everything.
SLOW_FILES = frozenset({
    "test_bad_input.py", "test_bench_locomo.py", "test_bench_longmemeval.py", "test_bench_updates.py",
    "test_cli.py", "test_cli_fuzz.py", "test_concurrency.py", "test_faults.py", "test_fuzz.py",
    "test_integrations_crewai.py", "test_integrations_docs.py", "test_integrations_langchain.py",
    "test_integrations_langgraph.py", "test_integrations_llamaindex.py", "test_integrations_mcp_clients.py",
    "test_integrations_openai_agents.py", "test_isolation.py", "test_late.py", "test_lifecycle_cli.py",
    "test_mcp.py", "test_migrate.py", "test_onnx.py", "test_packs.py", "test_postgres.py",
    "test_privacy_surfaces.py", "test_procedural_bench.py", "test_reliability.py", "test_schemathesis.py",
    "test_scoped_scale.py", "test_server.py", "test_server_concurrency.py", "test_store_contract.py",
    "test_tenant_move.py", "test_ui.py", "test_ui_browser.py", "test_warmup.py",
})


# Single tests over 5 s (measured with --durations on 2 cores) in otherwise quick files.
SLOW_TESTS = frozenset({
    "test_api.py::test_embedding_is_batched",
    "test_bench_privacy.py::test_policies_stop_violations_and_keep_utility",
    "test_current_truth.py::test_mcp_forget_retracts_derived_facts",
    "test_current_truth.py::test_rest_delete_retracts_derived_facts",
    "test_extract_llm_eval.py::test_llm_path_on_the_unseen_set",
    "test_lifecycle_consolidate.py::test_hierarchy_links_idempotence_and_ranking",
    "test_privacy.py::test_audit_log_on_postgres",
    "test_privacy.py::test_classifier_on_the_held_out_half",
    "test_ranker.py::test_search_uses_the_learned_ranker_by_default_and_linear_on_request",
    "test_scenario.py::test_scenario_rule_based",
    "test_scenario.py::test_scenario_llm_path_recorded_server",
    "test_vector_index.py::test_ann_recall_against_exact_on_20k",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES or f"{item.path.name}::{item.name.split('[')[0]}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # `-m "not slow"` would import every slow file only to deselect it (schemathesis builds an app at import):
    # skip them before they are imported
    if collection_path.name in SLOW_FILES and config.getoption("markexpr", "") == "not slow":
        return True
    return None
