"""Bank worker and ATM link over a real mosquitto: approve, declines, limits, malformed input, restarts."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_bank import ledger
from atm_bank.db import Cursor, SqliteDatabase
from atm_bank.service import BankWorker
from atm_host.banklink.client import BankLink
from atm_host.banklink.errors import OfflineCheckError
from atm_host.banklink.offline import check_amount, check_token
from atm_msg import topics
from atm_msg.reasons import Reason
from atm_msg.schemas import AuthResponse, Birth, Event, TxnResult
from atm_tools.mosquitto import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .helpers import World, make_world
from .mqtt_helpers import Listener, start_link, start_worker, wait_for
from .scenarios import A1, DECLINES

OUTAGE_S = float(os.environ.get("ATM_TEST_OUTAGE_S", "3"))


class Live:
    """A bank worker and ATM links on one broker."""

    def __init__(self, broker: Mosquitto, tmp: Path) -> None:
        self.broker = broker
        self.tmp = tmp
        self.world: World = make_world(SqliteDatabase(tmp / "bank.db"), live=True)
        self.worker: BankWorker = start_worker(self.world, broker)
        self.links: dict[str, BankLink] = {}
        self.results: list[TxnResult] = []

    def link(self, atm: str) -> BankLink:
        if atm not in self.links:
            link = start_link(self.world, self.broker, atm, self.tmp)
            link.on_txn_result = self.results.append
            self.links[atm] = link
        return self.links[atm]

    def close(self) -> None:
        for link in self.links.values():
            link.stop()
        self.worker.stop()

    def balanced(self) -> list[str]:
        def fn(cur: Cursor) -> list[str]:
            return ledger.check_balanced(cur)

        return self.world.db.run(fn)


@pytest.fixture
def live(broker: Mosquitto, tmp_path: Path) -> Iterator[Live]:
    env = Live(broker, tmp_path)
    yield env
    env.close()


def test_approve_dispense_report_debit(live: Live) -> None:
    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    wait_for(lambda: link.fleet is not None, what="fleet config")
    assert link.fleet is not None
    token = w.token(c)
    parsed = check_token(token, link.fleet, time.time())  # the ATM's own offline check
    check_amount(500, parsed, link.fleet, [100, 50, 20, 10])
    req = w.request(A1, c, 500, token=token)
    r = link.authorize(req)
    assert r.decision == "approve" and r.txid and r.notes and r.dispense_token
    link.send_report(r.txid, w.report(A1, r.txid, req.command_nonce, r.notes))
    wait_for(lambda: any(x.txid == r.txid for x in live.results), what="txn result")
    assert [x.outcome for x in live.results] == ["debited"]
    assert live.balanced() == []
    assert live.worker.counters["auth_approve"] == 1


def test_an_abandoned_approval_is_parked_as_suspect_over_mqtt(live: Live) -> None:
    """The ATM never began the dispense: it tells the bank through its outbox; the hold becomes suspect."""
    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    r = link.authorize(w.request(A1, c, 200))
    assert r.decision == "approve" and r.txid
    link.send_abandon(request_id=None, txid=r.txid, reason="not_started", detail="unknownTransaction")
    wait_for(lambda: any(x.txid == r.txid for x in live.results), what="txn result")
    (res,) = live.results
    assert res.outcome == "suspect" and res.detail == "abandoned: not_started"
    assert live.worker.counters["abandon_suspect"] == 1
    assert live.balanced() == []


def test_offline_checks_reject_forgery_expiry_and_limits(live: Live) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    wait_for(lambda: link.fleet is not None, what="fleet config")
    assert link.fleet is not None
    with pytest.raises(OfflineCheckError, match="TOKEN_FORGED"):
        check_token(w.token(c, key=Ed25519PrivateKey.generate()), link.fleet, time.time())
    with pytest.raises(OfflineCheckError, match="TOKEN_EXPIRED"):
        check_token(w.token(c, ttl=30), link.fleet, time.time() + 60)
    tok = check_token(w.token(c), link.fleet, time.time())
    with pytest.raises(OfflineCheckError, match="LIMIT_PER_WITHDRAWAL"):
        check_amount(1010, tok, link.fleet, [100, 50, 20, 10])
    with pytest.raises(OfflineCheckError, match="AMOUNT_INVALID"):
        check_amount(15, tok, link.fleet, [100, 50, 20, 10])


@pytest.mark.parametrize("name", sorted(DECLINES))
def test_each_decline_reason_over_mqtt(live: Live, name: str) -> None:
    scenario, reason = DECLINES[name]
    atm, req = scenario(live.world)
    r = live.link(atm).authorize(req)
    assert (r.decision, r.reason) == ("decline", reason)
    assert live.balanced() == []


def test_limits_at_their_boundaries_over_mqtt(live: Live) -> None:
    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    step = w.cfg.abuse.min_interval_s + 1
    plan = [
        (1010, Reason.LIMIT_PER_WITHDRAWAL),
        (1000, None),
        (990, None),
        (20, Reason.LIMIT_DAILY),
        (10, None),
    ]
    for amount, reason in plan:
        r = link.authorize(w.request(A1, c, amount))
        assert r.reason == reason, (amount, r.reason)
        w.clock.advance(step)
    assert live.balanced() == []


def test_duplicate_delivery_answers_once(live: Live) -> None:
    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    req = w.request(A1, c, 100)
    first = link.authorize(req)
    second = link.authorize(req)  # a retry after a lost answer: same request id
    assert first == second and first.decision == "approve"

    def fn(cur: Cursor) -> int:
        row = cur.one("SELECT COUNT(*) FROM txns")
        return int(row[0]) if row else -1

    assert w.db.run(fn) == 1
    assert live.worker.counters["auth_duplicates"] == 1


def test_malformed_input_is_counted_answered_and_survived(live: Live) -> None:
    link = live.link(A1)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="garbage", protocol=mqtt.MQTTv5)
    got: list[AuthResponse] = []
    client.on_message = lambda c, u, m: got.append(AuthResponse.model_validate_json(m.payload))
    client.connect("127.0.0.1", live.broker.port)
    subacks: list[object] = []
    client.on_subscribe = lambda c, u, mid, rcs, p: subacks.extend(rcs)
    client.loop_start()
    client.subscribe(topics.auth_response(A1) + "/garbage", qos=1)
    wait_for(lambda: len(subacks) == 1, what="SUBACK")  # subscribed before the garbage goes out
    corr = os.urandom(16)
    for payload in (b"\xff\xfe not json", b'{"v": 1}', b'{"v": 2, "request_id": "x"}', b"[]" * 1000):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.auth_response(A1) + "/garbage"
        props.CorrelationData = corr
        client.publish(topics.auth_request(A1), payload, qos=1, properties=props).wait_for_publish(5)
    client.publish(topics.txn_report(A1), b'{"nonsense": true}', qos=1).wait_for_publish(5)
    wait_for(lambda: live.worker.counters["malformed"] == 5, what="malformed count")
    wait_for(lambda: len(got) == 4, what="MALFORMED answers")
    assert {(g.reason, g.request_id) for g in got} == {(Reason.MALFORMED, corr.hex())}
    client.loop_stop()
    client.disconnect()
    w = live.world
    c = next(iter(w.customers.values()))
    assert link.authorize(w.request(A1, c, 100)).decision == "approve"  # the consumer is still alive


def test_broker_hard_restart_mid_transaction_keeps_the_report(live: Live) -> None:
    w = live.world
    c = next(iter(w.customers.values()))
    link = live.link(A1)
    req = w.request(A1, c, 300)
    r = link.authorize(req)
    assert r.decision == "approve" and r.txid and r.notes
    live.worker.stop()  # the bank is away; its persistent session stays on the broker
    link.send_report(r.txid, w.report(A1, r.txid, req.command_nonce, r.notes))
    # The broker's PUBACK; the outbox keeps the report until the bank's answer (test_e2e_delivery.py).
    wait_for(lambda: link.counters["broker_acks"] >= 1, what="broker ack of the report")
    assert link.outbox.awaiting() == 1
    # autosave_interval 1 s, but mosquitto saves when `last + 1 < now` in whole seconds, so up to ~2 s
    # apart (a fixed 1.5 s sleep made this test flaky): wait for a save that began after the ack.
    saves = _saves(live)
    wait_for(lambda: _saves(live) >= saves + 2, 10, what="two broker autosaves after the report")
    live.broker.kill()  # SIGKILL: only the persistence file survives
    live.broker.start()
    live.worker = start_worker(w, live.broker)  # same client id: the queued report comes back
    wait_for(
        lambda: any(x.txid == r.txid for x in live.results),
        15,
        what=f"txn result after restart (worker {dict(live.worker.counters)}): {live.broker.log_tail(30)}",
    )
    assert [x.outcome for x in live.results if x.txid == r.txid][:1] == ["debited"]
    assert live.balanced() == []


def _saves(live: Live) -> int:
    try:
        return live.broker.log_path.read_text(errors="replace").count("Saving in-memory database")
    except OSError:
        return 0


def _outage(live: Live, outage_s: float, restart_host: bool) -> None:
    listener = Listener(live.broker.port, [topics.event(A1)], client_id="console-listener")
    link = live.link(A1)
    before = [link.send_event("boot", "info", {"n": -1})]
    wait_for(lambda: len(listener.received(topics.event(A1))) == 1, what="first event")
    live.broker.stop()
    wait_for(lambda: not link.connected, what="link noticing the outage")
    sent = list(before)
    deadline = time.monotonic() + outage_s
    n = 0
    while time.monotonic() < deadline:
        sent.append(link.send_event("cassette_threshold", "warning", {"n": n}))
        n += 1
        time.sleep(min(0.05, outage_s / 40))
    if restart_host:
        link.stop()
        live.links.pop(A1)
    assert link.outbox.depth() == len(sent) - 1
    live.broker.start()
    link = live.link(A1)
    wait_for(lambda: link.outbox.depth() == 0, 30, what="outbox drained")
    wait_for(lambda: len({e.event_id for e in _events(listener)}) == len(sent), 30, what="all events")
    seen: list[str] = []
    for e in _events(listener):
        if e.event_id not in seen:
            seen.append(e.event_id)
    assert seen == [e.event_id for e in sent]  # nothing lost, order kept
    listener.close()


def _events(listener: Listener) -> list[Event]:
    return [Event.model_validate_json(p) for p in listener.received(topics.event(A1))]


def test_outage_outbox_drains_in_order(live: Live) -> None:
    _outage(live, OUTAGE_S, restart_host=False)


def test_host_restart_during_outage_loses_nothing(live: Live) -> None:
    _outage(live, 1.0, restart_host=True)


@pytest.mark.slow
def test_sixty_second_outage(live: Live) -> None:
    _outage(live, 60.0, restart_host=False)


def test_birth_and_death_with_sequence_numbers(live: Live) -> None:
    listener = Listener(live.broker.port, [topics.birth(A1), topics.death(A1)], client_id="console-2")
    link = live.link(A1)
    wait_for(lambda: len(listener.received(topics.birth(A1))) >= 1, what="birth")
    birth = Birth.model_validate_json(listener.received(topics.birth(A1))[-1])
    assert birth.seq == 0
    # Cut the ATM off without a clean disconnect: the broker publishes its Will (the death).
    sock = link.client.socket()
    assert sock is not None
    link.client.loop_stop()
    sock.close()
    wait_for(lambda: len(listener.received(topics.death(A1))) >= 1, 30, what="death (Will)")
    death = listener.received(topics.death(A1))[-1]
    assert f'"bd_seq":{birth.bd_seq}' in death.decode()
    listener.close()
    live.links.pop(A1)
