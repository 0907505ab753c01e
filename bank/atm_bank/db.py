"""The bank database: one SQL schema on SQLite (WAL, default) or PostgreSQL (production), atomic runs."""

import fcntl
import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import StoreError

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Sequence[object]

SCHEMA = """
CREATE TABLE IF NOT EXISTS atms (
    atm_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, device_key TEXT NOT NULL,
    denominations TEXT NOT NULL, provisioned_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    customer_id BIGINT PRIMARY KEY, mobile TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    account_id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, account_number TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    customer_id BIGINT PRIMARY KEY, model_id TEXT NOT NULL, template_version INTEGER NOT NULL,
    embedding TEXT NOT NULL, quality DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS used_nonces (nonce TEXT PRIMARY KEY, request_id TEXT NOT NULL, at_ms BIGINT);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY, atm_id TEXT NOT NULL, response TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    scope TEXT NOT NULL, subject TEXT NOT NULL, day INTEGER NOT NULL, count INTEGER NOT NULL,
    last_ms BIGINT NOT NULL, rate_violations INTEGER NOT NULL, PRIMARY KEY (scope, subject, day));
CREATE TABLE IF NOT EXISTS lockouts (
    scope TEXT NOT NULL, subject TEXT NOT NULL, failures INTEGER NOT NULL, level INTEGER NOT NULL,
    until_ms BIGINT NOT NULL, PRIMARY KEY (scope, subject));
CREATE TABLE IF NOT EXISTS txns (
    txid TEXT PRIMARY KEY, request_id TEXT NOT NULL UNIQUE, atm_id TEXT NOT NULL,
    customer_id BIGINT NOT NULL, account_id BIGINT NOT NULL, day INTEGER NOT NULL,
    amount INTEGER NOT NULL, notes TEXT NOT NULL, command_nonce TEXT NOT NULL, state TEXT NOT NULL,
    debited INTEGER NOT NULL, created_ms BIGINT NOT NULL, settled_ms BIGINT, report TEXT);
CREATE INDEX IF NOT EXISTS txns_customer_day ON txns (customer_id, day);
CREATE INDEX IF NOT EXISTS txns_account ON txns (account_id);
CREATE TABLE IF NOT EXISTS journal (
    id {serial}, entry_id TEXT NOT NULL, txid TEXT NOT NULL, kind TEXT NOT NULL,
    ledger_account TEXT NOT NULL, amount INTEGER NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS journal_txid ON journal (txid);
CREATE UNIQUE INDEX IF NOT EXISTS journal_once ON journal (entry_id, ledger_account);
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY, kind TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL,
    day INTEGER NOT NULL, detail TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_once ON alarms (kind, scope, subject, day);
CREATE TABLE IF NOT EXISTS maint_audit (
    request_id TEXT PRIMARY KEY, command_id TEXT NOT NULL, atm_id TEXT NOT NULL, op TEXT NOT NULL,
    args TEXT NOT NULL, nonce TEXT NOT NULL, kid TEXT NOT NULL, granted INTEGER NOT NULL,
    reason TEXT NOT NULL, response TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS maint_once ON maint_audit (command_id) WHERE granted = 1;
"""


class Cursor(Protocol):
    """What the bank's logic needs from a transaction: run SQL with '?' placeholders.

    `for_update` is the row-lock clause to append to a SELECT of rows the transaction will change
    ("" on SQLite, whose writers are serialised whole; " FOR UPDATE" on PostgreSQL).
    `w` is a write whose result nobody reads: PostgreSQL may send it without waiting for the server
    (pipeline mode); its error, if any, fails the transaction at the next read or at the commit.
    `one_later` is a read whose row is wanted later: PostgreSQL (pipelined) sends it now, so several
    run while the client works; elsewhere it runs when its row is asked for. Use it only for a read
    that no write sent between now and then can change.
    """

    for_update: str

    def q(self, sql: str, params: Params = ()) -> list[Row]: ...
    def one(self, sql: str, params: Params = ()) -> Row | None: ...
    def x(self, sql: str, params: Params = ()) -> int: ...
    def w(self, sql: str, params: Params = ()) -> None: ...
    def one_later(self, sql: str, params: Params = ()) -> Callable[[], Row | None]: ...


class Database(Protocol):
    """A bank database backend.

    `locks` names what a transaction decides about ("atm:ATM0001", "customer:42", "txn:<hex>"): the
    backend holds an exclusive lock on each name from the start of the transaction to its end, taken
    in one global order so two transactions can never deadlock on them. Every row the bank changes
    belongs to one of those subjects, so transactions about different subjects run in parallel and
    those about the same subject queue (on PostgreSQL; SQLite runs one writer at a time anyway).
    """

    kind: str

    def run(self, fn: Callable[[Cursor], T], locks: Iterable[str] = ()) -> T: ...
    def run_batch(
        self, fns: Sequence[Callable[[Cursor], T]], locks: Iterable[str] = ()
    ) -> list[T | Exception]: ...
    def close(self) -> None: ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


