"""Group commit: several requests per transaction, each atomic alone; answers and PUBACKs after commit."""

import base64
import os
import random
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from atm_bank import ledger
from atm_bank.config import BankConfig
from atm_bank.core import Decision
from atm_bank.db import Cursor, Database, SqliteDatabase
from atm_bank.service import BankWorker
from atm_msg import qrtoken, topics
from atm_msg.denominate import representable
from atm_msg.errors import TokenError
from atm_msg.schemas import AuthRequest
from atm_msg.settings import BrokerSettings
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .helpers import MODEL, make_world
from .scenarios import A1


def _count(db: Database, sql: str, *params: object) -> int:
    def fn(cur: Cursor) -> int:
        row = cur.one(sql, params)
        return int(row[0]) if row else 0

    return db.run(fn)


def test_batch_items_are_atomic_alone(any_db: Database) -> None:
    w = make_world(any_db)
    c1, c2, c3 = list(w.customers.values())
    good = w.request(A1, c1, 100)
    bad = w.request(A1, c2, 100)
    other = w.request(A1, c3, 200)
    again = good  # the ATM re-sent it: the same request_id inside the same batch
    bank = w.bank
    boom = bank.decider(bad, A1)

    def failing(cur: Cursor) -> Decision:
        boom(cur)  # writes its decision...
        raise RuntimeError("disk on fire")  # ...then fails: its writes must vanish, nobody else's

    fns = [bank.decider(good, A1), failing, bank.decider(again, A1), bank.decider(other, A1)]
    results = any_db.run_batch(fns)
    first, failed, dup, third = results
    assert isinstance(first, Decision) and first.response.decision == "approve"
    assert isinstance(failed, RuntimeError)
    assert isinstance(dup, Decision) and not dup.fresh and dup.response.txid == first.response.txid
    assert isinstance(third, Decision) and third.response.decision == "approve"
    assert _count(any_db, "SELECT COUNT(*) FROM requests") == 2
    assert _count(any_db, "SELECT COUNT(*) FROM txns") == 2
    assert _count(any_db, "SELECT COUNT(*) FROM used_nonces") == 2  # bad's token is still unspent

    def check(cur: Cursor) -> list[str]:
        return ledger.check_balanced(cur)

    assert any_db.run(check) == []
    # The failed request, re-sent, is decided afresh and approved.
    assert w.bank.authorize(bad, A1).response.decision == "approve"


def test_authorize_many_equals_one_by_one(any_db: Database) -> None:
    cfg = BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.6}}, "abuse": {"min_interval_s": 0}})
    w = make_world(any_db, cfg, n_customers=3)
    reqs: list[tuple[AuthRequest, str]] = []
    for c in w.customers.values():
        reqs.append((w.request(A1, c, 100), A1))
    out = w.bank.authorize_many(reqs)
    assert [d.response.decision for d in out if isinstance(d, Decision)] == ["approve"] * 3
    # A limit is still atomic inside one batch: the same customer's second withdrawal in the batch
    # sees the first one's reservation.
    c = next(iter(w.customers.values()))
    r1 = w.request(A1, c, 1000)
    r2 = w.request(A1, c, 1000)
    d1, d2 = w.bank.authorize_many([(r1, A1), (r2, A1)])
    assert isinstance(d1, Decision) and isinstance(d2, Decision)
    assert d1.response.decision == "approve"
    assert d2.response.reason is not None and d2.response.reason.value == "LIMIT_DAILY"


