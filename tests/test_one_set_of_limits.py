"""One set of limits: the same bad input is refused by Python (`Memory`), REST and the CLI with the same message
(the summary of the operation's model in api/params.py), and nothing is written.

Each case names the operation, the bad value, and how each interface sends it; the CLI is left out (None) where
it has no option for that value or its parser refuses it first (an integer option given text).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_env
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.api import params as P
from engramdb.cli.main import app as cli
from engramdb.errors import ValidationError
from engramdb.store.base import Filters

LONG_ID = "u" * 300  # over MAX_ID_CHARS (256)
CLI_ENV = {"ENGRAMDB_EMBEDDER": "hashing-64"}


@dataclass
class Case:
    name: str
    python: Callable[[Memory, str], Any]  # (memory, an existing memory id)
    rest: tuple[str, str, dict[str, Any]] | None  # (method, path with {id}, json body or query params)
    cli: list[str] | None  # arguments, {id} for an existing memory id
    starts: str  # the message starts with the field it names


def _search(**kw: Any) -> Case:
    name = "search " + ", ".join(f"{k}={v!r}"[:40] for k, v in kw.items())
    body = {"query": "where", "user_id": "u", **kw}
    flags = {"limit": "--limit", "as_of": "--as-of", "user_id": "--user"}
    cli = None
    if all(k in flags or k in ("query", "kinds") for k in kw) and not isinstance(kw.get("limit", 1), str):
        cli = ["search", str(body["query"])]
        for k, v in kw.items():
            if k in flags:
                cli += [flags[k], str(v)]
            elif k == "kinds":
                cli += [arg for kind in v for arg in ("--kind", kind)]
        if "user_id" not in kw:
            cli += ["--user", "u"]
    return Case(name, lambda m, _id: m.search(body["query"], **{k: v for k, v in body.items() if k != "query"}),
                ("post", "/v1/search", body), cli, next(iter(kw)))


CASES = [
    # search: the pin this file grew from (limit 0 and 1001), and the rest of its fields
    _search(limit=0),
    _search(limit=P.MAX_LIMIT + 1),
    _search(limit="5"),
    _search(query=""),
    _search(as_of="yesterday"),
    _search(as_of="2024-05-08T13:56:00"),
    _search(kinds=["Not A Kind"]),
    _search(user_id=LONG_ID),
    # context
    Case("context max_tokens=15", lambda m, _id: m.context("where", user_id="u", max_tokens=P.MIN_TOKENS - 1),
         ("post", "/v1/context", {"query": "where", "user_id": "u", "max_tokens": P.MIN_TOKENS - 1}),
         ["context", "where", "--user", "u", "--max-tokens", str(P.MIN_TOKENS - 1)], "max_tokens"),
    Case("context max_tokens too many", lambda m, _id: m.context("where", user_id="u", max_tokens=P.MAX_TOKENS + 1),
         ("post", "/v1/context", {"query": "where", "user_id": "u", "max_tokens": P.MAX_TOKENS + 1}),
         ["context", "where", "--user", "u", "--max-tokens", str(P.MAX_TOKENS + 1)], "max_tokens"),
    # add
    Case("add unknown kind", lambda m, _id: m.add("hi", user_id="u", kind="Not A Kind"),
         ("post", "/v1/memories", {"messages": "hi", "user_id": "u", "kind": "Not A Kind"}),
         ["add", "hi", "--user", "u", "--kind", "Not A Kind"], "kind"),
    Case("add long user_id", lambda m, _id: m.add("hi", user_id=LONG_ID),
         ("post", "/v1/memories", {"messages": "hi", "user_id": LONG_ID}), ["add", "hi", "--user", LONG_ID], "user_id"),
    Case("add importance 2", lambda m, _id: m.add("hi", user_id="u", importance=2),
         ("post", "/v1/memories", {"messages": "hi", "user_id": "u", "importance": 2}),
         ["add", "hi", "--user", "u", "--importance", "2"], "importance"),
    # update
    Case("update importance 2", lambda m, i: m.update(i, importance=2),
         ("patch", "/v1/memories/{id}", {"importance": 2}), ["update", "{id}", "--importance", "2"], "importance"),
    Case("update blank text", lambda m, i: m.update(i, text=" "),
         ("patch", "/v1/memories/{id}", {"text": " "}), ["update", "{id}", "--text", " "], "text"),
    Case("update nothing", lambda m, i: m.update(i),
         ("patch", "/v1/memories/{id}", {}), ["update", "{id}"], "update: nothing to change"),
    Case("update bad valid_to", lambda m, i: m.update(i, valid_to="soon"),
         ("patch", "/v1/memories/{id}", {"valid_to": "soon"}), None, "valid_to"),
    # facts (its REST route reads query parameters)
    Case("facts bad as_of", lambda m, _id: m.facts(user_id="u", as_of="yesterday"),
         ("get", "/v1/facts", {"user_id": "u", "as_of": "yesterday"}),
         ["facts", "--user", "u", "--as-of", "yesterday"], "as_of"),
    Case("facts long user_id", lambda m, _id: m.facts(user_id=LONG_ID),
         ("get", "/v1/facts", {"user_id": LONG_ID}), ["facts", "--user", LONG_ID], "user_id"),
    # forget
    Case("forget bad before", lambda m, _id: m.forget(user_id="u", before="yesterday"),
         ("post", "/v1/forget", {"user_id": "u", "before": "yesterday"}),
         ["forget", "--user", "u", "--before", "yesterday"], "before"),
    Case("forget unknown kind", lambda m, _id: m.forget(user_id="u", kinds=["Not A Kind"]),
         ("post", "/v1/forget", {"user_id": "u", "kinds": ["Not A Kind"]}),
         ["forget", "--user", "u", "--kind", "Not A Kind"], "kinds.0"),
    Case("forget empty filters", lambda m, _id: m.forget(filters={}),
         ("post", "/v1/forget", {"filters": {}}), None, "filters"),
    # expire, extract
    Case("expire bad at", lambda m, _id: m.expire(at="yesterday"),
         ("post", "/v1/expire", {"at": "yesterday"}), None, "at"),
    Case("extract unknown extractor", lambda m, _id: m.extract(extractor="magic"),
         ("post", "/v1/extract", {"extractor": "magic"}), ["extract", "--extractor", "magic"], "extractor"),
    Case("extract no episode ids", lambda m, _id: m.extract(episode_ids=[]),
         ("post", "/v1/extract", {"episode_ids": []}), None, "episode_ids"),
    # procedural memory
    Case("trajectories long user_id",
         lambda m, _id: m.add_trajectories([{"task": "t", "steps": [], "outcome": "success"}], user_id=LONG_ID),
         ("post", "/v1/trajectories",
          {"trajectories": [{"task": "t", "steps": [], "outcome": "success"}], "user_id": LONG_ID}),
         ["trajectory", "add", "{traj}", "--user", LONG_ID], "user_id"),
    Case("trajectories none", lambda m, _id: m.add_trajectories([], user_id="u"),
         ("post", "/v1/trajectories", {"trajectories": [], "user_id": "u"}), None, "trajectories"),
    Case("learn min_support 0", lambda m, _id: m.learn_tips(user_id="u", min_support=0),
         ("post", "/v1/tips/learn", {"user_id": "u", "min_support": 0}),
         ["trajectory", "learn", "--user", "u", "--min-support", "0"], "min_support"),
    Case("tips limit 0", lambda m, _id: m.tips("ship it", limit=0),
         ("post", "/v1/tips/query", {"task_description": "ship it", "limit": 0}),
         ["tips", "ship it", "--limit", "0"], "limit"),
    Case("tips limit 101", lambda m, _id: m.tips("ship it", limit=P.MAX_TIPS + 1),
         ("post", "/v1/tips/query", {"task_description": "ship it", "limit": P.MAX_TIPS + 1}),
         ["tips", "ship it", "--limit", str(P.MAX_TIPS + 1)], "limit"),
    Case("tips limit not an int", lambda m, _id: m.tips("ship it", limit="5"),
         ("post", "/v1/tips/query", {"task_description": "ship it", "limit": "5"}), None, "limit"),
    Case("tips empty task", lambda m, _id: m.tips(" "),
         ("post", "/v1/tips/query", {"task_description": " "}), ["tips", " "], "task_description"),
    Case("tips unknown type", lambda m, _id: m.tips("ship it", types=["magic"]),
         ("post", "/v1/tips/query", {"task_description": "ship it", "types": ["magic"]}), None, "types.0"),
    Case("outcome unknown", lambda m, _id: m.report_outcome(["t1"], "meh"),
         ("post", "/v1/tips/outcome", {"tip_ids": ["t1"], "outcome": "meh"}),
         ["outcome", "t1", "--result", "meh"], "outcome"),
    Case("outcome no tips", lambda m, _id: m.report_outcome([], "success"),
         ("post", "/v1/tips/outcome", {"tip_ids": [], "outcome": "success"}), None, "tip_ids"),
]


def _snapshot(mem: Memory, memory_id: str) -> tuple[int, int, int]:
    """What a write would change: live memories, all rows (forgotten ones too), the sample memory's version."""
    every = mem.store.count(Filters(include_deleted=True, include_expired=True))
    return mem.store.count(Filters()), every, mem.records([memory_id])[0].version


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    env = make_env(tmp, rate_limit=0, mcp=False)
    mem = env.registry.get("acme")
    rest_id = mem.add("Alice lives in Berlin", user_id="u")[0].id
    db = str(tmp / "cli.db")
    with Memory(db, embedder="hashing-64") as m:
        cli_id = m.add("Alice lives in Berlin", user_id="u")[0].id
    traj = tmp / "traj.json"
    traj.write_text(json.dumps({"task": "t", "steps": [{"action": "look"}], "outcome": "success"}))
    with TestClient(env.app) as client:
        yield env, client, mem, rest_id, db, cli_id, str(traj)
    env.registry.close()
    env.keys.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_refusal_everywhere(case, world):
    env, client, mem, rest_id, db, cli_id, traj = world
    before = _snapshot(mem, rest_id)
    with pytest.raises(ValidationError) as exc:
        case.python(mem, rest_id)
    message = str(exc.value)
    assert message.startswith(case.starts), message
    assert _snapshot(mem, rest_id) == before

    if case.rest is not None:
        method, path, data = case.rest
        kw = {"params": data} if method == "get" else {"json": data}
        r = client.request(method.upper(), path.format(id=rest_id), headers=env.auth("acme_rw"), **kw)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["message"] == message
        assert _snapshot(mem, rest_id) == before

    if case.cli is not None:
        with Memory(db, embedder="hashing-64") as m:
            cli_before = _snapshot(m, cli_id)
        args = [a.format(id=cli_id, traj=traj) if "{" in a else a for a in case.cli]
        res = CliRunner().invoke(cli, [*args, "--db", db], env=CLI_ENV)
        assert res.exit_code == 2, res.output
        assert message in res.output, res.output
        with Memory(db, embedder="hashing-64") as m:
            assert _snapshot(m, cli_id) == cli_before


