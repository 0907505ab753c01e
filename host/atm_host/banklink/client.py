"""The host's one MQTT client (paho-mqtt 2, MQTT 5): birth/death, auth requests, outbox draining, commands.

No other host module imports paho. Money messages go out at QoS 1 with a response topic, correlation
data, a message expiry and an idempotency key; events and reports go through the outbox. An MCU report
and an abandon stay in the outbox until the bank's own answer (correlation data = their answer key)
arrives, and are re-sent with a doubling backoff until then: a PUBACK only means the broker took them.
"""

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from atm_msg import mqtt as msg_mqtt
from atm_msg import topics
from atm_msg.cmdsign import keys_from_hex, verify
from atm_msg.schemas import (
    AbandonReason,
    AuthRequest,
    AuthResponse,
    Birth,
    Cassette,
    Command,
    CommandResult,
    Death,
    Event,
    FleetConfig,
    MaintRequest,
    MaintResponse,
    Telemetry,
    TxnAbandon,
    TxnReport,
    TxnResult,
)
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from .errors import BankTimeoutError
from .outbox import Outbox, OutboxRecord
from .settings import LinkSettings

log = logging.getLogger("atm_host.banklink")

SESSION_EXPIRY_S = 86400  # commands sent while the ATM is briefly offline still reach it


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.response: AuthResponse | None = None


