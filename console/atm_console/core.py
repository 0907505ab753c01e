"""The console's heart: routes MQTT messages to the fleet, sends signed commands, audits, fans out."""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from atm_msg import topics
from atm_msg.cmdsign import CommandSigner
from atm_msg.schemas import CommandResult
from pydantic import ValidationError

from . import commands
from .auth import Auth
from .config import ConsoleConfig
from .errors import CommandError
from .fleet import Fleet, Json
from .store import Store

log = logging.getLogger("atm_console")

Publisher = Callable[[str, bytes, list[tuple[str, str]]], bool]


class Console:
    """State and actions, independent of MQTT and HTTP plumbing (both are attached from outside)."""

    def __init__(self, cfg: ConsoleConfig, store: Store, signer: CommandSigner | None) -> None:
        self.cfg = cfg
        self.store = store
        self.auth = Auth(store, cfg.session_idle_s)
        self.signer = signer
        self.fleet = Fleet(
            cfg.thresholds, bucket_s=cfg.availability_bucket_s, buckets=cfg.availability_buckets
        )
        self.book = commands.CommandBook()
        self.publish: Publisher | None = None
        self.broker_up = False
        self._pending: list[tuple[str, Json]] = []
        self._lock = threading.Lock()
        self.started = time.time()

    # ----- inbound (MQTT thread) --------------------------------------------------------------------
    def ingest(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/cmd/result"):
            self._command_result(topic, payload)
            return
        updates = self.fleet.ingest(topic, payload)
        if updates:
            self.push(updates)

    def _command_result(self, topic: str, payload: bytes) -> None:
        atm_id = topics.atm_of(topic)
        try:
            result = CommandResult.model_validate_json(payload)
        except ValidationError:
            with self.fleet.lock:
                self.fleet.stats["malformed"] += 1
            return
        if atm_id is None:
            return
        sent = self.book.result(atm_id, result)
        if sent is None:
            return
        self.store.audit(
            sent.operator,
            f"result:{sent.action}",
            atm_id,
            sent.status,
            sent.detail,
            command_id=sent.command_id,
        )
        self.push([("cmd", sent.as_dict())])

    def connection(self, up: bool) -> None:
        self.broker_up = up
        self.push([("broker", {"up": up})])

    # ----- fan-out ----------------------------------------------------------------------------------
    def push(self, updates: list[tuple[str, Json]]) -> None:
        with self._lock:
            self._pending.extend(updates)

    def take_pending(self) -> list[tuple[str, Json]]:
        with self._lock:
            out, self._pending = self._pending, []
        for sent in self.book.expire():
            self.store.audit(
                sent.operator, f"result:{sent.action}", sent.atm_id, "expired", sent.detail, sent.command_id
            )
            out.append(("cmd", sent.as_dict()))
        return out

    # ----- operator actions -------------------------------------------------------------------------
    def send_command(self, operator: str, atm_id: str, action: str, args: dict[str, Any]) -> commands.Sent:
        """Validate, audit, sign and publish one command; raises CommandError when refused."""
        if self.signer is None:
            raise CommandError("no command key configured: the console cannot sign commands")
        with self.fleet.lock:
            if atm_id not in self.fleet.atms:
                raise CommandError(f"unknown ATM {atm_id!r}")
        cmd = commands.build(action, args, self.cfg.limit_caps, self.cfg.command_ttl_s)
        topic = topics.command(atm_id)
        payload = cmd.model_dump_json().encode()
        sent = commands.Sent(
            cmd.command_id,
            atm_id,
            action,
            cmd.name,
            dict(cmd.args),
            operator,
            int(time.time() * 1000),
            cmd.expires_ms,
        )
        detail = payload.decode()
        self.store.audit(operator, f"command:{action}", atm_id, "requested", detail, cmd.command_id)
        # In the book before it is published: the ATM's result can arrive within a millisecond, before
        # the audit write below, and a result for a command not in the book is dropped as unknown.
        self.book.add(sent)
        ok = self.publish is not None and self.publish(topic, payload, self.signer.properties(topic, payload))
        if not ok:
            sent.status, sent.detail = "failed", "broker unreachable: not sent"
        self.store.audit(
            operator, f"command:{action}", atm_id, "published" if ok else "publish_failed", "", cmd.command_id
        )
        self.push([("cmd", sent.as_dict())])
        return sent

    def acknowledge(self, operator: str, alarm_id: str) -> Json | None:
        alarm = self.fleet.acknowledge(alarm_id, operator)
        if alarm is None:
            return None
        self.store.audit(operator, "ack_alarm", str(alarm["atm_id"] or alarm["subject"]), "ok", alarm_id)
        self.push([("alarm", alarm)])
        return alarm
