"""PostgreSQL + pgvector backend: the same `Store` as SQLite, for when one machine is not enough.

    Memory(url="postgresql://user:pw@host/db")              # schema "engramdb"
    Memory(url="postgresql://user:pw@host/db?schema=t_acme") # one schema per tenant

- Connections come from a psycopg_pool pool shared by every store (tenant schema) on the same server; SQL
  names its schema explicitly, so connections carry no session state (transaction-mode poolers work).
  A `transaction()` pins one connection to the calling thread.
- Keyword search is BM25 computed in SQL over a GIN-indexed tsvector, with the same formula and constants
  as SQLite FTS5 (k1=1.2, b=0.75, idf clamped at 1e-6), so both backends rank alike; the analyzers differ
  (english snowball vs FTS5 porter), so ties and a few stems can differ.
- Dense search runs in the database (`vector_search`): exact when the filtered candidate set is small (as
  the SQLite path does), else an HNSW index with pgvector's iterative scan so filters do not starve it.
- data_version / vector_epoch are sequences advanced after commit: readers that cache on them never see
  a new version before the data it announces.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ..errors import ConfigError, ReadOnlyError, StoreError, ValidationError
from ..model import HistoryEntry, MemoryRecord
from ..timeutil import now
from . import postgres_schema
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
from .codec import COLUMNS, TIME_FIELDS, UNSCOPED_POSTINGS_MAX, cutoff_groups, keyword_terms, record_json

try:
    import psycopg
    from psycopg.adapt import Dumper, Loader
    from psycopg.pq import Format
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError("the PostgreSQL backend needs: pip install 'engramdb[postgres]'") from _exc

DEFAULT_SCHEMA = "engramdb"
EXACT_MAX = 50_000  # same threshold as the in-process index: exact below it, HNSW above
HNSW_MIN_ROWS = EXACT_MAX  # build the HNSW index once a dimension has more vectors than this
STATS_TTL_S = 30.0  # BM25 corpus stats (N, avgdl) of a large store may lag this long
STATS_EXACT_ROWS = 50_000  # below this, recompute them on every data change (exact parity with FTS5)
DF_EXACT_MAX = 20_000  # above STATS_EXACT_ROWS, a word in more rows than this has its count estimated
PRUNED_POOL = 400  # past UNSCOPED_POSTINGS_MAX, candidates scored on every query word (as on SQLite)
BM25_K1, BM25_B = 1.2, 0.75
DF_CACHE_MAX = 50_000
# A search writes nothing: its access counts wait in the process and go out in one statement at most every
# TOUCH_FLUSH_S (or once TOUCH_BUFFER_MAX ids wait), and at close. A write per search cost a commit each.
TOUCH_FLUSH_S = 30.0
TOUCH_BUFFER_MAX = 50_000
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)  # what FTS5 unicode61 counts as a token
_EXT_SQL = "SELECT extnamespace::regnamespace::text, extversion FROM pg_extension WHERE extname = 'vector'"
_OUR_PARAMS = ("schema", "pool_min", "pool_max", "pool_timeout", "prepare")
_ORDERS = {
    "occurred_at": "m.occurred_at ASC NULLS FIRST, m.key",  # NULLS FIRST/LAST: SQLite's order
    "-occurred_at": "m.occurred_at DESC NULLS LAST, m.key DESC",
    "recorded_at": "m.key",
    "-recorded_at": "m.key DESC",
    TIP_ORDER: (  # text in code point order, as SQLite and Python sort it
        "(coalesce((m.metadata #>> '{tip,successes_after}')::float8, 0) + 1)"
        " / (coalesce((m.metadata #>> '{tip,successes_after}')::float8, 0)"
        " + coalesce((m.metadata #>> '{tip,failures_after}')::float8, 0) + 2) DESC,"
        " coalesce((m.metadata #>> '{tip,support}')::bigint, 0) DESC, m.text COLLATE \"C\", m.key"
    ),
}
_SELECT = "SELECT m.key, " + ", ".join(f"m.{c}" for c in COLUMNS) + " FROM memories m"


def parse_url(url: str, schema: str | None = None) -> tuple[str, dict[str, Any]]:
    """Split our own query parameters (schema, pool_*) off a libpq URL, which would reject them."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {redact(url)!r}")
    params = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in params if k in _OUR_PARAMS}
    rest = [(k, v) for k, v in params if k not in _OUR_PARAMS]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest, safe="/")))
    name = schema or ours.get("schema") or DEFAULT_SCHEMA
    if not _SCHEMA_RE.match(name):
        raise ConfigError(f"schema {name!r} must be a lowercase identifier (letters, digits, _; at most 63)")
    try:
        opts: dict[str, Any] = {
            "schema": name,
            "pool_min": int(ours.get("pool_min", 1)),
            "pool_max": int(ours.get("pool_max", 10)),
            "pool_timeout": float(ours.get("pool_timeout", 30)),
            "prepare": ours.get("prepare", "on"),
        }
    except ValueError as exc:
        raise ConfigError(f"bad pool parameter in database URL: {exc}") from exc
    if opts["prepare"] not in ("on", "off"):
        raise ConfigError("prepare: on (default) or off (for poolers without prepared-statement support)")
    if not 0 <= opts["pool_min"] <= opts["pool_max"] or opts["pool_max"] < 1:
        raise ConfigError("pool_min/pool_max: need 0 <= pool_min <= pool_max and pool_max >= 1")
    return conninfo, opts


def redact(url: str) -> str:
    """The URL without its password, for messages and stats."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def where_clause(f: Filters, at: datetime | None = None) -> tuple[str, list[Any]]:
    """SQL WHERE (on alias m) and parameters for a Filters: sqlite.where_clause, in PostgreSQL."""
    clauses: list[str] = []
    params: list[Any] = []
    for col in ("user_id", "agent_id", "session_id", "source_ref"):
        value = getattr(f, col)
        if value is not None:
            clauses.append(f"m.{col} = %s")
            params.append(value)
    if f.kinds:
        clauses.append("m.kind = ANY(%s)")
        params.append(list(f.kinds))
    if f.ids is not None:
        clauses.append("m.id = ANY(%s)" if f.ids else "FALSE")
        if f.ids:
            params.append(list(f.ids))
    if f.since is not None:
        clauses.append("m.occurred_at >= %s")
        params.append(f.since)
    if f.until is not None:
        clauses.append("m.occurred_at < %s")
        params.append(f.until)
    for key, value in f.metadata.items():
        # Containment (@>) uses the GIN index. SQLite's json_extract reads true as 1 and a JSON null
        # like a missing key; mirror both.
        if value is None:
            clauses.append("COALESCE(m.metadata -> %s, 'null'::jsonb) = 'null'::jsonb")
            params.append(key)
        elif isinstance(value, bool):
            clauses.append("(m.metadata @> %s::jsonb OR m.metadata @> %s::jsonb)")
            params.extend([json.dumps({key: value}), json.dumps({key: int(value)})])
        else:
            clauses.append("m.metadata @> %s::jsonb")
            params.append(json.dumps({key: value}, ensure_ascii=False))
    if f.as_of is not None:
        clauses.append("(m.valid_from IS NULL OR m.valid_from <= %s) AND (m.valid_to IS NULL OR m.valid_to > %s)")
        # Valid time, not transaction time (docs/STORE_CHANGES.md): back-filled histories must answer too.
        clauses.append("(m.occurred_at IS NULL OR m.occurred_at <= %s)")
        params.extend([f.as_of, f.as_of, f.as_of])
    if f.current_only:
        clauses.append("m.valid_to IS NULL")
    if not f.include_deleted:
        clauses.append("m.deleted_at IS NULL")
    if not f.include_expired:
        clauses.append("(m.expires_at IS NULL OR m.expires_at > %s)")
        params.append(f.now or at or now())
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def doc_len(text: str) -> int:
    """Tokens in an index text, counted as FTS5's unicode61 tokenizer does (BM25 length normalisation)."""
    return len(_TOKEN_RE.findall(text))


