"""Store-and-forward outbox (SQLite, WAL, synchronous=FULL): records live until they are answered.

Rows are numbered in insertion order; the link publishes them oldest first. A plain record (an event,
a command result) is deleted on its PUBACK. A record with an answer key (an MCU report, an abandon)
is kept after the PUBACK: a PUBACK only says the broker took it, not that the bank did (a rogue or
dead subscriber can take it and drop it). It is deleted when the bank's own answer arrives with that
key as correlation data (settle), and re-sent with a doubling backoff until then; the bank answers a
re-sent record from what it stored, so nothing is settled twice. Broker outages, network cuts and host
restarts lose nothing and keep the order.
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
    answer_key: str | None = None  # hex correlation data the bank's answer carries; None: PUBACK ends it


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
            cols = {str(r[1]) for r in self._db.execute("PRAGMA table_info(outbox)").fetchall()}
            for name, decl in (("answer_key", "TEXT"), ("tries", "INTEGER NOT NULL DEFAULT 0"),
                               ("next_ms", "INTEGER NOT NULL DEFAULT 0")):  # fmt: skip
                if name not in cols:  # an outbox written before answer keys existed
                    self._db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {decl}")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {path}: {exc}") from exc

    def put(self, topic: str, payload: bytes, qos: int = 1, answer_key: str | None = None) -> int:
        """Append a message durably; return its row id. answer_key: keep it until settle(answer_key)."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, answer_key) VALUES (?,?,?,?)",
                    (topic, payload, qos, answer_key),
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
                "SELECT row_id, topic, payload, qos, answer_key FROM outbox WHERE row_id > ? "
                "ORDER BY row_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def ack(self, row_id: int) -> None:
        """The broker acknowledged the record: forget it, unless it waits for the bank's answer."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE row_id = ? AND answer_key IS NULL", (row_id,))

    def mark_sent(self, row_id: int, now_ms: int, first_s: float, max_s: float) -> None:
        """A record with an answer key went out: when to send it again if no answer comes (doubling)."""
        with self._lock:
            row = self._db.execute("SELECT tries FROM outbox WHERE row_id = ?", (row_id,)).fetchone()
            if row is None:
                return
            tries = int(row[0])
            delay_ms = int(min(first_s * (2**tries), max_s) * 1000)
            self._db.execute(
                "UPDATE outbox SET tries = ?, next_ms = ? WHERE row_id = ?",
                (tries + 1, now_ms + delay_ms, row_id),
            )

    def due(self, now_ms: int, limit: int = 100) -> list[OutboxRecord]:
        """Records sent at least once whose answer has not come by their next_ms (oldest first)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT row_id, topic, payload, qos, answer_key FROM outbox "
                "WHERE answer_key IS NOT NULL AND tries > 0 AND next_ms <= ? ORDER BY row_id LIMIT ?",
                (now_ms, limit),
            ).fetchall()
        return [_record(r) for r in rows]

    def settle(self, answer_key: str) -> int:
        """The bank answered: forget the records waiting for this key; how many there were."""
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE answer_key = ?", (answer_key,))
            return cur.rowcount

    def awaiting(self) -> int:
        """Records waiting for the bank's answer."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE answer_key IS NOT NULL").fetchone()
        return int(row[0]) if row else 0

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


def _record(r: tuple[int, str, bytes, int, str | None]) -> OutboxRecord:
    return OutboxRecord(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), None if r[4] is None else str(r[4]))