Runner = Callable[[Callable[[Cursor], list[T | Exception]], Iterable[str]], list[T | Exception]]


def _batch(
    run: Runner[T],
    fns: Sequence[Callable[[Cursor], T]],
    locks: Iterable[str],
    on_error: type[Exception] | tuple[type[Exception], ...],
    run_isolated: Runner[T] | None = None,
) -> list[T | Exception]:
    """All fns in one transaction; each is atomic on its own.

    First without savepoints (two statements fewer per item: on PostgreSQL two round trips): when every
    fn succeeds, that is the answer. When one raises, the transaction is rolled back whole, nothing was
    committed, and the batch runs again with each fn in its own SAVEPOINT, so the failing one is undone
    alone and returned as its result. The fns can run twice: they decide from the database and their
    closure, and nothing they produce leaves the worker before the commit. A fn with a `prepare(cur)`
    method has it called, for every fn in order, before the first fn runs (plain pass only).
    `run_isolated` (default `run`) runs the savepoint pass: it must wait for every statement, so that
    an error is the item's own.
    """
    names = list(locks)

    def plain(cur: Cursor) -> list[T | Exception]:
        for fn in fns:  # reads an item can send ahead (see core._Decider.prepare); not in the rerun
            prepare = getattr(fn, "prepare", None)
            if prepare is not None:
                prepare(cur)
        return [fn(cur) for fn in fns]

    def isolated(cur: Cursor) -> list[T | Exception]:
        return _savepoints(cur, fns, on_error)

    try:
        return run(plain, names)
    except on_error:
        raise
    except Exception:
        return (run_isolated or run)(isolated, names)


def _savepoints(
    cur: "Cursor",
    fns: Sequence[Callable[[Cursor], T]],
    on_error: type[Exception] | tuple[type[Exception], ...],
) -> list[T | Exception]:
    """Run each fn inside its own SAVEPOINT: a failing one is rolled back alone and returned as its result.

    Exceptions of the on_error types (backend conflicts that invalidate the whole transaction) propagate.
    """
    out: list[T | Exception] = []
    for fn in fns:
        cur.x("SAVEPOINT item")
        try:
            out.append(fn(cur))
        except on_error:
            raise
        except Exception as exc:  # this item's own failure: undo only its writes
            cur.x("ROLLBACK TO SAVEPOINT item")
            out.append(exc)
        cur.x("RELEASE SAVEPOINT item")
    return out


class _SqliteCursor:
    for_update = ""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def q(self, sql: str, params: Params = ()) -> list[Row]:
        return list(self._c.execute(sql, tuple(params)).fetchall())

    def one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = self._c.execute(sql, tuple(params)).fetchone()
        return row

    def x(self, sql: str, params: Params = ()) -> int:
        return self._c.execute(sql, tuple(params)).rowcount

    def w(self, sql: str, params: Params = ()) -> None:
        self._c.execute(sql, tuple(params))

    def one_later(self, sql: str, params: Params = ()) -> Callable[[], Row | None]:
        return lambda: self.one(sql, params)  # one writer at a time, in process: nothing to gain


