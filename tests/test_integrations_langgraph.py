"""EngramDBStore against LangGraph's BaseStore contract.

langgraph-checkpoint ships no store tests in its wheel; the cases below are ported from its repository's
libs/checkpoint/tests/test_store.py (list_namespaces, namespace validation, search with filters, pagination,
updates, index=False), run against EngramDBStore instead of InMemoryStore, plus TTL, scope mapping and a real graph.
"""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.store.base", reason="needs the langgraph extra: pip install 'engramdb[langgraph]'")

from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp

from engramdb import AsyncMemory, Memory
from engramdb.embed import HashingEmbedder
from engramdb.integrations.langgraph import KIND, EngramDBStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(fake_mem: Memory) -> EngramDBStore:
    return EngramDBStore(fake_mem)


# -- list_namespaces (ported) ---------------------------------------------------------------------------------
def test_list_namespaces_basic(store: EngramDBStore) -> None:
    namespaces = [
        ("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"), ("a", "c", "f"),
        ("b", "a", "f"), ("users", "123"), ("users", "456", "settings"), ("admin", "users", "789"),
    ]
    for i, ns in enumerate(namespaces):
        store.put(namespace=ns, key=f"id_{i}", value={"data": f"value_{i:02d}"})

    assert store.list_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == [("a", "b", "d", "i"), ("a", "b", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]


def test_list_namespaces_wildcards_pagination_depth(store: EngramDBStore) -> None:
    for i, ns in enumerate([("users", "123"), ("users", "456"), ("users", "789", "settings"),
                            ("admin", "users", "789"), ("guests", "123"), ("guests", "456", "preferences")]):
        store.put(ns, f"id_{i}", {"data": i})
    assert store.list_namespaces(prefix=("users", "*")) == [("users", "123"), ("users", "456"),
                                                             ("users", "789", "settings")]
    assert store.list_namespaces(suffix=("*", "preferences")) == [("guests", "456", "preferences")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    assert store.list_namespaces(max_depth=1) == [("admin",), ("guests",), ("users",)]
    assert store.list_namespaces() == sorted(store.list_namespaces())  # sorted, as LangGraph's stores return


def test_list_namespaces_pagination(store: EngramDBStore) -> None:
    for i in range(20):
        store.put(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i})
    assert store.list_namespaces(prefix=("namespace",), limit=5) == [("namespace", f"sub_{i:02d}") for i in range(5)]
    assert store.list_namespaces(prefix=("namespace",), limit=5, offset=15) == [
        ("namespace", f"sub_{i:02d}") for i in range(15, 20)]


def test_list_namespaces_empty_store(store: EngramDBStore) -> None:
    assert store.list_namespaces() == []


async def test_cannot_put_bad_namespaces(store: EngramDBStore) -> None:
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "foo", doc)
        with pytest.raises(InvalidNamespaceError):
            await store.aput(bad, "foo", doc)
    with pytest.raises(InvalidNamespaceError):  # batch() itself checks labels: a '.' cannot forge a namespace
        store.batch([PutOp(("foo.bar",), "k", doc)])

    await store.aput(("foo", "langgraph", "foo"), "bar", doc)
    assert (await store.aget(("foo", "langgraph", "foo"), "bar")).value == doc
    assert (await store.asearch(("foo", "langgraph", "foo")))[0].value == doc
    await store.adelete(("foo", "langgraph", "foo"), "bar")
    assert await store.aget(("foo", "langgraph", "foo"), "bar") is None
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])  # under the public put, as LangGraph allows
    assert store.get(("langgraph", "foo"), "bar").value == doc


@pytest.mark.parametrize("namespace", [("foo.bar",), ("foo", ""), (123,)])
async def test_every_method_rejects_bad_labels(store: EngramDBStore, namespace: tuple) -> None:
    """Ported from LangGraph's namespace-validation tests: sync and async, reads included."""
    calls = [lambda: store.get(namespace, "k"), lambda: store.delete(namespace, "k"),
             lambda: store.search(namespace), lambda: store.list_namespaces(prefix=namespace),
             lambda: store.list_namespaces(suffix=namespace)]
    for call in calls:
        with pytest.raises(InvalidNamespaceError):
            call()
    with pytest.raises(InvalidNamespaceError):
        await store.asearch(namespace)
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(namespace, "k")])  # straight to batch, past the public methods


def test_labels_are_literal_and_the_empty_prefix_is_everything(store: EngramDBStore) -> None:
    store.put(("tenant", "a_%"), "k", {"v": 1})
    store.put(("tenant", "ab"), "k", {"v": 2})
    assert [r.value["v"] for r in store.search(("tenant", "a_%"))] == [1]  # no LIKE wildcards
    assert len(store.search(())) == 2
    assert store.list_namespaces(prefix=("tenant", "*"), suffix=("*",)) == [("tenant", "a_%"), ("tenant", "ab")]


