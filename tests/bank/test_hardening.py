"""Broker and bank hardening: message size bound, retained requests, strict schemas, clock under the lock.

Over a real broker with the deployed access rules (TlsEnv); the decision clock on both backends.
"""

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from atm_bank.config import BankConfig
from atm_bank.db import Database
from atm_bank.service import MAX_MESSAGE_BYTES as BANK_BOUND
from atm_msg import topics
from atm_msg.reasons import Reason
from atm_msg.schemas import (
    MAX_MESSAGE_BYTES,
    AuthRequest,
    AuthResponse,
    Birth,
    CommandResult,
    Event,
    FaceProbe,
    Telemetry,
    TxnReport,
)
from atm_tools import mosquitto as tool
from atm_tools.mosquitto import find_mosquitto
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from .helpers import MODEL, World, make_world
from .mqtt_helpers import start_worker, wait_for
from .scenarios import A1, A2
from .test_acl_tls import REPO, TlsEnv, raw_client


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TlsEnv]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto binary not installed (apt-get install mosquitto)")
    env = TlsEnv(tmp_path)
    yield env
    env.broker.stop()


def _atm(env: TlsEnv, cn: str, client_id: str) -> tuple[mqtt.Client, list[bytes]]:
    client, _, connected = raw_client(env, cn)
    client._client_id = client_id.encode()  # pyright: ignore[reportPrivateUsage]
    answers: list[bytes] = []
    client.on_message = lambda c, u, m: answers.append(bytes(m.payload))
    client.connect("127.0.0.1", env.broker.port)
    client.loop_start()
    assert connected.wait(10)
    client.subscribe(topics.auth_response(cn), qos=1)
    return client, answers


