"""EngramDB as LangGraph's long-term store: `EngramDBStore`, a `langgraph.store.base.BaseStore`.

    from engramdb import Memory
    from engramdb.integrations.langgraph import EngramDBStore

    store = EngramDBStore(Memory("agent.db"), user_label=1)  # namespaces like ("memories", user_id)
    graph = builder.compile(store=store)                      # nodes get it as `store`

Each item (namespace, key) -> value is one memory of kind ``langgraph``: its text is what the index config
selects from the value (that text is what hybrid search ranks), the value itself is kept in metadata, and the
namespace maps onto EngramDB scopes (see docs/integrations/langgraph.md).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from . import missing, sync_memory

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        IndexConfig,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
        get_text_at_path,
        tokenize_path,
        validate_op_namespace,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("langgraph", "langgraph") from exc

__all__ = ["EngramDBStore", "KIND"]

KIND = "langgraph"  # the memory kind of store items: apart from episodes, never fed to fact extraction
_PAGE = 1000  # records per list() page when a read has to scan a namespace
_SEARCH_MAX = 1000  # Memory.search's largest limit


class EngramDBStore(BaseStore):
    """A LangGraph `BaseStore` over an EngramDB `Memory` (or `AsyncMemory`).

    Args:
        memory: the EngramDB memory to keep items in.
        agent_id: the agent scope every item carries; it keeps these items apart from the rest of the store.
        user_label: position of the namespace label that names the user (``1`` for ``("memories", user_id)``);
            that label becomes the memory's ``user_id``, so ``Memory.context(..., user_id=...)`` sees the items.
        session_label: the same for ``session_id``.
        index: LangGraph's index config. ``fields`` chooses what is embedded and ranked (default ``["$"]``:
            every string, number and boolean in the value, as ``path: value`` lines). ``dims``, if given, must
            equal the memory's embedding dimension; ``embed`` is refused: EngramDB embeds with its own model.
        ttl: LangGraph's TTL config (``default_ttl`` minutes, ``refresh_on_read``); TTLs become ``expires_at``.
        audience: who reads the items (an agent id, ``"purpose:<label>"`` or a dict; docs/privacy.md): ``get``
            and ``search`` then return only what the disclosure policies let it see, each read is audited, and
            an item the policy redacts comes back as ``{"text": <the redacted text>, "redacted": [categories]}``.
            Items are written under ``agent_id``, so an agent audience reads them when it is that agent (or
            through a space grant); None (the default): the caller owns the data, nothing is filtered.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        memory: Any,
        *,
        agent_id: str = "langgraph",
        user_label: int | None = None,
        session_label: int | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        audience: str | dict[str, str] | None = None,
    ) -> None:
        self.memory = sync_memory(memory)
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("agent_id must be a non-empty string")
        for name, label in (("user_label", user_label), ("session_label", session_label)):
            if label is not None and (not isinstance(label, int) or isinstance(label, bool) or label < 0):
                raise ValueError(f"{name} must be a namespace position (an integer >= 0) or None")
        if user_label is not None and user_label == session_label:
            raise ValueError("user_label and session_label must name different namespace positions")
        self.agent_id = agent_id
        self.user_label = user_label
        self.session_label = session_label
        self.index_config = _check_index(index, self.memory)
        self._fields = [(f, f if f == "$" else tokenize_path(f)) for f in self.index_config.get("fields") or ["$"]]
        self.ttl_config = _check_ttl(ttl)
        self.audience = audience
        if audience is not None:
            self.memory.privacy.disclose([], audience)  # a malformed audience fails here, not on the first read
        self._lock = threading.RLock()  # a get-then-put per item: one batch at a time in this process

    # -- the BaseStore contract ------------------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order; each sees the writes of the ones before it."""
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        with self._lock:
            return [self._run(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        # The memory's calls are blocking (SQLite, the embedding model): run them off the event loop.
        return await asyncio.to_thread(self.batch, list(ops))

    def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op)
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise ValueError(f"unknown store operation: {type(op).__name__}")

    # -- maintenance ---------------------------------------------------------------------------------------
    def sweep_ttl(self) -> int:
        """Soft-delete every expired memory of the store (reads already hide them). Returns how many."""
        return self.memory.expire()

    # -- operations ----------------------------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        rec = self._find(op.namespace, op.key)
        if rec is None:
            return None
        if op.refresh_ttl:
            rec = self._refresh(rec)
        if self.audience is not None:
            got = self._disclose([(rec, None)], "get")
            return _item(got[0][0]) if got else None
        return _item(rec)

    def _put(self, op: PutOp) -> None:
        old = self._find(op.namespace, op.key)
        if op.value is None:
            if old is not None:
                self.memory.delete(old.id)
            return
        if not isinstance(op.value, Mapping):
            raise ValueError(f"a store value must be a mapping (dict), got {type(op.value).__name__}")
        at = datetime.now(UTC)
        ttl = _ttl_minutes(op.ttl, at)
        value = dict(op.value)
        text, indexed = self._text(op.key, value, op.index)
        meta = {
            "lg_ns": ".".join(op.namespace),
            "lg_key": op.key,
            **{f"lg_l{i}": label for i, label in enumerate(op.namespace)},
            "lg_indexed": indexed,
            "lg_ttl": ttl,
            "lg_created_at": (old.metadata.get("lg_created_at") if old else None) or at.isoformat(),
            "lg_updated_at": at.isoformat(),
            "value": value,
        }
        expires = at + timedelta(minutes=ttl) if ttl is not None else None
        if old is not None and (expires is not None or old.expires_at is None):
            # update keeps the memory's id and writes the old version to history
            self.memory.update(
                old.id, text=text if text != old.text else None, metadata=meta, expires_at=expires
            )
            return
        if old is not None:  # dropping a TTL: expires_at cannot be cleared in place, so replace the memory
            self.memory.delete(old.id)
        self.memory.add(
            text, kind=KIND, metadata=meta, expires_at=expires, timestamp=at, **self._scope(op.namespace)
        )

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise ValueError("search limit and offset must not be negative")
        if op.filter is not None and not isinstance(op.filter, dict):
            raise ValueError(f"filter must be a dict, got {type(op.filter).__name__}")
        if op.limit == 0:
            return []
        want = op.offset + op.limit
        scope, where = self._prefix(op.namespace_prefix)
        out: list[tuple[Any, float | None]] = []
        if op.query:
            hits = self.memory.search(
                op.query, kinds=[KIND], filters={**where, "lg_indexed": True},
                limit=min(_SEARCH_MAX, want if not op.filter else _SEARCH_MAX), audience=self.audience, **scope,
            )
            out = [(_redacted(h.memory), h.score) for h in hits  # the audience's view (search disclosed it)
                   if _matches(_redacted(h.memory).metadata["value"], op.filter)]
        if len(out) < want:
            # no query, or fewer ranked hits than asked: the rest in insertion order, unscored (as LangGraph's
            # in-memory store does for items it did not embed)
            seen = {rec.id for rec, _ in out}
            for rec in self._scan(scope, where if not op.query else {**where, "lg_indexed": False}):
                view = rec
                if self.audience is not None:
                    got = self._disclose([(rec, None)], None)
                    if not got:
                        continue  # not for this audience
                    view = got[0][0]
                if rec.id not in seen and _matches(view.metadata["value"], op.filter):
                    out.append((rec, None))
                    if len(out) >= want:
                        break
        page = out[op.offset : want]
        if op.refresh_ttl:
            # a refresh reads the stored record back: the audience keeps the view it was given
            page = [(rec if "redacted" in rec.metadata else new, score)
                    for (rec, score), new in zip(page, [self._refresh(r) for r, _ in page], strict=True)]
        if self.audience is not None:
            # the unranked ones (from the scan) go out as the audience's view, and are audited
            views = {r.id: r for r, _ in self._disclose([(r, s) for r, s in page if s is None], "search")}
            page = [(views.get(r.id, r) if s is None else r, s) for r, s in page if s is not None or r.id in views]
        return [_search_item(rec, score) for rec, score in page]

    def _disclose(self, items: list[tuple[Any, float | None]], op: str | None) -> list[tuple[Any, float | None]]:
        """What the audience may receive of `items`; with `op`, audited. A redacted item's value is its
        redacted text (the value itself would show what the policy hides)."""
        from ..model import SearchResult

        if not items:
            return []
        got = self.memory.privacy.disclose([SearchResult(memory=r, score=s or 0.0) for r, s in items],
                                           self.audience, op=op)
        scores = {r.id: s for r, s in items}
        return [(_redacted(x.memory), scores[x.memory.id]) for x in got]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        if op.limit < 0 or op.offset < 0:
            raise ValueError("list_namespaces limit and offset must not be negative")
        if op.max_depth is not None and op.max_depth < 1:
            raise ValueError("max_depth must be at least 1")
        conditions = tuple(op.match_conditions or ())
        where: dict[str, Any] = {}
        for cond in conditions:  # literal labels of a prefix narrow the scan; wildcards and suffixes match below
            if cond.match_type == "prefix":
                where.update({f"lg_l{i}": lab for i, lab in enumerate(cond.path) if lab != "*"})
        found: set[tuple[str, ...]] = set()
        for rec in self._scan({}, where):
            ns = _namespace(rec)
            if all(_ns_matches(c, ns) for c in conditions):
                found.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(found)[op.offset : op.offset + op.limit]

    # -- helpers -----------------------------------------------------------------------------------------
    def _scope(self, namespace: tuple[str, ...]) -> dict[str, str]:
        scope = {"agent_id": self.agent_id}
        if self.user_label is not None and len(namespace) > self.user_label:
            scope["user_id"] = namespace[self.user_label]
        if self.session_label is not None and len(namespace) > self.session_label:
            scope["session_id"] = namespace[self.session_label]
        return scope

    def _prefix(self, prefix: tuple[str, ...]) -> tuple[dict[str, str], dict[str, Any]]:
        """Scope arguments and metadata filters for every item under a namespace prefix."""
        # the user/session label narrows by scope too, when the prefix reaches it
        return self._scope(prefix), {f"lg_l{i}": label for i, label in enumerate(prefix)}

    def _find(self, namespace: tuple[str, ...], key: str) -> Any:
        page = self.memory.list(
            kinds=[KIND], filters={"lg_ns": ".".join(namespace), "lg_key": key}, limit=1,
            **self._scope(namespace),
        )
        return page.items[0] if page.items else None

    def _scan(self, scope: dict[str, str], where: dict[str, Any]) -> Iterable[Any]:
        """Every live item under a scope and metadata filters, oldest first, a page at a time."""
        scope = {"agent_id": self.agent_id, **scope}
        offset = 0
        while True:
            page = self.memory.list(kinds=[KIND], filters=where, limit=_PAGE, offset=offset, **scope)
            yield from page.items
            if page.next_offset is None:
                return
            offset = page.next_offset

    def _text(self, key: str, value: dict[str, Any], index: Any) -> tuple[str, bool]:
        """(the text to store and rank, whether the item is indexed for query search)."""
        if index is False:
            return _leaf_text(value) or key, False
        if index is None:
            fields = self._fields
        elif isinstance(index, list) and all(isinstance(f, str) and f for f in index):
            fields = [(f, f if f == "$" else tokenize_path(f)) for f in index]
        else:
            raise ValueError(f"index must be False, None or a list of field paths, got {index!r}")
        texts: list[str] = []
        for path, tokens in fields:
            texts.extend(_leaf_text(value).splitlines() if path == "$" else get_text_at_path(value, tokens))
        text = "\n".join(t for t in texts if t.strip())
        if not text:  # nothing to rank on: kept and listed, never a query hit (like an unembedded item)
            return _leaf_text(value) or key, False
        return text[: self.memory.config.max_text_chars], True

    def _refresh(self, rec: Any) -> Any:
        ttl = rec.metadata.get("lg_ttl")
        if ttl is None:
            return rec
        return self.memory.update(rec.id, expires_at=datetime.now(UTC) + timedelta(minutes=ttl))


def _check_index(index: IndexConfig | None, memory: Any) -> dict[str, Any]:
    if index is None:
        return {}
    if not isinstance(index, Mapping):
        raise ValueError(f"index must be an IndexConfig dict, got {type(index).__name__}")
    unknown = set(index) - {"dims", "embed", "fields"}
    if unknown:
        raise ValueError(f"unknown index config keys: {sorted(unknown)}")
    if index.get("embed") is not None:
        raise ValueError(
            "index['embed'] is not used: EngramDB embeds with its memory's model. Choose the model with "
            "Memory(path, embedder=...) and drop 'embed' from the index config"
        )
    dims = index.get("dims")
    if dims is not None and dims != memory.embedder.dim:
        raise ValueError(f"index['dims'] is {dims}, but the memory's model {memory.model_name!r} makes "
                         f"{memory.embedder.dim}-d vectors")
    fields = index.get("fields")
    if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)):
        raise ValueError("index['fields'] must be a list of field paths, e.g. ['text'] or ['$']")
    return dict(index)


