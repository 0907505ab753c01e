"""Operator actions -> signed `Command` messages, and the book of commands awaiting their result.

Actions map onto the wire names docs/mqtt.md defines (the schema's name list is closed):

| action          | wire name       | args                                                     |
|-----------------|-----------------|----------------------------------------------------------|
| in_service      | in_service      | {}                                                       |
| out_of_service  | out_of_service  | {}                                                       |
| status          | send_counters   | {}                                                       |
| rebirth         | rebirth         | {}                                                       |
| reset_dispenser | reboot          | {"unit": "dispenser"}                                    |
| replenish       | apply_config    | {"op": "replenish", "cassette", "denomination", "count"} |
| limits          | apply_config    | {"op": "limits", the four FleetLimits fields}            |
"""

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from atm_msg.schemas import Command, CommandResult

from .config import LimitCaps
from .errors import CommandError

ACTIONS = ("in_service", "out_of_service", "status", "rebirth", "reset_dispenser", "replenish", "limits")
LIMIT_FIELDS = (
    "per_withdrawal_yuan",
    "per_customer_day_yuan",
    "per_account_total_yuan",
)  # no presenter capacity: the dispenser MCU states it (hello), nobody else sets it
MAX_BOOK = 5000  # commands remembered for the result panel


def _int(args: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = args.get(name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise CommandError(f"{name}: an integer from {lo} to {hi}")
    return value


def build(
    action: str, args: dict[str, Any], caps: LimitCaps, ttl_s: int, now_ms: int | None = None
) -> Command:
    """Validate an operator action and turn it into a Command (fresh command_id, expiry)."""
    wire_args: dict[str, str | int] = {}
    if action in ("in_service", "out_of_service", "rebirth"):
        name = action
    elif action == "status":
        name = "send_counters"
    elif action == "reset_dispenser":
        name = "reboot"
        wire_args["unit"] = "dispenser"
    elif action == "replenish":
        name = "apply_config"
        wire_args = {
            "op": "replenish",
            "cassette": _int(args, "cassette", 1, 4),
            "denomination": _int(args, "denomination", 1, 10000),
            "count": _int(args, "count", 0, 65535),
        }
    elif action == "limits":
        name = "apply_config"
        wire_args = {"op": "limits"}
        limits = {f: _int(args, f, 1, getattr(caps, f)) for f in LIMIT_FIELDS}
        wire_args.update(limits)
        if limits["per_withdrawal_yuan"] > limits["per_customer_day_yuan"]:
            raise CommandError("per_withdrawal_yuan must not exceed per_customer_day_yuan")
    else:
        raise CommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    cmd: dict[str, object] = {"command_id": os.urandom(16).hex(), "name": name, "args": wire_args}
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