class BankLink:
    """One ATM's connection to the bank."""

    def __init__(self, settings: LinkSettings, outbox: Outbox, cassettes: list[Cassette]) -> None:
        self.s = settings
        self.atm = settings.atm_id
        self.outbox = outbox
        self.cassettes = cassettes
        self.config_version = 0
        self.fleet: FleetConfig | None = None
        self.counters: dict[str, int] = {
            "malformed": 0,
            "duplicate_responses": 0,
            "published": 0,
            "unsigned_commands": 0,
            "resent": 0,
            "answered": 0,
            "broker_acks": 0,
        }
        self._command_keys = keys_from_hex(settings.command_keys)
        self.on_command: Callable[[Command], tuple[bool, str]] | None = None
        self.on_txn_result: Callable[[TxnResult], None] | None = None
        self.on_fleet: Callable[[FleetConfig], None] | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._waiters: dict[bytes, _Waiter] = {}
        self._maint_waiters: dict[bytes, tuple[threading.Event, list[MaintResponse]]] = {}
        self._seen_commands: OrderedDict[str, None] = OrderedDict()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._early: set[int] = set()
        self._resent: set[int] = set()  # mids of re-sent records (their PUBACK changes nothing)
        self._last_sent = 0
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._bd_seq = outbox.next_counter("bd_seq")
        self.client = msg_mqtt.new_client(settings, self.atm, max_inflight=max(settings.outbox_window, 20))
        self._set_will()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._drainer = threading.Thread(target=self._drain_loop, name=f"outbox-{self.atm}", daemon=True)

    # ----- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        msg_mqtt.connect(self.s, self.client, session_expiry_s=SESSION_EXPIRY_S)
        self._drainer.start()

    def stop(self) -> None:
        """Clean shutdown: the broker does not publish the Will; publish the death ourselves."""
        self._stop.set()
        self._wake.set()
        if self._connected.is_set():
            info = self.client.publish(
                topics.death(self.atm), self._death().model_dump_json(), qos=1, retain=True
            )
            info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self._drainer.join(2)

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def next_seq(self) -> int:
        with self._lock:
            self._seq = (self._seq + 1) % 256
            return self._seq

    def _death(self) -> Death:
        return Death(atm_id=self.atm, bd_seq=self._bd_seq, ts_ms=_now_ms())

    def _set_will(self) -> None:
        self.client.will_set(topics.death(self.atm), self._death().model_dump_json(), qos=1, retain=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        if rc.is_failure:
            log.error("%s: connect refused: %s", self.atm, rc)
            return
        opts = SubscribeOptions(qos=1)
        client.subscribe(
            [
                (topics.auth_response(self.atm), opts),
                (topics.txn_result(self.atm), opts),
                (topics.command(self.atm), opts),
                (topics.atm_config(self.atm), opts),
                (topics.maint_response(self.atm), opts),
                (topics.FLEET_CONFIG, opts),
            ]
        )
        self._publish_birth()
        with self._lock:
            self._inflight.clear()
            self._early.clear()
            self._last_sent = 0
        self._connected.set()
        self._wake.set()

    def _publish_birth(self) -> None:
        with self._lock:
            self._seq = 0
        birth = Birth(
            atm_id=self.atm,
            bd_seq=self._bd_seq,
            seq=0,
            ts_ms=_now_ms(),
            device_id=self.s.device_id,
            host_version=self.s.host_version,
            config_version=self.config_version,
            cassettes=self.cassettes,
        )
        self.client.publish(topics.birth(self.atm), birth.model_dump_json(), qos=1, retain=True)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._connected.clear()
        with self._lock:
            self._inflight.clear()
            self._early.clear()
            self._last_sent = 0
        # The next connection is a new birth: register the Will with the next bdSeq before reconnecting.
        self._bd_seq = self.outbox.next_counter("bd_seq")
        self._set_will()
        log.warning("%s: disconnected: %s", self.atm, rc)

    # ----- authorization ----------------------------------------------------------------------------
    def authorize(self, req: AuthRequest, timeout_s: float = 10.0) -> AuthResponse:
        """Ask the bank; re-send the same request (same idempotency key) until answered or timed out."""
        corr = bytes.fromhex(req.request_id)
        waiter = _Waiter()
        with self._lock:
            self._waiters[corr] = waiter
        payload = req.model_dump_json()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.auth_response(self.atm)
        props.CorrelationData = corr
        props.MessageExpiryInterval = self.s.request_expiry_s
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self._connected.is_set():
                    self.client.publish(topics.auth_request(self.atm), payload, qos=1, properties=props)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BankTimeoutError(f"no answer to {req.request_id} in {timeout_s} s")
                if waiter.event.wait(min(self.s.retry_s, remaining)) and waiter.response is not None:
                    return waiter.response
        finally:
            with self._lock:
                self._waiters.pop(corr, None)

    def request_maint(
        self,
        operator_command: bytes,
        user_properties: list[tuple[str, str]],
        command_nonce: str,
        timeout_s: float = 10.0,
    ) -> MaintResponse:
        """Ask the bank for a maintenance token for the MCU's outstanding nonce (docs/mqtt.md maint/req).

        operator_command and user_properties: the console's signed `maint` command exactly as it arrived
        on atm/v1/{atm}/cmd. Re-sent with the same request id until answered or timed out.
        """
        props_in = dict(user_properties)
        req = MaintRequest(
            request_id=os.urandom(16).hex(),
            atm_id=self.atm,
            device_id=self.s.device_id,
            command_nonce=command_nonce,
            operator_command=operator_command.decode(),
            sig_alg=props_in.get("sig-alg", ""),
            kid=props_in.get("kid", ""),
            sig=props_in.get("sig", ""),
            ts_ms=_now_ms(),
        )
        corr = bytes.fromhex(req.request_id)
        done, box = threading.Event(), list[MaintResponse]()
        with self._lock:
            self._maint_waiters[corr] = (done, box)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.maint_response(self.atm)
        props.CorrelationData = corr
        props.MessageExpiryInterval = self.s.request_expiry_s
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self._connected.is_set():
                    self.client.publish(
                        topics.maint_request(self.atm), req.model_dump_json(), qos=1, properties=props
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BankTimeoutError(
                        f"no answer to maintenance request {req.request_id} in {timeout_s} s"
                    )
                if done.wait(min(self.s.retry_s, remaining)) and box:
                    return box[0]
        finally:
            with self._lock:
                self._maint_waiters.pop(corr, None)

    # ----- records through the outbox ---------------------------------------------------------------
    def send_event(self, kind: str, severity: str, detail: dict[str, str | int] | None = None) -> Event:
        """Store an event durably and send it when the broker is reachable."""
        event = Event.model_validate(
            {
                "atm_id": self.atm,
                "event_id": os.urandom(16).hex(),
                "seq": self.next_seq(),
                "ts_ms": _now_ms(),
                "kind": kind,
                "severity": severity,
                "detail": detail or {},
            }
        )
        self.outbox.put(topics.event(self.atm), event.model_dump_json().encode())
        self._wake.set()
        return event

    def send_report(self, txid: str, report: bytes) -> None:
        """Store the MCU's signed final report durably and send it (the bank settles the ledger with it)."""
        msg = TxnReport(atm_id=self.atm, txid=txid, report=report.hex(), ts_ms=_now_ms())
        # Kept until the bank's txn/result for this txid arrives (answer key = txid), not just the PUBACK.
        self.outbox.put(topics.txn_report(self.atm), msg.model_dump_json().encode(), answer_key=txid)
        self._wake.set()

    def send_abandon(
        self,
        *,
        request_id: str | None,
        txid: str | None,
        reason: AbandonReason,
        detail: str,
    ) -> None:
        """Tell the bank, durably, that this ATM gave up on a request or transaction it saw no note of.

        The bank closes an undecided request and parks an approved reservation as suspect (never a
        reversal on the host's word); reconciliation or a later signed MCU report settles it.
        """
        msg = TxnAbandon(
            atm_id=self.atm,
            request_id=request_id,
            txid=txid,
            reason=reason,
            detail=detail[:200],
            ts_ms=_now_ms(),
        )
        # Kept until the bank answers this abandon (its own correlation id; txn/result or auth/res).
        key = os.urandom(16).hex()
        self.outbox.put(topics.txn_abandon(self.atm), msg.model_dump_json().encode(), answer_key=key)
        self._wake.set()

    def send_telemetry(self, state: str, counters: dict[str, int], max_notes: int | None = None) -> bool:
        """Best-effort telemetry at QoS 0 (a newer sample replaces a lost one); max_notes: the MCU's hello."""
        if not self._connected.is_set():
            return False
        msg = Telemetry.model_validate(
            {
                "atm_id": self.atm,
                "seq": self.next_seq(),
                "ts_ms": _now_ms(),
                "state": state,
                "cassettes": [c.model_dump() for c in self.cassettes],
                "counters": counters,
                "max_notes": max_notes,
                "outbox_depth": self.outbox.depth(),
            }
        )
        return self.client.publish(topics.telemetry(self.atm), msg.model_dump_json(), qos=0).rc == 0

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._drain_once()
                if self._connected.is_set():
                    self._resend_unanswered()
            except Exception:  # the drainer must survive anything; the records stay in the outbox
                log.exception("%s: outbox drain failed", self.atm)

    def _drain_once(self) -> None:
        while self._connected.is_set() and not self._stop.is_set():
            with self._lock:
                room = self.s.outbox_window - len(self._inflight)
                after = self._last_sent
            if room <= 0:
                return
            batch = self.outbox.pending(after=after, limit=room)
            if not batch:
                return
            for rec in batch:
                info = self.client.publish(rec.topic, rec.payload, qos=rec.qos, properties=_answer_props(rec))
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return  # not connected any more: the row stays and is re-sent after reconnect
                if rec.answer_key is not None:
                    self.outbox.mark_sent(
                        rec.row_id, _now_ms(), self.s.answer_retry_s, self.s.answer_retry_max_s
                    )
                with self._lock:
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                        self.counters["broker_acks"] += 1
                        self.outbox.ack(rec.row_id)
                    else:
                        self._inflight[info.mid] = rec.row_id
                    self._last_sent = rec.row_id
                self.counters["published"] += 1

    def _resend_unanswered(self) -> None:
        """Re-send the reports/abandons whose answer is overdue (the bank answers a repeat from its store)."""
        for rec in self.outbox.due(_now_ms(), limit=self.s.outbox_window):
            if not self._connected.is_set() or self._stop.is_set():
                return
            info = self.client.publish(rec.topic, rec.payload, qos=rec.qos, properties=_answer_props(rec))
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            self.outbox.mark_sent(rec.row_id, _now_ms(), self.s.answer_retry_s, self.s.answer_retry_max_s)
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                else:
                    self._resent.add(info.mid)
            self.counters["resent"] += 1
            log.warning("%s: no answer yet to %s (row %d): re-sent", self.atm, rec.topic, rec.row_id)

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode, props: Properties | None
    ) -> None:
        with self._lock:
            if mid in self._resent:
                self._resent.discard(mid)
                return
            row = self._inflight.pop(mid, None)
            if row is None:
                self._early.add(mid)
                if len(self._early) > 10000:
                    self._early.clear()
                return
            self.counters["broker_acks"] += 1
        self.outbox.ack(row)
        self._wake.set()

    # ----- inbound ----------------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            self._dispatch(msg)
        except ValidationError as exc:
            self.counters["malformed"] += 1
            log.warning("%s: malformed message on %s: %s", self.atm, msg.topic, str(exc)[:300])
        except Exception:
            self.counters["malformed"] += 1
            log.exception("%s: error handling %s", self.atm, msg.topic)

    def _dispatch(self, msg: mqtt.MQTTMessage) -> None:
        if msg.topic in (topics.auth_response(self.atm), topics.txn_result(self.atm)):
            corr: Any = (
                getattr(msg.properties, "CorrelationData", None) if msg.properties is not None else None
            )
            if isinstance(corr, bytes | bytearray) and corr and self.outbox.settle(bytes(corr).hex()):
                self.counters["answered"] += 1  # the bank's own answer to a stored report or abandon
                self._wake.set()
                if msg.topic == topics.auth_response(self.atm):
                    return  # an abandon's answer (the request's stored decline), not a waiting request's
        if msg.topic == topics.auth_response(self.atm):
            self._auth_response(msg)
        elif msg.topic == topics.maint_response(self.atm):
            self._maint_response(msg)
        elif msg.topic == topics.txn_result(self.atm):
            result = TxnResult.model_validate_json(msg.payload)
            if self.on_txn_result is not None:
                self.on_txn_result(result)
        elif msg.topic == topics.command(self.atm):
            cmd = Command.model_validate_json(msg.payload)
            props: list[tuple[str, str]] = list(getattr(msg.properties, "UserProperty", None) or [])
            if verify(msg.topic, bytes(msg.payload), props, self._command_keys):
                self._command(cmd)
            else:
                self._refuse_command(cmd)
        elif msg.topic in (topics.FLEET_CONFIG, topics.atm_config(self.atm)):
            fleet = FleetConfig.model_validate_json(msg.payload)
            self.fleet = fleet
            self.config_version = fleet.config_version
            if self.on_fleet is not None:
                self.on_fleet(fleet)

    def _maint_response(self, msg: mqtt.MQTTMessage) -> None:
        """The bank's answer to a maintenance-token request: wake the one waiter, count a repeat."""
        resp = MaintResponse.model_validate_json(msg.payload)
        with self._lock:
            waiter = self._maint_waiters.get(bytes.fromhex(resp.request_id))
        if waiter is None or waiter[0].is_set():
            self.counters["duplicate_responses"] += 1
            return
        waiter[1].append(resp)
        waiter[0].set()

    def _auth_response(self, msg: mqtt.MQTTMessage) -> None:
        resp = AuthResponse.model_validate_json(msg.payload)
        corr: Any = getattr(msg.properties, "CorrelationData", None) if msg.properties is not None else None
        key = bytes(corr) if isinstance(corr, bytes | bytearray) else bytes.fromhex(resp.request_id)
        with self._lock:
            waiter = self._waiters.get(key)
        if waiter is None or waiter.event.is_set() or resp.request_id != key.hex():
            self.counters["duplicate_responses"] += 1
            return
        waiter.response = resp
        waiter.event.set()

    def _refuse_command(self, cmd: Command) -> None:
        """Fail closed: a command no trusted key signed is answered, counted, logged, and not run."""
        self.counters["unsigned_commands"] += 1
        log.warning(
            "%s: refused command %s (%s): signature missing or wrong", self.atm, cmd.command_id, cmd.name
        )
        result = CommandResult(
            command_id=cmd.command_id, atm_id=self.atm, ok=False, detail="refused: signature missing or wrong"
        )
        self.outbox.put(topics.command_result(self.atm), result.model_dump_json().encode())
        self._wake.set()

    def _command(self, cmd: Command) -> None:
        with self._lock:
            if cmd.command_id in self._seen_commands:
                return  # a redelivered command runs once
            self._seen_commands[cmd.command_id] = None
            while len(self._seen_commands) > 1000:
                self._seen_commands.popitem(last=False)
        if cmd.expires_ms < _now_ms():
            ok, detail = False, "expired"
        elif cmd.name == "rebirth":
            self._publish_birth()
            ok, detail = True, "birth re-published"
        elif self.on_command is not None:
            ok, detail = self.on_command(cmd)
        else:
            ok, detail = False, "no handler"
        result = CommandResult(command_id=cmd.command_id, atm_id=self.atm, ok=ok, detail=detail[:200])
        self.outbox.put(topics.command_result(self.atm), result.model_dump_json().encode())
        self._wake.set()


def _answer_props(rec: OutboxRecord) -> Properties | None:
    """Correlation data for a record the bank must answer (its answer key), else none."""
    if rec.answer_key is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = bytes.fromhex(rec.answer_key)
    return props