# -- get / put / delete ----------------------------------------------------------------------------------------
def test_put_get_update_delete_keep_history(store: EngramDBStore, fake_mem: Memory) -> None:
    ns = ("memories", "alice")
    store.put(ns, "food", {"text": "likes pizza", "n": 1})
    first = store.get(ns, "food")
    assert first.value == {"text": "likes pizza", "n": 1} and first.namespace == ns and first.key == "food"
    store.put(ns, "food", {"text": "vegetarian now", "n": 2})
    second = store.get(ns, "food")
    assert second.value["n"] == 2
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    # one memory, versioned: the old value is in EngramDB's history
    recs = fake_mem.list(agent_id="langgraph", kinds=[KIND]).items
    assert len(recs) == 1 and recs[0].text == "text: vegetarian now\nn: 2" and recs[0].version == 2
    assert [h.action for h in fake_mem.history(recs[0].id)][:2] == ["add", "update"]
    store.delete(ns, "food")
    assert store.get(ns, "food") is None
    assert store.get(ns, "never") is None
    store.delete(ns, "never")  # deleting a missing key is a no-op, as in LangGraph


def test_batch_runs_in_order(store: EngramDBStore) -> None:
    ns = ("docs",)
    out = store.batch([
        PutOp(ns, "a", {"t": "one"}), GetOp(ns, "a"), PutOp(ns, "a", None), GetOp(ns, "a"),
        SearchOp(ns, None, 10, 0, None),
    ])
    assert out[0] is None and out[1].value == {"t": "one"} and out[2] is None and out[3] is None and out[4] == []


def test_bad_values_are_refused(store: EngramDBStore) -> None:
    with pytest.raises(ValueError, match="mapping"):
        store.batch([PutOp(("x",), "k", ["not", "a", "dict"])])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index"):
        store.put(("x",), "k", {"a": "b"}, index="a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator"):
        store.put(("x",), "k", {"a": 1})
        store.search(("x",), filter={"a": {"$regex": "1"}})
    with pytest.raises(ValueError, match="negative"):
        store.search(("x",), limit=-1)
    with pytest.raises(ValueError, match="embed"):
        EngramDBStore(store.memory, index={"dims": 64, "embed": lambda texts: [[0.0] * 64 for _ in texts]})
    with pytest.raises(ValueError, match="64-d"):
        EngramDBStore(store.memory, index={"dims": 1536})
    with pytest.raises(TypeError, match="Memory"):
        EngramDBStore(object())


# -- search (ported) ------------------------------------------------------------------------------------------
DOCS = [
    ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
    ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
    ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
    ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
]


def test_search_with_filters(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, index={"fields": ["text"]})
    for key, value in DOCS:
        store.put(("test",), key, value)
    results = store.search(("test",), query="apple", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc1"] and len(results) == 2
    results = store.search(("test",), query="car", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc2"] and len(results) == 2
    assert {r.key for r in store.search(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})} == {
        "doc1", "doc3", "doc4"}
    results = store.search(("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"})
    assert [r.key for r in results] == ["doc3"]
    assert all(r.score is not None for r in results)
    # no query: filter only, oldest first
    assert [r.key for r in store.search(("test",), filter={"color": {"$ne": "red"}})] == ["doc3", "doc4"]
    assert [r.key for r in store.search(("test",), filter={"score": {"$lt": 4, "$gte": 3.5}})] == ["doc4"]


async def test_async_search_concurrent(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, index={"fields": ["text"]})
    colors, things = ["red", "blue", "green", "yellow", "purple"], ["apple", "car", "house", "book", "phone"]
    for i in range(25):
        await store.aput(("test",), f"doc{i}", {"text": f"{colors[i % 5]} {things[i % 5]}", "color": colors[i % 5],
                                                  "score": 3.0 + (i % 5) / 2, "index": i})
    queries: list[tuple[str, dict[str, Any]]] = [
        ("apple", {"color": "red"}), ("phone", {"score": {"$gt": 4.99}}), ("book", {"score": {"$lte": 3.5}}),
        ("house", {"index": {"$gt": 12}}), ("car", {"score": {"$lt": 5.1}, "color": "blue"}),
    ]
    all_results = await asyncio.gather(*[store.asearch(("test",), query=q, filter=f) for q, f in queries])
    for results, (q, f) in zip(all_results, queries, strict=True):
        assert results, f"no results for {q!r} with {f}"
        for r in results:
            if "color" in f:
                assert r.value["color"] == f["color"]
            for field in ("score", "index"):
                for op, bound in f.get(field, {}).items():
                    v = r.value[field]
                    assert {"$gt": v > bound, "$lte": v <= bound, "$lt": v < bound}[op]


def test_search_pagination_and_edge_queries(store: EngramDBStore) -> None:
    for i in range(5):
        store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})
    page1 = store.search(("test",), query="test", limit=2)
    page2 = store.search(("test",), query="test", limit=2, offset=2)
    assert len(page1) == 2 and len(page2) == 2 and not {r.key for r in page1} & {r.key for r in page2}
    assert len(store.search(("test",), query="test", limit=10)) == 5
    assert len(store.search(("test",), query="")) == 5  # empty query: a listing, as in LangGraph
    assert len(store.search(("test",), query="test " * 100)) == 5
    assert len(store.search(("test",), query="test!@#$%^&*()")) == 5
    assert store.search(("other",), query="test") == []


