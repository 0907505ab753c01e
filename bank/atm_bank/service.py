"""A bank worker: consumes auth requests and transaction reports over MQTT 5 shared subscriptions.

Malformed input is answered (when it names a response topic) with a MALFORMED decline, counted and
logged; no payload can crash the consumer. The worker uses a persistent session under a fixed client
id, so reports queued while it is down are delivered when it (or its restart) comes back.

Group commit: the network thread only queues messages; one database thread takes every message that is
waiting (up to BATCH_MAX), decides them all in one transaction (each in its own savepoint), and only
after the commit publishes the answers (QoS 1) and acknowledges the requests (manual PUBACK). A worker
killed at any point leaves each request either committed and answerable from the requests table, or
unacknowledged on the broker, which delivers it again.
"""

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from atm_msg import mqtt as msg_mqtt
from atm_msg import topics
from atm_msg.reasons import Reason
from atm_msg.schemas import (
    MAX_MESSAGE_BYTES,
    AuthRequest,
    FleetConfig,
    MaintRequest,
    MaintResponse,
    TxnAbandon,
    TxnReport,
    TxnResult,
)
from atm_msg.settings import BrokerSettings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from .core import Bank, Decision, decline
from .db import Cursor, Database
from .maint import MaintSigner
from .settle import Settler

log = logging.getLogger("atm_bank.service")

RESPONSE_EXPIRY_S = 30  # an answer older than this is useless to the ATM: its customer has gone
SESSION_EXPIRY_S = 3600
# Messages per transaction. Bounded so one commit never holds the write lock (and the first request of
# the batch) for long; below the broker's max_inflight_messages (100), so a full batch is always possible.
BATCH_MAX = 64
_REQ_OPTS = SubscribeOptions(qos=1, retainAsPublished=True)
__all__ = ["MAX_MESSAGE_BYTES", "BankWorker", "wait_connected"]


def _props(**values: Any) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


@dataclass
class _Job:
    """One received message on its way through a batch."""

    msg: mqtt.MQTTMessage
    atm: str
    auth: AuthRequest | None = None
    report: TxnReport | None = None
    abandon: TxnAbandon | None = None
    maint: MaintRequest | None = None
    result: Decision | TxnResult | MaintResponse | str | Exception | None = None