class _Recorder:
    """Stands in for the paho client: records publishes and acks, checks the commit happened first."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.events: list[tuple[str, object]] = []

    def publish(self, topic: str, payload: str, qos: int = 0, properties: object = None) -> None:
        assert qos == 1
        self.events.append(("publish", topic))

    def ack(self, mid: int, qos: int) -> None:
        # Acknowledged means the broker forgets it: by now the decision must be on disk.
        assert _count(self.db, "SELECT COUNT(*) FROM requests") >= 1
        self.events.append(("ack", mid))


def _message(topic: str, payload: bytes, mid: int, corr: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid, topic.encode())
    msg.payload = payload
    msg.qos = 1
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = corr
    msg.properties = props
    return msg


def test_worker_answers_then_acks_after_commit(sqlite_db: Database) -> None:
    w = make_world(sqlite_db)
    worker = BankWorker("batch-t", BrokerSettings(), w.bank, w.settler)
    rec = _Recorder(sqlite_db)
    worker.client = rec  # type: ignore[assignment]
    c1, c2 = list(w.customers.values())[:2]
    r1 = w.request(A1, c1, 100)
    r2 = w.request(A1, c2, 100)
    batch = [
        _message(topics.auth_request(A1), r1.model_dump_json().encode(), 1, bytes.fromhex(r1.request_id)),
        _message(topics.auth_request(A1), b"{not json", 2, b"x" * 16),
        _message(topics.auth_request(A1), r2.model_dump_json().encode(), 3, bytes.fromhex(r2.request_id)),
        _message(topics.auth_request(A1), r1.model_dump_json().encode(), 4, bytes.fromhex(r1.request_id)),
    ]
    worker.handle_batch(batch)
    kinds = [k for k, _ in rec.events]
    assert kinds == ["publish"] * 4 + ["ack"] * 4  # every answer queued before any PUBACK
    assert [m for k, m in rec.events if k == "ack"] == [1, 2, 3, 4]  # in arrival order
    assert worker.counters["auth_approve"] == 3 and worker.counters["auth_duplicates"] == 1
    assert worker.counters["malformed"] == 1
    assert worker.stats()["batches"] == 1 and worker.stats()["messages"] == 4


def _flock_waiters(lock_file: Path) -> int:
    """How many flock() requests of this process the kernel holds blocked on lock_file (/proc/locks)."""
    inode = f":{lock_file.stat().st_ino}"
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()  # "7: -> FLOCK  ADVISORY  WRITE <pid> <maj:min:inode> 0 EOF" for a waiter
        if (
            len(f) > 6
            and f[1] == "->"
            and f[2] == "FLOCK"
            and f[5] == str(os.getpid())
            and f[6].endswith(inode)
        ):
            waiting += 1
    return waiting


def test_sqlite_writers_queue_on_the_lock_file(tmp_path: Path) -> None:
    a = SqliteDatabase(tmp_path / "bank.db")
    b = SqliteDatabase(tmp_path / "bank.db")
    order: list[str] = []

    def slow(cur: Cursor) -> None:
        order.append("a-begin")
        import threading

        t = threading.Thread(target=lambda: b.run(lambda c: order.append("b")))
        t.start()
        # b must wait for a's commit, not fail and not interleave: a goes on only once the kernel shows
        # b's flock() blocked behind a's (not a sleep that hopes b got there).
        deadline = time.monotonic() + 10
        while _flock_waiters(tmp_path / "bank.db.lock") < 1:
            assert time.monotonic() < deadline, "b never queued on the lock file"
            assert t.is_alive(), "b finished while a held the lock"
            time.sleep(0.005)
        order.append("a-end")
        slow.thread = t  # type: ignore[attr-defined]

    a.run(slow)
    slow.thread.join(5)  # type: ignore[attr-defined]
    assert order == ["a-begin", "a-end", "b"]
    a.close()
    b.close()


def _representable_by_table(amount: int, denominations: list[int]) -> bool:
    if amount <= 0:
        return False
    reach = [True] + [False] * amount
    for value in range(1, amount + 1):
        reach[value] = any(d <= value and reach[value - d] for d in denominations)
    return reach[amount]


def test_representable_matches_the_plain_table() -> None:
    rng = random.Random(4)
    for _ in range(200):
        denoms = rng.sample([1, 2, 3, 5, 7, 10, 13, 20, 30, 50, 100], rng.randint(1, 4))
        for amount in range(-1, 300):
            assert representable(amount, denoms) == _representable_by_table(amount, denoms), (amount, denoms)
    start = time.perf_counter()
    assert not representable(999_999, [100, 50, 20, 10])
    assert time.perf_counter() - start < 0.01  # was a second of CPU per request for large amounts


@pytest.mark.parametrize("seed", range(3))
def test_fast_token_decode_equals_base32(seed: int) -> None:
    rng = random.Random(seed)
    key = Ed25519PrivateKey.generate()
    for _ in range(300):
        text = qrtoken.issue(
            key,
            key_id=rng.randint(0, 255),
            customer_id=rng.getrandbits(63),
            account_id=rng.getrandbits(63),
            amount_yuan=rng.getrandbits(20),
            now_s=rng.getrandbits(31),
            ttl_s=rng.randint(1, 120),
        )
        b32 = text[len(qrtoken.PREFIX) :]
        raw = base64.b32decode(b32 + "=" * (-len(b32) % 8))
        token, body, sig = qrtoken.decode(text)
        assert body + sig == raw
        assert qrtoken.verify(text, {token.key_id: key.public_key()}, token.issued_at, 0) == token
    with pytest.raises(TokenError):
        qrtoken.decode(qrtoken.PREFIX + "a" * 165)  # lower case is not base32
    with pytest.raises(TokenError):
        qrtoken.decode(qrtoken.PREFIX + "0" * 165)  # nor is 0


def test_counters_and_replays_are_exact_inside_one_batch(any_db: Database) -> None:
    """Each decision of a batch sees the earlier ones' writes (pipelined, unanswered writes included)."""
    cfg = BankConfig.model_validate(
        {
            "face": {"thresholds": {MODEL: 0.6}},
            "abuse": {"min_interval_s": 0, "max_attempts_atm_day": 4, "max_attempts_customer_day": 100},
        }
    )
    w = make_world(any_db, cfg, n_customers=3)
    c1, c2, c3 = list(w.customers.values())
    token = w.token(c1)
    batch = [
        (w.request(A1, c1, 100, token=token), A1),
        (w.request(A1, c1, 100, token=token), A1),  # the same phone token again: replayed
        (w.request(A1, c2, 100), A1),
        (w.request(A1, c3, 100), A1),  # the ATM's 4th attempt today: the last one allowed
        (w.request(A1, c3, 100), A1),  # the 5th: over the per-ATM limit
    ]
    out = w.bank.authorize_many(batch)
    got = [
        d.response.reason.value if d.response.reason else "approve" for d in out if isinstance(d, Decision)
    ]
    assert got == ["approve", "TOKEN_REPLAYED", "approve", "approve", "ATTEMPTS_EXCEEDED"]
    assert _count(any_db, "SELECT count FROM attempts WHERE scope='atm'") == 5
    # The replay is refused before the customer's attempts are counted (a photographed QR cannot burn them).
    assert (
        _count(any_db, "SELECT count FROM attempts WHERE scope='customer' AND subject=?", str(c1.customer_id))
        == 1
    )
    assert _count(any_db, "SELECT COUNT(*) FROM alarms WHERE kind='attempts_exceeded'") == 1