def test_update_reranks_and_index_false_is_never_a_hit(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, index={"fields": ["text"]})
    store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    store.put(("test",), "doc2", {"text": "something about dogs"})
    store.put(("test",), "doc3", {"text": "text about birds"})
    before = store.search(("test",), query="Zany Xerxes")
    assert before[0].key == "doc1"
    store.put(("test",), "doc1", {"text": "new text about dogs"})
    after = store.search(("test",), query="Zany Xerxes")
    assert next(r.score for r in after if r.key == "doc1") < before[0].score
    store.put(("test",), "doc4", {"text": "zany zebra Xerxes"}, index=False)
    hits = store.search(("test",), query="zany zebra xerxes", limit=3)
    assert "doc4" not in [r.key for r in hits]
    # past the ranked hits, unindexed items follow unscored (LangGraph's in-memory store does the same)
    everything = store.search(("test",), query="zany zebra xerxes", limit=10)
    assert everything[-1].key == "doc4" and everything[-1].score is None


def test_index_fields_choose_the_ranked_text(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, index={"fields": ["title", "tags[*]"]})
    store.put(("kb",), "k1", {"title": "Espresso", "tags": ["coffee", "italy"], "body": "ignored text"})
    store.put(("kb",), "k2", {"body": "no title here"})  # nothing selected: kept, listed, never ranked
    store.put(("kb",), "k3", {"title": "Tea", "body": "x"}, index=["body"])  # per-put override
    texts = {r.metadata["lg_key"]: r.text for r in fake_mem.list(agent_id="langgraph").items}
    assert texts["k1"] == "Espresso\ncoffee\nitaly" and texts["k3"] == "x"
    assert [r.key for r in store.search(("kb",), query="coffee", limit=2)][0] == "k1"
    assert store.search(("kb",), query="coffee", limit=3)[-1].score is None


# -- scope mapping --------------------------------------------------------------------------------------------
def test_namespace_labels_map_to_scopes(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, agent_id="planner", user_label=1, session_label=2)
    store.put(("memories", "alice", "s1"), "k", {"text": "Alice moved to Lisbon"})
    store.put(("memories", "bob"), "k", {"text": "Bob lives in Oslo"})
    rec = fake_mem.list(user_id="alice").items[0]
    assert (rec.user_id, rec.agent_id, rec.session_id, rec.kind) == ("alice", "planner", "s1", KIND)
    assert fake_mem.list(user_id="bob").items[0].session_id is None
    # the items are ordinary memories: EngramDB's own retrieval sees them under the user
    assert "Lisbon" in fake_mem.context("where does alice live", user_id="alice").text
    # and a search under one user's prefix never returns another's
    assert [r.value["text"] for r in store.search(("memories", "bob"), query="lives")] == ["Bob lives in Oslo"]
    with pytest.raises(ValueError, match="different"):
        EngramDBStore(fake_mem, user_label=1, session_label=1)
    with pytest.raises(ValueError, match="position"):
        EngramDBStore(fake_mem, user_label=-1)


