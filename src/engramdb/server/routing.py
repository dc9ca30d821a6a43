"""Tenants across PostgreSQL servers: the routing table, and moving a tenant online.

The routing table is a JSON file that every API server reads (`ENGRAMDB_TENANT_ROUTES`, or `routes=` to
`TenantRegistry`):

    {"tenants": {"acme": "postgresql://db-b.internal/engram", "globex": "postgresql://db-c.internal/engram"}}

A tenant listed there lives in schema `engram_<tenant>` of that database; every other tenant stays where the
server's own `--url` (or data directory) puts it. Servers keep no other state about placement: each one checks
the file's modification time on every request (one `stat`) and reopens a tenant whose URL changed.

`move_tenant` moves one tenant's schema to another server while it keeps serving:

1. copy: every table, from one consistent snapshot, while reads and writes go on at the source;
2. catch up: rows written meanwhile, found by comparing a hash of every row on both sides, copied again, in
   rounds, until few are left;
3. switch, the only pause: the source's tables are locked against writes (reads go on), the last changes are
   copied, both sides are verified equal table by table, the source's tables get triggers that refuse any
   later write with a retryable error, the lock is released and the routing table names the new server.

A write that arrives during the switch waits for the lock; one that reaches the source after it is refused
(HTTP 503, `store_unavailable`, "this tenant has moved ...; retry"), and its retry goes to the new server.
The source schema is left in place, read-only, until an operator drops it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ValidationError
from .keys import check_tenant, pg_schema

ROUTES_ENV = "ENGRAMDB_TENANT_ROUTES"
MOVED_SQLSTATE = "ED001"  # raised by the refusal triggers on a moved tenant's old tables
MOVED_MESSAGE = "this tenant has moved to another database; retry the request"

# Every table of a tenant schema, by primary key, in an order that satisfies the foreign keys (vectors and
# token_vectors reference memories).
TABLES: dict[str, tuple[str, ...]] = {
    "engramdb_migrations": ("version",),
    "meta": ("key",),
    "memories": ("key",),
    "vectors": ("key",),
    "token_vectors": ("key",),
    "history": ("seq",),
    "links": ("src_id", "dst_id", "type"),
}
GENERATED = {"memories": ("tsv",)}  # computed by the database: never copied
IDENTITY = {"memories": "key", "history": "seq"}
SEQUENCES = ("data_version_seq", "vector_epoch_seq")


def _check_url(url: object, where: str) -> str:
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{where}: expected a postgresql:// URL")
    return url


class Routes:
    """The routing table file, re-read when it changes on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._table: dict[str, str] = {}
        self._lock = threading.Lock()

    def table(self) -> dict[str, str]:
        """tenant -> database URL, as the file says now (an unreadable or missing file: a clear error)."""
        try:
            st = self.path.stat()
        except FileNotFoundError as exc:
            raise ConfigError(f"tenant routing table {self.path} does not exist") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._table = read_routes(self.path)
                    self._stamp = stamp
        return self._table

    def url_for(self, tenant: str) -> str | None:
        return self.table().get(tenant)


def read_routes(path: str | os.PathLike[str]) -> dict[str, str]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the tenant routing table {path}: {exc}") from exc
    tenants = raw.get("tenants") if isinstance(raw, dict) else None
    if not isinstance(tenants, dict):
        raise ConfigError(f"{path}: expected {{\"tenants\": {{\"<tenant>\": \"postgresql://...\"}}}}")
    out: dict[str, str] = {}
    for name, url in tenants.items():
        try:
            tenant = check_tenant(name)
        except Exception as exc:  # any invalid name is a configuration error here
            raise ConfigError(f"{path}: {exc}") from exc
        out[tenant] = _check_url(url, f"{path}: tenant {name!r}")
    return out