def _check_ttl(ttl: TTLConfig | None) -> TTLConfig | None:
    if ttl is None:
        return None
    if not isinstance(ttl, Mapping):
        raise ValueError(f"ttl must be a TTLConfig dict, got {type(ttl).__name__}")
    unknown = set(ttl) - {"refresh_on_read", "default_ttl", "sweep_interval_minutes", "omit_expired"}
    if unknown:
        raise ValueError(f"unknown ttl config keys: {sorted(unknown)}")
    default = ttl.get("default_ttl")
    if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float)) or default <= 0):
        raise ValueError(f"ttl['default_ttl'] must be a positive number of minutes, got {default!r}")
    return TTLConfig(**ttl)


def _ttl_minutes(ttl: Any, at: datetime) -> float | None:
    """A TTL in minutes; newer LangGraph releases also pass a timedelta or an aware datetime through."""
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds() / 60
    elif isinstance(ttl, datetime):
        if ttl.tzinfo is None:
            raise ValueError("a ttl given as a datetime needs a time zone")
        ttl = (ttl - at).total_seconds() / 60
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
        raise ValueError(f"ttl must be a positive number of minutes or None, got {ttl!r}")
    return None if ttl is None else float(ttl)


def _leaf_text(value: Any, path: str = "") -> str:
    """Every scalar in a JSON value as `path: value` lines: what "$" ranks on (keys help BM25, values both)."""
    lines: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            sub = _leaf_text(v, f"{path}.{k}" if path else str(k))
            if sub:
                lines.append(sub)
    elif isinstance(value, (list, tuple)):
        for v in value:
            sub = _leaf_text(v, path)
            if sub:
                lines.append(sub)
    elif value is not None:
        text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if text.strip():
            lines.append(f"{path}: {text}" if path else text)
    return "\n".join(lines)