def _publish(client: mqtt.Client, atm: str, body: str | bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topics.auth_response(atm)
    props.CorrelationData = b"\x01" * 16
    return client.publish(topics.auth_request(atm), body, qos=1, retain=retain, properties=props)


# ----- message size ---------------------------------------------------------------------------------
def _largest_auth_request(w: World) -> AuthRequest:
    c = next(iter(w.customers.values()))
    req = w.request(A1, c, 1_000_000)
    worst = -2.2250738585072014e-308  # the longest float repr JSON can carry (24 characters)
    face = FaceProbe(model_id="m" * 64, template_version=1, embedding=[worst] * 1024, liveness=1, quality=1)
    return req.model_copy(update={"face": face, "qr_token": "Q" * 400, "atm_id": "A" * 32})


def test_the_bound_covers_the_largest_legitimate_message(world: World) -> None:
    size = len(_largest_auth_request(world).model_dump_json().encode())
    assert 20_000 < size < MAX_MESSAGE_BYTES // 2, size
    assert tool.MESSAGE_SIZE_LIMIT == MAX_MESSAGE_BYTES == BANK_BOUND
    conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    assert re.search(rf"^message_size_limit {MAX_MESSAGE_BYTES}$", conf, re.M)
    assert re.search(rf"^max_packet_size {tool.MAX_PACKET_SIZE}$", conf, re.M)
    assert f"message_size_limit {MAX_MESSAGE_BYTES}" in tool.Mosquitto(Path("/nonexistent")).config_text()


def test_an_oversized_publish_never_reaches_the_bank(tls: TlsEnv) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    attacker, _ = _atm(tls, A2, "raw-a2-big")
    disconnected = threading.Event()
    attacker.on_disconnect = lambda *a: disconnected.set()  # pyright: ignore[reportUnknownLambdaType]
    big = json.dumps({"v": 1, "pad": "x" * (1 << 20)})
    _publish(attacker, A2, big)
    assert disconnected.wait(10), "the broker kept a client that sent a 1 MiB packet"
    # A legitimate request of the largest size still goes through, and is answered.
    atm, answers = _atm(tls, A1, "raw-a1")
    c = next(iter(w.customers.values()))
    _publish(atm, A1, w.request(A1, c, 100).model_dump_json()).wait_for_publish(5)
    wait_for(lambda: len(answers) == 1, what="answer to the legitimate request")
    assert worker.counters["malformed"] == 0 and worker.counters["oversize"] == 0
    attacker.loop_stop()
    atm.loop_stop()
    atm.disconnect()
    worker.stop()


def test_the_bank_refuses_an_oversized_payload_itself(tls: TlsEnv) -> None:
    """Defence in depth: a broker configured without the bound still cannot make the bank parse 1 MiB."""
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    msg = mqtt.MQTTMessage(mid=0, topic=topics.auth_request(A1).encode())
    msg.payload = b"{" + b" " * (MAX_MESSAGE_BYTES + 1) + b"}"
    worker.handle_batch([msg])
    assert worker.counters["oversize"] == 1
    assert worker.counters["auth_approve"] + worker.counters["auth_decline"] == 0
    worker.stop()


# ----- retained requests ----------------------------------------------------------------------------
def test_retained_requests_are_dropped_counted_and_cleared(tls: TlsEnv) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    atm, answers = _atm(tls, A1, "raw-a1-retain")
    c = next(iter(w.customers.values()))
    _publish(atm, A1, w.request(A1, c, 100).model_dump_json(), retain=True).wait_for_publish(5)
    wait_for(lambda: worker.counters["retained_dropped"] == 1, what="the retained request dropped")
    worker.stop()
    # Restarted workers (three, like the incident): nothing is replayed to any of them. The first takes
    # the stopped worker's name, hence its session (what `serve` does): no offline member of the share
    # is left to be handed a request below.
    names = ["bank-worker-t", "bank-w1", "bank-w2"]
    workers = [start_worker(w, tls.broker, name=n, **tls.client_files("bank")) for n in names]
    probe, subacks, up = raw_client(tls, "bank")
    probe._client_id = b"bank-probe"  # pyright: ignore[reportPrivateUsage]
    barrier = f"{topics.ROOT}/test/barrier"  # no worker subscribes to it
    retained: list[str] = []
    crossed = threading.Event()
    probe.on_message = lambda cl, u, m: crossed.set() if m.topic == barrier else retained.append(m.topic)
    probe.connect("127.0.0.1", tls.broker.port)
    probe.loop_start()
    assert up.wait(10)
    probe.subscribe(topics.auth_request("+"), qos=1)  # a plain subscription gets retained messages
    probe.subscribe(barrier, qos=1)
    wait_for(lambda: len(subacks) == 2, what="the probe's SUBACKs")
    assert not any(rc.is_failure for rc in subacks), subacks
    # A barrier, not a sleep: the broker queues a subscription's retained messages to the probe when
    # it takes the SUBSCRIBE, so the probe's own message, published after, arrives behind them.
    probe.publish(barrier, b"barrier", qos=1).wait_for_publish(5)
    assert crossed.wait(10), "the barrier message never came back"
    assert retained == []  # the bank cleared it on the broker
    # A second barrier for the workers: fresh requests (not retained) are answered, one per worker
    # if the broker spreads them; a replay of the retained one would be an answer and a decision more.
    fresh = [w.request(A1, c, 100) for _ in workers]
    for req in fresh:
        _publish(atm, A1, req.model_dump_json()).wait_for_publish(5)
    wait_for(lambda: len(answers) >= len(fresh), what="the answers to the fresh requests")
    got = sorted(AuthResponse.model_validate_json(a).request_id for a in answers)
    assert got == sorted(r.request_id for r in fresh)
    assert sum(wk.counters["auth_approve"] + wk.counters["auth_decline"] for wk in workers) == len(fresh)
    for wk in workers:
        wk.stop()
    probe.loop_stop()
    atm.loop_stop()


# ----- strict schemas ------------------------------------------------------------------------------
def _valid(w: World) -> dict[str, Any]:
    c = next(iter(w.customers.values()))
    return json.loads(w.request(A1, c, 100).model_dump_json())


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("amount_yuan",), "100"),  # str as int: was approved and paid
        (("amount_yuan",), True),  # bool as int: became 1 yuan
        (("amount_yuan",), 100.0),  # float as int
        (("ts_ms",), "1"),
        (("qr_token",), 12345678901),  # int as str
        (("face", "liveness"), "0.99"),  # str as float
        (("face", "liveness"), True),  # bool as float
        (("face", "template_version"), True),
        (("face", "embedding"), ["0.1"] * 128),  # list of str as list of float
        (("cassettes",), [{"v": 1, "denomination": "100", "count": 5, "status": "ok"}] * 4),
        (("cassettes",), [{"v": 1, "denomination": 100, "count": True, "status": "ok"}] * 4),
        (("v",), "1"),
    ],
)
def test_auth_request_fields_are_strict(world: World, path: tuple[str, ...], bad: object) -> None:
    body = _valid(world)
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(ValidationError):
        AuthRequest.model_validate_json(json.dumps(body))
    with pytest.raises(ValidationError):
        AuthRequest.model_validate(body)