def write_routes(path: str | os.PathLike[str], table: dict[str, str]) -> None:
    """Replace the routing file atomically: a server reads the old table or the new one, never half of one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"tenants": dict(sorted(table.items()))}, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- moving a tenant -------------------------------------------------------------------------------------------
@dataclass
class MoveReport:
    tenant: str
    rows: dict[str, int] = field(default_factory=dict)  # per table, at the switch (equal on both sides)
    copied_s: float = 0.0
    catch_up_rounds: list[int] = field(default_factory=list)  # rows re-copied per round
    switch_rows: int = 0  # rows copied during the switch
    pause_s: float = 0.0  # writes waited or were refused for this long (the switch)
    total_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "rows": self.rows, "copied_s": round(self.copied_s, 4),
                "catch_up_rounds": self.catch_up_rounds, "switch_rows": self.switch_rows,
                "pause_s": round(self.pause_s, 4), "total_s": round(self.total_s, 4)}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(conn: Any, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position", (schema, table)).fetchall()
    skip = GENERATED.get(table, ())
    return [r[0] for r in rows if r[0] not in skip]


def _hashes(conn: Any, schema: str, table: str, cols: list[str]) -> dict[tuple, str]:
    pk = TABLES[table]
    row = "ROW(" + ", ".join(f"t.{_ident(c)}" for c in cols) + ")::text"
    sql = (f"SELECT {', '.join(f't.{_ident(c)}' for c in pk)}, md5({row}) "
           f"FROM {_ident(schema)}.{_ident(table)} t")
    return {tuple(r[:-1]): r[-1] for r in conn.execute(sql).fetchall()}


def _copy_rows(src: Any, dst: Any, schema: str, table: str, cols: list[str], keys: list[tuple] | None) -> int:
    """Copy rows (all, or those with these primary keys) from src to dst with COPY, in text form (any type,
    pgvector's included, round-trips)."""
    qt = f"{_ident(schema)}.{_ident(table)}"
    collist = ", ".join(_ident(c) for c in cols)
    select = f"SELECT {collist} FROM {qt}"
    params: list[Any] = []
    if keys is not None:
        if not keys:
            return 0
        pk = TABLES[table]
        # COPY takes no server-side parameters: psycopg binds these on the client
        lhs = ", ".join(f"{_ident(c)}::text" for c in pk)
        rhs = ", ".join("%s::text[]" for _ in pk)
        select += f" WHERE ({lhs}) IN (SELECT * FROM unnest({rhs}))"
        params = [[str(k[i]) for k in keys] for i in range(len(pk))]
    n = 0
    with src.cursor().copy(f"COPY ({select}) TO STDOUT", params or None) as out, \
            dst.cursor().copy(f"COPY {qt} ({collist}) FROM STDIN") as into:
        for chunk in out:
            into.write(chunk)
            n += bytes(chunk).count(b"\n")
    return n


def _delete_rows(dst: Any, schema: str, table: str, keys: list[tuple]) -> None:
    if not keys:
        return
    pk = TABLES[table]
    qt = f"{_ident(schema)}.{_ident(table)}"
    cond = " AND ".join(f"{_ident(c)} = %s" for c in pk)
    with dst.cursor() as cur:
        cur.executemany(f"DELETE FROM {qt} WHERE {cond}", [list(k) for k in keys])


def _sync(src: Any, dst: Any, schema: str, cols: dict[str, list[str]]) -> int:
    """Make dst's tables equal to src's (as src's transaction sees them); returns rows rewritten."""
    changed = 0
    diffs: dict[str, tuple[list[tuple], list[tuple]]] = {}
    for table in TABLES:
        a, b = _hashes(src, schema, table, cols[table]), _hashes(dst, schema, table, cols[table])
        stale = [k for k, h in b.items() if a.get(k) != h]  # changed or gone at the source
        fresh = [k for k, h in a.items() if b.get(k) != h]  # changed or new at the source
        diffs[table] = (stale, fresh)
    for table in reversed(list(TABLES)):  # children first: a memory's vectors go before it
        _delete_rows(dst, schema, table, diffs[table][0])
    for table in TABLES:
        changed += _copy_rows(src, dst, schema, table, cols[table], diffs[table][1])
    return changed


def _counts(conn: Any, schema: str) -> dict[str, int]:
    return {t: int(conn.execute(f"SELECT count(*) FROM {_ident(schema)}.{_ident(t)}").fetchone()[0]) for t in TABLES}


def _fix_sequences(src: Any, dst: Any, schema: str) -> None:
    for table, col in IDENTITY.items():
        dst.execute(f"SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST((SELECT max({_ident(col)}) "
                    f"FROM {_ident(schema)}.{_ident(table)}), 1))", (f"{_ident(schema)}.{_ident(table)}", col))
    for seq in SEQUENCES:  # caches keyed by data version must see a change on the new server
        qs = f"{_ident(schema)}.{_ident(seq)}"
        value = src.execute(f"SELECT last_value FROM {qs}").fetchone()[0]
        dst.execute("SELECT setval(%s, %s)", (qs, int(value) + 1))


_REFUSE_SQL = """
CREATE OR REPLACE FUNCTION {s}.engramdb_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = '{msg}'; END $$
"""


def _refuse_writes(conn: Any, schema: str) -> None:
    s = _ident(schema)
    conn.execute(_REFUSE_SQL.format(s=s, code=MOVED_SQLSTATE, msg=MOVED_MESSAGE))
    for table in TABLES:
        conn.execute(f"CREATE TRIGGER engramdb_moved BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON "
                     f"{s}.{_ident(table)} FOR EACH STATEMENT EXECUTE FUNCTION {s}.engramdb_moved()")


@contextmanager
def _connect(url: str) -> Iterator[Any]:
    import psycopg

    from ..store.postgres import parse_url

    conninfo = parse_url(url)[0]
    with psycopg.connect(conninfo, autocommit=False) as conn:
        yield conn


def move_tenant(
    tenant: str,
    to_url: str,
    routes_path: str | os.PathLike[str],
    *,
    from_url: str | None = None,
    max_rounds: int = 5,
    switch_at: int = 200,
    lock_timeout_s: float = 10.0,
    on_step: Callable[[str], None] | None = None,
) -> MoveReport:
    """Move `tenant` to the database at `to_url` while it keeps serving, and point the routing table at it.
    `from_url`: where it is now (default: its route). The target schema must not hold data already."""
    import psycopg

    from ..store.postgres import PostgresStore

    tenant = check_tenant(tenant)
    schema = pg_schema(tenant)
    to_url = _check_url(to_url, "--to")
    table = read_routes(routes_path) if Path(routes_path).exists() else {}
    src_url = from_url or table.get(tenant)
    if src_url is None:
        raise ValidationError(f"tenant {tenant!r} has no route; name its current database with --from")
    src_url = _check_url(src_url, "--from")
    if src_url == to_url:
        raise ValidationError("the tenant is already on that database")
    say = on_step or (lambda _m: None)
    rep = MoveReport(tenant)
    t0 = time.perf_counter()
    PostgresStore(to_url, schema=schema).close()  # the same schema and migrations on the target
    with _connect(src_url) as src, _connect(to_url) as dst:
        if not src.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                           (schema,)).fetchone():
            raise ValidationError(f"tenant {tenant!r} has no schema {schema} at the source")
        if src.execute("SELECT 1 FROM pg_trigger WHERE tgname = 'engramdb_moved' AND tgrelid = %s::regclass",
                       (f"{_ident(schema)}.meta",)).fetchone():
            raise ValidationError(f"tenant {tenant!r} has already moved away from that database")
        src.rollback()
        src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # the copy reads one snapshot
        cols = {t: _columns(dst, schema, t) for t in TABLES}
        if any(_counts(dst, schema)[t] for t in ("memories", "history")):
            raise ValidationError(f"the target already holds data in {schema}; drop it or pick another server")
        dst.commit()
        # 1. copy from one snapshot
        say("copying")
        for t in reversed(list(TABLES)):
            dst.execute(f"DELETE FROM {_ident(schema)}.{_ident(t)}")
        for t in TABLES:
            _copy_rows(src, dst, schema, t, cols[t], None)
        src.commit()
        dst.commit()
        rep.copied_s = time.perf_counter() - t0
        # 2. catch up without pausing
        for r in range(max_rounds):
            n = _sync(src, dst, schema, cols)
            src.commit()
            dst.commit()
            rep.catch_up_rounds.append(n)
            say(f"catch-up round {r + 1}: {n} rows")
            if n <= switch_at:
                break
        # 3. the switch: writes wait on the lock from here
        say("switching")
        src.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        t_pause = time.perf_counter()
        src.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        for t in TABLES:
            src.execute(f"LOCK TABLE {_ident(schema)}.{_ident(t)} IN EXCLUSIVE MODE")
        rep.switch_rows = _sync(src, dst, schema, cols)
        rep.rows = _counts(src, schema)
        for t in TABLES:  # every row's hash, both sides
            if _hashes(src, schema, t, cols[t]) != _hashes(dst, schema, t, cols[t]):
                raise ValidationError(f"verification failed on table {t}: nothing was switched")
        if _counts(dst, schema) != rep.rows:
            raise ValidationError("verification failed on row counts: nothing was switched")
        _fix_sequences(src, dst, schema)
        dst.commit()
        _refuse_writes(src, schema)
        src.commit()  # the lock goes; writers that waited now meet the refusal triggers
        table = read_routes(routes_path) if Path(routes_path).exists() else {}
        table[tenant] = to_url
        write_routes(routes_path, table)
        rep.pause_s = time.perf_counter() - t_pause
    rep.total_s = time.perf_counter() - t0
    say("done")
    return rep
