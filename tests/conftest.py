from __future__ import annotations

import os

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