# -- TTL --------------------------------------------------------------------------------------------------------
def test_ttl_maps_to_expires_at_and_refreshes(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem, ttl={"default_ttl": 60})
    assert store.supports_ttl
    store.put(("t",), "default", {"v": 1})
    store.put(("t",), "short", {"v": 2}, ttl=5)
    store.put(("t",), "forever", {"v": 3}, ttl=None)
    recs = {r.metadata["lg_key"]: r for r in fake_mem.list(agent_id="langgraph").items}
    now = datetime.now(UTC)
    assert timedelta(minutes=59) < recs["default"].expires_at - now <= timedelta(minutes=60)
    assert timedelta(minutes=4) < recs["short"].expires_at - now <= timedelta(minutes=5)
    assert recs["forever"].expires_at is None
    # a read refreshes the timer, unless told not to
    old = recs["short"].expires_at
    store.get(("t",), "short", refresh_ttl=False)
    assert fake_mem.get(recs["short"].id).expires_at == old
    store.get(("t",), "short")
    assert fake_mem.get(recs["short"].id).expires_at > old
    # dropping the TTL on a put keeps the item, now without expiry
    store.put(("t",), "short", {"v": 2}, ttl=None)
    assert [r.expires_at for r in fake_mem.list(agent_id="langgraph").items if r.metadata["lg_key"] == "short"] == [
        None]
    assert store.get(("t",), "short").value == {"v": 2}
    with pytest.raises(ValueError, match="ttl"):
        store.put(("t",), "bad", {"v": 1}, ttl=-1)
    # newer LangGraph releases pass a timedelta or an aware datetime through as the TTL
    store.batch([PutOp(("t",), "td", {"v": 4}, ttl=timedelta(minutes=15))])
    store.batch([PutOp(("t",), "dt", {"v": 5}, ttl=datetime.now(UTC) + timedelta(minutes=30))])
    recs = {r.metadata["lg_key"]: r for r in fake_mem.list(agent_id="langgraph").items}
    assert recs["td"].metadata["lg_ttl"] == 15.0 and 29.9 < recs["dt"].metadata["lg_ttl"] <= 30.0


def test_expired_items_read_as_gone_and_are_swept(fake_mem: Memory) -> None:
    store = EngramDBStore(fake_mem)
    store.put(("t",), "gone", {"v": 1}, ttl=0.001)  # 60 ms
    store.put(("t",), "kept", {"v": 2})
    import time

    time.sleep(0.2)
    assert store.get(("t",), "gone") is None
    assert [r.key for r in store.search(("t",))] == ["kept"]
    assert store.sweep_ttl() == 1


# -- async twin, and a real LangGraph graph ------------------------------------------------------------------
async def test_async_memory_is_accepted(tmp_path: Path) -> None:
    amem = AsyncMemory(tmp_path / "a.db", embedder=HashingEmbedder(64))
    store = EngramDBStore(amem, user_label=0)
    await store.aput(("carol", "prefs"), "tea", {"text": "Carol drinks green tea"})
    assert (await store.aget(("carol", "prefs"), "tea")).value["text"] == "Carol drinks green tea"
    assert (await amem.list(user_id="carol")).total == 1
    await amem.close()


def test_graph_nodes_use_the_store(fake_mem: Memory) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.store.base import BaseStore

    def remember(state: MessagesState, *, store: BaseStore) -> dict:
        store.put(("memories", "u1"), "last", {"text": state["messages"][-1].content})
        hits = store.search(("memories", "u1"), query="what did I say")
        return {"messages": [("ai", f"stored; {len(hits)} memory")]}

    graph = StateGraph(MessagesState).add_node("remember", remember)
    graph = graph.add_edge(START, "remember").add_edge("remember", END).compile(store=EngramDBStore(fake_mem))
    out = graph.invoke({"messages": [("user", "my cat is called Miso")]})
    assert out["messages"][-1].content == "stored; 1 memory"


def test_example_remembers_a_user_across_threads(tmp_path: Path, embedder: Any) -> None:
    """The shipped example, on the real default embedding model: thread 2 recalls what thread 1 was told."""
    spec = importlib.util.spec_from_file_location("langgraph_memory", ROOT / "examples" / "langgraph_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Memory(tmp_path / "ex.db", embedder=embedder) as mem:
        lines = module.run(mem)
    second = [line for line in lines if line.startswith("[thread-2] assistant:")]
    assert second and "vegetarian" in second[0] and "Lisbon" in second[0]
    assert "[thread-2] history: 0 messages before this turn" in lines  # a fresh thread: the store carried it


def test_store_on_postgres(pg_url: str) -> None:
    """The same store over the PostgreSQL backend: its metadata filters (namespace, key, indexed) match SQLite's."""
    with Memory(url=pg_url, embedder=HashingEmbedder(64)) as pmem:
        store = EngramDBStore(pmem, user_label=1, index={"fields": ["text"]})
        store.put(("memories", "ada"), "a", {"text": "Ada likes green tea", "n": 1})
        store.put(("memories", "ada"), "b", {"text": "Ada plays chess"}, index=False)
        store.put(("memories", "bob"), "a", {"text": "Bob likes coffee", "n": 2})
        assert store.get(("memories", "ada"), "a").value["n"] == 1
        assert [r.key for r in store.search(("memories", "ada"), query="tea", limit=1)] == ["a"]
        assert [(r.key, r.score) for r in store.search(("memories", "ada"), query="chess")][-1] == ("b", None)
        assert [r.value["text"] for r in store.search(("memories",), filter={"n": {"$gt": 1}})] == ["Bob likes coffee"]
        assert store.list_namespaces(prefix=("memories",)) == [("memories", "ada"), ("memories", "bob")]
        store.delete(("memories", "ada"), "a")
        assert store.get(("memories", "ada"), "a") is None
