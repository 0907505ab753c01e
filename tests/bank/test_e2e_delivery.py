"""End-to-end delivery: the host keeps an MCU report / abandon until the BANK answers it, not the broker.

A subscriber that takes messages and drops them (here: a plain broker without access rules, where a
rogue client joins the bank's `$share` group), or a broker killed between the PUBACK and the bank,
used to lose "cash taken" reports: the outbox forgot them on PUBACK. Both backends.
"""

import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from atm_bank import ledger
from atm_bank.db import Cursor, Database
from atm_msg import topics
from atm_msg.schemas import TxnResult
from atm_tools.mosquitto import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from .helpers import make_world
from .mqtt_helpers import start_link, start_worker, wait_for
from .scenarios import A1

FAST = {"answer_retry_s": 0.3, "answer_retry_max_s": 1.0}


class Eater:
    """A rogue member of the bank's shared group: it takes (and PUBACKs) its share and drops it."""

    def __init__(self, port: int, filters: list[str]) -> None:
        self.eaten: list[str] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="eater", protocol=mqtt.MQTTv5)
        self.client.on_message = self._eat
        subacks: list[ReasonCode] = []
        self.client.on_subscribe = lambda c, u, mid, rcs, p: subacks.extend(rcs)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for f in filters:
            self.client.subscribe(topics.shared(f), qos=1)
        # In the group before the test goes on: every SUBACK back (not a sleep), each one granted.
        wait_for(lambda: len(subacks) == len(filters), what="the eater's SUBACKs")
        assert not any(rc.is_failure for rc in subacks), subacks

    def _eat(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.eaten.append(msg.topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _state(db: Database, txid: str) -> tuple[str, int, int]:
    """The transaction's state, debited amount and how many debit entries the journal holds for it."""

    def fn(cur: Cursor) -> tuple[str, int, int]:
        row = cur.one("SELECT state, debited FROM txns WHERE txid=?", (txid,))
        n = cur.one("SELECT COUNT(DISTINCT entry_id) FROM journal WHERE txid=? AND kind='debit'", (txid,))
        assert row is not None and n is not None
        return str(row[0]), int(row[1]), int(n[0])

    return db.run(fn)


def test_reports_eaten_by_a_rogue_subscriber_still_settle_once(
    broker: Mosquitto, any_db: Database, tmp_path: Path
) -> None:
    w = make_world(any_db, live=True, n_customers=6)
    worker = start_worker(w, broker)
    eater = Eater(broker.port, [topics.txn_report("+"), topics.txn_abandon("+")])
    link = start_link(w, broker, A1, tmp_path, **FAST)
    results: list[TxnResult] = []
    link.on_txn_result = results.append
    paid: list[tuple[str, int]] = []
    for c in w.customers.values():
        req = w.request(A1, c, 200)
        r = link.authorize(req)
        assert r.decision == "approve" and r.txid and r.notes
        link.send_report(r.txid, w.report(A1, r.txid, req.command_nonce, r.notes))
        paid.append((r.txid, r.amount_yuan))
    wait_for(lambda: link.outbox.awaiting() == 0, timeout_s=30, what="every report answered by the bank")
    assert eater.eaten, "the rogue subscriber took nothing: the test did not exercise a loss"
    assert link.counters["resent"] >= 1
    for txid, amount in paid:
        assert _state(w.db, txid) == ("debited", amount, 1)
    # Re-sent reports were answered from the stored state; nothing was posted twice.
    assert w.db.run(ledger.check_balanced) == []
    assert link.counters["answered"] == len(paid)
    eater.close()
    link.stop()
    worker.stop()


def test_abandons_eaten_still_reach_the_bank(broker: Mosquitto, any_db: Database, tmp_path: Path) -> None:
    w = make_world(any_db, live=True, n_customers=4)
    worker = start_worker(w, broker)
    eater = Eater(broker.port, [topics.txn_abandon("+")])
    link = start_link(w, broker, A1, tmp_path, **FAST)
    txids: list[str] = []
    for c in w.customers.values():
        r = link.authorize(w.request(A1, c, 100))
        assert r.decision == "approve" and r.txid
        txids.append(r.txid)
        link.send_abandon(request_id=None, txid=r.txid, reason="not_started", detail="unknownTransaction")
    never_sent = "ab" * 16  # an authorization that timed out before any worker saw it
    link.send_abandon(request_id=never_sent, txid=None, reason="auth_timeout", detail="test")
    wait_for(lambda: link.outbox.awaiting() == 0, timeout_s=30, what="every abandon answered")
    assert eater.eaten
    for txid in txids:
        assert _state(w.db, txid)[0] == "suspect"
    assert (
        w.db.run(lambda cur: cur.one("SELECT 1 FROM requests WHERE request_id=?", (never_sent,))) is not None
    )
    assert w.db.run(ledger.check_balanced) == []
    eater.close()
    link.stop()
    worker.stop()


def test_report_survives_a_broker_killed_before_the_bank_saw_it(
    broker: Mosquitto, any_db: Database, tmp_path: Path
) -> None:
    w = make_world(any_db, live=True)
    worker = start_worker(w, broker)
    link = start_link(w, broker, A1, tmp_path, **FAST)
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, 300)
    r = link.authorize(req)
    assert r.decision == "approve" and r.txid and r.notes
    worker.stop()  # the bank is away: the broker takes the report (PUBACK) and holds it
    link.send_report(r.txid, w.report(A1, r.txid, req.command_nonce, r.notes))
    wait_for(lambda: link.counters["published"] >= 1 and link.outbox.awaiting() == 1, what="report PUBACKed")
    broker.kill()  # SIGKILL: whatever the broker held since its last autosave is gone
    broker.start()
    worker = start_worker(w, broker)
    wait_for(lambda: link.outbox.awaiting() == 0, timeout_s=30, what="the report answered after the restart")
    assert _state(w.db, r.txid) == ("debited", r.amount_yuan, 1)
    assert w.db.run(ledger.check_balanced) == []
    link.stop()
    worker.stop()