def test_a_failing_write_in_a_pipelined_batch_fails_only_its_item(any_db: Database) -> None:
    """A blind write's error surfaces later (PostgreSQL pipeline): the batch reruns with savepoints and
    only the item whose write failed gets the error; its neighbours are decided and committed."""
    w = make_world(any_db, n_customers=3)
    c1, c2, c3 = list(w.customers.values())
    t0 = time.monotonic()
    first, dup, last = w.request(A1, c1, 100), w.request(A1, c2, 100), w.request(A1, c3, 100)
    bank = w.bank

    def clash(cur: Cursor) -> Decision:
        decided = bank.decider(dup, A1)(cur)
        # The same request row written twice: the unique index refuses it, at once or at the commit.
        cur.w(
            "INSERT INTO requests (request_id, atm_id, response, at_ms) VALUES (?,?,?,?)",
            (dup.request_id, A1, "", 0),
        )
        return decided

    results = any_db.run_batch([bank.decider(first, A1), clash, bank.decider(last, A1)])
    a, failed, b = results
    assert isinstance(a, Decision) and a.response.decision == "approve"
    assert isinstance(failed, Exception) and not isinstance(failed, Decision)
    assert isinstance(b, Decision) and b.response.decision == "approve"
    assert _count(any_db, "SELECT COUNT(*) FROM txns") == 2
    assert time.monotonic() - t0 < 1.0  # a deterministic failure is not retried fifty times
    assert bank.authorize(dup, A1).response.decision == "approve"  # re-sent: decided afresh


