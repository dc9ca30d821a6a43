"""SQLite backend: one file, WAL, FTS5 for keywords, vectors as float32 BLOBs.

Concurrency: one connection per `SQLiteStore`, guarded by a re-entrant lock so
threads (and the async twin) can share it. Writes take `BEGIN IMMEDIATE` so two
processes queue on the busy timeout instead of dead-locking on a lock upgrade.
Reads never take the write lock (WAL readers see the last commit): opening only
locks when it must migrate, and access counts are buffered in the process and
written with the next write transaction, at most every TOUCH_FLUSH_S, or at close,
never waiting (`touch`). Every SQLite error leaves as a `StoreError`.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import ConfigError, ReadOnlyError, StoreError
from ..model import HistoryEntry, MemoryRecord
from ..timeutil import from_store, now, to_store
from . import sqlite_schema
from .base import (
    PERIOD_WIDTH,
    SCOPE_FIELDS,
    TIP_ORDER,
    AuditEntry,
    Filters,
    Link,
    RankMeta,
    Store,
    audit_where,
    with_pending_access,
)
from .codec import (
    COLUMNS,
    UNSCOPED_POSTINGS_MAX,
    blob_to_vector,
    cutoff_groups,
    keyword_terms,
    record_json,
    record_to_row,
    row_to_record,
    values_to_record,
    vector_to_blob,
)

BUSY_TIMEOUT_MS = 30_000
SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")  # PRAGMA synchronous levels offered (docs/reliability.md)
# a search writes nothing: its access counts wait in memory for the next write transaction, or this long at most
# (then one no-wait try from a read, retried as late again while the store is busy), or close
TOUCH_FLUSH_S = 30.0
TOUCH_BUFFER_MAX = 50_000  # ids buffered before a read tries to write them anyway (bounded memory)
BM25_K1, BM25_B = 1.2, 0.75  # FTS5's bm25() constants
KEY_BITS = 40  # keyword-index rowid: user bucket << KEY_BITS | key (sqlite_schema v3)
KEY_MASK = (1 << KEY_BITS) - 1
BUCKET_MASK = (1 << 23) - 1
# Up to this many rows bm25() in the index (one statement) is cheapest: its per-term counting is short. Above
# it a user-scoped search scores in _scoped_bm25, whose cost does not grow with the store.
BM25_IN_INDEX_MAX = 50_000
MERGE_STEP_PAGES = 2_000  # keyword index pages one merge step writes (~8 MB, ~0.15 s): see merge_keyword_index
MERGE_MAX_STEPS = 10_000
SCOPED_EXACT_MAX = 20_000  # a scope matching more rows than this is scored by bm25() in the index instead
STATS_EXACT_ROWS = 50_000  # below this, document frequencies are recounted after every write (exact parity)
STATS_TTL_S = 30.0  # above it, a cached document frequency may lag this long
DF_CACHE_MAX = 50_000
# Counting a word's rows walks its whole posting list: ~25 ms for a word in half of 1M rows, paid for each new
# word (and again after STATS_TTL_S of writes). Above DF_EXACT_MAX rows, a word's count is estimated from the
# rows of one sixteenth of the user buckets (a random sample of users: the buckets are hashes), scaled by the
# share of all rows they hold: ~3% error for a word in 20,000 rows, a rounding in its idf.
DF_EXACT_MAX = 20_000
DF_SAMPLE = (1 << KEY_BITS, ((1 + (BUCKET_MASK + 1) // 16) << KEY_BITS) - 1)  # buckets 1 .. 2^19 (0: no user)
DF_SAMPLE_MIN_ROWS = 20_000  # a sample holding fewer rows estimates badly: count exactly
PRUNED_POOL = 400  # past UNSCOPED_POSTINGS_MAX, candidates scored on every query word (_top_pruned)
# an upsert, not INSERT OR REPLACE: the update trigger then logs the change (vector_log)
_MARKED = re.compile("\ue000(.*?)\ue001", re.S)  # a token (or phrase) highlight() marked
_UPSERT_VECTOR = (
    "INSERT INTO vectors(key, vector) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET vector = excluded.vector"
)
_T = TypeVar("_T")
_SELECT = "SELECT m.key, " + ", ".join(f"m.{c}" for c in COLUMNS) + " FROM memories m"


def _broad(f: Filters) -> bool:
    """Filters that narrow only by deletion, expiry and open validity: they keep almost every row."""
    return (f.user_id is None and f.agent_id is None and f.session_id is None and f.source_ref is None
            and not f.kinds and f.ids is None and f.since is None and f.until is None and not f.metadata
            and f.as_of is None)


def _scope_first(f: Filters) -> bool:
    """A scope without a user that an index of its own narrows (agent, session, source, ids)."""
    return f.user_id is None and (f.agent_id is not None or f.session_id is not None or f.source_ref is not None
                                  or f.ids is not None)


def _tip_field(name: str) -> str:
    return f"coalesce(json_extract(m.metadata, '$.tip.{name}'), 0)"


# Tips, most useful first (base.TIP_ORDER): Tip.utility, (successes + 1) / (successes + failures + 2), then
# support, then text; computed from the tip's fields in the row, so a page of tips reads only its rows.
_UTILITY_ORDER = (
    f"({_tip_field('successes_after')} + 1.0) / ({_tip_field('successes_after')} + {_tip_field('failures_after')}"
    f" + 2.0) DESC, {_tip_field('support')} DESC, m.text, m.key"
)


def where_clause(f: Filters, at: datetime | None = None) -> tuple[str, list[Any]]:
    """SQL WHERE (on alias m) and parameters for a Filters."""
    clauses: list[str] = []
    params: list[Any] = []
    for col in ("user_id", "agent_id", "session_id", "source_ref"):
        value = getattr(f, col)
        if value is not None:
            clauses.append(f"m.{col} = ?")
            params.append(value)
    if f.kinds:
        # with a scope, its (scope, time) index is the narrow one: "+" keeps SQLite from picking the kind index,
        # which on a large store walks every episode (measured: 350 ms against 1 ms at 100k memories)
        scoped = f.user_id is not None or f.agent_id is not None or f.session_id is not None
        clauses.append(f"{'+' if scoped else ''}m.kind IN ({','.join('?' * len(f.kinds))})")
        params.extend(f.kinds)
    if f.ids is not None:
        clauses.append(f"m.id IN ({','.join('?' * len(f.ids))})" if f.ids else "0")
        params.extend(f.ids)
    if f.since is not None:
        clauses.append("m.occurred_at >= ?")
        params.append(to_store(f.since))
    if f.until is not None:
        clauses.append("m.occurred_at < ?")
        params.append(to_store(f.until))
    for key, value in f.metadata.items():
        if value is None:
            clauses.append(f"json_extract(m.metadata, '$.{key}') IS NULL")
        else:
            clauses.append(f"json_extract(m.metadata, '$.{key}') = ?")
            params.append(int(value) if isinstance(value, bool) else value)
    if f.as_of is not None:
        t = to_store(f.as_of)
        clauses.append("(m.valid_from IS NULL OR m.valid_from <= ?) AND (m.valid_to IS NULL OR m.valid_to > ?)")
        # Valid time, not transaction time: back-filled histories (recorded today about 2023) must answer too.
        clauses.append("(m.occurred_at IS NULL OR m.occurred_at <= ?)")
        params.extend([t, t, t])
    if f.current_only:
        clauses.append("m.valid_to IS NULL")
    if not f.include_deleted:
        clauses.append("m.deleted_at IS NULL")
    if not f.include_expired:
        clauses.append("(m.expires_at IS NULL OR m.expires_at > ?)")
        params.append(to_store(f.now or at or now()))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _initialised_soon(path: str, wait_s: float = 3.0) -> bool:
    """False for an empty file that stays empty. A process creating a new store holds an empty file for a
    moment (SQLite creates it on connect, then writes the schema), so another process opening the same new
    path at once waits for it rather than refusing it as someone's truncated file."""
    deadline = time.monotonic() + wait_s
    while os.path.getsize(path) == 0:
        if os.path.exists(path + "-wal") or os.path.exists(path + "-journal"):
            return True  # being written by another connection: SQLite's own locks take it from here
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class SQLiteStore(Store):
    def __init__(
        self, path: str | os.PathLike[str], *, read_only: bool | None = None, synchronous: str = "NORMAL"
    ) -> None:
        """`read_only`: None opens read-only by itself when the file or its directory is not writable;
        `synchronous`: NORMAL (default), FULL or EXTRA, what a commit waits for (docs/reliability.md)."""
        self.path = str(path)
        sync = str(synchronous).upper()
        if sync not in SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}")
        memory = self.path == ":memory:"
        if not memory and os.path.isfile(self.path) and not _initialised_soon(self.path):
            # An empty file is not a store: someone else's truncated file must not silently become a new one.
            raise StoreError(f"{self.path!r} is an empty file (0 bytes), not an EngramDB store; remove it first")
        if read_only is None:
            read_only = not memory and os.path.exists(self.path) and not _writable(self.path)
        self.read_only = bool(read_only)
        if not memory and not self.read_only:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory for {self.path!r}: {exc.strerror}") from exc
        self._lock = threading.RLock()
        # Reads handed to worker threads (`read_soon`) go through a connection of their own, so they run beside
        # the caller's statements instead of queuing on `_lock` (WAL: readers never block each other).
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._on_worker = threading.local()
        self._tok_lock = threading.Lock()  # the private tokenizer's own (see _tokens)
        self._closed = False
        self._depth = 0
        self._pending_touch: dict[str, tuple[int, str]] = {}  # id -> (accesses, last time), not yet written
        self._touch_tried = time.monotonic()
        self._staging_versions: dict[int, int] = {}  # reindex: key -> version when read for embedding
        self._df: dict[str, int] = {}  # phrase -> rows holding it (BM25's document frequency), see _idf
        self._tok: sqlite3.Connection | None = None  # a private tokenizer, see _tokens
        self._token_cache: dict[str, tuple[str, ...]] = {}
        self._df_version = -1
        self._df_sample_rows: tuple[int, int] | None = None  # (rows in the index, rows in DF_SAMPLE's buckets)
        self._df_time = 0.0
        self._audit_table = True
        self._source_index = True  # memory_sources (schema v5); a read-only older file may lack it
        self._conn = self._connect()
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.read_only:
                self._check_schema_read_only()
            else:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute(f"PRAGMA synchronous = {sync}")
                self._conn.execute("PRAGMA foreign_keys = ON")
                # Overwrite deleted content with zeros, so purge leaves no readable bytes behind.
                self._conn.execute("PRAGMA secure_delete = ON")
                self._migrate()
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._conn.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{self.path!r} is not a usable EngramDB SQLite file: {exc}") from exc

    # -- plumbing ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.read_only:
                conn = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
                )
            else:
                if not os.path.exists(self.path):
                    raise StoreError(f"{self.path!r} does not exist (a read-only open never creates a store)")
                uri = Path(self.path).resolve().as_uri()
                conn = sqlite3.connect(
                    uri + "?mode=ro", timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                    check_same_thread=False, uri=True,
                )  # fmt: skip
                try:
                    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:
                    # WAL on read-only media: no -shm can be made. immutable=1 reads the file as it is.
                    conn.close()
                    conn = sqlite3.connect(
                        uri + "?immutable=1", isolation_level=None, check_same_thread=False, uri=True
                    )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        conn.create_function("engramdb_bucket", 1, user_bucket, deterministic=True)  # the v3 migration uses it
        return conn

    def _check_schema_read_only(self) -> None:
        current = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if not sqlite_schema.READ_ONLY_MIN <= current <= sqlite_schema.LATEST:
            raise StoreError(
                f"{self.path!r} is read-only and has schema v{current}; this EngramDB needs"
                f" v{sqlite_schema.LATEST}: open it once where it is writable to migrate it"
            )
        # an older file without the audit table reads as an empty log (sqlite_schema.READ_ONLY_MIN)
        self._audit_table = bool(self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'privacy_disclosures'").fetchone())
        self._source_index = bool(self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memory_sources'").fetchone())

    def _migrate(self) -> None:
        # Read first, without a lock: an up-to-date store (the usual case) opens without waiting on writers.
        if self._conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.LATEST:
            return
        with self.transaction():
            current = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if current > sqlite_schema.LATEST:
                raise StoreError(
                    f"{self.path!r} has schema v{current}, newer than this EngramDB (v{sqlite_schema.LATEST}); upgrade"
                )
            for version, script in sqlite_schema.MIGRATIONS:
                if version > current:
                    for statement in _split_sql(script):
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self.read_only:
                raise ReadOnlyError(f"{self.path!r} is open read-only: nothing can be written")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"database is busy or locked: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path!r} cannot be written: {exc}") from exc
            self._depth = 1
            touched: dict[str, tuple[int, str]] = {}
            try:
                # buffered access counts go out with this write, first: the body then reads them as stored
                touched = self._write_touches()
                yield
            except sqlite3.IntegrityError as exc:  # e.g. a duplicate id: a clear error, and nothing written
                self._depth = 0
                self._rollback(touched)
                raise StoreError(f"write refused by the database, nothing written: {exc}") from exc
            except sqlite3.DatabaseError as exc:  # corrupt pages, a read-only file, a full disk
                self._depth = 0
                self._rollback(touched)
                raise StoreError(f"SQLite error, nothing written: {exc}") from exc
            except BaseException:
                self._depth = 0
                self._rollback(touched)
                raise
            else:
                self._depth = 0
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    self._rollback(touched)
                    raise StoreError(f"SQLite could not commit, nothing written: {exc}") from exc

    def _rollback(self, touched: dict[str, tuple[int, str]] | None = None) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:  # SQLite already rolled back (e.g. after SQLITE_FULL)
            pass
        if touched:  # the access counts written in it are buffered again
            self._merge_touches(touched)

    def _bump(self, *, vectors_changed: bool = False) -> None:
        keys = "('data_version', 'vector_epoch')" if vectors_changed else "('data_version')"
        self._conn.execute(f"UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN {keys}")

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if getattr(self._on_worker, "reading", False):
            with self._reader_lock:
                try:
                    return self._reader_conn().execute(sql, params).fetchall()
                except sqlite3.DatabaseError as exc:
                    raise StoreError(f"SQLite error reading {self.path!r}: {exc}") from exc
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                if self._depth:  # inside a transaction: it rolls back and reports
                    raise
                raise StoreError(f"SQLite error reading {self.path!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            try:
                self._flush_touches(wait_ms=1000)
            except Exception:  # noqa: BLE001 - access counts are best-effort; closing must not fail on them
                pass
            self._conn.close()
            self._closed = True
            with self._reader_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
            if self._tok is not None:
                self._tok.close()

    # -- metadata ----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def meta_values(self, keys: Sequence[str]) -> dict[str, str]:
        rows = self._q(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})", list(keys))
        return {r[0]: r[1] for r in rows}

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def data_version(self) -> int:
        return int(self.get_meta("data_version") or 0)

    def all_meta(self) -> dict[str, str]:
        rows = self._q("SELECT key, value FROM meta WHERE key NOT IN ('data_version', 'vector_epoch') ORDER BY key")
        return {r[0]: r[1] for r in rows}

    # -- writes ------------------------------------------------------------------
    def insert(
        self,
        records: Sequence[MemoryRecord],
        vectors: np.ndarray | None,
        index_texts: Sequence[str],
        *,
        histories: Sequence[Sequence[HistoryEntry]] | None = None,
        tokens: Sequence[bytes | None] | None = None,
    ) -> list[int]:
        cols = "key, fts_key, " + ", ".join(COLUMNS) + ", index_text"
        marks = ", ".join("?" * (len(COLUMNS) + 3))
        keys: list[int] = []
        with self.transaction():
            # keys chosen here as SQLite would (the highest + 1), so the keyword index's rowid is known up front
            key = int(self._conn.execute("SELECT COALESCE(MAX(key), 0) FROM memories").fetchone()[0])
            for i, rec in enumerate(records):
                row = record_to_row(rec)
                key += 1
                self._conn.execute(
                    f"INSERT INTO memories ({cols}) VALUES ({marks})",
                    [key, fts_key(rec.user_id, key), *row.values(), index_texts[i]],
                )
                keys.append(key)
                if vectors is not None:
                    self._conn.execute(
                        "INSERT INTO vectors(key, vector) VALUES (?, ?)", (key, vector_to_blob(vectors[i]))
                    )
                if tokens is not None:
                    self._set_tokens(key, tokens[i])
                if histories is None:
                    self._history(rec, rec.version, "add", None, rec)
                else:
                    for h in histories[i]:
                        self._conn.execute(
                            "INSERT INTO history(memory_id, user_id, agent_id, session_id, version, action,"
                            " before, after, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (
                                rec.id,
                                rec.user_id,
                                rec.agent_id,
                                rec.session_id,
                                h.version,
                                h.action,
                                json.dumps(h.before) if h.before is not None else None,
                                json.dumps(h.after) if h.after is not None else None,
                                to_store(h.at),
                            ),
                        )
            self._bump()
        return keys

    def replace_keys(self, ids: Sequence[str], index_texts: Sequence[str], vectors: np.ndarray, *,
                     tokens: Sequence[bytes | None] | None = None) -> None:
        toks = tokens if tokens is not None else [None] * len(ids)
        with self.transaction():
            for mid, text, vec, tok in zip(ids, index_texts, vectors, toks, strict=True):
                row = self._conn.execute("SELECT key FROM memories WHERE id = ?", (mid,)).fetchone()
                if row is None:
                    continue
                self._conn.execute("UPDATE memories SET index_text = ? WHERE key = ?", (text, row[0]))
                self._conn.execute(_UPSERT_VECTOR, (row[0], vector_to_blob(vec)))
                self._set_tokens(row[0], tok)
                self._unstage([row[0]])
            self._bump(vectors_changed=True)

    def _set_tokens(self, key: int, tokens: bytes | None) -> None:
        """Store (or, with None, drop) a memory's packed token vectors; inside the caller's transaction."""
        if not tokens:
            self._conn.execute("DELETE FROM token_vectors WHERE key = ?", (key,))
        else:
            self._conn.execute("INSERT OR REPLACE INTO token_vectors(key, data) VALUES (?, ?)", (key, tokens))

    def _history(
        self, rec: MemoryRecord, version: int, action: str, before: MemoryRecord | None, after: MemoryRecord | None
    ) -> None:
        self._conn.execute(
            "INSERT INTO history(memory_id, user_id, agent_id, session_id, version, action, before, after, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rec.id,
                rec.user_id,
                rec.agent_id,
                rec.session_id,
                version,
                action,
                record_json(before),
                record_json(after),
                to_store(now()),
            ),
        )

    def update(
        self,
        record: MemoryRecord,
        *,
        vector: np.ndarray | None = None,
        index_text: str | None = None,
        action: str = "update",
        tokens: bytes | None = None,
    ) -> None:
        with self.transaction():
            rows = self._conn.execute(_SELECT + " WHERE m.id = ?", (record.id,)).fetchall()
            if not rows:
                raise StoreError(f"memory {record.id} vanished during update")
            before = self._record(rows[0])
            key = rows[0]["key"]
            after = record.model_copy(update={"version": before.version + 1})
            row = record_to_row(after)
            sets = ", ".join(f"{c} = ?" for c in row) + ", fts_key = ?"
            params = [*row.values(), fts_key(after.user_id, key)]
            if index_text is not None:
                sets += ", index_text = ?"
                params.append(index_text)
            self._conn.execute(f"UPDATE memories SET {sets} WHERE key = ?", [*params, key])
            if vector is not None:
                self._conn.execute(_UPSERT_VECTOR, (key, vector_to_blob(vector)))
                self._set_tokens(key, tokens)
                self._unstage([key])
            self._history(after, after.version, action, before, after)
            self._bump(vectors_changed=vector is not None)

    def soft_delete(self, ids: Sequence[str], *, at: datetime, action: str = "delete") -> int:
        n = 0
        with self.transaction():
            for rec in self.get(ids):
                after = rec.model_copy(update={"deleted_at": at, "version": rec.version + 1})
                self._conn.execute(
                    "UPDATE memories SET deleted_at = ?, version = ? WHERE id = ?",
                    (to_store(at), after.version, rec.id),
                )
                self._history(rec, after.version, action, rec, after)
                n += 1
            if n:
                self._bump()
        return n

    def hard_delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        with self.transaction():
            n = 0
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                for table in ("vectors", "token_vectors"):
                    self._conn.execute(
                        f"DELETE FROM {table} WHERE key IN (SELECT key FROM memories WHERE id IN ({marks}))", chunk
                    )
                n += self._conn.execute(f"DELETE FROM memories WHERE id IN ({marks})", chunk).rowcount
                self._conn.execute(f"DELETE FROM history WHERE memory_id IN ({marks})", chunk)
                self._conn.execute(f"DELETE FROM privacy_disclosures WHERE memory_id IN ({marks})", chunk)
                self._conn.execute(f"DELETE FROM links WHERE src_id IN ({marks}) OR dst_id IN ({marks})", chunk + chunk)
            self._bump(vectors_changed=True)
        return n

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        """Best-effort and never waiting, and a read writes nothing: counts are buffered in the process and
        written with the next write transaction. A store only read gets one no-wait try every TOUCH_FLUSH_S (or
        when TOUCH_BUFFER_MAX ids wait), and one short last try at close. Reads of this store count them
        already (`_record`); other processes see them once written."""
        if not ids or self.read_only:
            return
        stamp = to_store(at) or ""
        with self._lock:
            for mid in dict.fromkeys(ids):  # one access per call, however often an id is listed
                n, last = self._pending_touch.get(mid, (0, stamp))
                self._pending_touch[mid] = (n + 1, max(last, stamp))
            if self._depth:  # inside the caller's transaction: write with it
                self._write_touches()
            elif (time.monotonic() - self._touch_tried >= TOUCH_FLUSH_S
                  or len(self._pending_touch) >= TOUCH_BUFFER_MAX):
                self._flush_touches(wait_ms=0)

    def _flush_touches(self, *, wait_ms: int) -> None:
        if not self._pending_touch or self.read_only:
            return
        self._touch_tried = time.monotonic()
        self._conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return  # busy: keep them for the next try
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        touched: dict[str, tuple[int, str]] = {}
        try:
            touched = self._write_touches()
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError:
            self._rollback(touched)

    def _write_touches(self) -> dict[str, tuple[int, str]]:
        """Write the buffered counts in the open transaction; returns them (buffered again if it rolls back)."""
        pending, self._pending_touch = self._pending_touch, {}
        if pending:
            self._touch_tried = time.monotonic()
            try:
                self._conn.executemany(
                    "UPDATE memories SET access_count = access_count + ?,"
                    " last_accessed_at = max(coalesce(last_accessed_at, ''), ?) WHERE id = ?",
                    [(n, last, mid) for mid, (n, last) in pending.items()],
                )
            except BaseException:
                self._merge_touches(pending)
                raise
        return pending

    def _merge_touches(self, counts: dict[str, tuple[int, str]]) -> None:
        for mid, (n, last) in counts.items():
            m, seen = self._pending_touch.get(mid, (0, last))
            self._pending_touch[mid] = (m + n, max(last, seen))

    def _record(self, row: Any) -> MemoryRecord:
        """A row of _SELECT as a record, with this process's access counts not written yet."""
        rec = values_to_record(row[1:])  # after m.key, COLUMNS in order
        pending = self._pending_touch.get(rec.id) if self._pending_touch else None
        if pending is None:
            return rec
        return with_pending_access(rec, pending[0], from_store(pending[1]))

    # -- staged reindex ------------------------------------------------------------
    # A reindex to another model writes the new vectors beside the live ones, in short transactions, and swaps
    # them in with one last transaction: searches never see two vector spaces mixed, and writers never wait on
    # more than one batch. A write during it (a new memory, a changed text) leaves its row unstaged, so the
    # reindex embeds it again before the swap.
    supports_staged_reindex = True

    def reindex_begin(self, model: str) -> None:
        with self.transaction():
            for table in ("vectors_next", "token_vectors_next"):
                self._conn.execute(f"DROP TABLE IF EXISTS {table}")
            # The live tables' definitions: the swap renames these into their place. A purge meanwhile cascades.
            self._conn.execute("CREATE TABLE vectors_next (key INTEGER PRIMARY KEY REFERENCES memories(key)"
                               " ON DELETE CASCADE, vector BLOB NOT NULL)")  # fmt: skip
            self._conn.execute("CREATE TABLE token_vectors_next (key INTEGER PRIMARY KEY REFERENCES memories(key)"
                               " ON DELETE CASCADE, data BLOB NOT NULL)")  # fmt: skip
            self._conn.execute(
                "INSERT INTO meta(key, value) VALUES ('reindex_to', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (model,),
            )

    def reindex_todo(self, after_key: int, limit: int) -> list[tuple[int, MemoryRecord]]:
        rows = self._q(
            _SELECT + " WHERE m.key > ? AND m.key NOT IN (SELECT key FROM vectors_next) ORDER BY m.key LIMIT ?",
            (after_key, limit),
        )
        out = [(int(r["key"]), row_to_record(r)) for r in rows]
        self._staging_versions.update((k, r.version) for k, r in out)
        return out

    def reindex_stage(self, keys: Sequence[int], index_texts: Sequence[str], vectors: np.ndarray, *,
                      tokens: Sequence[bytes | None] | None = None) -> None:
        toks = tokens if tokens is not None else [None] * len(keys)
        with self.transaction():
            for key, text, vec, tok in zip(keys, index_texts, vectors, toks, strict=True):
                # Changed or purged since reindex_todo read it (the embedding ran outside the lock): leave it
                # unstaged, so the next sweep embeds what it says now.
                row = self._conn.execute("SELECT version FROM memories WHERE key = ?", (key,)).fetchone()
                if row is None or row[0] != self._staging_versions.pop(key, row[0]):
                    continue
                # Keyword index text does not depend on the model: it is rewritten in place.
                self._conn.execute(
                    "UPDATE memories SET index_text = ? WHERE key = ? AND index_text IS NOT ?", (text, key, text)
                )
                self._conn.execute(
                    "INSERT OR REPLACE INTO vectors_next(key, vector) VALUES (?, ?)", (key, vector_to_blob(vec))
                )
                if tok:
                    self._conn.execute("INSERT OR REPLACE INTO token_vectors_next(key, data) VALUES (?, ?)",
                                       (key, tok))  # fmt: skip
            self._bump()

    def reindex_commit(self, model: str, dim: int) -> bool:
        """Swap the staged vectors in, if every memory has one; False (nothing changed) when some are missing."""
        with self.transaction():
            left = self._conn.execute(
                "SELECT 1 FROM memories WHERE key NOT IN (SELECT key FROM vectors_next) LIMIT 1"
            ).fetchone()
            if left is not None:
                return False
            # A rename, not a copy: copying every vector under the write lock made writers wait seconds. The old
            # tables hold only old-model vectors of live memories (purged ones were zeroed when purged), so their
            # pages need no zeroing: secure_delete=FAST for the drop keeps the swap in milliseconds.
            # Triggers and indexes of the live tables go with them: made again on the renamed ones.
            extras = [r[0] for r in self._conn.execute(
                "SELECT sql FROM sqlite_master WHERE type IN ('trigger', 'index') AND sql IS NOT NULL"
                " AND tbl_name IN ('vectors', 'token_vectors')")]  # fmt: skip
            self._conn.execute("PRAGMA secure_delete = FAST")
            try:
                self._conn.execute("DROP TABLE vectors")
                self._conn.execute("DROP TABLE token_vectors")
            finally:
                self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("ALTER TABLE vectors_next RENAME TO vectors")
            self._conn.execute("ALTER TABLE token_vectors_next RENAME TO token_vectors")
            for sql in extras:
                self._conn.execute(sql)
            self._conn.execute("DELETE FROM meta WHERE key = 'reindex_to'")
            # Every vector changed and the drop logged none: mark the log as starting here, so an index in
            # another process reloads rather than patching from it.
            self._conn.execute("INSERT INTO vector_log(key) VALUES (0)")
            self._conn.execute(
                "INSERT INTO meta(key, value) SELECT 'vector_log_pruned', MAX(seq) FROM vector_log WHERE true"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            )
            for key, value in (("embed_model", model), ("embed_dim", str(dim))):
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            self._bump(vectors_changed=True)
        return True

    def _unstage(self, keys: Sequence[int]) -> None:
        """A vector written during a staged reindex: its staged copy (from the old text) must be redone."""
        if self._conn.execute("SELECT 1 FROM meta WHERE key = 'reindex_to'").fetchone() is None:
            return
        for table in ("vectors_next", "token_vectors_next"):
            self._conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(int(k),) for k in keys])

    # -- reads -------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, include_deleted: bool = False) -> list[MemoryRecord]:
        out: dict[str, MemoryRecord] = {}
        for chunk in _chunks(list(ids), 500):
            sql = _SELECT + f" WHERE m.id IN ({','.join('?' * len(chunk))})"
            if not include_deleted:
                sql += " AND m.deleted_at IS NULL"
            for row in self._q(sql, chunk):
                out[row["id"]] = self._record(row)
        return [out[i] for i in ids if i in out]

    def list(
        self, filters: Filters, *, limit: int = 50, offset: int = 0, order: str = "occurred_at"
    ) -> builtins.list[MemoryRecord]:
        orders = {
            "occurred_at": "m.occurred_at, m.key",
            "-occurred_at": "m.occurred_at DESC, m.key DESC",
            "recorded_at": "m.key",
            "-recorded_at": "m.key DESC",
            TIP_ORDER: _UTILITY_ORDER,
        }
        if order not in orders:
            raise ValueError(f"order must be one of {sorted(orders)}")
        where, params = where_clause(filters)
        if order == TIP_ORDER:
            # sort the keys alone, then read the page's rows: a deep page would otherwise sort whole rows
            # (measured at 3,000 tips, offset 1,500: 58 ms against 22 ms)
            sql = (f"{_SELECT} WHERE m.key IN (SELECT m.key FROM memories m{where} ORDER BY {_UTILITY_ORDER}"
                   f" LIMIT ? OFFSET ?) ORDER BY {_UTILITY_ORDER}")
        else:
            sql = f"{_SELECT}{where} ORDER BY {orders[order]} LIMIT ? OFFSET ?"
        rows = self._q(sql, [*params, limit, offset])
        return [self._record(r) for r in rows]

    def count(self, filters: Filters) -> int:
        where, params = where_clause(filters)
        return int(self._q(f"SELECT COUNT(*) FROM memories m{where}", params)[0][0])

    def derived_from(self, ids: Sequence[str], filters: Filters, *, limit: int = 10_000) -> builtins.list[MemoryRecord]:
        if not ids:
            return []
        where, params = where_clause(filters)
        out: dict[str, MemoryRecord] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 500):
            marks = ",".join("?" * len(chunk))
            if self._source_index:  # the sources' own rows (schema v5), whatever the scope holds
                cond = f"m.key IN (SELECT key FROM memory_sources WHERE source_id IN ({marks}))"
            else:
                cond = ("m.source_ids != '[]' AND EXISTS (SELECT 1 FROM json_each(m.source_ids) j"
                        f" WHERE j.value IN ({marks}))")
            cond = (" AND " if where else " WHERE ") + cond
            rows = self._q(f"{_SELECT}{where}{cond} ORDER BY m.key LIMIT ?", [*params, *chunk, limit])
            out.update((r["id"], self._record(r)) for r in rows)
        return list(out.values())[:limit]

    def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list[HistoryEntry]:
        sql = "SELECT memory_id, version, action, before, after, at FROM history WHERE memory_id = ? ORDER BY seq"
        if limit is None:
            rows = self._q(sql, (memory_id,))
        else:  # the newest, read backwards through (memory_id, seq)
            rows = self._q(sql + " DESC LIMIT ?", (memory_id, int(limit)))[::-1]
        return [
            HistoryEntry(
                memory_id=r["memory_id"],
                version=r["version"],
                action=r["action"],
                before=json.loads(r["before"]) if r["before"] else None,
                after=json.loads(r["after"]) if r["after"] else None,
                at=from_store(r["at"]),
            )
            for r in rows
        ]

    def keys_for(self, ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(list(ids), 500):
            rows = self._q(f"SELECT id, key FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: r[1] for r in rows})
        return out

    def ids_for(self, keys: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for chunk in _chunks([int(k) for k in keys], 500):
            rows = self._q(f"SELECT key, id FROM memories WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: r[1] for r in rows})
        return out

    def rank_meta(self, ids: Sequence[str]) -> dict[str, RankMeta]:
        out: dict[str, RankMeta] = {}
        for chunk in _chunks(list(ids), 500):
            rows = self._q(
                "SELECT id, key, user_id, agent_id, session_id, speaker, occurred_at, text FROM memories"
                f" WHERE id IN ({','.join('?' * len(chunk))}) AND deleted_at IS NULL",
                chunk,
            )
            out.update({r[0]: RankMeta(r[1], r[2], r[3], r[4], r[5], from_store(r[6]), r[7]) for r in rows})
        return out

    def rank_meta_for_keys(self, keys: Sequence[int], filters: Filters) -> dict[int, tuple[str, RankMeta]]:
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        out: dict[int, tuple[str, RankMeta]] = {}
        for chunk in _chunks(sorted({int(k) for k in keys}), 500):
            rows = self._q(
                "SELECT m.key, m.id, m.user_id, m.agent_id, m.session_id, m.speaker, m.occurred_at, m.text"
                f" FROM memories m WHERE m.key IN ({','.join('?' * len(chunk))}) AND m.deleted_at IS NULL{where}",
                [*chunk, *params],
            )
            found = {r[0]: (r[1], RankMeta(r[0], r[2], r[3], r[4], r[5], from_store(r[6]), r[7])) for r in rows}
            out.update((k, found[k]) for k in chunk if k in found)
        return out

    # -- index support -----------------------------------------------------------
    def keyword_search(self, query: str, filters: Filters, limit: int) -> builtins.list[tuple[str, float]]:
        terms = keyword_terms(query)
        if not terms:
            return []
        phrases = ['"' + t.replace('"', '""') + '"' for t in terms]
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        match = " OR ".join(phrases)
        span = "" if filters.user_id is None else " AND memories_fts.rowid BETWEEN ? AND ?"
        span_params = [] if filters.user_id is None else list(user_span(filters.user_id))
        totals = self._fts_totals()  # (rows, average length): each path below weighs words by them
        if span and totals[0] > BM25_IN_INDEX_MAX:
            hits = self._scoped_bm25(phrases, span_params, where, params, limit, totals)
            if hits is not None:
                return [*hits]
        if not span and _scope_first(filters) and totals[0] > BM25_IN_INDEX_MAX:
            found = self._scope_bm25(phrases, filters, limit, totals)
            if found is not None:
                return found
        if not span and _broad(filters):
            hits = self._top_in_index(phrases, where, params, limit, totals)
            if hits is not None:
                return hits
        # CROSS JOIN: the index drives; otherwise SQLite may walk the scope's rows and re-run the match per row
        sql = (
            "SELECT m.id, -bm25(memories_fts) AS score FROM memories_fts"
            " CROSS JOIN memories m ON m.fts_key = memories_fts.rowid"
            f" WHERE memories_fts MATCH ?{span}{where} ORDER BY bm25(memories_fts), m.key LIMIT ?"
        )
        return [(r[0], float(r[1])) for r in self._q(sql, [match, *span_params, *params, limit])]

    @property
    def reads_beside(self) -> bool:  # type: ignore[override]  # a property over the base's class attribute
        return self.path != ":memory:"  # (an in-memory database has no second connection)

    def read_soon(self, read: Callable[[], _T]) -> Callable[[], _T]:
        """`read()` on a worker thread while the caller embeds its query (the keyword search, the keys a filter
        selects): SQLite and the model run both release the GIL, so on two free cores these reads cost a search
        no time. A thread that holds the store (inside a transaction) reads here and now: the worker would wait
        on it."""
        if self._lock._is_owned() or self.path == ":memory:":  # type: ignore[attr-defined]  # RLock's own check
            return super().read_soon(read)  # (an in-memory database has no second connection)

        def on_worker() -> _T:
            self._on_worker.reading = True
            try:
                return read()
            finally:
                self._on_worker.reading = False

        return _worker().submit(on_worker).result

    def _reader_conn(self) -> sqlite3.Connection:
        """The worker threads' connection (call with `_reader_lock` held): opened as the main one, read only."""
        if self._reader is None:
            if self._closed:
                raise StoreError(f"{self.path!r} is closed")
            conn = self._connect()
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            self._reader = conn
        return self._reader

    def _top_in_index(self, phrases: Sequence[str], where: str, params: Sequence[Any], limit: int,
                      totals: tuple[int, float]) -> builtins.list[tuple[str, float]] | None:
        """The same hits as the joined query, for filters that keep almost every row (no scope, kind or time).

        Joining each matching index row to its memory before sorting costs a lookup per match (~50,000 on a
        100k store for a common query: most of an unscoped search's time). Here the index ranks on its own and
        only its best rows are looked up. Exact: when the last hit kept scores strictly better than the worst
        row read, every row left unread scores worse than it. None (run the joined query) when it is not.
        A query whose words hold more than UNSCOPED_POSTINGS_MAX rows between them goes to `_top_pruned`."""
        n_rows = totals[0]
        if n_rows > UNSCOPED_POSTINGS_MAX:
            version = self.data_version()
            counts = [self._df_of(p, n_rows, version) for p in phrases]
            if sum(counts) > UNSCOPED_POSTINGS_MAX:
                groups = [" AND ".join(phrases[i] for i in g) for g in cutoff_groups(counts)]
                return self._top_pruned(phrases, " OR ".join(f"({g})" for g in groups), where, params, limit,
                                        totals)
        match = " OR ".join(phrases)
        want = limit * 2 + 50
        top = self._q(
            "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?"
            " ORDER BY bm25(memories_fts) LIMIT ?", [match, want],
        )
        if not top:
            return []
        score = {int(r[0]): float(r[1]) for r in top}
        kept: builtins.list[tuple[float, int, str]] = []
        rowids = list(score)
        for chunk in _chunks(rowids, 500):
            rows = self._q(
                f"SELECT m.fts_key, m.key, m.id FROM memories m WHERE m.fts_key IN ({','.join('?' * len(chunk))})"
                f"{where}", [*chunk, *params],
            )
            kept.extend((score[int(r[0])], int(r[1]), r[2]) for r in rows)
        kept.sort()
        kept = kept[:limit]
        complete = len(top) < want  # every matching row was read
        if not complete and (len(kept) < limit or kept[-1][0] >= float(top[-1][1])):
            return None
        return [(i, -s) for s, _, i in kept]

    def _top_pruned(self, phrases: Sequence[str], candidates: str, where: str, params: Sequence[Any],
                    limit: int, totals: tuple[int, float]) -> builtins.list[tuple[str, float]]:
        """Unscoped BM25 at a cost bounded by the rows that `candidates` (an FTS5 expression, see
        codec.cutoff_groups) matches, not by every row holding a common word: the index ranks those rows on the
        expression's words, and the best PRUNED_POOL of them are scored again on every word of the query,
        exactly as bm25() scores them."""
        pool = max(PRUNED_POOL, limit * 2 + 50)
        top = self._q(
            "SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? ORDER BY bm25(memories_fts) LIMIT ?",
            [candidates, pool],
        )
        if not top:
            return []
        rows: builtins.list[sqlite3.Row] = []  # (fts_key, key, id, index_text)
        for chunk in _chunks([int(r[0]) for r in top], 500):
            rows.extend(self._q(
                f"SELECT m.fts_key, m.key, m.id, m.index_text FROM memories m"
                f" WHERE m.fts_key IN ({','.join('?' * len(chunk))}){where}", [*chunk, *params],
            ))
        return self._bm25_rows(phrases, rows, totals, limit)

    def _bm25_rows(self, phrases: Sequence[str], rows: Sequence[sqlite3.Row], totals: tuple[int, float],
                   limit: int) -> builtins.list[tuple[str, float]]:
        """The best `limit` of `rows` (fts_key, key, id, index_text) holding a query word, scored on every word
        exactly as bm25() scores them: their texts tokenized here, the index's own lengths and counts."""
        n_rows, avgdl = totals
        seqs = [self._tokens(p.strip('"').replace('""', '"')) for p in phrases]
        version = self.data_version()
        idfs = [self._idf(p, n_rows, version) for p in phrases]
        sizes = self._doc_lens([int(r[0]) for r in rows])
        lens = [sizes.get(int(r[0]), 0) for r in rows]
        f = self._phrase_counts([r[3] or "" for r in rows], lens, seqs)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * np.asarray(lens, dtype=np.float64) / avgdl)
        terms = f * (BM25_K1 + 1.0) / (f + norm[:, None]) * np.asarray(idfs)
        held = f.max(axis=1, initial=0.0) > 0  # what MATCH would have found
        scored = [(-score, int(r[1]), r[2])
                  for r, score, h in zip(rows, terms.sum(axis=1).tolist(), held.tolist(), strict=True) if h]
        scored.sort()
        return [(mid, -neg) for neg, _, mid in scored[:limit]]

    def _scope_bm25(self, phrases: Sequence[str], filters: Filters, limit: int, totals: tuple[int, float]
                    ) -> builtins.list[tuple[str, float]] | None:
        """A scope given by agent, session, source or ids, not by user: the keyword index is not clustered by
        it, so its rows are read through their own index and scored here (`_bm25_rows`), at a cost that
        follows the scope. None when the scope holds more than SCOPED_EXACT_MAX rows (the index then ranks)."""
        where, params = where_clause(filters)
        rows = self._q(
            f"SELECT m.fts_key, m.key, m.id, m.index_text FROM memories m{where} LIMIT ?",
            [*params, SCOPED_EXACT_MAX + 1],
        )
        if len(rows) > SCOPED_EXACT_MAX:
            return None
        return self._bm25_rows(phrases, rows, totals, limit) if rows else []

    def _df_of(self, phrase: str, n_rows: int, version: int) -> int:
        """A phrase's row count, through the same cache as its idf."""
        self._idf(phrase, n_rows, version)
        got = self._df.get(phrase)  # another thread may have cleared the cache since
        return got if got is not None else self._doc_count(phrase, n_rows)

    def _scoped_bm25(
        self, phrases: Sequence[str], span: Sequence[int], where: str, params: Sequence[Any], limit: int,
        totals: tuple[int, float],
    ) -> Sequence[tuple[str, float]] | None:
        """BM25 exactly as FTS5's bm25() scores it, over one user's rowid range of the index.

        bm25() weighs each term by counting every row that holds it, a scan of the term's whole posting list
        on every query, whatever the filter. Here the candidates, and each term's count per candidate, come
        from the user's range only; document frequencies come from a cache (_idf) and the totals from FTS5's
        own records: the same scores, at a cost that follows the user's rows, not the store's. None when the
        range holds more than SCOPED_EXACT_MAX matching rows (bm25() in the index then ranks them)."""
        # One statement: the candidates, each with its text's matched tokens marked (\ue000 ... \ue001) and its
        # length (FTS5's docsize record, as _doc_lens reads it)
        rows = self._q(
            "SELECT m.fts_key, m.id, highlight(memories_fts, 0, char(57344), char(57345)), d.sz FROM memories_fts"
            " CROSS JOIN memories m ON m.fts_key = memories_fts.rowid"
            " CROSS JOIN memories_fts_docsize d ON d.id = memories_fts.rowid"
            f" WHERE memories_fts MATCH ? AND memories_fts.rowid BETWEEN ? AND ?{where} LIMIT ?",
            [" OR ".join(phrases), *span, *params, SCOPED_EXACT_MAX + 1],
        )
        if len(rows) > SCOPED_EXACT_MAX:
            return None
        if not rows:
            return []
        ids = {int(r[0]): r[1] for r in rows}
        counts = self._term_counts(phrases, span, [(int(r[0]), r[2]) for r in rows])
        n_rows, avgdl = totals
        version = self.data_version()
        scores = dict.fromkeys(ids, 0.0)
        lens = {int(r[0]): _varints(bytes(r[3]), 1)[0] for r in rows}
        for phrase, per_row in zip(phrases, counts, strict=True):
            if not per_row:
                continue
            idf = self._idf(phrase, n_rows, version)
            for fkey, n in per_row.items():
                if fkey in scores:
                    f, d = float(n), lens.get(fkey, 0)
                    scores[fkey] += idf * ((f * (BM25_K1 + 1.0)) / (f + BM25_K1 * (1 - BM25_B + BM25_B * d / avgdl)))
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0] & KEY_MASK))[:limit]
        return [(ids[k], s) for k, s in ranked]

    def _term_counts(
        self, phrases: Sequence[str], span: Sequence[int], marked: Sequence[tuple[int, str]]
    ) -> Sequence[dict[int, int]]:
        """How often each phrase occurs in each candidate row, read from the marked texts. highlight() marks
        every phrase instance, merging instances that overlap, so each mark holds only instance tokens and every
        instance lies inside one mark: counting each phrase's token sequence inside the marks (tokenized by the
        index's own tokenizer, so stems agree) counts its instances exactly, as bm25() does. A phrase with no
        token is counted by its own highlight() query."""
        wanted = [self._tokens(p.strip('"').replace('""', '"')) for p in phrases]
        out: list[dict[int, int]] = [{} for _ in phrases]
        by_first: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for i, w in enumerate(wanted):
            if w:
                by_first.setdefault(w[0], []).append((i, w))
        # which phrases each distinct mark holds (an instance each), worked out once: the same few words are
        # marked row after row
        found_in: dict[str, list[int]] = {}
        for fkey, text in marked:
            for span_text in _MARKED.findall(text):
                found = found_in.get(span_text)
                if found is None:
                    toks = self._tokens(span_text)
                    found = found_in[span_text] = [
                        i for at, tok in enumerate(toks) for i, w in by_first.get(tok, ())
                        if len(w) == 1 or toks[at : at + len(w)] == w
                    ]
                for i in found:
                    counts = out[i]
                    counts[fkey] = counts.get(fkey, 0) + 1
        for i, w in enumerate(wanted):
            if not w:
                rows = self._q(
                    "SELECT rowid, highlight(memories_fts, 0, char(57344), '') FROM memories_fts"
                    " WHERE memories_fts MATCH ? AND rowid BETWEEN ? AND ?",
                    [phrases[i], *span],
                )
                out[i] = {int(r[0]): r[1].count("\ue000") for r in rows}
        return out

    def _tokens(self, text: str) -> tuple[str, ...]:
        """`text` as the keyword index tokenizes it (porter, unicode61), from a private in-memory FTS5 table."""
        got = self._token_cache.get(text)
        if got is None:
            got = self._tokenize(text)
            if len(self._token_cache) >= DF_CACHE_MAX:
                self._token_cache.clear()
            self._token_cache[text] = got
        return got

    def _tokenize(self, text: str) -> tuple[str, ...]:
        with self._tok_lock:
            tok = self._tokenizer()
            tok.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", (text,))
            try:
                return tuple(r[0] for r in tok.execute("SELECT term FROM v ORDER BY offset"))
            finally:
                tok.execute("DELETE FROM t")

    def _phrase_counts(self, texts: Sequence[str], lens: Sequence[int], phrases: Sequence[Sequence[str]]
                       ) -> np.ndarray:
        """How often each tokenized phrase occurs in each text (texts x phrases), tokenized as the keyword index
        does. `lens`: each text's token count (the index's docsize). The texts are tokenized as one document, one
        FTS5 insert instead of one per text (~50 us each), and each position is mapped back to its text by
        `lens`."""
        out = np.zeros((len(texts), len(phrases)), dtype=np.float64)
        terms = sorted({t for p in phrases for t in p})
        if not terms or not texts:
            return out
        starts = np.cumsum([0, *lens])
        with self._tok_lock:
            tok = self._tokenizer()
            tok.execute("INSERT INTO t(rowid, x) VALUES (1, ?)", ("\n".join(texts),))
            try:
                total = _varints(bytes(tok.execute("SELECT sz FROM t_docsize WHERE id = 1").fetchone()[0]), 1)[0]
                found = tok.execute(
                    f"SELECT term, offset FROM v WHERE term IN ({','.join('?' * len(terms))})", terms
                ).fetchall()
            finally:
                tok.execute("DELETE FROM t")
        if total != int(starts[-1]):  # the index's lengths are out of step with its texts: one text at a time
            for i, text in enumerate(texts):
                toks = self._tokenize(text)
                for k, p in enumerate(phrases):
                    n = len(p)
                    out[i, k] = sum(1 for j in range(len(toks) - n + 1) if n and toks[j : j + n] == tuple(p))
            return out
        words = np.array([r[0] for r in found], dtype=object)
        offsets = np.array([r[1] for r in found], dtype=np.int64)
        at = {t: offsets[words == t] for t in terms}
        for k, p in enumerate(phrases):
            if not p:
                continue
            hits = at[p[0]]
            for j, t in enumerate(p[1:], 1):
                hits = hits[np.isin(hits + j, at[t])]
            doc = np.searchsorted(starts, hits, side="right") - 1
            if len(p) > 1:  # a phrase may not run across two texts
                doc = doc[np.searchsorted(starts, hits + len(p) - 1, side="right") - 1 == doc]
            out[:, k] = np.bincount(doc, minlength=len(texts))
        return out

    def _tokenizer(self) -> sqlite3.Connection:
        """A private in-memory FTS5 table with the keyword index's tokenizer, and its token listing. Call with
        `_tok_lock` held."""
        if self._tok is None:
            self._tok = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._tok.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 remove_diacritics 2')")
            self._tok.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        return self._tok

    def _fts_totals(self) -> tuple[int, float]:
        """(rows, average text-column length) from FTS5's own averages record, as bm25() reads them."""
        rows = self._q("SELECT block FROM memories_fts_data WHERE id = 1")
        if not rows or rows[0][0] is None:
            return 0, 1.0
        vals = _varints(bytes(rows[0][0]), 2)
        n_rows = vals[0]
        return n_rows, (vals[1] / n_rows if n_rows else 1.0)

    def _doc_lens(self, keys: builtins.list[int]) -> dict[int, int]:
        """Token count of each row's text column (FTS5's docsize record: one varint per column)."""
        out: dict[int, int] = {}
        for chunk in _chunks(keys, 500):
            rows = self._q(f"SELECT id, sz FROM memories_fts_docsize WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update((int(r[0]), _varints(bytes(r[1]), 1)[0]) for r in rows)
        return out

    def _idf(self, phrase: str, n_rows: int, version: int) -> float:
        """FTS5's idf for one phrase; its row count cached (exact below STATS_EXACT_ROWS, else STATS_TTL_S old).
        `version`: the store's data_version, read once per query by the caller."""
        stamp = time.monotonic()
        if self._df_version != version and (n_rows <= STATS_EXACT_ROWS or stamp - self._df_time > STATS_TTL_S):
            self._df.clear()
            self._df_version, self._df_time = version, stamp
        df = self._df.get(phrase)
        if df is None:
            df = self._doc_count(phrase, n_rows)
            if len(self._df) >= DF_CACHE_MAX:
                self._df.clear()
            self._df[phrase] = df
        idf = math.log((n_rows - df + 0.5) / (df + 0.5))
        return idf if idf > 0 else 1e-6

    def _doc_count(self, phrase: str, n_rows: int) -> int:
        """Rows holding `phrase`: estimated from the sampled buckets when that says more than DF_EXACT_MAX (a
        walk of a sixteenth of its posting list), else counted."""
        if n_rows <= STATS_EXACT_ROWS:
            return self._count_all(phrase)
        if self._df_sample_rows is None or self._df_sample_rows[0] != n_rows:
            held = int(self._q("SELECT count(*) FROM memories_fts_docsize WHERE id BETWEEN ? AND ?", DF_SAMPLE)[0][0])
            self._df_sample_rows = (n_rows, held)
        held = self._df_sample_rows[1]
        if held < DF_SAMPLE_MIN_ROWS:
            return self._count_all(phrase)
        hits = int(self._q(
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ? AND rowid BETWEEN ? AND ?",
            (phrase, *DF_SAMPLE),
        )[0][0])  # fmt: skip
        estimate = round(hits * n_rows / held)
        return min(n_rows, estimate) if estimate > DF_EXACT_MAX else self._count_all(phrase)

    def _count_all(self, phrase: str) -> int:
        return int(self._q("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ?", (phrase,))[0][0])

    def candidate_keys(self, filters: Filters, *, limit: int | None = None) -> np.ndarray:
        where, params = where_clause(filters)
        cap = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._q(f"SELECT m.key FROM memories m{where}{cap}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def scope_vectors(self, filters: Filters, *, limit: int) -> tuple[np.ndarray, np.ndarray]:
        # one statement: the scope's rows through its index, each joined to its vector (at 1M memories ~0.25 ms
        # less than the keys and then an IN-list of them)
        where, params = where_clause(filters)
        rows = self._q(f"SELECT m.key, v.vector FROM memories m JOIN vectors v ON v.key = m.key{where}"
                       f" LIMIT {int(limit)}", params)
        keys, mat = _vector_rows([r[0] for r in rows], [r[1] for r in rows])
        order = np.argsort(keys, kind="stable")  # the scope's index order: key order, as vectors_for gives
        return keys[order], mat[order]

    def filter_keys(self, keys: Sequence[int], filters: Filters) -> np.ndarray:
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        out: list[int] = []
        for chunk in _chunks([int(k) for k in keys], 500):
            sql = f"SELECT m.key FROM memories m WHERE m.key IN ({','.join('?' * len(chunk))}){where}"
            out.extend(r[0] for r in self._q(sql, [*chunk, *params]))
        return np.asarray(out, dtype=np.int64)

    def iter_vectors(self, *, after_key: int = 0, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        last = after_key
        while True:
            rows = self._q("SELECT key, vector FROM vectors WHERE key > ? ORDER BY key LIMIT ?", (last, batch))
            if not rows:
                return
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            mat = np.vstack([blob_to_vector(r[1]) for r in rows])
            last = int(keys[-1])
            yield keys, mat

    def vectors_for(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        got_keys: list[int] = []
        blobs: list[bytes] = []
        for chunk in _chunks([int(k) for k in keys], 500):
            rows = self._q(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for r in rows:
                got_keys.append(r[0])
                blobs.append(r[1])
        return _vector_rows(got_keys, blobs)

    def vector_keys(self, *, after_key: int = 0) -> np.ndarray:
        rows = self._q("SELECT key FROM vectors WHERE key > ? ORDER BY key", (after_key,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vector_log_head(self) -> int | None:
        return int(self._q("SELECT COALESCE(MAX(seq), 0) FROM vector_log")[0][0])

    def vector_changes(self, after_seq: int) -> tuple[int, np.ndarray] | None:
        if after_seq < int(self.get_meta("vector_log_pruned") or 0):
            return None
        rows = self._q("SELECT seq, key FROM vector_log WHERE seq > ? ORDER BY seq", (after_seq,))
        if not rows:
            return after_seq, np.zeros(0, dtype=np.int64)
        keys = np.unique(np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)))
        return int(rows[-1][0]), keys

    def token_vectors_for(self, keys: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for chunk in _chunks([int(k) for k in keys], 500):
            rows = self._q(f"SELECT key, data FROM token_vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            out.update({int(r[0]): bytes(r[1]) for r in rows})
        return out

    def index_texts(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(list(ids), 500):
            rows = self._q(f"SELECT id, index_text FROM memories WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            out.update({r[0]: r[1] for r in rows})
        return out

    # -- links -------------------------------------------------------------------
    def add_links(self, links: Sequence[Link]) -> None:
        if not links:
            return
        with self.transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO links(src_id, dst_id, type, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                [(lk.src_id, lk.dst_id, lk.type, lk.reason, to_store(lk.created_at or now())) for lk in links],
            )
            self._bump()

    def remove_links(self, memory_ids: Sequence[str], *, type: str) -> int:
        n = 0
        with self.transaction():
            for chunk in _chunks(list(memory_ids), 400):
                marks = ",".join("?" * len(chunk))
                cur = self._conn.execute(
                    f"DELETE FROM links WHERE type = ? AND (src_id IN ({marks}) OR dst_id IN ({marks}))",
                    [type, *chunk, *chunk],
                )
                n += cur.rowcount
            if n:
                self._bump()
        return n

    def links(self, memory_id: str, *, type: str | None = None, direction: str = "both") -> builtins.list[Link]:
        conds = {"out": "src_id = ?", "in": "dst_id = ?", "both": "(src_id = ? OR dst_id = ?)"}[direction]
        params: list[Any] = [memory_id] * (2 if direction == "both" else 1)
        if type:
            conds += " AND type = ?"
            params.append(type)
        rows = self._q(f"SELECT src_id, dst_id, type, reason, created_at FROM links WHERE {conds}", params)
        return [Link(r[0], r[1], r[2], r[3], from_store(r[4])) for r in rows]

    # -- the audit log of disclosures -------------------------------------------
    def audit_append(self, entries: Sequence[AuditEntry]) -> int:
        if not entries:
            return 0
        with self.transaction():
            self._conn.executemany(
                "INSERT INTO privacy_disclosures (at, user_id, memory_id, agent_id, purpose, categories, action, op)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(to_store(e.at), e.user_id, e.memory_id, e.agent_id, e.purpose, json.dumps(sorted(e.categories)),
                  e.action, e.op) for e in entries],
            )
        return len(entries)

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
        if not self._audit_table:
            return []
        clauses, params = audit_where(
            "?", "EXISTS (SELECT 1 FROM json_each(categories) WHERE value = ?)", to_store, user_id=user_id,
            agent_id=agent_id, purpose=purpose, memory_id=memory_id, category=category, since=since, until=until,
            before_seq=before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._q(
            "SELECT seq, at, user_id, memory_id, agent_id, purpose, categories, action, op FROM privacy_disclosures"
            f"{where} ORDER BY seq DESC LIMIT ?", [*params, max(0, int(limit))])
        return [AuditEntry(seq=r[0], at=from_store(r[1]), user_id=r[2], memory_id=r[3], agent_id=r[4],
                           purpose=r[5], categories=json.loads(r[6]), action=r[7], op=r[8]) for r in rows]

    def audit_delete(
        self, *, user_id: str | None = None, agent_id: str | None = None, before: datetime | None = None
    ) -> int:
        clauses, params = audit_where("?", "", to_store, user_id=user_id, agent_id=agent_id, until=before)
        if not clauses:
            raise ValueError("audit_delete needs user_id, agent_id or before")
        with self.transaction():
            return int(self._conn.execute(
                f"DELETE FROM privacy_disclosures WHERE {' AND '.join(clauses)}", params).rowcount)

    def scope_counts(self, field: str, filters: Filters, limit: int) -> tuple[int, builtins.list[tuple[str, int]]]:
        if field not in SCOPE_FIELDS:
            raise ValueError(f"field must be one of {SCOPE_FIELDS}")
        where, params = where_clause(filters)
        where += f"{' AND' if where else ' WHERE'} m.{field} IS NOT NULL"
        total = int(self._q(f"SELECT COUNT(DISTINCT m.{field}) FROM memories m{where}", params)[0][0])
        rows = self._q(
            f"SELECT m.{field}, COUNT(*) AS n FROM memories m{where} GROUP BY m.{field} ORDER BY n DESC, m.{field}"
            " LIMIT ?",
            [*params, limit],
        )
        return total, [(r[0], int(r[1])) for r in rows]

    def period_counts(self, filters: Filters, period: str) -> builtins.list[tuple[str, int]]:
        width = PERIOD_WIDTH[period]  # stored times are fixed-width UTC ISO strings (timeutil.to_store)
        where, params = where_clause(filters)
        where += f"{' AND' if where else ' WHERE'} m.occurred_at IS NOT NULL"
        rows = self._q(
            f"SELECT substr(m.occurred_at, 1, {width}) AS p, COUNT(*) FROM memories m{where} GROUP BY p ORDER BY p",
            params,
        )
        return [(r[0], int(r[1])) for r in rows]

    # -- maintenance -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        rows = self._q("SELECT kind, COUNT(*), SUM(deleted_at IS NOT NULL) FROM memories GROUP BY kind ORDER BY kind")
        size = sum(
            os.path.getsize(p) for p in (self.path, self.path + "-wal") if self.path != ":memory:" and os.path.exists(p)
        )
        return {
            "backend": "sqlite",
            "path": self.path,
            "schema_version": int(self._q("PRAGMA user_version")[0][0]),
            "memories": sum(r[1] for r in rows) - sum(r[2] or 0 for r in rows),
            "deleted": sum(r[2] or 0 for r in rows),
            "by_kind": {r[0]: r[1] - (r[2] or 0) for r in rows},
            "vectors": int(self._q("SELECT COUNT(*) FROM vectors")[0][0]),
            "token_vectors": int(self._q("SELECT COUNT(*) FROM token_vectors")[0][0]),
            "history_entries": int(self._q("SELECT COUNT(*) FROM history")[0][0]),
            "links": int(self._q("SELECT COUNT(*) FROM links")[0][0]),
            "users": int(self._q("SELECT COUNT(DISTINCT user_id) FROM memories")[0][0]),
            "bytes_on_disk": size,
        }

    def merge_keyword_index(self) -> int:
        """FTS5 keeps its index as segments, merged in tiers as rows arrive: a store grown to 1M rows holds
        ~20, and every query word is looked up in each (a scoped keyword search at 1M: ~1.1 ms of lookups
        with 22 segments, ~0.2 ms with one). FTS5's 'merge' with a negative budget merges every segment into
        one, at most MERGE_STEP_PAGES pages written per call; each call is its own transaction."""
        if self.read_only:
            return 0
        steps = 0
        while steps < MERGE_MAX_STEPS:  # writers adding segments all along cannot keep it going for ever
            with self.transaction():
                before = self._conn.total_changes
                self._conn.execute(
                    "INSERT INTO memories_fts(memories_fts, rank) VALUES ('merge', ?)", (-MERGE_STEP_PAGES,)
                )
                merged = self._conn.total_changes - before >= 2  # FTS5: a step that merged changes 2+ rows
            if not merged or self._segments() <= 1:
                return steps + merged
            steps += 1
        return steps

    def _segments(self) -> int:
        """Segments in the keyword index (from FTS5's structure record: a cookie, then varints: levels,
        segments)."""
        rows = self._q("SELECT block FROM memories_fts_data WHERE id = 10")
        if not rows or rows[0][0] is None:
            return 0
        return _varints(bytes(rows[0][0])[4:], 2)[1]

    def compact(self) -> None:
        with self._lock:
            with self.transaction():  # keep the newest entry, so positions never restart
                head = self.vector_log_head() or 0
                self._conn.execute("DELETE FROM vector_log WHERE seq < ?", (head,))
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('vector_log_pruned', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(max(head - 1, 0)),),
                )
            self.merge_keyword_index()
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _vector_rows(keys: Sequence[int], blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors as (keys, matrix): one writable buffer, one array (a scoped search reads a few hundred)."""
    if not blobs:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    if len({len(b) for b in blobs}) != 1:  # vectors of two widths (a reindex under way): as numpy says
        return np.asarray(keys, dtype=np.int64), np.vstack([blob_to_vector(b) for b in blobs])
    mat = np.frombuffer(bytearray().join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    return np.asarray(keys, dtype=np.int64), mat


def user_bucket(user_id: str | None) -> int:
    """Where a user's rows sit in the keyword index: 23 bits of a hash (0 for no user)."""
    if user_id is None:
        return 0
    return int.from_bytes(hashlib.blake2b(user_id.encode("utf-8"), digest_size=4).digest(), "big") & BUCKET_MASK


def fts_key(user_id: str | None, key: int) -> int:
    return (user_bucket(user_id) << KEY_BITS) | key


def user_span(user_id: str) -> tuple[int, int]:
    """The keyword-index rowid range holding every row of `user_id` (and of any user sharing its bucket)."""
    lo = user_bucket(user_id) << KEY_BITS
    return lo, lo | KEY_MASK


def _varints(data: bytes, count: int) -> list[int]:
    """The first `count` SQLite varints of `data` (FTS5's record format)."""
    out: list[int] = []
    pos = 0
    while len(out) < count and pos < len(data):
        value = 0
        for i in range(9):
            byte = data[pos]
            pos += 1
            if i == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


def _writable(path: str) -> bool:
    """Whether SQLite can write here: the file, and its directory (for the -wal and -shm files)."""
    return os.access(path, os.W_OK) and os.access(os.path.dirname(os.path.abspath(path)) or ".", os.W_OK)


_worker_lock = threading.Lock()
_worker_pool: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    """Threads for the reads that run while searches embed their queries (`read_soon`)."""
    global _worker_pool
    if _worker_pool is None:
        with _worker_lock:
            if _worker_pool is None:
                _worker_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="engramdb-keyword")
    return _worker_pool


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    out: list[str] = []
    buf: list[str] = []
    in_trigger = False
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        buf.append(line)
        upper = stripped.upper()
        if upper.startswith("CREATE TRIGGER"):
            in_trigger = True
        if in_trigger:
            if upper == "END;":
                out.append("\n".join(buf))
                buf, in_trigger = [], False
        elif stripped.endswith(";"):
            out.append("\n".join(buf))
            buf = []
    if buf:
        out.append("\n".join(buf))
    return out

