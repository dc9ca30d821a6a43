"""Parity: every public `Memory` operation has a REST route and a CLI command, every operation an agent calls has
an MCP tool, and the inputs of search, context and add are one definition (api/params.py; that every interface
refuses a bad value with the same message is tests/test_one_set_of_limits.py).

The table below is the contract. A new public method of `Memory` fails `test_every_operation_is_mapped` until it
is given its route and command here (or a written reason why not), and each entry is checked against the real
thing: the route exists and its handler calls that method, and so do the CLI command and the MCP tool. The table
in docs/parity.md is generated from it (ENGRAMDB_UPDATE_DOCS=1 rewrites it).
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest
from server_helpers import make_env

from engramdb import Memory
from engramdb.api import params as P

# operation -> (REST "METHOD path", CLI command, MCP tool or None)
OPERATIONS: dict[str, tuple[str, str, str | None]] = {
    "add": ("POST /v1/memories", "add", "remember"),
    "add_trajectories": ("POST /v1/trajectories", "trajectory add", None),
    "archive_decayed": ("POST /v1/archive", "archive", None),
    "consolidate": ("POST /v1/consolidate", "consolidate", None),
    "context": ("POST /v1/context", "context", "get_context"),
    "count_tips": ("GET /v1/tips/count", "tip count", None),
    "decay_scores": ("GET /v1/decay", "decay", None),
    "delete": ("DELETE /v1/memories/{memory_id}", "delete", "forget"),
    "derived": ("GET /v1/memories/{memory_id}/derived", "derived", None),
    "erase": ("POST /v1/purge", "erase", None),
    "expire": ("POST /v1/expire", "expire", None),
    "export": ("GET /v1/export", "export", None),
    "extract": ("POST /v1/extract", "extract", None),
    "fact_history": ("GET /v1/facts/{fact_id}/history", "chain", None),
    "facts": ("GET /v1/facts", "facts", "facts"),
    "forget": ("POST /v1/forget", "forget", None),
    "get": ("GET /v1/memories/{memory_id}", "show", None),
    "growth": ("GET /v1/growth", "growth", None),
    "history": ("GET /v1/memories/{memory_id}/history", "history", "memory_history"),
    "import_": ("POST /v1/import", "import", None),
    "learn_tips": ("POST /v1/tips/learn", "trajectory learn", None),
    "links": ("GET /v1/memories/{memory_id}/links", "links", None),
    "list": ("GET /v1/memories", "list", None),
    "list_tips": ("GET /v1/tips", "tip list", None),
    "purge": ("POST /v1/purge", "purge", None),
    "reindex": ("POST /v1/reindex", "reindex", None),
    "report_outcome": ("POST /v1/tips/outcome", "outcome", "report_outcome"),
    "scopes": ("GET /v1/scopes", "scopes", None),
    "search": ("POST /v1/search", "search", "recall"),
    "stats": ("GET /v1/stats", "stats", None),
    "tip_provenance": ("GET /v1/tips/{tip_id}/provenance", "tip show", None),
    "tips": ("POST /v1/tips/query", "tips", "tips"),
    "trajectories": ("GET /v1/trajectories", "trajectory list", None),
    "update": ("PATCH /v1/memories/{memory_id}", "update", "update_memory"),
}
# Public methods that are not operations of their own, and why.
EXEMPT: dict[str, str] = {
    "add_records": "takes prepared MemoryRecord objects: the Python path under `add`, which every interface has",
    "add_trajectory": "one trajectory: `add_trajectories` with a list of one, which every interface has",
    "close": "closes this process's handle on the store; servers and the CLI close their own",
    "lifecycle_stats": "part of `stats` (its lifecycle and llm sections)",
    "pending_extraction": "part of `stats` (lifecycle.pending_extraction)",
    "records": "`get` without counting an access, for the web UI; REST and the CLI have `get`",
    "set_llm": "configures this process's LLM client; servers and the CLI read it from the configuration",
    "version": "a change counter for caches in one process tree (the web UI's); not data",
    "warmup": "run by `engramdb serve` and `engramdb mcp` before they report ready; not a request",
}
# What an agent calls mid-conversation: each must be an MCP tool.
AGENT_TOOLS = {
    "remember", "recall", "get_context", "forget", "update_memory", "memory_history", "facts", "tips", "report_outcome"
}
DOC = Path(__file__).resolve().parents[1] / "docs" / "parity.md"


def _public_methods() -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(Memory)
        if not name.startswith("_") and inspect.isfunction(value)
    }


def test_every_operation_is_mapped():
    public = _public_methods()
    missing = sorted(public - OPERATIONS.keys() - EXEMPT.keys())
    assert not missing, f"public Memory methods with no REST route / CLI command and no written reason: {missing}"
    stale = sorted((OPERATIONS.keys() | EXEMPT.keys()) - public)
    assert not stale, f"mapped operations that Memory no longer has: {stale}"
    assert not OPERATIONS.keys() & EXEMPT.keys()


def _calls(source: str, method: str) -> bool:
    return re.search(rf"\.{re.escape(method)}\(", source) is not None


@pytest.fixture(scope="module")
def rest_routes(tmp_path_factory):
    import engramdb.server.app as app_module

    env = make_env(tmp_path_factory.mktemp("parity"), rate_limit=0, mcp=False)
    routes: dict[str, str] = {}
    for route in env.app.routes:
        for method in getattr(route, "methods", None) or ():
            src = inspect.getsource(route.endpoint)
            # a handler that hands off to a helper of the module (e.g. _purge) is read with it
            for helper in re.findall(r"\b(_[a-z_]+)\(", src):
                fn = getattr(app_module, helper, None)
                if inspect.isfunction(fn):
                    src += inspect.getsource(fn)
            routes[f"{method} {route.path}"] = src
    yield routes
    env.registry.close()
    env.keys.close()


def _cli_commands() -> dict[str, str]:
    import typer.main

    from engramdb.cli.main import app

    out: dict[str, str] = {}

    def walk(t: typer.Typer, prefix: str) -> None:
        for cmd in t.registered_commands:
            assert cmd.callback is not None
            name = cmd.name or typer.main.get_command_name(cmd.callback.__name__)
            out[f"{prefix}{name}"] = inspect.getsource(cmd.callback)
        for group in t.registered_groups:
            assert group.typer_instance is not None
            walk(group.typer_instance, f"{prefix}{group.name} ")

    walk(app, "")
    return out


def _mcp_tools() -> dict[str, str]:
    pytest.importorskip("mcp")
    from engramdb.mcp.server import build_server

    server = build_server(lambda _ctx, _perm: None)  # type: ignore[arg-type, return-value]
    return {t.name: inspect.getsource(t.fn) for t in server._tool_manager.list_tools()}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_rest_route_calls_the_operation(op, rest_routes):
    route = OPERATIONS[op][0]
    assert route in rest_routes, f"{op}: no REST route {route}"
    assert _calls(rest_routes[route], op), f"{op}: the handler of {route} does not call Memory.{op}"


def test_cli_commands_call_their_operations():
    commands = _cli_commands()
    for op, (_, command, _) in OPERATIONS.items():
        assert command in commands, f"{op}: no CLI command `engramdb {command}`"
        assert _calls(commands[command], op), f"{op}: `engramdb {command}` does not call Memory.{op}"


def test_agent_operations_are_mcp_tools():
    tools = _mcp_tools()
    assert AGENT_TOOLS <= tools.keys(), f"missing MCP tools: {sorted(AGENT_TOOLS - tools.keys())}"
    for op, (_, _, tool) in OPERATIONS.items():
        if tool is not None:
            assert _calls(tools[tool], op), f"MCP tool {tool} does not call Memory.{op}"
    assert {t for _, _, t in OPERATIONS.values() if t} == AGENT_TOOLS


# -- one definition of the inputs ---------------------------------------------------------------------------
def _params(fn, drop=()) -> list[str]:
    names = list(inspect.signature(fn).parameters)[1:]  # without self
    return [n for n in names if n not in drop]


def test_signatures_are_the_models():
    """Memory's keyword signatures and the models (REST bodies, MCP limits, CLI help) cannot drift apart."""
    assert set(_params(Memory.search)) == set(P.SearchQuery.model_fields)
    # `hits` is an out-parameter of the Python API (the web UI's recall trace), not an input
    assert set(_params(Memory.context, drop=("hits",))) == set(P.ContextQuery.model_fields)
    assert set(_params(Memory.add)) == set(P.AddRequest.model_fields)
    for fn, model in ((Memory.search, P.SearchQuery), (Memory.context, P.ContextQuery), (Memory.add, P.AddOptions)):
        sig = inspect.signature(fn)
        for name, field in model.model_fields.items():
            if name in sig.parameters and not field.is_required():
                assert sig.parameters[name].default == field.default, (fn.__name__, name)