def _idf(n: int, df: int) -> float:
    """FTS5's idf: ln((N - df + 0.5) / (df + 0.5)), floored at 1e-6."""
    return max(math.log(max(n - df, 0) + 0.5) - math.log(df + 0.5), 1e-6)


def _tsquery_lexeme(lexeme: str) -> str:
    """A lexeme as tsquery input, quoted so the server takes it verbatim (no re-parsing, no stemming)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


# what ranking reads of a row (Store.rank_meta), in RankMeta's order
_RANK_COLS = "m.key, m.user_id, m.agent_id, m.session_id, m.speaker, m.occurred_at, m.text"


def _rank_meta(row: Sequence[Any]) -> RankMeta:
    return RankMeta(int(row[0]), row[1], row[2], row[3], row[4], _utc(row[5]), row[6])


def _row_to_record(row: dict[str, Any]) -> MemoryRecord:
    data = {col: row[col] for col in COLUMNS}
    for col in TIME_FIELDS:
        data[col] = _utc(data[col])
    data["metadata"] = data["metadata"] or {}
    data["source_ids"] = data["source_ids"] or []
    return MemoryRecord.model_construct(**data)


def _record_params(rec: MemoryRecord) -> list[Any]:
    out: list[Any] = []
    for col in COLUMNS:
        value = getattr(rec, col)
        if col in ("metadata", "source_ids"):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        out.append(value)
    return out


_COLS_SQL = ", ".join(COLUMNS)
_MARKS_SQL = ", ".join("%s::jsonb" if c in ("metadata", "source_ids") else "%s" for c in COLUMNS)


def _vector_adapters(oid: int) -> tuple[type, type, type]:
    """psycopg adapters for pgvector's binary format (int16 dim, int16 unused, float4 big-endian)."""

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            arr = np.asarray(obj, dtype=">f4").ravel()
            return struct.pack(">HH", arr.size, 0) + arr.tobytes()

    VectorDumper.oid = oid

    class VectorBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            dim = struct.unpack_from(">H", data, 0)[0]
            return np.frombuffer(bytes(data), dtype=">f4", count=dim, offset=4).astype(np.float32)

    class VectorTextLoader(Loader):
        def load(self, data: Any) -> np.ndarray:
            text = bytes(data).decode()[1:-1]
            return np.array([float(x) for x in text.split(",")] if text else [], dtype=np.float32)

    return VectorDumper, VectorBinaryLoader, VectorTextLoader


# SQL is written with bare names and qualified per store: tables with the store's schema, pgvector's type,
# functions and operator with the extension's schema. No search_path (session state) is needed, so it works
# behind transaction-mode poolers (pgbouncer, Supavisor, Neon) and one pool serves every tenant schema.
_TABLES_RE = re.compile(
    r"\b(memories|token_vectors|vectors|history|links|meta|engramdb_migrations|data_version_seq|vector_epoch_seq"
    r"|privacy_disclosures)\b"
)
_EXT_RE = re.compile(r"::vector\b|\bvector_dims\(|<=>|\bvector_cosine_ops\b")


@functools.lru_cache(maxsize=4096)
def qualify(sql: str, schema: str, ext: str) -> str:
    sql = _TABLES_RE.sub(lambda m: f'"{schema}".{m.group(1)}', sql)

    def ext_sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "<=>":
            return f'OPERATOR("{ext}".<=>)'
        if tok.startswith("::"):
            return f'::"{ext}".vector'
        return f'"{ext}".{tok}'

    return _EXT_RE.sub(ext_sub, sql)


class _SharedPool:
    """One psycopg pool per (server URL, pool settings), shared by every store (tenant schema) on it."""

    _lock = threading.Lock()
    _pools: dict[tuple[Any, ...], _SharedPool] = {}

    def __init__(self, conninfo: str, opts: dict[str, Any], vector_oid: int) -> None:
        dumper, bin_loader, text_loader = _vector_adapters(vector_oid)

        def configure(conn: psycopg.Connection) -> None:
            conn.adapters.register_dumper(np.ndarray, dumper)
            conn.adapters.register_loader(vector_oid, bin_loader)
            conn.adapters.register_loader(vector_oid, text_loader)

        self.users = 0
        self.key: tuple[Any, ...] = ()
        self.pool = ConnectionPool(
            conninfo,
            min_size=opts["pool_min"],
            max_size=opts["pool_max"],
            timeout=opts["pool_timeout"],
            # prepare_threshold=None: never server-side PREPARE (pgbouncer < 1.21, some transaction poolers).
            kwargs={"autocommit": True, "prepare_threshold": None if opts["prepare"] == "off" else 5},
            configure=configure,
            open=False,
            name="engramdb",
        )
        try:
            self.pool.open(wait=opts["pool_min"] > 0, timeout=opts["pool_timeout"])
        except PoolTimeout as exc:
            self.pool.close()
            raise StoreError(f"cannot connect to {redact(conninfo)}: the pool did not fill in time") from exc

    @classmethod
    def acquire(cls, conninfo: str, opts: dict[str, Any], vector_oid: int) -> _SharedPool:
        key = (conninfo, opts["pool_min"], opts["pool_max"], opts["pool_timeout"], opts["prepare"])
        with cls._lock:
            shared = cls._pools.get(key)
            if shared is None:
                shared = cls._pools[key] = _SharedPool(conninfo, opts, vector_oid)
            shared.users += 1
            shared.key = key
            return shared

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users <= 0 and self._pools.get(self.key) is self:
                del self._pools[self.key]
                self.pool.close()