class BankWorker:
    """One worker process's MQTT side: subscribe, validate, decide in batches, answer, acknowledge."""

    def __init__(
        self,
        name: str,
        broker: BrokerSettings,
        bank: Bank,
        settler: Settler,
        fleet: FleetConfig | None = None,
        group: str = topics.SHARE_GROUP,
        maint: MaintSigner | None = None,
    ) -> None:
        self.name = name
        self.broker = broker
        self.group = group
        self.bank = bank
        self.settler = settler
        self.fleet = fleet
        # Maintenance tokens for operators' signed commands (none issued without configured operator keys).
        self.maint = maint or MaintSigner(bank.cfg.operator_keys, bank.clock)
        self.counters: Counter[str] = Counter()
        self.connected = threading.Event()
        self.on_handled: Callable[[str], None] | None = None
        self.batches: Counter[int] = Counter()  # batch size -> how many (for the benchmark and tests)
        self._reply_props = _props(MessageExpiryInterval=RESPONSE_EXPIRY_S)
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        # manual_ack: the PUBACK for a request goes out only after its decision is committed and answered.
        self.client = msg_mqtt.new_client(broker, name, manual_ack=True, max_inflight=100)
        state = _props()
        self.client.will_set(f"{topics.BANK_STATE}/{name}", b"offline", qos=1, retain=True, properties=state)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # ----- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name=f"{self.name}-db", daemon=True)
            self._worker.start()
        msg_mqtt.connect(self.broker, self.client, session_expiry_s=SESSION_EXPIRY_S)

    def stats(self) -> dict[str, int]:
        """Messages handled, transactions (batches) used, database conflicts retried."""
        return {
            "messages": sum(size * n for size, n in self.batches.items()),
            "batches": sum(self.batches.values()),
            "max_batch": max(self.batches, default=0),
            "db_conflicts": int(getattr(self.bank.db, "conflicts", 0)),
        }

    def stop(self, timeout_s: float = 5.0) -> None:
        """Finish the messages already received, then disconnect cleanly (the session stays on the broker).

        The database thread is drained first so every answer and PUBACK is queued before DISCONNECT
        (paho writes its queue in order): a request answered just before stop is not left in flight.
        """
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout_s)
            self._worker = None
        log.info("%s: stats %s", self.name, json.dumps(self.stats()))
        self.client.disconnect()
        deadline = time.monotonic() + timeout_s
        while self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        if rc.is_failure:
            log.error("%s: connect refused: %s", self.name, rc)
            return
        group = self.group
        client.subscribe(
            [
                # retainAsPublished: a request published with the retain flag is recognisable live
                # too, not only when the broker replays it to a (re)starting worker.
                (topics.shared(topics.auth_request("+"), group), _REQ_OPTS),
                (topics.shared(topics.txn_report("+"), group), _REQ_OPTS),
                (topics.shared(topics.txn_abandon("+"), group), _REQ_OPTS),
                (topics.shared(topics.maint_request("+"), group), _REQ_OPTS),
            ]
        )
        client.publish(f"{topics.BANK_STATE}/{self.name}", b"online", qos=1, retain=True)
        if self.fleet is not None:
            client.publish(topics.FLEET_CONFIG, self.fleet.model_dump_json(), qos=1, retain=True)
        self.connected.set()
        log.info("%s: connected", self.name)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        rc: ReasonCode,
        props: Properties | None,
    ) -> None:
        self.connected.clear()
        log.warning("%s: disconnected: %s", self.name, rc)

    # ----- messages ---------------------------------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(msg)  # the network thread only queues: decisions happen on the database thread

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < BATCH_MAX:
                try:
                    nxt = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                self.handle_batch(batch)
            except Exception:  # never let the consumer thread die
                self.counters["errors"] += len(batch)
                log.exception("%s: error handling a batch of %d", self.name, len(batch))
                for msg in batch:
                    self.client.ack(msg.mid, msg.qos)
            if stop:
                return

    def handle_batch(self, batch: Sequence[mqtt.MQTTMessage]) -> None:
        """Validate, decide in one transaction, answer, then acknowledge every message of the batch."""
        self.batches[len(batch)] += 1
        jobs: list[_Job] = []
        for msg in batch:
            job = self._parse(msg)
            if job is not None:
                jobs.append(job)
        self._decide(jobs)
        for job in jobs:
            try:
                self._answer(job)
            except Exception:  # a consumer never dies on a message: count it, log it, go on
                self.counters["errors"] += 1
                log.exception("%s: error answering %s", self.name, job.msg.topic)
        for msg in batch:  # in arrival order, after the commit and after the answers were queued
            self.client.ack(msg.mid, msg.qos)

    def _parse(self, msg: mqtt.MQTTMessage) -> _Job | None:
        """A job to decide, or None when the message was answered (malformed) or ignored here."""
        if len(msg.payload) > MAX_MESSAGE_BYTES:  # the broker's bound, checked again: never parse it
            self.counters["oversize"] += 1
            log.warning("%s: %d-byte message on %s refused unparsed", self.name, len(msg.payload), msg.topic)
            return None
        if msg.retain:
            self._retained(msg)
            return None
        atm = topics.atm_of(msg.topic)
        if atm is None:
            self._malformed(msg, "topic")
            return None
        if msg.topic == topics.auth_request(atm):
            try:
                return _Job(msg, atm, auth=AuthRequest.model_validate_json(msg.payload))
            except ValidationError as exc:
                self._malformed(msg, exc)
                correlation = _correlation(msg)
                rid = correlation.hex() if len(correlation) == 16 else "0" * 32
                body = decline(rid, Reason.MALFORMED).model_dump_json()
                self._reply(msg, atm, topics.auth_response(atm), body, correlation)
                return None
        if msg.topic == topics.txn_report(atm):
            try:
                return _Job(msg, atm, report=TxnReport.model_validate_json(msg.payload))
            except ValidationError as exc:
                self._malformed(msg, exc)
                return None
        if msg.topic == topics.txn_abandon(atm):
            try:
                return _Job(msg, atm, abandon=TxnAbandon.model_validate_json(msg.payload))
            except ValidationError as exc:
                self._malformed(msg, exc)
                return None
        if msg.topic == topics.maint_request(atm):
            try:
                return _Job(msg, atm, maint=MaintRequest.model_validate_json(msg.payload))
            except ValidationError as exc:
                self._malformed(msg, exc)
                correlation = _correlation(msg)
                rid = correlation.hex() if len(correlation) == 16 else "0" * 32
                body = MaintResponse(request_id=rid, ok=False, reason="malformed").model_dump_json()
                self._reply(msg, atm, topics.maint_response(atm), body, correlation)
                return None
        self.counters["unexpected_topic"] += 1
        return None

    def _decide(self, jobs: list[_Job]) -> None:
        """Every job's decision, one transaction per database (the bank and settler share one in a worker)."""
        by_db: dict[int, tuple[Database, list[tuple[_Job, Callable[[Cursor], Any]]], list[str]]] = {}
        # Authorizations of the batch, in order: those sharing no subject with an earlier one send their
        # snapshot read ahead (Bank.deciders).
        auths = iter(self.bank.deciders([(j.auth, j.atm) for j in jobs if j.auth is not None]))
        for job in jobs:
            if job.auth is not None:
                db, fn = self.bank.db, next(auths)
                locks = self.bank.locks_for(job.auth, job.atm)
            elif job.report is not None:
                db, fn = self.settler.db, self.settler.settler(job.report, job.atm)
                locks = self.settler.locks_for(job.report, job.atm)
            elif job.abandon is not None:
                db, fn = self.settler.db, _answered_abandon(self.settler, job.abandon, job.atm)
                locks = self.settler.abandon_locks(job.abandon, job.atm)
            elif job.maint is not None:
                db, fn = self.bank.db, self.maint.decider(job.maint, job.atm)
                locks = self.maint.locks_for(job.atm)
            else:
                continue
            entry = by_db.setdefault(id(db), (db, [], []))
            entry[1].append((job, fn))
            entry[2].extend(locks)
        for db, work, locks in by_db.values():
            try:
                results: list[Any] = list(db.run_batch([fn for _, fn in work], locks))
            except Exception as exc:  # the whole transaction failed: nothing was committed, nothing answered
                log.error("%s: batch of %d failed: %s", self.name, len(work), exc)
                results = [exc] * len(work)
            for (job, _), result in zip(work, results, strict=True):
                job.result = result

    def _answer(self, job: _Job) -> None:
        msg, atm, result = job.msg, job.atm, job.result
        if isinstance(result, Exception):
            self.counters["errors"] += 1
            log.error("%s: error handling %s: %r", self.name, msg.topic, result)
            return
        if isinstance(result, Decision) and job.auth is not None:
            self.counters["auth_" + result.response.decision] += 1
            if not result.fresh:
                self.counters["auth_duplicates"] += 1
            body = result.response_json or result.response.model_dump_json()
            self._reply(msg, atm, topics.auth_response(atm), body, _correlation(msg))
            for alarm in result.alarms:
                self.client.publish(topics.CONSOLE_ALARM, alarm.model_dump_json(), qos=1)
            if self.on_handled is not None:
                self.on_handled(job.auth.request_id)
        elif job.abandon is not None:
            self.counters["abandon_" + (result.outcome if isinstance(result, TxnResult) else "closed")] += 1
            what = job.abandon.txid or job.abandon.request_id
            log.warning("%s: %s abandoned %s (%s)", self.name, atm, what, job.abandon.reason)
            # Always answered (the host keeps the abandon until an answer carries its correlation data):
            # the transaction's state on txn/result, or the request's stored answer on auth/res.
            if isinstance(result, TxnResult):
                self._reply(msg, atm, topics.txn_result(atm), result.model_dump_json(), _correlation(msg))
            elif isinstance(result, str):
                self._reply(msg, atm, topics.auth_response(atm), result, _correlation(msg))
        elif isinstance(result, MaintResponse):
            self.counters["maint_granted" if result.ok else "maint_refused"] += 1
            self._reply(msg, atm, topics.maint_response(atm), result.model_dump_json(), _correlation(msg))
        elif isinstance(result, TxnResult):
            self.counters["report_" + result.outcome] += 1
            self._reply(msg, atm, topics.txn_result(atm), result.model_dump_json(), _correlation(msg))

    def _reply(self, msg: mqtt.MQTTMessage, atm: str, default_topic: str, body: str, corr: bytes) -> None:
        topic = default_topic
        props_in = msg.properties
        wanted = getattr(props_in, "ResponseTopic", None) if props_in is not None else None
        # Answer only under the same ATM's own tree: a request cannot aim the bank at another topic.
        if (
            isinstance(wanted, str)
            and topics.atm_of(wanted) == atm
            and "+" not in wanted
            and "#" not in wanted
        ):
            topic = wanted
        # One Properties object for every answer: paho packs it into the packet inside publish(), and
        # only this (database) thread answers. Building a fresh one cost ~35 us a message (measured).
        props = self._reply_props if corr else _props(MessageExpiryInterval=RESPONSE_EXPIRY_S)
        if corr:
            props.CorrelationData = corr
        self.client.publish(topic, body, qos=1, properties=props)

    def _retained(self, msg: mqtt.MQTTMessage) -> None:
        """A request with the retain flag: dropped, counted, logged, and cleared on the broker.

        A retained request would be replayed to every worker that (re)subscribes (once: 1 publish,
        3 answers). mosquitto 2.0 cannot refuse the retain flag per topic, so the bank clears it (an
        empty retained publish); the empty message that comes back is dropped silently.
        """
        if not msg.payload:
            return
        self.counters["retained_dropped"] += 1
        log.warning("%s: retained request on %s dropped and cleared", self.name, msg.topic)
        self.client.publish(msg.topic, b"", qos=1, retain=True)

    def _malformed(self, msg: mqtt.MQTTMessage, why: object) -> None:
        self.counters["malformed"] += 1
        log.warning(
            "%s: malformed message on %s (%d bytes): %s",
            self.name,
            msg.topic,
            len(msg.payload),
            str(why)[:300],
        )


