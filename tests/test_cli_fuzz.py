"""Fuzz the CLI with Hypothesis: random values for the options and arguments of the everyday commands.

The property: exit 0, or exit 2 with the reason on one line (an EngramError, or a malformed command line:
unknown option, missing argument, invalid value); never exit 1 ("internal error"), never a traceback; a refused
command changes nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from engramdb.cli.main import app

EXAMPLES = int(os.environ.get("ENGRAMDB_FUZZ_EXAMPLES", "25"))
ENV = {"ENGRAMDB_EMBEDDER": "hashing-64", "ENGRAMDB_EXTRACTION": "off"}

_odd = st.sampled_from([
    "", " ", "0", "-1", "1e9", str(2**63), str(10**30), "true", "nan", "a.", "a..b", "{", "[]", '{"a.": 1}',
    '{"a": 1000000000000000000000000000000}', '{"a": {"b": 1}}', "2024-01-01", "2024-01-01T00:00:00Z", "\x00",
    "x" * 40_000, '{"a":' * 300 + "1" + "}" * 300, "time", "relevance", "episode", "BAD KIND", "nope",
])  # fmt: skip
_value = st.one_of(_odd, st.text(max_size=20))
_opts = {
    "add": ["--user", "--session", "--timestamp", "--metadata", "--kind", "--importance", "--expires-at"],
    "search": ["--user", "--session", "--limit", "--kind", "--since", "--until", "--where", "--as-of", "--order"],
    "context": ["--user", "--max-tokens", "--since", "--as-of"],
    "list": ["--user", "--limit", "--offset", "--kind", "--where", "--since"],
    "show": [],
    "history": [],
    "delete": [],
    "update": ["--text", "--metadata", "--importance"],
    "forget": ["--user", "--session"],
    "facts": ["--user", "--as-of"],
}


@st.composite
def _argv(draw: st.DrawFn) -> list[str]:
    cmd = draw(st.sampled_from(sorted(_opts)))
    argv = [cmd, draw(_value)] if cmd not in ("list", "facts") else [cmd]
    for opt in draw(st.lists(st.sampled_from(_opts[cmd]), max_size=4, unique=True)) if _opts[cmd] else []:
        argv += [opt, draw(_value)]
    return argv


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("clifuzz") / "c.db")
    r = CliRunner().invoke(app, ["add", "alice moved to Berlin", "--user", "u", "--db", db], env=ENV)
    assert r.exit_code == 0, r.output
    return db


def _fingerprint(db: str) -> str:
    conn = sqlite3.connect(db)
    h = hashlib.sha256()
    for table in ("memories", "history", "links", "vectors"):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
            h.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
    conn.close()
    return h.hexdigest()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          database=None)  # fmt: skip
@given(argv=_argv())
def test_cli_bad_input_exits_2_never_1(cli_store, argv):
    before = _fingerprint(cli_store)
    r = CliRunner().invoke(app, [*argv, "--db", cli_store], env=ENV)
    assert r.exit_code in (0, 2), (argv, r.exit_code, r.output[-500:], r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (argv, r.stderr)
        assert _fingerprint(cli_store) == before, argv