def test_threshold_drops_low_scores(fake_mem):
    fake_mem.add(["Alice lives in Berlin", "Bob likes tea", "the weather is mild"], user_id="u")
    hits = fake_mem.search("where does Alice live", user_id="u")
    assert hits
    cut = hits[0].score
    kept = fake_mem.search("where does Alice live", user_id="u", threshold=cut)
    assert kept and all(h.score >= cut for h in kept) and len(kept) <= len(hits)
    assert fake_mem.search("where does Alice live", user_id="u", threshold=min(1.0, cut + 1e-6)) == [
        h for h in hits if h.score >= cut + 1e-6
    ]
    block = fake_mem.context("where does Alice live", user_id="u", threshold=1.0, max_tokens=200)
    assert block.text == "" or all(h.score >= 1.0 for h in hits if h.memory.text in block.text)
    with pytest.raises(Exception, match="threshold"):
        fake_mem.search("x", user_id="u", threshold=1.5)


# -- the table in the docs ----------------------------------------------------------------------------------
def parity_table() -> str:
    rows = ["| Operation | Python | REST | MCP | CLI |", "|---|---|---|---|---|"]
    for op in sorted(OPERATIONS):
        route, command, tool = OPERATIONS[op]
        rows.append(f"| {op.rstrip('_')} | `Memory.{op}` | `{route}` | {f'`{tool}`' if tool else '—'} | "
                    f"`engramdb {command}` |")
    rows += ["", "Public methods that are not operations of their own:", "", "| Method | Why |", "|---|---|"]
    rows += [f"| `Memory.{m}` | {why} |" for m, why in sorted(EXEMPT.items())]
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- parity:begin (generated by tests/test_parity.py) -->\n", "<!-- parity:end -->\n"