# Each operation's model against its Python signature: a field of the model is an argument of the method (the
# names below are the ones Python spells otherwise), so no limit or option exists on one interface only.
MODELS: dict[str, tuple[type, set[str], set[str]]] = {
    # method: (model, model fields Python takes in another shape, arguments with no field)
    "search": (P.SearchQuery, set(), set()),
    "context": (P.ContextQuery, set(), {"hits"}),
    "add": (P.AddRequest, set(), set()),
    "update": (P.UpdateRequest, set(), {"memory_id"}),
    "facts": (P.FactsQuery, set(), set()),
    "forget": (P.ForgetRequest, set(), {"memory_id"}),
    "expire": (P.ExpireRequest, set(), set()),
    "extract": (P.ExtractRequest, set(), {"batch", "progress"}),
    "add_trajectories": (P.TrajectoriesRequest, set(), {"timestamp"}),
    "learn_tips": (P.LearnRequest, set(), {"validator", "llm"}),
    "tips": (P.TipsQuery, set(), {"track", "audience"}),
    "report_outcome": (P.OutcomeRequest, set(), {"validator"}),
    "import_": (P.ImportRequest, {"records"}, {"src", "progress"}),
}


@pytest.mark.parametrize("op", sorted(MODELS))
def test_each_operation_has_its_model(op):
    model, elsewhere, extra = MODELS[op]
    params = set(list(inspect.signature(getattr(Memory, op)).parameters)[1:])
    fields = set(model.model_fields)
    assert not fields - elsewhere - params, f"{op}: fields the Python API does not take"
    assert not params - extra - fields, f"{op}: arguments outside the model"
    sig = inspect.signature(getattr(Memory, op))
    for name, field in model.model_fields.items():
        if name in sig.parameters and not field.is_required():
            assert sig.parameters[name].default == field.default, (op, name)
    # and the method hands its arguments to that model
    # (add checks its messages in more shapes than JSON, the rest through AddOptions)
    checks = {"add_trajectories": "_check_trajectories(", "add": "P.AddOptions"}.get(op, f"P.{model.__name__}")
    assert checks in inspect.getsource(getattr(Memory, op)), op
