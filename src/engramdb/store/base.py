"""The storage interface: everything above it (index, retrieve, lifecycle, api)
talks to a `Store`, never to SQL. SQLite and PostgreSQL implement it.

Each memory has a public string `id` and an internal integer `key` that the
vector index uses (SQLite rowid / Postgres bigserial).
"""

from __future__ import annotations

import builtins
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..errors import ValidationError
from ..model import HistoryEntry, MemoryRecord

# Dot-separated segments (a nested path), none empty: 'a.' or 'a..b' would make an invalid JSON path.
META_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9_-]{1,63}){0,31}$"
_META_KEY_RE = re.compile(META_KEY_PATTERN)
MAX_META_KEY_CHARS = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SCOPE_FIELDS = ("user_id", "agent_id", "session_id")
# The orders of `Store.list`: by time (or storage order), and TIP_ORDER for procedure memories (tips): the
# smoothed success rate after serving (procedural.model.Tip.utility) first, then support, then text.
LIST_ORDERS = ("occurred_at", "-occurred_at", "recorded_at", "-recorded_at")
TIP_ORDER = "-utility"
PERIOD_WIDTH = {"month": 7, "day": 10}  # characters of an ISO date that name the period
_T = TypeVar("_T")


class RankMeta(NamedTuple):
    """The fields of a memory that search ranking reads (see Store.rank_meta)."""

    key: int
    user_id: str | None
    agent_id: str | None
    session_id: str | None
    speaker: str | None
    occurred_at: datetime | None
    text: str = ""  # the learned ranker reads its length and form (retrieve/features.py)