def test_docs_table_is_current():
    text = DOC.read_text()
    assert BEGIN in text and END in text, "docs/parity.md lost its generated section"
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    want = head + BEGIN + parity_table() + END + tail
    if os.environ.get("ENGRAMDB_UPDATE_DOCS") and text != want:
        DOC.write_text(want)
        text = want
    assert text == want, "docs/parity.md is out of date: run ENGRAMDB_UPDATE_DOCS=1 pytest tests/test_parity.py"


def test_docs_index_links_every_page():
    docs = DOC.parent
    index = (docs / "index.md").read_text()
    linked = {(docs / m).resolve() for m in re.findall(r"\]\(([^)#]+\.md)", index)}
    pages = {p.resolve() for p in docs.rglob("*.md") if p.name != "index.md"}
    assert not sorted(map(str, pages - linked)), f"docs/index.md does not link: {sorted(map(str, pages - linked))}"



def test_missing_model_extra_is_one_line(monkeypatch, tmp_path):
    """Without the 'local' extra, Memory() with the default model fails at once, naming the extra."""
    import importlib.util

    from engramdb.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    with pytest.raises(ConfigError) as exc:
        Memory(tmp_path / "x.db")
    assert "'local' extra" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "x.db").exists()  # nothing was created
    Memory(tmp_path / "y.db", embedder="hashing-8").close()  # other embedders need no extra