def _answered_abandon(settler: Settler, ab: TxnAbandon, atm: str) -> Callable[[Cursor], TxnResult | str]:
    """The settler's abandon, plus an answer for every case: the ATM re-sends an unanswered abandon.

    TxnResult: the transaction's state (or rejected: no such transaction of this ATM). str: the stored
    answer (AuthResponse JSON) of the request it closed or found already answered.
    """
    inner = settler.abandoner(ab, atm)

    def fn(cur: Cursor) -> TxnResult | str:
        result = inner(cur)
        if result is not None:
            return result
        if ab.request_id is not None:
            row = cur.one(
                "SELECT response FROM requests WHERE request_id=? AND atm_id=?", (ab.request_id, atm)
            )
            if row is not None:
                return str(row[0])
            return decline(ab.request_id, Reason.MALFORMED).model_dump_json()
        return TxnResult(txid=ab.txid or "0" * 32, outcome="rejected", detail="abandon: no such transaction")

    return fn


def _correlation(msg: mqtt.MQTTMessage) -> bytes:
    props = msg.properties
    value = getattr(props, "CorrelationData", None) if props is not None else None
    return bytes(value) if isinstance(value, bytes | bytearray) else b""


def wait_connected(worker: BankWorker, timeout_s: float = 10.0) -> bool:
    """Block until the worker is connected and subscribed (best effort)."""
    ok = worker.connected.wait(timeout_s)
    time.sleep(0.05)
    return ok
