"""Property-based fuzzing of the public Python API with Hypothesis.

Random values (wrong types, huge and boolean numbers, NaN, NUL and lone surrogates, deep nesting, odd filter keys)
go to every argument of the public methods. The property: a call either succeeds, or raises an EngramError (a
ValidationError, NotFoundError, ...) and leaves the store byte for byte as it was. Anything else (a TypeError, an
OverflowError, a raw sqlite3 or pydantic error, a half-written change) fails the test.
ENGRAMDB_FUZZ_EXAMPLES raises the number of examples per method (the CI run is bounded).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Memory, MemoryConfig
from engramdb.embed import HashingEmbedder
from engramdb.errors import EngramError

EXAMPLES = int(os.environ.get("ENGRAMDB_FUZZ_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # NUL and lone surrogates included
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.sampled_from(["", " ", "a.", "a..b", ".a", "x" * 300, "2024-01-01T00:00:00", "2024-01-01T00:00:00Z", "u"]),
)
_json = st.recursive(
    _scalar, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=12,
)  # fmt: skip
_any = st.one_of(_json, st.just(object()), st.just(b"bytes"), st.just(("t",)))


def _deep(n: int) -> dict:
    d: dict = {}
    for _ in range(n):
        d = {"a": d}
    return d


_meta = st.one_of(_any, st.dictionaries(_text, _json, max_size=4), st.integers(1, 300).map(_deep))
_kw = st.fixed_dictionaries  # readable below


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "f.db"
    # config, not the environment: an environment variable would leak into every later test file
    m = Memory(path, embedder=HashingEmbedder(32), config=MemoryConfig(extraction="off"))
    seed = m.add(["alice moved to Berlin", "bob likes tea"], user_id="u", session_id="s", metadata={"a": {"b": 1}})
    yield m, path, seed[0].id
    m.close()


def _fingerprint(path) -> str:
    conn = sqlite3.connect(path)
    h = hashlib.sha256()
    for table in ("memories", "vectors", "token_vectors", "history", "links", "meta"):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):
            h.update(repr(tuple(row)).encode("utf-8", "surrogatepass"))
    conn.close()
    return h.hexdigest()


def _check(store, call) -> None:
    mem, path, _ = store
    mem.store._flush_touches(wait_ms=1000)  # earlier successful reads' access counts go out first
    before = _fingerprint(path)
    try:
        call(mem)
    except EngramError:
        mem.store._flush_touches(wait_ms=1000)
        assert _fingerprint(path) == before, "a refused call changed the store"


@SETTINGS
@given(args=_kw({"messages": st.one_of(_any, st.lists(_any, max_size=3))},
                optional={"user_id": _any, "agent_id": _any, "session_id": _any, "timestamp": _any, "metadata": _meta,
                          "kind": _any, "source_ref": _any, "importance": _any, "expires_at": _any}))  # fmt: skip
def test_add(store, args):
    _check(store, lambda m: m.add(**args))


@SETTINGS
@given(query=_any, args=_kw({}, optional={"user_id": _any, "session_id": _any, "limit": _any, "filters": _meta,
                                          "kinds": _any, "since": _any, "until": _any, "as_of": _any, "order": _any,
                                          "mode": _any}))  # fmt: skip
def test_search(store, query, args):
    _check(store, lambda m: m.search(query, **args))


@SETTINGS
@given(query=_any, args=_kw({}, optional={"user_id": _any, "max_tokens": _any, "limit": _any, "filters": _meta}))
def test_context(store, query, args):
    _check(store, lambda m: m.context(query, **args))


@SETTINGS
@given(args=_kw({}, optional={"user_id": _any, "agent_id": _any, "kinds": _any, "since": _any, "until": _any,
                              "filters": _meta, "limit": _any, "offset": _any, "order": _any}))  # fmt: skip
def test_list(store, args):
    _check(store, lambda m: m.list(**args))


@SETTINGS
@given(which=st.sampled_from(["get", "delete", "history", "fact_history"]), mid=_any)
def test_by_id(store, which, mid):
    _check(store, lambda m: getattr(m, which)(mid))


@SETTINGS
@given(real=st.booleans(), args=_kw({}, optional={"text": _any, "metadata": _meta, "importance": _any,
                                                  "expires_at": _any, "occurred_at": _any, "valid_to": _any}))
def test_update(store, real, args):
    _check(store, lambda m: m.update(store[2] if real else "nope", **args))


@SETTINGS
@given(args=_kw({}, optional={"user_id": _any, "subject": _any, "attribute": _any, "as_of": _any,
                              "include_history": _any, "limit": _any}))  # fmt: skip
def test_facts(store, args):
    _check(store, lambda m: m.facts(**args))


@SETTINGS
@given(args=_kw({}, optional={"memory_id": _any, "user_id": _any, "session_id": _any, "kinds": _any,
                              "filters": _meta, "before": _any}))  # fmt: skip
def test_forget(store, args):
    _check(store, lambda m: m.forget(**{"user_id": "nobody", **args}))  # never the seeded user's memories


@SETTINGS
@given(lines=st.lists(st.one_of(_json.map(json.dumps), _text), max_size=4))
def test_import(store, lines):
    _check(store, lambda m: m.import_(io.StringIO("\n".join(lines))))


# Every other public method, each argument drawn from the same junk. The reasons a method is left out are written.
_COVERED = {"add", "search", "context", "list", "get", "history", "update", "delete", "facts", "forget", "import_"}
_EXEMPT = {
    "close": "closes the store the other examples use",
    "set_llm": "takes a client object, not data; configured by code",
    "export": "writes to a path or file the caller names (tested in test_export_import.py)",
    "warmup": "takes no arguments",
}
_OTHERS = sorted(
    n for n, f in inspect.getmembers(Memory, inspect.isfunction)
    if not n.startswith("_") and n not in _COVERED and n not in _EXEMPT
)


@pytest.mark.parametrize("name", _OTHERS)
def test_every_other_public_method(store, name):
    sig = inspect.signature(getattr(Memory, name))
    params = [p for p in sig.parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @settings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    @given(data=st.data())
    def run(data):
        args: dict = {}
        for p in params:
            if p.default is p.empty or data.draw(st.booleans()):
                args[p.name] = data.draw(_meta if p.name in ("metadata", "filters") else _any)
        pos = [args.pop(p.name) for p in params if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
        _check(store, lambda m: getattr(m, name)(*pos, **args))

    run()
