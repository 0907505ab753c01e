"""The console's SQLite store: operator accounts and the append-only, hash-chained audit trail."""

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import AuditError, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS operators(
  username TEXT PRIMARY KEY,
  pw_hash TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts_ms INTEGER NOT NULL,
  operator TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  command_id TEXT,
  result TEXT NOT NULL,
  prev TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_command ON audit(command_id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
"""

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditRow:
    """One line of the audit trail: who did what to which target, when, and with what result."""

    id: int
    ts_ms: int
    operator: str
    action: str
    target: str
    detail: str
    command_id: str | None
    result: str
    prev: str
    hash: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ts_ms": self.ts_ms,
            "operator": self.operator,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "command_id": self.command_id,
            "result": self.result,
        }


def _chain(prev: str, ts_ms: int, operator: str, action: str, target: str, detail: str, cid: str | None,
           result: str) -> str:  # fmt: skip
    body = json.dumps([prev, ts_ms, operator, action, target, detail, cid, result], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class Store:
    """One SQLite file (WAL); safe to share between the MQTT thread and the web server."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"console database {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # an audit line must survive a power cut
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"console database {path} is unusable ({exc}): restore it from backup") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ----- operators --------------------------------------------------------------------------------
    def put_operator(self, username: str, pw_hash: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO operators(username, pw_hash, created_ms) VALUES(?,?,?) "
                "ON CONFLICT(username) DO UPDATE SET pw_hash=excluded.pw_hash",
                (username, pw_hash, int(time.time() * 1000)),
            )

    def operator_hash(self, username: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT pw_hash FROM operators WHERE username=?", (username,)).fetchone()
        return None if row is None else str(row[0])

    # ----- audit ------------------------------------------------------------------------------------
    def audit(
        self,
        operator: str,
        action: str,
        target: str,
        result: str,
        detail: str = "",
        command_id: str | None = None,
        ts_ms: int | None = None,
    ) -> AuditRow:
        """Append one line; its hash chains it to the line before (tampering breaks `verify`)."""
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
                prev = GENESIS if last is None else str(last[0])
                digest = _chain(prev, ts, operator, action, target, detail, command_id, result)
                cur = self._db.execute(
                    "INSERT INTO audit(ts_ms, operator, action, target, detail, command_id, result,"
                    " prev, hash) VALUES(?,?,?,?,?,?,?,?,?)",
                    (ts, operator, action, target, detail, command_id, result, prev, digest),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        row_id = cur.lastrowid
        assert row_id is not None
        return AuditRow(row_id, ts, operator, action, target, detail, command_id, result, prev, digest)

    def audit_rows(self, limit: int = 100, command_id: str | None = None) -> list[AuditRow]:
        """Newest first."""
        sql = "SELECT id, ts_ms, operator, action, target, detail, command_id, result, prev, hash FROM audit"
        args: tuple[object, ...] = ()
        if command_id is not None:
            sql += " WHERE command_id=?"
            args = (command_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [AuditRow(*r) for r in rows]

    def verify_audit(self) -> int:
        """Re-compute the hash chain; returns the number of lines, raises AuditError on a broken link."""
        prev = GENESIS
        n = 0
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ts_ms, operator, action, target, detail, command_id, result, prev, hash "
                "FROM audit ORDER BY id"
            ).fetchall()
        for r in rows:
            row = AuditRow(*r)
            want = _chain(prev, row.ts_ms, row.operator, row.action, row.target, row.detail,
                          row.command_id, row.result)  # fmt: skip
            if row.prev != prev or row.hash != want:
                raise AuditError(f"audit line {row.id}: hash chain broken")
            prev = row.hash
            n += 1
        return n