def _namespace(rec: Any) -> tuple[str, ...]:
    return tuple(rec.metadata["lg_ns"].split("."))  # labels never hold a '.', so the join is unambiguous


def _item(rec: Any) -> Item:
    meta = rec.metadata
    return Item(
        namespace=_namespace(rec),
        key=meta["lg_key"],
        value=meta["value"],
        created_at=datetime.fromisoformat(meta["lg_created_at"]),
        updated_at=datetime.fromisoformat(meta["lg_updated_at"]),
    )


def _redacted(rec: Any) -> Any:
    if "redacted" not in rec.metadata:
        return rec
    value = {"text": rec.text, "redacted": rec.metadata["redacted"]}
    return rec.model_copy(update={"metadata": {**rec.metadata, "value": value}})


def _search_item(rec: Any, score: float | None) -> SearchItem:
    it = _item(rec)
    return SearchItem(it.namespace, it.key, it.value, it.created_at, it.updated_at, score=score)


def _ns_matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    if cond.match_type not in ("prefix", "suffix"):
        raise ValueError(f"unsupported namespace match type: {cond.match_type!r}")
    ends = (ns[: len(path)], path) if cond.match_type == "prefix" else (ns[len(ns) - len(path) :], path)
    pairs = zip(*ends, strict=True)
    return all(p == "*" or n == p for n, p in pairs)


def _matches(value: Any, flt: dict[str, Any] | None) -> bool:
    """LangGraph's filter semantics: equality, nested dicts, and $eq/$ne/$gt/$gte/$lt/$lte."""
    if not flt:
        return True
    return all(_compare(value.get(k) if isinstance(value, dict) else None, v) for k, v in flt.items())


def _compare(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in want):
            return all(_operator(have, op, arg) for op, arg in want.items())
        return isinstance(have, dict) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, (list, tuple)):
        return (
            isinstance(have, (list, tuple))
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return have == want


def _operator(have: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return have == arg
    if op == "$ne":
        return have != arg
    if op in ("$gt", "$gte", "$lt", "$lte"):
        try:
            a, b = float(have), float(arg)
        except (TypeError, ValueError):
            return False  # a missing or non-numeric field never satisfies a comparison
        return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]
    raise ValueError(f"unsupported filter operator: {op!r} (use $eq, $ne, $gt, $gte, $lt or $lte)")
