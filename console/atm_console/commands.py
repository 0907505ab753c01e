"""Operator actions -> signed `Command` messages, and the book of commands awaiting their result.

The console offers only what the real ATM host obeys (atm_host.journey `_on_command` and the bank
link's `rebirth`); the wire names are docs/mqtt.md's:

| action          | wire name       | args | what the ATM does                                         |
|-----------------|-----------------|------|-----------------------------------------------------------|
| in_service      | in_service      | {}   | comes back into service (when nothing else holds it out)  |
| out_of_service  | out_of_service  | {}   | goes out of service after the journey in progress         |
| status          | send_counters   | {}   | sends its telemetry at once                               |
| rebirth         | rebirth         | {}   | re-announces itself (birth, versions)                     |

Not offered (NOT_OFFERED): a dispenser reset, a replenishment and a limit change. The host refuses
them: notes move only against a token the MCU verifies, so a replenishment is recorded at the ATM with
the bank-signed replenish token (docs/deployment.md), and limits are the bank's one rule set
(atm/v1/fleet/config), not a per-ATM console setting.
"""

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from atm_msg.schemas import Command, CommandResult

from .config import LimitCaps
from .errors import CommandError

ACTIONS = ("in_service", "out_of_service", "status", "rebirth")
DESTRUCTIVE = frozenset({"out_of_service"})  # the page asks the operator to confirm these
NOT_OFFERED: dict[str, str] = {
    "reset_dispenser": "a dispenser reset is done at the ATM (maintenance), not from the console",
    "replenish": "a replenishment is recorded at the ATM with the bank-signed replenish token",
    "limits": "limits are the bank's one rule set (atm/v1/fleet/config), not a console setting",
}
MAX_BOOK = 5000  # commands remembered for the result panel


def build(
    action: str, args: dict[str, Any], caps: LimitCaps, ttl_s: int, now_ms: int | None = None
) -> Command:
    """Validate an operator action and turn it into a Command (fresh command_id, expiry).

    `caps` stays in the signature for callers; no offered action takes limits.
    """
    del caps
    if action in NOT_OFFERED:
        raise CommandError(f"{action} is not offered: {NOT_OFFERED[action]}")
    if action not in ACTIONS:
        raise CommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if args:
        raise CommandError(f"{action} takes no arguments")
    name = "send_counters" if action == "status" else action
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cmd: dict[str, object] = {"command_id": os.urandom(16).hex(), "name": name, "args": {}}
    return Command.model_validate({**cmd, "expires_ms": now + ttl_s * 1000})


@dataclass
class Sent:
    """A command the console sent and what became of it."""

    command_id: str
    atm_id: str
    action: str
    name: str
    args: dict[str, str | int]
    operator: str
    sent_ms: int
    expires_ms: int
    status: str = "sent"  # sent -> ok | failed | expired
    detail: str = ""
    result_ms: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "command_id": self.command_id,
            "atm_id": self.atm_id,
            "action": self.action,
            "name": self.name,
            "args": self.args,
            "operator": self.operator,
            "sent_ms": self.sent_ms,
            "status": self.status,
            "detail": self.detail,
            "result_ms": self.result_ms,
        }


class CommandBook:
    """Commands in flight and done, keyed by command_id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._book: dict[str, Sent] = {}

    def add(self, sent: Sent) -> None:
        with self._lock:
            self._book[sent.command_id] = sent
            while len(self._book) > MAX_BOOK:
                del self._book[next(iter(self._book))]

    def result(self, atm_id: str, r: CommandResult) -> Sent | None:
        """Record a result; None when unknown, from the wrong ATM, or already settled (redelivery)."""
        with self._lock:
            sent = self._book.get(r.command_id)
            if sent is None or sent.atm_id != atm_id or r.atm_id != atm_id or sent.status != "sent":
                return None
            sent.status = "ok" if r.ok else "failed"
            sent.detail = r.detail
            sent.result_ms = int(time.time() * 1000)
            return sent

    def expire(self, now_ms: int | None = None) -> list[Sent]:
        """Commands past their expiry with no result: marked expired and returned once."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        out: list[Sent] = []
        with self._lock:
            for sent in self._book.values():
                if sent.status == "sent" and now > sent.expires_ms + 5000:  # grace for the outbox
                    sent.status = "expired"
                    sent.detail = "no result before expiry"
                    sent.result_ms = now
                    out.append(sent)
        return out

    def recent(self, atm_id: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        with self._lock:
            items = [s for s in self._book.values() if atm_id is None or s.atm_id == atm_id]
        return [s.as_dict() for s in items[-limit:]][::-1]
