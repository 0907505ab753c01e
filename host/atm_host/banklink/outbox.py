"""Store-and-forward outbox (SQLite, WAL, synchronous=FULL): records live until the broker acknowledged them.

Rows are numbered in insertion order; the link publishes them oldest first and deletes a row only on
its PUBACK, so broker outages, network cuts and host restarts lose nothing and keep the order.
"""

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import OutboxError


@dataclass(frozen=True)
class OutboxRecord:
    """One stored message."""

    row_id: int
    topic: str
    payload: bytes
    qos: int


class Outbox:
    """A persistent FIFO of MQTT messages waiting for their broker acknowledgement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (row_id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {path}: {exc}") from exc

    def put(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """Append a message durably; return its row id."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos) VALUES (?,?,?)", (topic, payload, qos)
                )
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox put: {exc}") from exc
            row_id = cur.lastrowid
            if row_id is None:
                raise OutboxError("outbox put: no row id")
            return row_id

    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxRecord]:
        """Oldest records with row_id > after."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row_id, topic, payload, qos FROM outbox WHERE row_id > ? ORDER BY row_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [OutboxRecord(int(r[0]), str(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    def ack(self, row_id: int) -> None:
        """The broker acknowledged the record: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE row_id = ?", (row_id,))

    def depth(self) -> int:
        """Records waiting."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    def next_counter(self, name: str, modulo: int = 256) -> int:
        """A persistent counter (bdSeq survives restarts): return the next value, wrapping at modulo."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
            value = (int(row[0]) + 1) % modulo if row else 0
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = ?",
                (name, value, value),
            )
            return value

    def close(self) -> None:
        with self._lock:
            self._db.close()