@dataclass
class Filters:
    """What a read may see. Every field narrows; defaults hide deleted and expired memories."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    kinds: Sequence[str] | None = None
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until
    metadata: dict[str, Any] = field(default_factory=dict)  # equality on top-level keys
    ids: Sequence[str] | None = None
    source_ref: str | None = None
    as_of: datetime | None = None  # valid then: valid_from <= as_of < valid_to, and occurred_at <= as_of
    current_only: bool = False  # only memories whose validity is still open
    include_expired: bool = False
    include_deleted: bool = False
    now: datetime | None = None  # the clock for expiry; tests set it

    def __post_init__(self) -> None:
        for key, value in self.metadata.items():
            if not isinstance(key, str) or len(key) > MAX_META_KEY_CHARS or not _META_KEY_RE.fullmatch(key):
                raise ValidationError(
                    f"metadata filter key {key!r} must be an identifier, or identifiers joined by single dots"
                    f" (at most {MAX_META_KEY_CHARS} characters)"
                )
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                raise ValidationError(
                    f"metadata filter {key!r}: only str, int, float, bool or None values can be matched"
                )
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                raise ValidationError(f"metadata filter {key!r}: integer {value} is outside the 64-bit range")


@dataclass
class Link:
    """A typed edge between two memories (supersedes, summarizes, related...)."""

    src_id: str
    dst_id: str
    type: str
    reason: str | None = None
    created_at: datetime | None = None


@dataclass
class AuditEntry:
    """One memory served to an audience: a row of the audit log of disclosures (docs/privacy.md)."""

    at: datetime
    memory_id: str
    user_id: str | None = None  # the memory's owner
    agent_id: str | None = None  # the audience
    purpose: str | None = None
    categories: Sequence[str] = ()  # the memory's sensitivity labels when it went out
    action: str = "allow"  # allow | redact
    op: str = "search"  # search | context | list | tips | trajectories
    seq: int | None = None  # the entry's position in the log (set by the store, ascending); a page cursor


def with_pending_access(rec: MemoryRecord, n: int, last: datetime | None) -> MemoryRecord:
    """`rec` (just built, not shared yet) with `n` accesses buffered in this process, the last at `last`: set in
    place, as model_copy(update=) would return them."""
    seen = rec.last_accessed_at
    if last is not None and (seen is None or last > seen):
        seen = last
    rec.__dict__.update(access_count=rec.access_count + n, last_accessed_at=seen)
    return rec


def audit_where(
    mark: str,
    category_sql: str,
    when: Any,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    purpose: str | None = None,
    memory_id: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: int | None = None,
) -> tuple[builtins.list[str], builtins.list[Any]]:
    """The audit log's WHERE clauses and their parameters, for either backend: `mark` is its placeholder,
    `category_sql` its test that an entry's categories hold one (with `mark` in it), `when` turns a datetime
    into what it stores."""
    clauses: builtins.list[str] = []
    params: builtins.list[Any] = []
    for col, val in (("user_id", user_id), ("agent_id", agent_id), ("purpose", purpose), ("memory_id", memory_id)):
        if val is not None:
            clauses.append(f"{col} = {mark}")
            params.append(val)
    if category is not None:
        clauses.append(category_sql)
        params.append(category)
    for op, at in ((">=", since), ("<", until)):
        if at is not None:
            clauses.append(f"at {op} {mark}")
            params.append(when(at))
    if before_seq is not None:
        clauses.append(f"seq < {mark}")
        params.append(int(before_seq))
    return clauses, params


class Store(ABC):
    """A durable home for memories, their vectors, keyword index, links and history."""

    # -- lifecycle ---------------------------------------------------------------
    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit: everything inside commits together or not at all. Re-entrant."""

    # -- metadata ----------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    def meta_values(self, keys: Sequence[str]) -> dict[str, str]:
        """The values of those of `keys` that are set (backends read them in one query)."""
        out = {k: self.get_meta(k) for k in keys}
        return {k: v for k, v in out.items() if v is not None}

    @abstractmethod
    def data_version(self) -> int:
        """A counter bumped by every write, from any process: caches compare against it."""

    # -- writes ------------------------------------------------------------------
    @abstractmethod
    def insert(
        self,
        records: Sequence[MemoryRecord],
        vectors: np.ndarray | None,
        index_texts: Sequence[str],
        *,
        histories: Sequence[Sequence[HistoryEntry]] | None = None,
        tokens: Sequence[bytes | None] | None = None,
    ) -> list[int]:
        """Insert new records with their vectors and keyword-index text; returns their keys.

        Each insert writes an 'add' history entry, unless `histories` (import) supplies them. `tokens`: each
        record's packed token vectors (index/late.pack) or None."""

    @abstractmethod
    def replace_keys(self, ids: Sequence[str], index_texts: Sequence[str], vectors: np.ndarray, *,
                     tokens: Sequence[bytes | None] | None = None) -> None:
        """Rewrite index text, vectors and token vectors (reindex) without a version bump or history."""

    @abstractmethod
    def update(
        self,
        record: MemoryRecord,
        *,
        vector: np.ndarray | None = None,
        index_text: str | None = None,
        action: str = "update",
        tokens: bytes | None = None,
    ) -> None:
        """Replace a record (bumping its version) and write a history entry. A new `vector` replaces the token
        vectors too (with `tokens`, or none: old ones would describe the old text)."""

    @abstractmethod
    def soft_delete(self, ids: Sequence[str], *, at: datetime, action: str = "delete") -> int: ...

    @abstractmethod
    def hard_delete(self, ids: Sequence[str]) -> int:
        """Remove rows, vectors, keyword index entries, links, history and audit entries. Irreversible."""

    @abstractmethod
    def touch(self, ids: Sequence[str], at: datetime) -> None:
        """Count an access (no version bump, no history). A backend may buffer counts (SQLite does), so long as
        its own reads include them."""

    # -- reads -------------------------------------------------------------------
    @abstractmethod
    def get(self, ids: Sequence[str], *, include_deleted: bool = False) -> list[MemoryRecord]: ...

    @abstractmethod
    def list(
        self, filters: Filters, *, limit: int = 50, offset: int = 0, order: str = "occurred_at"
    ) -> builtins.list[MemoryRecord]:
        """A page of the memories passing `filters`; `order` is one of LIST_ORDERS or TIP_ORDER (ValueError
        otherwise)."""

    @abstractmethod
    def count(self, filters: Filters) -> int: ...

    def derived_from(self, ids: Sequence[str], filters: Filters, *, limit: int = 10_000) -> builtins.list[MemoryRecord]:
        """Memories passing `filters` whose `source_ids` include any of `ids` (provenance read backwards).
        Backends answer with one indexed query; this fallback pages through `list`."""
        want = set(ids)
        out: list[MemoryRecord] = []
        offset = 0
        while want and len(out) < limit:
            page = self.list(filters, limit=1000, offset=offset, order="recorded_at")
            if not page:
                break
            out += [r for r in page if want.intersection(r.source_ids)]
            offset += len(page)
        return out[:limit]

    @abstractmethod
    def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list[HistoryEntry]:
        """Every change to a memory, oldest first; with `limit`, only the newest `limit` of them (oldest first)."""

    @abstractmethod
    def keys_for(self, ids: Sequence[str]) -> dict[str, int]: ...

    @abstractmethod
    def ids_for(self, keys: Sequence[int]) -> dict[int, str]: ...

    def rank_meta(self, ids: Sequence[str]) -> dict[str, RankMeta]:
        """What ranking needs per live memory, without building whole records (hot on every search).
        Default: from get() and keys_for(); backends override it with one light query."""
        recs = self.get(ids)
        keys = self.keys_for([r.id for r in recs])
        return {
            r.id: RankMeta(keys[r.id], r.user_id, r.agent_id, r.session_id, r.speaker, r.occurred_at, r.text)
            for r in recs
            if r.id in keys
        }

    def rank_meta_for_keys(self, keys: Sequence[int], filters: Filters) -> dict[int, tuple[str, RankMeta]]:
        """Key -> (id, rank meta) of the live memories among `keys` that pass `filters`, in key order.
        Default: filter_keys, ids_for and rank_meta; backends override it with one query."""
        id_of = self.ids_for(self.filter_keys(keys, filters).tolist())
        found = self.rank_meta(list(id_of.values()))
        return {k: (id_of[k], found[id_of[k]]) for k in sorted(id_of) if id_of[k] in found}

    # -- index support -----------------------------------------------------------
    @abstractmethod
    def keyword_search(self, query: str, filters: Filters, limit: int) -> builtins.list[tuple[str, float]]:
        """(id, score) best first; higher is better."""

    def keyword_search_soon(self, query: str, filters: Filters, limit: int
                            ) -> Callable[[], builtins.list[tuple[str, float]]]:
        """`keyword_search`, for a caller with other work to do meanwhile (a search embeds its query): call the
        returned function for the hits (`read_soon`)."""
        return self.read_soon(lambda: self.keyword_search(query, filters, limit))

    def read_soon(self, read: Callable[[], _T]) -> Callable[[], _T]:
        """`read()` (reads of this store only), for a caller with other work to do meanwhile: call the returned
        function for its result. Default: read now; a backend may read on another thread."""
        value = read()
        return lambda: value

    @abstractmethod
    def candidate_keys(self, filters: Filters, *, limit: int | None = None) -> np.ndarray:
        """Keys (int64) of every memory that matches the filters and has a vector; with `limit`, at most that
        many (which ones is unspecified: a caller asking for one more than it can use learns there are more)."""

    def scope_vectors(self, filters: Filters, *, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, vectors), in key order, of at most `limit` memories that match the filters and have a vector
        (as `candidate_keys` with `limit`, then `vectors_for`); backends read both in one statement."""
        keys = self.candidate_keys(filters, limit=limit)
        return self.vectors_for(keys.tolist())

    @abstractmethod
    def filter_keys(self, keys: Sequence[int], filters: Filters) -> np.ndarray:
        """The subset of `keys` whose memories match the filters."""

    @abstractmethod
    def iter_vectors(self, *, after_key: int = 0, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (keys, matrix) for every stored vector with key > after_key, key order."""

    @abstractmethod
    def vectors_for(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...

    def vector_keys(self, *, after_key: int = 0) -> np.ndarray:
        """Keys (int64, ascending) of every stored vector with key > after_key; backends read them without
        the vectors where they can."""
        parts = [keys for keys, _ in self.iter_vectors(after_key=after_key)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def vector_log_head(self) -> int | None:
        """The position of the latest vector change (replaced or removed), or None when the backend keeps no
        such log: an index over it then reloads every vector when one changes."""
        return None

    def vector_changes(self, after_seq: int) -> tuple[int, np.ndarray] | None:
        """(new head, distinct keys whose vector changed or vanished after `after_seq`); None when the log no
        longer reaches back that far (compacted): reload every vector."""
        raise NotImplementedError

    @abstractmethod
    def token_vectors_for(self, keys: Sequence[int]) -> dict[int, bytes]:
        """The packed token vectors (index/late.pack) of those `keys` that have them."""

    @abstractmethod
    def index_texts(self, ids: Sequence[str]) -> dict[str, str]: ...

    # -- links -------------------------------------------------------------------
    @abstractmethod
    def add_links(self, links: Sequence[Link]) -> None: ...

    @abstractmethod
    def links(self, memory_id: str, *, type: str | None = None, direction: str = "both") -> builtins.list[Link]: ...

    @abstractmethod
    def remove_links(self, memory_ids: Sequence[str], *, type: str) -> int:
        """Drop links of `type` touching any of `memory_ids` (e.g. `related` links of a forgotten memory)."""

    # -- the audit log of disclosures (privacy/audit.py) ---------------------------
    # Append-only rows kept apart from the memories: no version bump, no history. hard_delete erases a memory's
    # entries with it, so nothing in the log points at an erased memory.
    @abstractmethod
    def audit_append(self, entries: Sequence[AuditEntry]) -> int:
        """Append disclosures in one transaction; returns how many. A store open read-only raises ReadOnlyError."""

    @abstractmethod
    def audit_query(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        purpose: str | None = None,
        memory_id: str | None = None,
        category: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEntry]:
        """Entries newest first (seq descending), narrowed by every argument given: `category` is one of the
        entry's categories, `since <= at < until`. `before_seq`: the next page after one whose last entry had
        that seq (stable while new entries are appended)."""

    @abstractmethod
    def audit_delete(
        self, *, user_id: str | None = None, agent_id: str | None = None, before: datetime | None = None
    ) -> int:
        """Erase the entries matching every argument given (`before`: at < before); returns how many. At least
        one argument is required: erasing the whole log takes a `before` in the future."""

    # -- aggregates (the web UI's overview and scope pickers) ------------------------
    def scope_counts(self, field: str, filters: Filters, limit: int) -> tuple[int, builtins.list[tuple[str, int]]]:
        """(distinct values, the `limit` values with most memories and their counts) of a scope column.
        Backends override this with one GROUP BY; the fallback pages through every row."""
        if field not in SCOPE_FIELDS:
            raise ValueError(f"field must be one of {SCOPE_FIELDS}")
        counts: dict[str, int] = {}
        for rec in self._all(filters):
            value = getattr(rec, field)
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return len(counts), top

    def period_counts(self, filters: Filters, period: str) -> builtins.list[tuple[str, int]]:
        """Memories per month ('YYYY-MM') or day ('YYYY-MM-DD') of occurred_at (UTC), oldest first."""
        width = PERIOD_WIDTH[period]
        counts: dict[str, int] = {}
        for rec in self._all(filters):
            if rec.occurred_at is not None:
                label = rec.occurred_at.astimezone(UTC).strftime("%Y-%m-%d")[:width]
                counts[label] = counts.get(label, 0) + 1
        return sorted(counts.items())

    def _all(self, filters: Filters) -> Iterator[MemoryRecord]:
        offset = 0
        while True:
            page = self.list(filters, limit=1000, offset=offset, order="recorded_at")
            if not page:
                return
            yield from page
            offset += len(page)

    # -- maintenance -------------------------------------------------------------
    @abstractmethod
    def stats(self) -> dict[str, Any]: ...

    @abstractmethod
    def compact(self) -> None:
        """Reclaim space and scrub deleted bytes (VACUUM and friends)."""

    def merge_keyword_index(self) -> int:
        """Merge the keyword index's parts into one, in short write transactions (a concurrent writer waits
        for one step, not the whole merge); the number of steps that merged something. Default: nothing to
        merge (PostgreSQL's GIN index keeps itself)."""
        return 0

    def all_meta(self) -> dict[str, str]:
        """Every meta key and value, for `engramdb migrate` (counters like data_version excluded)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list its meta keys")

    # -- staged reindex (optional) ------------------------------------------------
    # Backends that set supports_staged_reindex re-embed into a side table in bounded transactions and swap
    # it in at the end (SQLite, docs/reliability.md); the others rewrite vectors in one transaction.
    supports_staged_reindex: bool = False

    def reindex_begin(self, model: str) -> None:
        raise NotImplementedError

    def reindex_todo(self, after_key: int, limit: int) -> builtins.list[tuple[int, MemoryRecord]]:
        """Up to `limit` (key, record), key order, after `after_key`, that have no staged vector yet."""
        raise NotImplementedError

    def reindex_stage(self, keys: Sequence[int], index_texts: Sequence[str], vectors: np.ndarray, *,
                      tokens: Sequence[bytes | None] | None = None) -> None:
        raise NotImplementedError

    def reindex_commit(self, model: str, dim: int) -> bool:
        raise NotImplementedError

    # -- optional native search --------------------------------------------------
    native_vector_search = False  # True where `vector_search` answers (the in-process index then holds nothing)
    # True where `read_soon` reads on another thread, so that what it is given runs beside the caller's work
    reads_beside = False

    def vector_search(self, query: np.ndarray, filters: Filters, k: int) -> builtins.list[tuple[int, float]] | None:
        """Top-k (key, cosine) computed by the backend itself, best first; None = not supported,
        and the in-process VectorIndex searches instead (SQLite)."""
        return None
