"""What a journey produces and keeps: its record, its context, the pending reports on disk."""

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from atm_msg import qrtoken
from atm_msg.schemas import FaceProbe

from .states import State, Timings


class NotStarted:
    """The MCU never began a transaction (its journal does not know the txid and the nonce is burnt)."""


NOT_STARTED = NotStarted()


@dataclass
class JourneyRecord:
    """How one journey ended: what the tests, the bench and the demo read."""

    outcome: str
    state_at_end: State
    reason: str = ""
    customer_id: int = 0
    account_id: int = 0
    amount: int = 0
    txid: str = ""
    notes: tuple[int, ...] = ()
    presented: int = 0
    retracted: int = 0
    bank_result: str = ""
    timings: dict[str, float] = field(default_factory=dict[str, float])


@dataclass
class Ctx:
    """State of the journey in progress."""

    qr_text: str
    timings: Timings
    token: qrtoken.WithdrawalToken | None = None
    probe: FaceProbe | None = None
    account_digits: str = ""
    mobile_digits: str = ""
    amount: int = 0
    txid: str = ""
    notes: tuple[int, ...] = ()
    presented: int = 0
    retracted: int = 0
    bank_result: str = ""


class PendingReports:
    """Transactions approved but not yet reported, on disk (atomic rename) so a restart finishes them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._txids: set[str] = set()
        if path is not None and path.exists():
            self._txids = set(json.loads(path.read_text() or "[]"))

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(sorted(self._txids), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def add(self, txid: str) -> None:
        with self._lock:
            self._txids.add(txid)
            self._save()

    def remove(self, txid: str) -> None:
        with self._lock:
            self._txids.discard(txid)
            self._save()

    def all(self) -> list[str]:
        with self._lock:
            return sorted(self._txids)