_CAS = [{"v": 1, "denomination": 100, "count": 5, "status": "ok"}] * 4
_OTHERS: list[tuple[type[BaseModel], dict[str, Any], str, object]] = [
    (CommandResult, {"command_id": "a" * 32, "atm_id": "A", "ok": True}, "ok", 1),  # int as bool
    (CommandResult, {"command_id": "a" * 32, "atm_id": "A", "ok": True}, "ok", "true"),
    (
        Telemetry,
        {"atm_id": "A", "seq": 0, "ts_ms": 0, "state": "in_service", "cassettes": _CAS},
        "counters",
        {"x": "1"},
    ),
    (
        Telemetry,
        {"atm_id": "A", "seq": 0, "ts_ms": 0, "state": "in_service", "cassettes": _CAS},
        "outbox_depth",
        1.5,
    ),
    (
        Event,
        {"atm_id": "A", "event_id": "a" * 32, "seq": 1, "ts_ms": 0, "kind": "k", "severity": "info"},
        "seq",
        "1",
    ),
    (TxnReport, {"atm_id": "A", "txid": "a" * 32, "report": "00", "ts_ms": 0}, "ts_ms", False),
    (TxnReport, {"atm_id": "A", "txid": "a" * 32, "report": "00", "ts_ms": 0}, "report", 0),
    (
        Birth,
        {
            "atm_id": "A",
            "bd_seq": 0,
            "seq": 0,
            "ts_ms": 0,
            "device_id": "0" * 16,
            "host_version": "1",
            "config_version": 0,
            "cassettes": _CAS,
        },
        "bd_seq",
        "0",
    ),
]


@pytest.mark.parametrize(("model", "valid", "field", "bad"), _OTHERS)
def test_other_schemas_are_strict(
    model: type[BaseModel], valid: dict[str, Any], field: str, bad: object
) -> None:
    model.model_validate_json(json.dumps(valid))  # the valid payload parses
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps({**valid, field: bad}))
    with pytest.raises(ValidationError):
        model.model_validate({**valid, field: bad})


def test_enums_still_parse_from_json() -> None:
    ok = AuthResponse.model_validate_json(
        AuthResponse(request_id="a" * 32, decision="decline", reason=Reason.MALFORMED).model_dump_json()
    )
    assert ok.reason == Reason.MALFORMED
    with pytest.raises(ValidationError):
        AuthResponse.model_validate_json(
            '{"v":1,"request_id":"' + "a" * 32 + '","decision":"decline","reason":"NOPE"}'
        )


@pytest.mark.parametrize("bad", ['"100"', "true"])
def test_coerced_amount_is_declined_malformed_over_mqtt(tls: TlsEnv, bad: str) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    atm, answers = _atm(tls, A1, "raw-a1-strict")
    body = json.dumps(_valid(w)).replace('"amount_yuan": 100', f'"amount_yuan": {bad}')
    assert bad in body
    _publish(atm, A1, body).wait_for_publish(5)
    wait_for(lambda: len(answers) == 1, what="the answer")
    resp = AuthResponse.model_validate_json(answers[0])
    assert resp.decision == "decline" and resp.reason == Reason.MALFORMED
    assert worker.counters["malformed"] == 1 and worker.counters["auth_approve"] == 0
    atm.loop_stop()
    atm.disconnect()
    worker.stop()


# ----- the decision clock is read under the lock ---------------------------------------------------
def _cfg(**abuse: object) -> BankConfig:
    return BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.6}}, "abuse": abuse})


def test_a_decider_made_before_the_lock_decides_with_the_time_it_got_the_lock(any_db: Database) -> None:
    """B is built (clock read) first but gets the lock second: it must not see A's later attempt as
    being in its future (TOO_FREQUENT with a negative interval)."""
    w = make_world(any_db, _cfg(min_interval_s=1))
    c = next(iter(w.customers.values()))
    b = w.bank.decider(w.request(A1, c, 10), A1)
    w.clock.advance(0.5)
    a = w.bank.decider(w.request(A1, c, 10), A1)
    da = w.db.run(a, w.bank.locks_for(a.req, A1))
    assert da.response.decision == "approve"
    w.clock.advance(1.0)  # B gets the lock 1 s after A's attempt: allowed
    db_ = w.db.run(b, w.bank.locks_for(b.req, A1))
    assert db_.response.decision == "approve", db_.response.reason
