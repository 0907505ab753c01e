"""Replays, attempt limits and forged-token floods: refused in the right order, and the console told.

Decision core on SQLite and PostgreSQL; the alarms are also checked on the console topic of a real
broker with the deployed access rules (test_alarms_reach_the_console_over_tls).
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_bank.config import BankConfig
from atm_bank.db import Database, SqliteDatabase
from atm_msg import topics
from atm_msg.reasons import Reason
from atm_msg.schemas import ConsoleAlarm
from atm_tools.mosquitto import find_mosquitto
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .helpers import MODEL, World, make_world
from .mqtt_helpers import start_worker, wait_for
from .scenarios import A1
from .test_acl_tls import TlsEnv, raw_client


def _cfg(**abuse: object) -> BankConfig:
    return BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.6}}, "abuse": abuse})


def test_replayed_token_is_refused_without_burning_the_customers_attempts(any_db: Database) -> None:
    w = make_world(any_db, _cfg(max_attempts_customer_day=3, min_interval_s=10))
    c = next(iter(w.customers.values()))
    tok = w.token(c)
    assert w.bank.authorize(w.request(A1, c, 100, token=tok), A1).response.decision == "approve"
    alarms: list[str] = []
    for _ in range(5):  # a photographed QR, replayed more often than the customer's daily attempts
        w.clock.advance(1)  # inside the customer's minimum interval: still TOKEN_REPLAYED, not TOO_FREQUENT
        d = w.bank.authorize(w.request(A1, c, 100, token=tok), A1)
        assert d.response.reason == Reason.TOKEN_REPLAYED
        alarms += [a.kind for a in d.alarms]
    assert alarms == ["token_replayed"]  # once a day per customer
    w.clock.advance(11)
    # The customer's own next withdrawal still goes through: their attempts were not counted.
    assert w.bank.authorize(w.request(A1, c, 100), A1).response.decision == "approve"


def test_customer_attempts_exceeded_raises_its_alarm(any_db: Database) -> None:
    w = make_world(any_db, _cfg(max_attempts_customer_day=2, min_interval_s=0))
    c = next(iter(w.customers.values()))
    for _ in range(2):
        assert w.bank.authorize(w.request(A1, c, 10), A1).response.decision == "approve"
    d = w.bank.authorize(w.request(A1, c, 10), A1)
    assert d.response.reason == Reason.ATTEMPTS_EXCEEDED
    assert [(a.kind, a.scope, a.subject) for a in d.alarms] == [
        ("attempts_exceeded", "customer", str(c.customer_id))
    ]
    # A forged token naming the customer is refused too, and raises nothing in the customer's name.
    forged = w.token(c, key=Ed25519PrivateKey.generate())
    d2 = w.bank.authorize(w.request(A1, c, 10, token=forged), A1)
    assert d2.response.reason == Reason.ATTEMPTS_EXCEEDED and d2.alarms == []


def test_forged_token_flood_from_one_atm_raises_an_alarm(any_db: Database) -> None:
    w = make_world(any_db, _cfg(alarm_invalid_tokens_atm=4, min_interval_s=0))
    customers = list(w.customers.values())
    kinds: list[list[str]] = []
    for i in range(6):
        forged = w.token(customers[i % 3], key=Ed25519PrivateKey.generate())
        d = w.bank.authorize(w.request(A1, customers[i % 3], 100, token=forged), A1)
        assert d.response.reason == Reason.TOKEN_FORGED
        kinds.append([a.kind for a in d.alarms])
    assert kinds == [[], [], [], ["invalid_tokens"], [], []]  # at the threshold, once a day
    # Garbage that is no token at all counts too.
    bad = w.request(A1, customers[0], 100, token="ATM1:" + "Z" * 40)
    assert w.bank.authorize(bad, A1).response.reason == Reason.TOKEN_FORGED


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[TlsEnv]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto binary not installed (apt-get install mosquitto)")
    world: World = make_world(
        SqliteDatabase(tmp_path / "bank.db"), _cfg(alarm_invalid_tokens_atm=3, min_interval_s=0), live=True
    )
    env = TlsEnv(tmp_path, world)
    yield env
    env.broker.stop()


def test_alarms_reach_the_console_over_tls(tls: TlsEnv) -> None:
    w = tls.world
    worker = start_worker(w, tls.broker, **tls.client_files("bank"))
    console, codes, connected = raw_client(tls, "console")
    seen: list[ConsoleAlarm] = []
    console.on_message = lambda c, u, m: seen.append(ConsoleAlarm.model_validate_json(m.payload))
    console.connect("127.0.0.1", tls.broker.port)
    console.loop_start()
    assert connected.wait(10)
    console.subscribe(topics.CONSOLE_ALARM, qos=1)
    wait_for(lambda: len(codes) == 1, what="SUBACK")
    atm, _, atm_up = raw_client(tls, A1)
    atm.connect("127.0.0.1", tls.broker.port)
    atm.loop_start()
    assert atm_up.wait(10)
    c = next(iter(w.customers.values()))
    tok = w.token(c)
    for token in [tok, tok, *(w.token(c, key=Ed25519PrivateKey.generate()) for _ in range(2))]:
        body = json.loads(w.request(A1, c, 100, token=token).model_dump_json())
        atm.publish(topics.auth_request(A1), json.dumps(body), qos=1).wait_for_publish(5)
    # the replay and the two forged tokens are three invalid tokens from ATM0001: the threshold
    wait_for(lambda: {a.kind for a in seen} >= {"token_replayed", "invalid_tokens"}, what="alarms")
    for cl in (console, atm):
        cl.loop_stop()
        cl.disconnect()
    worker.stop()