class SqliteDatabase:
    """SQLite in WAL mode; one writer at a time across threads and processes.

    Writers queue on an flock() of "<db>.lock" before BEGIN IMMEDIATE: the kernel wakes the next waiter
    the moment the lock is released. Left to SQLite's busy handler, a waiting worker sleeps 1, 2, 5, 10,
    ... ms between polls, which under load from several processes turned into p99 latencies of 100+ ms.
    busy_timeout stays as the backstop for connections that do not take the lock file.
    """

    kind = "sqlite"

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise StoreError(f"sqlite synchronous={synchronous!r}: expected FULL, NORMAL or OFF")
        self.path = path
        self._lock = threading.Lock()  # one connection, possibly used from several threads of a worker
        try:
            self._lockfd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"sqlite lock file {path}.lock: {exc}") from exc
        try:
            self._conn = sqlite3.connect(
                str(path), isolation_level=None, timeout=30.0, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")  # FULL: a commit survives power loss
            self._conn.execute("PRAGMA busy_timeout=30000")
            # Savepoint (sub-)journals in memory: with a temp file, a batch of 16 wrote ~37 extra pwrite()s
            # per request (strace). Only rollback scratch lives there; the WAL and its fsyncs are unchanged.
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.executescript(SCHEMA.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT"))
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {path}: {exc}") from exc

    def run(self, fn: Callable[[Cursor], T], locks: Iterable[str] = ()) -> T:
        """One transaction (named locks are implied: SQLite admits one writer at a time)."""
        with self._lock:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            try:
                return self._run_locked(fn)
            finally:
                fcntl.flock(self._lockfd, fcntl.LOCK_UN)

    def run_batch(
        self, fns: Sequence[Callable[[Cursor], T]], locks: Iterable[str] = ()
    ) -> list[T | Exception]:
        """All fns in one transaction (one commit: group commit), each atomic on its own (see _batch)."""
        return _batch(self.run, fns, locks, sqlite3.OperationalError)

    def _run_locked(self, fn: Callable[[Cursor], T]) -> T:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite begin: {exc}") from exc
        try:
            result = fn(_SqliteCursor(self._conn))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite commit: {exc}") from exc
        return result

    def close(self) -> None:
        self._conn.close()
        os.close(self._lockfd)


class _PgCursor:
    """A PostgreSQL transaction's cursor; pipelined, it also folds blind writes into one statement.

    Pipelined (`pipeline` given), `w` only queues: the queued writes go out as one statement, joined
    with data-modifying WITH clauses (PostgreSQL runs every one of them exactly once, to completion),
    before the next read, row count or commit. Writes to the same table never share a statement (the
    clauses of one statement cannot see each other's rows), and only INSERT and UPDATE are folded.
    One decision's writes (attempts, nonce, transaction, ledger legs, answer) thus cost one statement.
    """

    for_update = " FOR UPDATE"

    def __init__(self, cur: Any, writer: Any = None, pipeline: Any = None) -> None:
        self._c = cur
        self._w = writer if writer is not None else cur  # blind writes: their own cursor when pipelined
        self._pipeline = pipeline
        self._queued: list[tuple[str, str, Params]] = []  # (table, sql, params) not yet sent

    def _sync(self) -> None:
        """Pipeline mode: wait for every statement sent so far (its row count is then this one's)."""
        if self._pipeline is not None:
            self._pipeline.sync()

    def flush(self) -> None:
        """Send the queued blind writes (one statement per run of distinct tables), not waiting."""
        queued, self._queued = self._queued, []
        group: list[tuple[str, str, Params]] = []
        for item in queued:
            if any(t == item[0] for t, _, _ in group):
                self._send(group)
                group = []
            group.append(item)
        if group:
            self._send(group)

    def _send(self, group: list[tuple[str, str, Params]]) -> None:
        *clauses, (_, last, last_params) = group
        params: list[object] = []
        head = ""
        if clauses:
            head = "WITH " + ", ".join(f"w{i} AS ({sql})" for i, (_, sql, _) in enumerate(clauses)) + " "
            for _, _, p in clauses:
                params.extend(p)
        params.extend(last_params)
        self._w.execute(_pg_sql(head + last), params)

    def q(self, sql: str, params: Params = ()) -> list[Row]:
        self.flush()
        self._c.execute(_pg_sql(sql), tuple(params))
        return list(self._c.fetchall())

    def one(self, sql: str, params: Params = ()) -> Row | None:
        self.flush()
        self._c.execute(_pg_sql(sql), tuple(params))
        row: Row | None = self._c.fetchone()
        return row

    def x(self, sql: str, params: Params = ()) -> int:
        self.flush()
        self._c.execute(_pg_sql(sql), tuple(params))
        self._sync()
        count: int = self._c.rowcount
        return count

    def one_later(self, sql: str, params: Params = ()) -> Callable[[], Row | None]:
        if self._pipeline is None:
            return lambda: self.one(sql, params)
        self.flush()
        early = self._c.connection.cursor()
        early.execute(_pg_sql(sql), tuple(params))  # sent now; its row waits on its own cursor

        def row() -> Row | None:
            try:
                got: Row | None = early.fetchone()
                return got
            finally:
                early.close()

        return row

    def w(self, sql: str, params: Params = ()) -> None:
        target = _WRITE_TARGET.match(sql)
        if self._pipeline is None or target is None:
            self.flush()
            self._w.execute(_pg_sql(sql), tuple(params))  # pipelined: sent, not waited for
            return
        self._queued.append((target.group(1).lower(), sql, tuple(params)))


# The table a foldable blind write changes (INSERT INTO t ... / UPDATE t ...).
_WRITE_TARGET = re.compile(r"\s*(?:INSERT\s+INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
_PG_SQL: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    """'?' placeholders as psycopg's '%s' (cached: the same few statements run for every request)."""
    out = _PG_SQL.get(sql)
    if out is None:
        out = _PG_SQL[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


class PostgresDatabase:
    """PostgreSQL under READ COMMITTED with named advisory locks per subject (see Database).

    Why not SERIALIZABLE: every authorization reads the customer's and the account's limits and then
    writes a reservation, the classic write-skew shape, so under load most concurrent transactions were
    aborted and retried (measured: 234-349 auth/s, p99 121-647 ms for 1-4 workers). Here a transaction
    first takes transaction-scoped advisory locks on every subject it decides about (ATM, customer,
    account, transaction), all at once and in key order; each later statement sees what was committed
    before it ran, so the limit sums include every reservation of the same customer and account.
    Deadlocks (possible only on rows outside the named subjects) and unique-index races still retry.
    """

    kind = "postgres"
    _RETRIES = 50

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conflicts = 0  # transactions rolled back and retried (deadlocks, unique-index races)
        import psycopg

        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(dsn, autocommit=False)
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(4242)")  # one schema creator at a time
                for stmt in SCHEMA.format(serial="BIGSERIAL PRIMARY KEY").split(";"):
                    if stmt.strip():
                        cur.execute(stmt)  # pyright: ignore[reportArgumentType]
            self._conn.commit()
            self._conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        except psycopg.Error as exc:
            raise StoreError(f"postgres: {exc}") from exc

    def run(
        self,
        fn: Callable[[Cursor], T],
        locks: Iterable[str] = (),
        *,
        pipelined: bool = False,
        retry_unique: bool = True,
    ) -> T:
        """One transaction under the named locks, retried on deadlocks (and unique-index races).

        `pipelined`: libpq pipeline mode. Reads still wait for their answer, but blind writes
        (`Cursor.w`) go out without waiting, so a decision costs one round trip per read instead of
        one per statement; an error of a blind write surfaces at the next read or at the commit and
        fails the whole transaction (the batch then reruns unpipelined, with savepoints).
        `retry_unique=False`: a unique-index violation is not retried but raised (as StoreError).
        """
        errors = self._psycopg.errors
        retried: tuple[type[Exception], ...] = (errors.SerializationFailure, errors.DeadlockDetected)
        if retry_unique:
            retried = (*retried, errors.UniqueViolation)
        keys = sorted({lock_key(name) for name in locks})
        conn = self._conn
        for attempt in range(self._RETRIES):
            try:
                if pipelined:
                    with conn.pipeline() as pipe, conn.cursor() as cur, conn.cursor() as writer:
                        self._lock(cur, keys)
                        pg_cur = _PgCursor(cur, writer, pipe)
                        result = fn(pg_cur)
                        pg_cur.flush()
                        conn.commit()
                else:
                    with conn.cursor() as cur:
                        self._lock(cur, keys)
                        result = fn(_PgCursor(cur))
                    conn.commit()
                return result
            except retried:
                conn.rollback()
                self.conflicts += 1
                time.sleep(0.001 * (attempt + 1))
            except self._psycopg.Error as exc:
                conn.rollback()
                raise StoreError(f"postgres: {exc}") from exc
            except BaseException:
                conn.rollback()
                raise
        raise StoreError("postgres: too many retries (deadlocks or unique-index races)")

    @staticmethod
    def _lock(cur: Any, keys: list[int]) -> None:
        if keys:  # one statement; unnest keeps the array's (sorted) order
            cur.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", (keys,))

    def run_batch(
        self, fns: Sequence[Callable[[Cursor], T]], locks: Iterable[str] = ()
    ) -> list[T | Exception]:
        """All fns in one pipelined transaction under the union of their locks, each atomic on its own.

        See _batch: the savepoint pass after a failure runs unpipelined, so each error is its item's.
        Deadlocks and serialization failures retry the whole transaction. A unique-index violation is
        not retried in the first pass (under the named locks it is an item's own fault, not a race, and
        fifty retries of a deterministic failure cost over a second): the savepoint pass then returns
        it as that item's result.
        """
        errors = self._psycopg.errors
        conflicts = (errors.SerializationFailure, errors.DeadlockDetected)

        def pipelined(
            fn: Callable[[Cursor], list[T | Exception]], names: Iterable[str]
        ) -> list[T | Exception]:
            return self.run(fn, names, pipelined=True, retry_unique=False)

        return _batch(pipelined, fns, locks, conflicts, run_isolated=self.run)

    def close(self) -> None:
        self._conn.close()


def open_database(url: str) -> Database:
    """'sqlite:///path/bank.db[?synchronous=NORMAL]' or a 'postgresql://...' DSN."""
    if url.startswith("sqlite:///"):
        path, _, query = url[len("sqlite:///") :].partition("?")
        sync = query.partition("synchronous=")[2].upper() or "FULL"
        return SqliteDatabase(Path(path), sync)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StoreError(f"database url {url!r}: expected sqlite:///PATH or postgresql://...")