def test_global_store_options_and_list_past_the_end(tmp_path, monkeypatch):
    """`engramdb --url ... facts` and `engramdb --db ... list` work like the subcommand's own options, and a page
    past the end says so (not '21-20 of 2')."""
    from typer.testing import CliRunner

    from engramdb.cli.main import app as cli

    monkeypatch.setenv("ENGRAMDB_EMBEDDER", "hashing-64")
    monkeypatch.delenv("ENGRAMDB_URL", raising=False)
    monkeypatch.delenv("ENGRAMDB_PATH", raising=False)
    db = str(tmp_path / "g.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "add", "Alice lives in Berlin", "--user", "alice"]).exit_code == 0
    assert runner.invoke(cli, ["add", "Bob likes tea", "--user", "bob", "--db", db]).exit_code == 0
    r = runner.invoke(cli, ["--url", f"sqlite:///{db}", "facts", "--json"])
    assert r.exit_code == 0, r.output
    assert "ENGRAMDB_URL" not in os.environ and "ENGRAMDB_PATH" not in os.environ  # put back after the command
    page = runner.invoke(cli, ["--db", db, "list", "--offset", "20"], env={"COLUMNS": "200"})
    assert page.exit_code == 0 and "none from 21 of 2" in page.output and "21-20" not in page.output
    page = runner.invoke(cli, ["--db", db, "list"], env={"COLUMNS": "200"})
    assert "1-2 of 2" in page.output
    missing = runner.invoke(cli, ["--db", str(tmp_path / "nope.db"), "stats"])
    assert missing.exit_code == 2 and "no EngramDB store" in missing.output


def test_rest_routes_do_what_the_library_does(tmp_path, monkeypatch):
    """The new routes end to end: search options, facts, forget by ids, erase through purge, admin-only import."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("ENGRAMDB_EXTRACTION", "off")  # episodes only: the ids below are all there is
    env = make_env(tmp_path, rate_limit=0, mcp=False)
    rw, admin = env.auth("acme_rw"), env.auth("acme_admin")
    with TestClient(env.app) as c:
        ids = [m["id"] for m in c.post("/v1/memories", headers=rw, json={
            "messages": ["I live in Berlin", "I moved to Paris"], "user_id": "ann", "timestamp": "2024-01-01T00:00:00Z",
        }).json()["memories"]]
        r = c.post("/v1/search", headers=rw, json={"query": "where do I live", "user_id": "ann", "order": "-time",
                                                   "as_of": "2030-01-01T00:00:00Z", "threshold": 0, "mode": "default"})
        assert r.status_code == 200 and {h["memory"]["id"] for h in r.json()["results"]} <= set(ids)
        none = c.post("/v1/search", headers=rw, json={"query": "where do I live", "user_id": "ann", "threshold": 1})
        assert all(h["score"] >= 1 for h in none.json()["results"])
        assert c.get("/v1/facts", headers=rw, params={"user_id": "ann"}).status_code == 200
        assert c.get("/v1/facts", headers=rw, params={"user_id": "ann", "bogus": 1}).status_code == 422
        # query strings carry text: ?limit=5 is the integer 5, and the limits are the operation's own
        assert c.get("/v1/facts", headers=rw, params={"user_id": "ann", "limit": "5"}).status_code == 200
        assert c.get("/v1/facts", headers=rw, params={"user_id": "ann", "limit": "0"}).status_code == 422
        assert c.get("/v1/facts", headers=rw, params={"user_id": "ann", "limit": "1001"}).status_code == 422
        # a listing page has one bound too (api/params.MAX_PAGE), the same in Python and over REST
        from engramdb.api.params import MAX_PAGE
        from engramdb.errors import ValidationError

        assert c.get("/v1/memories", headers=rw, params={"user_id": "ann", "limit": MAX_PAGE}).status_code == 200
        assert c.get("/v1/memories", headers=rw, params={"user_id": "ann", "limit": MAX_PAGE + 1}).status_code == 422
        with Memory(tmp_path / "bounds.db", embedder="hashing-64") as local:
            local.list(limit=MAX_PAGE)
            with pytest.raises(ValidationError, match=f"between 1 and {MAX_PAGE}"):
                local.list(limit=MAX_PAGE + 1)
        gone = c.post("/v1/forget", headers=rw, json={"ids": [ids[0]]}).json()
        assert ids[0] in gone["forgotten"] and c.get(f"/v1/memories/{ids[0]}", headers=rw).status_code == 404
        assert c.post("/v1/forget", headers=rw, json={}).status_code == 422  # no selector: nothing is forgotten
        assert c.post("/v1/reindex", headers=rw).status_code == 403 and c.post("/v1/import", headers=rw, json={
            "records": [{}]}).status_code == 403
        assert c.post("/v1/purge", headers=admin, json={"memory_ids": [ids[1]]}).json()["purged"] == 1
        assert c.get(f"/v1/memories/{ids[1]}/history", headers=rw).status_code == 404  # erased with its history
    env.registry.close()
    env.keys.close()


def test_async_twin_has_every_operation():
    from engramdb import AsyncMemory

    for op in OPERATIONS:
        fn = getattr(AsyncMemory, op, None)
        assert fn is not None and inspect.iscoroutinefunction(fn), f"AsyncMemory.{op} is not a coroutine method"
        sync = set(inspect.signature(getattr(Memory, op)).parameters)
        assert set(inspect.signature(fn).parameters) == sync, f"AsyncMemory.{op} takes other arguments than Memory"