class PostgresStore(Store):
    native_vector_search = True  # pgvector: `vector_search` answers every dense search

    def __init__(self, url: str, *, schema: str | None = None, pool_max: int | None = None) -> None:
        self.url = url
        self.conninfo, opts = parse_url(url, schema)
        if pool_max is not None:
            opts["pool_max"] = max(pool_max, opts["pool_min"], 1)
        self.schema: str = opts["schema"]
        self._local = threading.local()
        self._indexed_dims: set[int] = set()
        self._staging_versions: dict[int, int] = {}  # reindex: key -> version when read for embedding
        self._stats_cache: tuple[int, float, int, float] | None = None  # (version, at, N, avgdl)
        self._df: dict[str, int] = {}  # lexeme -> rows holding it, see _dfs
        self._df_version = -1
        self._df_time = 0.0
        self._mcelem: tuple[float, dict[str, float]] | None = None  # (read at, lexeme -> share), _common_lexemes
        self._pending_touch: dict[str, tuple[int, datetime]] = {}  # id -> (accesses, last), see touch
        self._touch_lock = threading.Lock()
        self._touch_tried = time.monotonic()
        self._ext_schema, vector_oid = self._bootstrap()
        self._shared = _SharedPool.acquire(self.conninfo, opts, vector_oid)
        self._pool = self._shared.pool
        self._closed = False

    def _sql(self, sql: str) -> str:
        """`sql` with this store's schema and pgvector's schema spelled out."""
        return qualify(sql, self.schema, self._ext_schema)

    def _ex(self, conn: psycopg.Connection, sql: str, params: Any = None, **kw: Any) -> psycopg.Cursor:
        return conn.execute(self._sql(sql), params, **kw)

    # -- plumbing ----------------------------------------------------------------
    def _bootstrap(self) -> tuple[str, int]:
        """Make sure pgvector, the schema and every migration are in place. Returns (pgvector's schema, oid)."""
        try:
            extra: dict[str, Any] = {} if "connect_timeout" in self.conninfo else {"connect_timeout": 10}
            conn = psycopg.connect(self.conninfo, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact(self.url)}: {_first_line(exc)}") from exc
        with conn:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext('engramdb:extension'))")
                    row = conn.execute(_EXT_SQL).fetchone()
                    if row is None:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                        row = conn.execute(_EXT_SQL).fetchone()
            except psycopg.Error as exc:
                raise StoreError(
                    "the pgvector extension is missing and could not be created "
                    f"({_first_line(exc)}); as an admin run: CREATE EXTENSION vector;"
                ) from exc
            if row is None:
                raise StoreError("the pgvector extension could not be found after creating it")
            ext_schema = str(row[0]).strip('"')
            try:
                self.pgvector_version = tuple(int(x) for x in str(row[1]).split(".")[:2])
            except ValueError:
                self.pgvector_version = (0, 0)
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"engramdb:migrate:{self.schema}",))
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    conn.execute(f'SET LOCAL search_path TO "{self.schema}", "{ext_schema}"')
                    conn.execute(postgres_schema.BOOTSTRAP)
                    current = _scalar(conn.execute("SELECT COALESCE(max(version), 0) FROM engramdb_migrations"))
                    if current > postgres_schema.LATEST:
                        raise StoreError(
                            f"schema {self.schema!r} is at v{current}, newer than this EngramDB "
                            f"(v{postgres_schema.LATEST}); upgrade"
                        )
                    for version, name, script in postgres_schema.MIGRATIONS:
                        if version > current:
                            conn.execute(script)
                            conn.execute(
                                "INSERT INTO engramdb_migrations (version, name) VALUES (%s, %s)", (version, name)
                            )
                    oid = _scalar(conn.execute("SELECT %s::regtype::oid", (f'"{ext_schema}".vector',)))
            except psycopg.Error as exc:
                raise StoreError(f"cannot prepare schema {self.schema!r}: {_first_line(exc)}") from exc
        return ext_schema, int(oid)

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """The thread's transaction connection when inside one, else a pooled connection."""
        tx = getattr(self._local, "conn", None)
        if tx is not None:
            yield tx
            return
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreError(f"no database connection free within {self._pool.timeout}s (pool exhausted)") from exc
        except psycopg.OperationalError as exc:
            raise StoreError(f"database unreachable: {_first_line(exc)}") from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        local = self._local
        if getattr(local, "conn", None) is not None:
            yield  # re-entrant: the outer transaction commits
            return
        local.dirty = local.vectors_dirty = False
        local.new_dims = set()
        with self._conn() as conn:
            try:
                with conn.transaction():
                    local.conn = conn
                    try:
                        yield
                    finally:
                        local.conn = None
            except psycopg.errors.DataError as exc:
                raise ValidationError(f"rejected by the database: {_first_line(exc)}") from exc
            except psycopg.errors.IntegrityError as exc:
                raise StoreError(f"conflict: {_first_line(exc)}") from exc
            except psycopg.errors.ReadOnlySqlTransaction as exc:  # a hot standby, or a read-only role/database
                raise ReadOnlyError(f"the database is read-only: {_first_line(exc)}") from exc
            except psycopg.Error as exc:
                raise StoreError(f"database error: {_first_line(exc)}") from exc
            # After commit, so a reader never caches old data under a new version.
            try:
                if local.dirty:
                    self._ex(conn, "SELECT nextval('data_version_seq')")
                if local.vectors_dirty:
                    self._ex(conn, "SELECT nextval('vector_epoch_seq')")
            except psycopg.Error as exc:
                raise StoreError(f"committed, but the change counter was not advanced: {_first_line(exc)}") from exc
            for dim in sorted(getattr(local, "new_dims", ())):
                try:
                    self._maybe_build_index(conn, dim)
                except psycopg.Error:  # the data is committed; the index is an optimisation, retried next write
                    pass
            local.new_dims = set()

    def _mark(self, *, vectors: bool = False) -> None:
        self._local.dirty = True
        if vectors:
            self._local.vectors_dirty = True

    def _q(self, sql: str, params: Sequence[Any] = (), *, dict_rows: bool = False, binary: bool = False) -> list[Any]:
        with self._conn() as conn:
            try:
                cur = conn.cursor(row_factory=psycopg.rows.dict_row) if dict_rows else conn.cursor()
                with cur:
                    cur.execute(self._sql(sql), params, binary=binary)
                    return cur.fetchall() if cur.description else []
            except psycopg.Error as exc:
                if getattr(self._local, "conn", None) is not None:
                    raise  # transaction() rolls back, then maps it
                if isinstance(exc, psycopg.errors.DataError):
                    raise ValidationError(f"rejected by the database: {_first_line(exc)}") from exc
                if isinstance(exc, psycopg.OperationalError):
                    raise StoreError(f"database unreachable: {_first_line(exc)}") from exc
                raise StoreError(f"database error: {_first_line(exc)}") from exc

    def _x(self, conn: psycopg.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def close(self) -> None:
        if not self._closed:
            self._flush_touches()
            self._closed = True
            self._shared.release()

    # -- metadata ----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        if key in ("data_version", "vector_epoch"):
            return str(self._seq(f"{key}_seq"))
        if key == "embed_model" and getattr(self._local, "conn", None) is not None:
            # Read inside a write: hold the row until commit, so a reindex cannot swap the model between this
            # check and the write (the swap takes it FOR UPDATE).
            rows = self._q("SELECT value FROM meta WHERE key = %s FOR SHARE", (key,))
        else:
            rows = self._q("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def meta_values(self, keys: Sequence[str]) -> dict[str, str]:
        """One query for plain keys (a search reads two); the sequences, and the model inside a write, as
        `get_meta` reads them."""
        special = {"data_version", "vector_epoch"}
        if special.intersection(keys) or getattr(self._local, "conn", None) is not None:
            return super().meta_values(keys)
        return {r[0]: r[1] for r in self._q("SELECT key, value FROM meta WHERE key = ANY(%s)", (list(keys),))}

    def _seq(self, name: str) -> int:
        return int(self._q(f"SELECT last_value - (NOT is_called)::int FROM {name}")[0][0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction(), self._conn() as conn:
            self._ex(
                conn,
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def data_version(self) -> int:
        return self._seq("data_version_seq")

    def all_meta(self) -> dict[str, str]:
        return dict(self._q("SELECT key, value FROM meta ORDER BY key"))

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
        if not records:
            return []
        if vectors is not None and len(vectors) != len(records):
            raise ValidationError(f"{len(records)} records but {len(vectors)} vectors")
        sql = f"INSERT INTO memories ({_COLS_SQL}, index_text, doc_len) VALUES ({_MARKS_SQL}, %s, %s) RETURNING key"
        keys: list[int] = []
        with self.transaction(), self._conn() as conn:
            with conn.cursor() as cur:
                cur.executemany(
                    self._sql(sql),
                    [[*_record_params(r), index_texts[i], doc_len(index_texts[i])] for i, r in enumerate(records)],
                    returning=True,
                )
                while True:
                    keys.append(int(_scalar(cur)))
                    if not cur.nextset():
                        break
            if vectors is not None:
                self._ensure_vector_index(conn, int(np.asarray(vectors).shape[1]))
                self._x(
                    conn,
                    "INSERT INTO vectors (key, embedding) VALUES (%s, %b)",
                    [(k, np.asarray(vectors[i], dtype=np.float32)) for i, k in enumerate(keys)],
                )
            if tokens is not None:
                self._set_tokens(conn, keys, tokens)
            hist: list[tuple[Any, ...]] = []
            for i, rec in enumerate(records):
                if histories is None:
                    hist.append(_history_row(rec, rec.version, "add", None, rec, now()))
                else:
                    for h in histories[i]:
                        hist.append(
                            (rec.id, rec.user_id, rec.agent_id, rec.session_id, h.version, h.action,
                             _json(h.before), _json(h.after), h.at)
                        )  # fmt: skip
            self._x(conn, _HISTORY_SQL, hist)
            self._mark()
        return keys

    def _ensure_vector_index(self, conn: psycopg.Connection, dim: int) -> None:
        """Note that `dim`-d vectors were written: the HNSW check runs after commit (see _maybe_build_index)."""
        if dim not in self._indexed_dims:
            self._local.new_dims = getattr(self._local, "new_dims", set()) | {dim}

    def _maybe_build_index(self, conn: psycopg.Connection, dim: int, *, force: bool = False) -> bool:
        """Build the HNSW index for `dim`-d vectors once there are more than HNSW_MIN_ROWS of them.

        Below that every search is exact anyway, and one bulk build is far cheaper than growing the graph
        row by row. The build is CONCURRENTLY, so writers go on meanwhile.
        The index is partial and on an expression, `(embedding::vector(dim))`, so several dimensions can
        coexist during a model change. Returns True when the index exists afterwards."""
        name = f"vectors_hnsw_{dim}"
        row = self._ex(
            conn,
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relnamespace = %s::regnamespace AND c.relname = %s",
            (f'"{self.schema}"', name),
        ).fetchone()
        if row is not None and row[0]:
            self._indexed_dims.add(dim)
            return True
        if not force:
            est = _scalar(self._ex(conn, "SELECT reltuples FROM pg_class WHERE oid = 'vectors'::regclass"))
            if 0 <= est < HNSW_MIN_ROWS / 2:
                return False
            n = _scalar(self._ex(
                conn,
                f"SELECT count(*) FROM (SELECT 1 FROM vectors WHERE vector_dims(embedding) = {dim}"
                f" LIMIT {HNSW_MIN_ROWS + 1}) s",
            ))
            if n <= HNSW_MIN_ROWS:
                return False
        # No advisory lock: behind a transaction-mode pooler a session lock and its unlock may land on different
        # server connections. A build in progress shows in pg_stat_progress_create_index; a simultaneous second
        # CREATE ... IF NOT EXISTS either skips or fails harmlessly.
        building = self._ex(
            conn,
            "SELECT 1 FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid"
            " WHERE c.relnamespace = %s::regnamespace AND c.relname = %s",
            (f'"{self.schema}"', name),
        ).fetchone()
        if building:
            return False
        if row is not None:  # a build that died half-way leaves an invalid index behind
            conn.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{self.schema}"."{name}"')
        self._ex(
            conn,
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON vectors USING hnsw"
            f" ((embedding::vector({dim})) vector_cosine_ops) WHERE vector_dims(embedding) = {dim}",
        )
        self._indexed_dims.add(dim)
        return True

    def build_vector_index(self, dim: int | None = None) -> list[int]:
        """Build the HNSW index now, whatever the row count (e.g. after a bulk load). Returns the dimensions indexed."""
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("build_vector_index() cannot run inside a transaction")
        with self._conn() as conn:
            dims = (
                [dim] if dim else [r[0] for r in self._ex(conn, "SELECT DISTINCT vector_dims(embedding) FROM vectors")]
            )
            try:
                return [d for d in dims if self._maybe_build_index(conn, int(d), force=True)]
            except psycopg.Error as exc:
                raise StoreError(f"building the vector index failed: {_first_line(exc)}") from exc

    def replace_keys(self, ids: Sequence[str], index_texts: Sequence[str], vectors: np.ndarray, *,
                     tokens: Sequence[bytes | None] | None = None) -> None:
        toks = tokens if tokens is not None else [None] * len(ids)
        with self.transaction(), self._conn() as conn:
            if len(vectors):
                self._ensure_vector_index(conn, int(np.asarray(vectors).shape[1]))
            for mid, text, vec, tok in zip(ids, index_texts, vectors, toks, strict=True):
                row = self._ex(
                    conn,
                    "UPDATE memories SET index_text = %s, doc_len = %s WHERE id = %s RETURNING key",
                    (text, doc_len(text), mid),
                ).fetchone()
                if row is None:
                    continue
                self._ex(
                    conn,
                    "INSERT INTO vectors (key, embedding) VALUES (%s, %b)"
                    " ON CONFLICT (key) DO UPDATE SET embedding = excluded.embedding",
                    (row[0], np.asarray(vec, dtype=np.float32)),
                )
                self._set_tokens(conn, [row[0]], [tok])
                self._unstage(conn, [row[0]])
            self._mark(vectors=True)

    def _set_tokens(self, conn: psycopg.Connection, keys: Sequence[int], tokens: Sequence[bytes | None]) -> None:
        """Store (or, for None, drop) packed token vectors by memory key, inside the caller's transaction."""
        drop = [int(k) for k, t in zip(keys, tokens, strict=True) if not t]
        put = [(int(k), t) for k, t in zip(keys, tokens, strict=True) if t]
        if drop:
            self._ex(conn, "DELETE FROM token_vectors WHERE key = ANY(%s)", (drop,))
        if put:
            self._x(conn, "INSERT INTO token_vectors (key, data) VALUES (%s, %s)"
                          " ON CONFLICT (key) DO UPDATE SET data = excluded.data", put)

    def update(
        self,
        record: MemoryRecord,
        *,
        vector: np.ndarray | None = None,
        index_text: str | None = None,
        action: str = "update",
        tokens: bytes | None = None,
    ) -> None:
        with self.transaction(), self._conn() as conn:
            with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                row = cur.execute(self._sql(_SELECT + " WHERE m.id = %s FOR UPDATE"), (record.id,)).fetchone()
            if row is None:
                raise StoreError(f"memory {record.id} vanished during update")
            before = _row_to_record(row)
            after = record.model_copy(update={"version": before.version + 1})
            sets = ", ".join(f"{c} = %s::jsonb" if c in ("metadata", "source_ids") else f"{c} = %s" for c in COLUMNS)
            params = _record_params(after)
            if index_text is not None:
                sets += ", index_text = %s, doc_len = %s"
                params += [index_text, doc_len(index_text)]
            self._ex(conn, f"UPDATE memories SET {sets} WHERE key = %s", [*params, row["key"]])
            if vector is not None:
                vec = np.asarray(vector, dtype=np.float32).ravel()
                self._ensure_vector_index(conn, vec.size)
                self._ex(
                    conn,
                    "INSERT INTO vectors (key, embedding) VALUES (%s, %b)"
                    " ON CONFLICT (key) DO UPDATE SET embedding = excluded.embedding",
                    (row["key"], vec),
                )
                self._set_tokens(conn, [row["key"]], [tokens])
                self._unstage(conn, [row["key"]])
            self._ex(conn, _HISTORY_SQL, _history_row(after, after.version, action, before, after, now()))
            self._mark(vectors=vector is not None)

    def soft_delete(self, ids: Sequence[str], *, at: datetime, action: str = "delete") -> int:
        if not ids:
            return 0
        with self.transaction(), self._conn() as conn:
            with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                rows = cur.execute(
                    self._sql(_SELECT + " WHERE m.id = ANY(%s) AND m.deleted_at IS NULL ORDER BY m.key FOR UPDATE"),
                    (list(ids),),
                ).fetchall()
            hist = []
            for row in rows:
                rec = _row_to_record(row)
                after = rec.model_copy(update={"deleted_at": at, "version": rec.version + 1})
                self._ex(
                    conn,
                    "UPDATE memories SET deleted_at = %s, version = %s WHERE key = %s",
                    (at, after.version, row["key"]),
                )
                hist.append(_history_row(rec, after.version, action, rec, after, now()))
            self._x(conn, _HISTORY_SQL, hist)
            if rows:
                self._mark()
        return len(rows)

    def hard_delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        ids = list(ids)
        with self.transaction(), self._conn() as conn:
            for table in ("vectors", "token_vectors"):
                self._ex(conn, f"DELETE FROM {table} WHERE key IN (SELECT key FROM memories WHERE id = ANY(%s))",
                         (ids,))
            n = self._ex(conn, "DELETE FROM memories WHERE id = ANY(%s)", (ids,)).rowcount
            self._ex(conn, "DELETE FROM history WHERE memory_id = ANY(%s)", (ids,))
            self._ex(conn, "DELETE FROM privacy_disclosures WHERE memory_id = ANY(%s)", (ids,))
            self._ex(conn, "DELETE FROM links WHERE src_id = ANY(%s) OR dst_id = ANY(%s)", (ids, ids))
            self._mark(vectors=True)
        return n

    # -- staged reindex ------------------------------------------------------------
    # As in SQLite: the new model's vectors go to side tables in short transactions while the old ones serve
    # searches, and one last transaction swaps them in. Readers never wait (MVCC); a writer waits for one batch's
    # rows or for the swap, never for the whole reindex. The swap holds the meta row of the model FOR UPDATE and
    # every vector write holds it FOR SHARE (get_meta), so no write lands in the old space after the swap.
    supports_staged_reindex = True

    @property
    def _next(self) -> tuple[str, str]:
        return f'"{self.schema}".vectors_next', f'"{self.schema}".token_vectors_next'

    def reindex_begin(self, model: str) -> None:
        vec_next, tok_next = self._next
        with self.transaction(), self._conn() as conn:
            for table in (vec_next, tok_next):
                self._ex(conn, f"DROP TABLE IF EXISTS {table}")
            self._ex(conn, f"CREATE TABLE {vec_next} (key bigint PRIMARY KEY REFERENCES memories (key)"
                           f' ON DELETE CASCADE, embedding "{self._ext_schema}".vector NOT NULL)')  # fmt: skip
            self._ex(conn, f"CREATE TABLE {tok_next} (key bigint PRIMARY KEY REFERENCES memories (key)"
                           " ON DELETE CASCADE, data bytea NOT NULL)")  # fmt: skip
            self._ex(conn, "INSERT INTO meta (key, value) VALUES ('reindex_to', %s)"
                           " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (model,))  # fmt: skip

    def reindex_todo(self, after_key: int, limit: int) -> list[tuple[int, MemoryRecord]]:
        if getattr(self._local, "conn", None) is not None:
            # The swap's transaction: take the model row first, so writers queue here instead of deadlocking
            # with the row locks of reindex_stage.
            self._q("SELECT value FROM meta WHERE key = 'embed_model' FOR UPDATE")
        rows = self._q(
            _SELECT + f" WHERE m.key > %s AND NOT EXISTS (SELECT 1 FROM {self._next[0]} n WHERE n.key = m.key)"
            " ORDER BY m.key LIMIT %s",
            (after_key, limit),
            dict_rows=True,
        )
        out = [(int(r["key"]), _row_to_record(r)) for r in rows]
        self._staging_versions.update((k, r.version) for k, r in out)
        return out

    def reindex_stage(self, keys: Sequence[int], index_texts: Sequence[str], vectors: np.ndarray, *,
                      tokens: Sequence[bytes | None] | None = None) -> None:
        toks = tokens if tokens is not None else [None] * len(keys)
        vec_next, tok_next = self._next
        with self.transaction(), self._conn() as conn:
            # Row locks: an update in flight finishes first, and its new version then fails the check below.
            locked = self._ex(conn, "SELECT key, version FROM memories WHERE key = ANY(%s) ORDER BY key FOR SHARE",
                              ([int(k) for k in keys],)).fetchall()  # fmt: skip
            now_at: dict[int, int] = {int(k): int(v) for k, v in locked}
            for key, text, vec, tok in zip(keys, index_texts, vectors, toks, strict=True):
                version = now_at.get(int(key))
                if version is None or version != self._staging_versions.pop(int(key), version):
                    continue  # changed or erased since it was read: the next sweep embeds what it says now
                self._ex(conn, "UPDATE memories SET index_text = %s, doc_len = %s"
                               " WHERE key = %s AND index_text IS DISTINCT FROM %s",
                         (text, doc_len(text), key, text))  # fmt: skip
                self._ex(conn, f"INSERT INTO {vec_next} (key, embedding) VALUES (%s, %b)"
                               " ON CONFLICT (key) DO UPDATE SET embedding = excluded.embedding",
                         (key, np.asarray(vec, dtype=np.float32)))  # fmt: skip
                if tok:
                    self._ex(conn, f"INSERT INTO {tok_next} (key, data) VALUES (%s, %s)"
                                   " ON CONFLICT (key) DO UPDATE SET data = excluded.data", (key, tok))  # fmt: skip
            self._mark()

    def reindex_commit(self, model: str, dim: int) -> bool:
        """Swap the staged vectors in, if every memory has one; False (nothing changed) when some are missing."""
        vec_next, tok_next = self._next
        with self.transaction(), self._conn() as conn:
            self._ex(conn, "SELECT value FROM meta WHERE key = 'embed_model' FOR UPDATE")
            left = self._ex(conn, f"SELECT 1 FROM memories m WHERE NOT EXISTS (SELECT 1 FROM {vec_next} n"
                                  " WHERE n.key = m.key) LIMIT 1").fetchone()  # fmt: skip
            if left is not None:
                return False
            # A copy, not a rename: readers keep the old vectors until commit instead of queueing on a lock.
            self._ex(conn, "DELETE FROM vectors")
            self._ex(conn, f"INSERT INTO vectors (key, embedding) SELECT key, embedding FROM {vec_next}")
            self._ex(conn, "DELETE FROM token_vectors")
            self._ex(conn, f"INSERT INTO token_vectors (key, data) SELECT key, data FROM {tok_next}")
            for table in (vec_next, tok_next):
                self._ex(conn, f"DROP TABLE {table}")
            self._ex(conn, "DELETE FROM meta WHERE key = 'reindex_to'")
            for key, value in (("embed_model", model), ("embed_dim", str(dim))):
                self._ex(conn, "INSERT INTO meta (key, value) VALUES (%s, %s)"
                               " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))  # fmt: skip
            self._ensure_vector_index(conn, dim)
            self._mark(vectors=True)
        return True

    def _unstage(self, conn: psycopg.Connection, keys: Sequence[int]) -> None:
        """A vector written during a staged reindex: its staged copy (from the old text) must be redone. Called
        with the memory's row locked, so a concurrent reindex_stage either ran before (and is undone here) or
        waits and then sees the new version."""
        vec_next, tok_next = self._next
        row = self._ex(conn, "SELECT to_regclass(%s)", (vec_next,)).fetchone()
        if row is None or row[0] is None:
            return
        for table in (vec_next, tok_next):
            self._ex(conn, f"DELETE FROM {table} WHERE key = ANY(%s)", ([int(k) for k in keys],))

    def touch(self, ids: Sequence[str], at: datetime) -> None:
        """Best effort, and a read writes nothing: counts are buffered in the process (its reads count them
        already) and written in one statement every TOUCH_FLUSH_S, or when TOUCH_BUFFER_MAX ids wait, and at
        close. Inside the caller's transaction they are written with it."""
        if not ids:
            return
        with self._touch_lock:
            for mid in dict.fromkeys(ids):  # one access per call, however often an id is listed
                n, last = self._pending_touch.get(mid, (0, at))
                self._pending_touch[mid] = (n + 1, max(last, at))
            due = (time.monotonic() - self._touch_tried >= TOUCH_FLUSH_S
                   or len(self._pending_touch) >= TOUCH_BUFFER_MAX)
        if due or getattr(self._local, "conn", None) is not None:
            self._flush_touches()

    def _flush_touches(self) -> None:
        with self._touch_lock:
            pending, self._pending_touch = self._pending_touch, {}
            self._touch_tried = time.monotonic()
        if not pending:
            return
        ids = list(pending)
        try:
            with self.transaction(), self._conn() as conn:
                # Lock in key order so concurrent flushes of overlapping ids cannot dead-lock.
                self._ex(
                    conn,
                    "UPDATE memories m SET access_count = m.access_count + s.n,"
                    " last_accessed_at = GREATEST(coalesce(m.last_accessed_at, s.at), s.at)"
                    " FROM (SELECT x.key, u.n, u.at FROM memories x"
                    "       JOIN unnest(%s::text[], %s::int[], %s::timestamptz[]) AS u(id, n, at) ON x.id = u.id"
                    "       ORDER BY x.key FOR UPDATE OF x) s"
                    " WHERE m.key = s.key",
                    (ids, [pending[i][0] for i in ids], [pending[i][1] for i in ids]),
                )
        except StoreError as exc:
            with self._touch_lock:  # kept for the next try; a read-only server (a replica) never takes them
                for mid, (n, last) in ({} if isinstance(exc, ReadOnlyError) else pending).items():
                    m, seen = self._pending_touch.get(mid, (0, last))
                    self._pending_touch[mid] = (m + n, max(last, seen))
            if getattr(self._local, "conn", None) is not None:
                raise
            # Access counting is best effort: a lost touch must not fail a read.

    def _record(self, row: dict[str, Any]) -> MemoryRecord:
        """A row as a record, with this process's access counts not written yet."""
        rec = _row_to_record(row)
        pending = self._pending_touch.get(rec.id) if self._pending_touch else None
        if pending is None:
            return rec
        return with_pending_access(rec, *pending)

    # -- reads -------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, include_deleted: bool = False) -> list[MemoryRecord]:
        if not ids:
            return []
        sql = _SELECT + " WHERE m.id = ANY(%s)" + ("" if include_deleted else " AND m.deleted_at IS NULL")
        out = {r["id"]: self._record(r) for r in self._q(sql, (list(ids),), dict_rows=True)}
        return [out[i] for i in ids if i in out]

    def list(
        self, filters: Filters, *, limit: int = 50, offset: int = 0, order: str = "occurred_at"
    ) -> builtins.list[MemoryRecord]:
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {sorted(_ORDERS)}")
        where, params = where_clause(filters)
        rows = self._q(
            f"{_SELECT}{where} ORDER BY {_ORDERS[order]} LIMIT %s OFFSET %s", [*params, limit, offset], dict_rows=True
        )
        return [self._record(r) for r in rows]

    def count(self, filters: Filters) -> int:
        where, params = where_clause(filters)
        return int(self._q(f"SELECT count(*) FROM memories m{where}", params)[0][0])

    def derived_from(self, ids: Sequence[str], filters: Filters, *, limit: int = 10_000) -> builtins.list[MemoryRecord]:
        if not ids:
            return []
        where, params = where_clause(filters)
        # the sources' rows first, through their GIN index (schema v5): left to weigh it against the filters,
        # the planner walks the kind or scope index and tests every row it holds
        cond = (" AND " if where else " WHERE ") + "m.key IN (SELECT key FROM d)"
        sql = (f"WITH d AS MATERIALIZED (SELECT key FROM memories WHERE source_ids ?| %s::text[]) "
               f"{_SELECT}{where}{cond} ORDER BY m.key LIMIT %s")
        rows = self._q(sql, [list(dict.fromkeys(ids)), *params, limit], dict_rows=True)
        return [self._record(r) for r in rows]

    def history(self, memory_id: str, *, limit: int | None = None) -> builtins.list[HistoryEntry]:
        sql = "SELECT memory_id, version, action, before, after, at FROM history WHERE memory_id = %s ORDER BY seq"
        if limit is None:
            rows = self._q(sql, (memory_id,))
        else:  # the newest, read backwards through (memory_id, seq)
            rows = self._q(sql + " DESC LIMIT %s", (memory_id, int(limit)))[::-1]
        return [
            HistoryEntry(memory_id=r[0], version=r[1], action=r[2], before=r[3], after=r[4], at=_utc(r[5]))
            for r in rows
        ]

    def keys_for(self, ids: Sequence[str]) -> dict[str, int]:
        if not ids:
            return {}
        return {r[0]: int(r[1]) for r in self._q("SELECT id, key FROM memories WHERE id = ANY(%s)", (list(ids),))}

    def ids_for(self, keys: Sequence[int]) -> dict[int, str]:
        if not len(keys):
            return {}
        rows = self._q("SELECT key, id FROM memories WHERE key = ANY(%s)", ([int(k) for k in keys],))
        return {int(r[0]): r[1] for r in rows}

    def rank_meta(self, ids: Sequence[str]) -> dict[str, RankMeta]:
        if not ids:
            return {}
        rows = self._q(f"SELECT m.id, {_RANK_COLS} FROM memories m WHERE m.id = ANY(%s) AND m.deleted_at IS NULL",
                       (list(ids),))
        return {r[0]: _rank_meta(r[1:]) for r in rows}

    def rank_meta_for_keys(self, keys: Sequence[int], filters: Filters) -> dict[int, tuple[str, RankMeta]]:
        if not len(keys):
            return {}
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        rows = self._q(
            f"SELECT m.id, {_RANK_COLS} FROM memories m WHERE m.key = ANY(%s) AND m.deleted_at IS NULL{where}"
            " ORDER BY m.key",
            [sorted({int(k) for k in keys}), *params],
        )
        return {int(r[1]): (r[0], _rank_meta(r[1:])) for r in rows}

    # -- index support -----------------------------------------------------------
    def _corpus_stats(self, version: int) -> tuple[int, float]:
        """(N, average doc_len) over every row, as FTS5 counts them; cached per data `version`."""
        cached = self._stats_cache
        if cached is not None and (
            cached[0] == version or (cached[2] > STATS_EXACT_ROWS and time.monotonic() - cached[1] < STATS_TTL_S)
        ):
            return cached[2], cached[3]
        n, avg = None, None
        if cached is not None and cached[2] > STATS_EXACT_ROWS:
            # Large: counting and averaging every row took ~350 ms at 1M, paid every STATS_TTL_S by some search.
            # The planner's row estimate and a 1% page sample are a rounding away from it.
            est = self._q(
                "SELECT (SELECT reltuples FROM pg_class WHERE oid = 'memories'::regclass),"
                " (SELECT avg(doc_len) FROM memories TABLESAMPLE SYSTEM (1))"
            )[0]
            if est[0] is not None and est[0] > STATS_EXACT_ROWS and est[1] is not None:
                n, avg = int(est[0]), float(est[1])
        if n is None or avg is None:
            n, avg = self._q("SELECT count(*), COALESCE(avg(doc_len), 0) FROM memories")[0]
        self._stats_cache = (version, time.monotonic(), int(n), float(avg))
        return int(n), float(avg)

    def keyword_search(self, query: str, filters: Filters, limit: int) -> builtins.list[tuple[str, float]]:
        """BM25 as FTS5 computes it (same idf, k1, b, length normalisation) over the english-analysed tsvector."""
        terms = keyword_terms(query)
        if not terms:
            return []
        version = self.data_version()  # one read for both caches below
        n, avgdl = self._corpus_stats(version)
        if n == 0:
            return []
        rows = self._q("SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', %s)))", (" ".join(terms),))
        lexemes = sorted(r[0] for r in rows)[:256]
        if not lexemes:
            return []  # only stopwords
        consts = [_tsquery_lexeme(lx) for lx in lexemes]
        dfs = self._dfs(lexemes, consts, n, version)
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        # Document frequencies come from a cache (_dfs), so a query reads only the rows that match in scope: the
        # scope's btree index (user_id, agent_id or session_id first) narrows, the tsvector test rechecks.
        idf_rows = ", ".join("(%s::text, %s::float8)" for _ in lexemes)
        # With a scope, its btree index must drive: left to itself the planner ANDs it with a GIN scan of every
        # row holding any query word (31k rows at 100k memories, 25 ms; ten times that at 1M). IS TRUE keeps the
        # match out of the index, so it is checked on the scope's rows only.
        scoped = filters.user_id is not None or filters.agent_id is not None or filters.session_id is not None
        match = "(m.tsv @@ %s::tsquery) IS TRUE" if scoped else "m.tsv @@ %s::tsquery"
        candidates = " | ".join(consts)
        pool, pool_params = "", []
        if not scoped and sum(dfs.values()) > UNSCOPED_POSTINGS_MAX:
            # Unscoped, with common words: the rows of codec.cutoff_groups are the candidates, the best
            # PRUNED_POOL of them by ts_rank on the words that chose them are scored on every word (as on SQLite),
            # so the cost is bounded by those rows, not by every row holding a common word.
            groups = cutoff_groups([dfs[lx] for lx in lexemes])
            candidates = " | ".join("(" + " & ".join(consts[i] for i in g) + ")" for g in groups)
            pool, pool_params = " ORDER BY ts_rank(m.tsv, %s::tsquery, 1) DESC, m.key LIMIT %s", [candidates,
                                                                                                  PRUNED_POOL]
        sql = f"""
            WITH w(l, idf) AS MATERIALIZED (VALUES {idf_rows}),
            hits AS MATERIALIZED (
                SELECT m.key, m.id, m.tsv, m.doc_len FROM memories m WHERE {match}{where}{pool}
            )
            SELECT h.id, sum(w.idf * cardinality(u.positions) * {BM25_K1 + 1} / (cardinality(u.positions)
                   + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * h.doc_len / %s::float8))) AS score
            FROM hits h
            CROSS JOIN LATERAL unnest(h.tsv) AS u(lexeme, positions, weights)
            JOIN w ON w.l = u.lexeme
            GROUP BY h.key, h.id
            ORDER BY score DESC, h.key
            LIMIT %s
        """
        idf_params = [x for lx in lexemes for x in (lx, _idf(n, dfs[lx]))]
        rows = self._q(sql, [*idf_params, candidates, *params, *pool_params, max(avgdl, 1e-9), limit])
        return [(r[0], float(r[1])) for r in rows]

    def _dfs(self, lexemes: Sequence[str], consts: Sequence[str], n: int, version: int) -> dict[str, int]:
        """Rows holding each lexeme (BM25's document frequency), cached like the corpus stats: recounted after
        any write below STATS_EXACT_ROWS, else at most STATS_TTL_S old. Counting a common word at 1M rows
        reads most of the GIN index; a scoped query must not pay that every time."""
        stamp = time.monotonic()
        if self._df_version != version and (n <= STATS_EXACT_ROWS or stamp - self._df_time > STATS_TTL_S):
            self._df.clear()
            self._df_version, self._df_time = version, stamp
        # Answer from a local copy: threads sharing this store may clear the cache between our reads.
        found: dict[str, int | None] = {lx: self._df.get(lx) for lx in lexemes}
        todo = [(lx, c) for lx, c in zip(lexemes, consts, strict=True) if found[lx] is None]
        if todo and n > STATS_EXACT_ROWS:
            # A common word's count from ANALYZE's statistics, not from its rows (see _common_lexemes).
            common = self._common_lexemes()
            estimated = {lx: round(common[lx] * n) for lx, _ in todo if common.get(lx, 0.0) * n > DF_EXACT_MAX}
            found.update(estimated)
            self._df.update(estimated)
            todo = [(lx, c) for lx, c in todo if lx not in estimated]
        if todo:
            sql = " UNION ALL ".join(
                "SELECT %s::text, (SELECT count(*) FROM memories x WHERE x.tsv @@ %s::tsquery)" for _ in todo
            )
            fresh = {r[0]: int(r[1]) for r in self._q(sql, [x for pair in todo for x in pair])}
            found.update(fresh)
            if len(self._df) + len(fresh) > DF_CACHE_MAX:
                self._df.clear()
            self._df.update(fresh)
        return {lx: n_ if n_ is not None else 0 for lx, n_ in found.items()}

    def _common_lexemes(self) -> dict[str, float]:
        """The share of rows holding each of the most common lexemes, as PostgreSQL's ANALYZE (autovacuum) last
        sampled it (`pg_stats.most_common_elems`), read at most every STATS_TTL_S; empty before any ANALYZE.
        Counting a word held by 15% of 1M rows through the GIN index and the table took about half a second,
        paid for each new word in each process; the sampled share is a few percent off, a rounding in its idf.
        Words not listed, or listed under DF_EXACT_MAX rows, are still counted exactly."""
        stamp = time.monotonic()
        cached = self._mcelem
        if cached is not None and stamp - cached[0] < STATS_TTL_S:
            return cached[1]
        rows = self._q(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
            " WHERE schemaname = %s AND tablename = %s AND attname = 'tsv'",
            (self.schema, "memories"),  # a parameter: _sql qualifies table names written in the statement
        )
        shares: dict[str, float] = {}
        if rows and rows[0][0] is not None and rows[0][1] is not None:
            shares = dict(zip(rows[0][0], (float(f) for f in rows[0][1]), strict=False))  # freqs end in 3 extras
        self._mcelem = (stamp, shares)
        return shares

    def vector_search(self, query: np.ndarray, filters: Filters, k: int) -> builtins.list[tuple[int, float]] | None:
        """Top-k (key, cosine) in the database: exact for small candidate sets, HNSW beyond."""
        q = np.asarray(query, dtype=np.float32).ravel()
        if k <= 0 or q.size == 0:
            return []
        dim = q.size
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        with self._conn() as conn:
            exact = self._small(conn, where, params)
            expr = "v.embedding" if exact else f"v.embedding::vector({dim})"  # only the cast matches the index
            sql = (
                f"SELECT v.key, 1 - ({expr} <=> %b) AS cos FROM vectors v JOIN memories m ON m.key = v.key"
                f" WHERE vector_dims(v.embedding) = {dim}{where} ORDER BY {expr} <=> %b LIMIT %s"
            )
            try:
                if exact:
                    rows = self._ex(conn, sql, [q, *params, q, k]).fetchall()
                else:
                    with conn.transaction():  # SET LOCAL: the settings die with the transaction (pooler-safe)
                        self._ex(conn, f"SET LOCAL hnsw.ef_search = {min(max(k, 40), 1000)}")
                        if self.pgvector_version >= (0, 8):  # older: ef_search alone bounds what a filter leaves
                            self._ex(conn, "SET LOCAL hnsw.iterative_scan = relaxed_order")
                        rows = self._ex(conn, sql, [q, *params, q, k]).fetchall()
            except psycopg.Error as exc:
                raise StoreError(f"vector search failed: {_first_line(exc)}") from exc
        hits = [(int(r[0]), float(r[1])) for r in rows]
        hits.sort(key=lambda h: -h[1])  # relaxed_order may hand rows back slightly out of order
        return hits

    def _small(self, conn: psycopg.Connection, where: str, params: builtins.list[Any]) -> bool:
        """True when at most EXACT_MAX memories can match: then an exact scan is cheap and exact."""
        # one round trip: the table's row estimate, and only above EXACT_MAX the filter's rows (the count's
        # subquery is evaluated only when CASE reaches it)
        return bool(_scalar(self._ex(
            conn,
            f"SELECT CASE WHEN (SELECT reltuples FROM pg_class WHERE oid = 'vectors'::regclass) <= {EXACT_MAX}"
            f" THEN TRUE ELSE (SELECT count(*) FROM (SELECT 1 FROM memories m WHERE TRUE{where}"
            f" LIMIT {EXACT_MAX + 1}) s) <= {EXACT_MAX} END",
            params,
        )))

    def candidate_keys(self, filters: Filters, *, limit: int | None = None) -> np.ndarray:
        where, params = where_clause(filters)
        cap = "" if limit is None else f" LIMIT {int(limit)}"
        rows = self._q(f"SELECT m.key FROM memories m{where} ORDER BY m.key{cap}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def filter_keys(self, keys: Sequence[int], filters: Filters) -> np.ndarray:
        if not len(keys):
            return np.zeros(0, dtype=np.int64)
        where, params = where_clause(filters)
        where = where.replace(" WHERE ", " AND ", 1) if where else ""
        rows = self._q(f"SELECT m.key FROM memories m WHERE m.key = ANY(%s){where}", [[int(k) for k in keys], *params])
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def iter_vectors(self, *, after_key: int = 0, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        last = after_key
        while True:
            rows = self._q(
                "SELECT key, embedding FROM vectors WHERE key > %s ORDER BY key LIMIT %s", (last, batch), binary=True
            )
            if not rows:
                return
            keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            mat = np.vstack([r[1] for r in rows])
            last = int(keys[-1])
            yield keys, mat

    def vectors_for(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = (
            self._q(
                "SELECT key, embedding FROM vectors WHERE key = ANY(%s) ORDER BY key",
                ([int(k) for k in keys],),
                binary=True,
            )
            if len(keys)
            else []
        )
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray([r[0] for r in rows], dtype=np.int64), np.vstack([r[1] for r in rows])

    def token_vectors_for(self, keys: Sequence[int]) -> dict[int, bytes]:
        if not len(keys):
            return {}
        rows = self._q("SELECT key, data FROM token_vectors WHERE key = ANY(%s)", ([int(k) for k in keys],),
                       binary=True)
        return {int(r[0]): bytes(r[1]) for r in rows}

    def index_texts(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        return dict(self._q("SELECT id, index_text FROM memories WHERE id = ANY(%s)", (list(ids),)))

    # -- links -------------------------------------------------------------------
    def add_links(self, links: Sequence[Link]) -> None:
        if not links:
            return
        with self.transaction(), self._conn() as conn:
            self._x(
                conn,
                "INSERT INTO links (src_id, dst_id, type, reason, created_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(lk.src_id, lk.dst_id, lk.type, lk.reason, lk.created_at or now()) for lk in links],
            )
            self._mark()

    def remove_links(self, memory_ids: Sequence[str], *, type: str) -> int:
        if not memory_ids:
            return 0
        with self.transaction(), self._conn() as conn:
            cur = self._ex(conn, "DELETE FROM links WHERE type = %s AND (src_id = ANY(%s) OR dst_id = ANY(%s))",
                           (type, list(memory_ids), list(memory_ids)))
            n = int(cur.rowcount or 0)
            if n:
                self._mark()
            return n

    def links(self, memory_id: str, *, type: str | None = None, direction: str = "both") -> builtins.list[Link]:
        conds = {"out": "src_id = %s", "in": "dst_id = %s", "both": "(src_id = %s OR dst_id = %s)"}[direction]
        params: list[Any] = [memory_id] * (2 if direction == "both" else 1)
        if type:
            conds += " AND type = %s"
            params.append(type)
        rows = self._q(
            f"SELECT src_id, dst_id, type, reason, created_at FROM links WHERE {conds} ORDER BY src_id, dst_id, type",
            params,
        )
        return [Link(r[0], r[1], r[2], r[3], _utc(r[4])) for r in rows]

    # -- the audit log of disclosures -------------------------------------------
    def audit_append(self, entries: Sequence[AuditEntry]) -> int:
        if not entries:
            return 0
        with self.transaction(), self._conn() as conn:
            self._x(conn,
                    "INSERT INTO privacy_disclosures (at, user_id, memory_id, agent_id, purpose, categories, action,"
                    " op) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
                    [(e.at, e.user_id, e.memory_id, e.agent_id, e.purpose, json.dumps(sorted(e.categories)),
                      e.action, e.op) for e in entries])
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
        clauses, params = audit_where(
            "%s", "categories ? %s", lambda t: t, user_id=user_id, agent_id=agent_id, purpose=purpose,
            memory_id=memory_id, category=category, since=since, until=until, before_seq=before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self._q(
            "SELECT seq, at, user_id, memory_id, agent_id, purpose, categories, action, op FROM privacy_disclosures"
            f"{where} ORDER BY seq DESC LIMIT %s", [*params, max(0, int(limit))])
        return [AuditEntry(seq=int(r[0]), at=r[1].astimezone(UTC), user_id=r[2], memory_id=r[3], agent_id=r[4],
                           purpose=r[5], categories=list(r[6]), action=r[7], op=r[8]) for r in rows]

    def audit_delete(
        self, *, user_id: str | None = None, agent_id: str | None = None, before: datetime | None = None
    ) -> int:
        clauses, params = audit_where("%s", "", lambda t: t, user_id=user_id, agent_id=agent_id, until=before)
        if not clauses:
            raise ValueError("audit_delete needs user_id, agent_id or before")
        with self.transaction(), self._conn() as conn:
            return int(self._ex(conn, f"DELETE FROM privacy_disclosures WHERE {' AND '.join(clauses)}",
                                params).rowcount)

    def scope_counts(self, field: str, filters: Filters, limit: int) -> tuple[int, builtins.list[tuple[str, int]]]:
        if field not in SCOPE_FIELDS:
            raise ValueError(f"field must be one of {SCOPE_FIELDS}")
        where, params = where_clause(filters)
        where += f"{' AND' if where else ' WHERE'} m.{field} IS NOT NULL"
        total = int(self._q(f"SELECT COUNT(DISTINCT m.{field}) FROM memories m{where}", params)[0][0])
        rows = self._q(
            f"SELECT m.{field}, COUNT(*) AS n FROM memories m{where} GROUP BY m.{field} ORDER BY n DESC, m.{field}"
            " LIMIT %s",
            [*params, limit],
        )
        return total, [(r[0], int(r[1])) for r in rows]

    def period_counts(self, filters: Filters, period: str) -> builtins.list[tuple[str, int]]:
        fmt = {"month": "YYYY-MM", "day": "YYYY-MM-DD"}[period] if period in PERIOD_WIDTH else None
        if fmt is None:
            raise ValueError("period must be month or day")
        where, params = where_clause(filters)
        where += f"{' AND' if where else ' WHERE'} m.occurred_at IS NOT NULL"
        rows = self._q(
            f"SELECT to_char(m.occurred_at AT TIME ZONE 'UTC', '{fmt}') AS p, COUNT(*) FROM memories m{where}"
            " GROUP BY p ORDER BY p",
            params,
        )
        return [(r[0], int(r[1])) for r in rows]

    # -- maintenance -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        rows = self._q(
            "SELECT kind, count(*), count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM memories"
            " GROUP BY kind ORDER BY kind"
        )
        one = self._q(
            "SELECT (SELECT count(*) FROM vectors), (SELECT count(*) FROM history), (SELECT count(*) FROM links),"
            " (SELECT count(DISTINCT user_id) FROM memories),"
            " (SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            "   WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'S')),"
            " (SELECT max(version) FROM engramdb_migrations), (SELECT count(*) FROM token_vectors)",
            (f'"{self.schema}"',),
        )[0]
        return {
            "backend": "postgres",
            "url": redact(self.url),
            "schema": self.schema,
            "schema_version": int(one[5]),
            "memories": sum(r[1] for r in rows) - sum(r[2] for r in rows),
            "deleted": sum(r[2] for r in rows),
            "by_kind": {r[0]: r[1] - r[2] for r in rows},
            "vectors": int(one[0]),
            "token_vectors": int(one[6]),
            "history_entries": int(one[1]),
            "links": int(one[2]),
            "users": int(one[3]),
            "bytes_on_disk": int(one[4]),
        }

    def compact(self) -> None:
        """VACUUM FULL rewrites every table and index, so deleted rows leave no bytes in the data files."""
        if getattr(self._local, "conn", None) is not None:
            raise StoreError("compact() cannot run inside a transaction")
        with self._conn() as conn:
            try:
                dims = [r[0] for r in self._ex(conn, "SELECT DISTINCT vector_dims(embedding) FROM vectors")]
                for (name,) in self._ex(
                    conn,
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname LIKE 'vectors_hnsw_%%'",
                    (self.schema,),
                ).fetchall():
                    if int(name.rsplit("_", 1)[1]) not in dims:  # the model changed: drop the old dimension's graph
                        conn.execute(f'DROP INDEX IF EXISTS "{self.schema}"."{name}"')
                        self._indexed_dims.discard(int(name.rsplit("_", 1)[1]))
                for table in ("memories", "vectors", "history", "links", "meta"):
                    self._ex(conn, f"VACUUM (FULL, ANALYZE) {table}")
            except psycopg.Error as exc:
                raise StoreError(f"compact failed: {_first_line(exc)}") from exc

    # -- administration (not part of Store) -------------------------------------
    def drop_schema(self) -> None:
        """Remove this store's schema and everything in it (tests, tenant deletion)."""
        with self._conn() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


_HISTORY_SQL = (
    "INSERT INTO history (memory_id, user_id, agent_id, session_id, version, action, before, after, at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)"
)


def _history_row(
    rec: MemoryRecord, version: int, action: str, before: MemoryRecord | None, after: MemoryRecord | None, at: datetime
) -> tuple[Any, ...]:
    return (rec.id, rec.user_id, rec.agent_id, rec.session_id, version, action, record_json(before),
            record_json(after), at)  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _scalar(cur: psycopg.Cursor) -> Any:
    """The first column of a query's one row (an aggregate always returns one)."""
    row = cur.fetchone()
    if row is None:
        raise StoreError("the database returned no row for an aggregate query")
    return row[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