class _RecordingCursor:
    """Stands in for a psycopg cursor: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[object]]] = []

    def execute(self, sql: str, params: object = ()) -> None:
        self.sent.append((sql, list(params)))  # type: ignore[call-overload]

    def fetchone(self) -> tuple[int]:
        return (1,)


def test_pipelined_blind_writes_fold_into_one_statement_per_run_of_distinct_tables() -> None:
    from atm_bank.db import _PgCursor  # pyright: ignore[reportPrivateUsage]

    reader, writer = _RecordingCursor(), _RecordingCursor()
    cur = _PgCursor(reader, writer, pipeline=object())
    cur.w("INSERT INTO attempts (a) VALUES (?)", (1,))
    cur.w("INSERT INTO used_nonces (n) VALUES (?)", ("n1",))
    cur.w("UPDATE attempts SET a = ? WHERE b = ?", (2, 3))  # same table again: a new statement
    cur.w("INSERT INTO requests (r) VALUES (?)", ("r1",))
    assert writer.sent == []  # queued, nothing sent yet
    cur.one("SELECT 1")  # a read sends the queued writes first, in order
    assert writer.sent == [
        (
            "WITH w0 AS (INSERT INTO attempts (a) VALUES (%s)) INSERT INTO used_nonces (n) VALUES (%s)",
            [1, "n1"],
        ),
        (
            "WITH w0 AS (UPDATE attempts SET a = %s WHERE b = %s) INSERT INTO requests (r) VALUES (%s)",
            [2, 3, "r1"],
        ),
    ]
    assert reader.sent == [("SELECT 1", [])]
    cur.w("DELETE FROM requests WHERE r = ?", ("r1",))  # not foldable: sent at once, alone
    assert writer.sent[-1] == ("DELETE FROM requests WHERE r = %s", ["r1"])
    unpipelined = _PgCursor(reader, writer)
    unpipelined.w("INSERT INTO attempts (a) VALUES (?)", (9,))  # savepoint pass: every write sent at once
    assert writer.sent[-1] == ("INSERT INTO attempts (a) VALUES (%s)", [9])


def test_reads_sent_ahead_are_only_for_independent_items_and_never_reused_after_a_rerun(
    any_db: Database,
) -> None:
    """Bank.deciders: an item sharing no subject with an earlier one sends its snapshot read ahead; the
    batch rerun after a failure (savepoint pass) reads afresh, so a read of the failed pass is never used."""
    cfg = BankConfig.model_validate(
        {
            "face": {"thresholds": {MODEL: 0.6}},
            "abuse": {"min_interval_s": 0},
            "limits": {"per_customer_day_yuan": 1500},
        }
    )
    w = make_world(any_db, cfg, n_customers=3)
    c1, c2, c3 = list(w.customers.values())
    a2 = "ATM0002"
    items = [
        (w.request(A1, c1, 1000), A1),
        (w.request(a2, c2, 100), a2),  # another ATM and customer: independent
        (w.request(a2, c1, 1000), a2),  # c1 again (and ATM0002 again): must see the first reservation
        (w.request(A1, c3, 100), A1),  # ATM0001 again: dependent
    ]
    fns = w.bank.deciders(items)
    assert [d.prefetch for d in fns] == [True, True, False, False]
    boom = fns[1]

    class Failing:
        """The second item fails after its read was sent ahead: the whole first pass is undone."""

        def __init__(self) -> None:
            self.calls = 0

        def prepare(self, cur: Cursor) -> None:
            boom.prepare(cur)

        def __call__(self, cur: Cursor) -> Decision:
            self.calls += 1
            decided = boom(cur)
            if self.calls == 1:
                raise RuntimeError("first pass fails")
            return decided

    failing = Failing()
    out = any_db.run_batch([fns[0], failing, fns[2], fns[3]])
    got = [
        d.response.reason.value if d.response.reason else "approve" for d in out if isinstance(d, Decision)
    ]
    assert got == ["approve", "approve", "LIMIT_DAILY", "approve"] and failing.calls == 2
    assert _count(any_db, "SELECT COUNT(*) FROM txns") == 3
    assert _count(any_db, "SELECT count FROM attempts WHERE scope='atm' AND subject=?", A1) == 2

    def check(cur: Cursor) -> list[str]:
        return ledger.check_balanced(cur)

    assert any_db.run(check) == []
