"""The decision core on SQLite and PostgreSQL: approve, every decline reason, limits at their boundaries."""

import json
import struct
from pathlib import Path

import pytest
from atm_bank import ledger
from atm_bank.__main__ import main as bank_main
from atm_bank.config import BankConfig, load_config
from atm_bank.db import Cursor, Database
from atm_bank.errors import ConfigError
from atm_msg import qrtoken
from atm_msg.denominate import denominate
from atm_msg.errors import DenominationError, TokenError
from atm_msg.reasons import Reason
from atm_wire.auth import dispense_mac, equal_ct  # pyright: ignore[reportUnknownVariableType]
from atm_wire.messages import DISPENSE_TOKEN_FMT

from .helpers import MODEL, World, make_world
from .scenarios import A1, DECLINES


def balanced(db: Database) -> list[str]:
    def fn(cur: Cursor) -> list[str]:
        return ledger.check_balanced(cur)

    return db.run(fn)


def test_approve_reserves_and_signs_a_token_the_mcu_accepts(world: World) -> None:
    c = next(iter(world.customers.values()))
    req = world.request(A1, c, 380)
    d = world.bank.authorize(req, A1)
    r = d.response
    assert r.decision == "approve" and r.reason is None and r.amount_yuan == 380
    assert r.notes is not None and sum(n * v for n, v in zip(r.notes, [100, 50, 20, 10], strict=True)) == 380
    raw = bytes.fromhex(r.dispense_token or "")
    dev, nonce, txid, n1, n2, n3, n4, mac = struct.unpack(DISPENSE_TOKEN_FMT, raw)
    device_id, key = world.atms[A1]
    assert dev == device_id and nonce.hex() == req.command_nonce and txid.hex() == r.txid
    assert equal_ct(mac, dispense_mac(key, dev, nonce, txid, [n1, n2, n3, n4]))
    assert not equal_ct(mac, dispense_mac(world.atms["ATM0002"][1], dev, nonce, txid, [n1, n2, n3, n4]))

    def fn(cur: Cursor) -> dict[str, int]:
        return ledger.balances(cur)

    assert world.db.run(fn) == {f"customer:{c.account_id}": -380, f"hold:{c.account_id}": 380}
    assert balanced(world.db) == []


def test_duplicate_request_gets_the_same_answer_and_reserves_once(world: World) -> None:
    c = next(iter(world.customers.values()))
    req = world.request(A1, c, 100)
    first = world.bank.authorize(req, A1)
    again = world.bank.authorize(req, A1)
    assert not again.fresh and again.response == first.response

    def fn(cur: Cursor) -> int:
        row = cur.one("SELECT COUNT(*) FROM txns")
        return int(row[0]) if row else -1

    assert world.db.run(fn) == 1


@pytest.mark.parametrize("name", sorted(DECLINES))
def test_each_decline_reason(world: World, name: str) -> None:
    scenario, reason = DECLINES[name]
    atm, req = scenario(world)
    r = world.bank.authorize(req, atm).response
    assert (r.decision, r.reason) == ("decline", reason)
    assert r.dispense_token is None and r.message
    assert balanced(world.db) == []


def test_not_enrolled_and_unknown_account(sqlite_db: Database) -> None:
    w = make_world(sqlite_db)
    c = next(iter(w.customers.values()))

    def drop(cur: Cursor) -> None:
        cur.x("DELETE FROM templates WHERE customer_id=?", (c.customer_id,))

    w.db.run(drop)
    assert w.bank.authorize(w.request(A1, c, 100), A1).response.reason == Reason.NOT_ENROLLED
    w.clock.advance(20)
    other = list(w.customers.values())[1]
    tok = qrtoken.issue(
        w.signing_key,
        key_id=1,
        customer_id=c.customer_id,
        account_id=other.account_id,
        amount_yuan=0,
        now_s=int(w.clock()),
        ttl_s=60,
    )
    assert w.bank.authorize(w.request(A1, c, 100, token=tok), A1).response.reason == Reason.UNKNOWN_ACCOUNT


def test_no_threshold_the_bank_does_not_start(sqlite_db: Database) -> None:
    with pytest.raises(ConfigError, match="no face threshold"):
        make_world(sqlite_db, BankConfig())


def test_manifest_threshold_overrides_config_and_is_read_once(sqlite_db: Database, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"models": {MODEL: {"operating_point": {"threshold": 0.9999}}}}))
    cfg = BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.1}}, "manifest_path": str(manifest)})
    w = make_world(sqlite_db, cfg)
    manifest.unlink()  # read at start only: nothing in an authorization reads the file again
    c = next(iter(w.customers.values()))
    assert w.bank.authorize(w.request(A1, c, 100), A1).response.reason == Reason.FACE_MISMATCH


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        (None, "No such file"),
        ("{not json", "not JSON"),
        (json.dumps({"models": {MODEL: {"operating_point": {"far": 0.0}}}}), "threshold missing"),
        (json.dumps({"models": {MODEL: {"operating_point": {"threshold": 1.5}}}}), "must be a cosine"),
        (json.dumps({"models": {MODEL: {"operating_point": None}}}), "no model has an operating_point"),
    ],
)
def test_bad_manifest_is_a_config_error_at_load(tmp_path: Path, manifest: str | None, error: str) -> None:
    path = tmp_path / "manifest.json"
    if manifest is not None:
        path.write_text(manifest)
    config = tmp_path / "bank.json"
    config.write_text(json.dumps({"manifest_path": str(path)}))
    with pytest.raises(ConfigError, match=error):
        load_config(config)


def test_serve_exits_non_zero_without_a_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bank.json"
    config.write_text(json.dumps({"face": {"thresholds": {}}}))
    code = bank_main(["--config", str(config), "serve", "--workers", "1"])
    assert code != 0 and "no face threshold" in capsys.readouterr().err


def test_shipped_manifest_gives_the_bank_the_vision_operating_point() -> None:
    manifest = Path(__file__).resolve().parents[2] / "models" / "manifest.json"
    cfg = BankConfig.model_validate({"manifest_path": str(manifest)})
    models = json.loads(manifest.read_text())["models"]
    for model_id, entry in models.items():
        if entry.get("operating_point"):
            assert cfg.threshold_for(model_id) == entry["operating_point"]["threshold"]
    assert cfg.threshold_for("sface") is not None


def test_presenter_capacity_is_the_one_the_dispenser_states(world: World) -> None:
    """The bank denominates within the capacity the MCU stated (hello -> AuthRequest.max_notes), no other."""
    c = next(iter(world.customers.values()))
    # 380 yuan in 100/50/20/10 is 6 notes at the fewest: a board that holds 5 cannot take it.
    small = world.bank.authorize(world.request(A1, c, 380, max_notes=5), A1).response
    assert small.decision == "decline" and small.reason == Reason.CANNOT_DISPENSE and not small.dispense_token
    world.clock.advance(20)
    ok = world.bank.authorize(world.request(A1, c, 380, max_notes=6), A1).response
    assert ok.decision == "approve" and ok.notes is not None and sum(ok.notes) == 6
    assert "max_notes_per_dispense" not in BankConfig.model_json_schema()["$defs"]["Limits"]["properties"]


def test_per_withdrawal_limit_boundary(world: World) -> None:
    c = next(iter(world.customers.values()))
    limit = world.cfg.limits.per_withdrawal_yuan
    assert (
        world.bank.authorize(world.request(A1, c, limit + 10), A1).response.reason
        == Reason.LIMIT_PER_WITHDRAWAL
    )
    world.clock.advance(20)
    assert world.bank.authorize(world.request(A1, c, limit), A1).response.decision == "approve"


def test_daily_limit_boundary_and_next_day(any_db: Database) -> None:
    w = make_world(any_db)
    c = next(iter(w.customers.values()))
    for amount in (1000, 990):
        assert w.bank.authorize(w.request(A1, c, amount), A1).response.decision == "approve"
        w.clock.advance(20)
    assert w.bank.authorize(w.request(A1, c, 20), A1).response.reason == Reason.LIMIT_DAILY
    w.clock.advance(20)
    assert w.bank.authorize(w.request(A1, c, 10), A1).response.decision == "approve"  # exactly 2,000
    w.clock.advance(86400)
    assert w.bank.authorize(w.request(A1, c, 1000), A1).response.decision == "approve"
    assert balanced(w.db) == []


def test_account_total_limit_boundary(sqlite_db: Database) -> None:
    cfg = BankConfig.model_validate({"face": {"thresholds": {MODEL: 0.6}}})
    w = make_world(sqlite_db, cfg)
    c = next(iter(w.customers.values()))
    total = cfg.limits.per_account_total_yuan
    paid = 0
    while paid < total:
        r = w.bank.authorize(w.request(A1, c, 1000), A1).response
        assert r.decision == "approve", (paid, r.reason)
        assert r.txid and r.notes
        paid += 1000
        w.clock.advance(20)
        if paid % 2000 == 0:
            w.clock.advance(86400)
    assert w.bank.authorize(w.request(A1, c, 10), A1).response.reason == Reason.LIMIT_ACCOUNT_TOTAL


def test_reversed_withdrawal_frees_the_daily_limit(world: World) -> None:
    c = next(iter(world.customers.values()))
    req = world.request(A1, c, 1000)
    r = world.bank.authorize(req, A1).response
    world.clock.advance(20)
    assert world.bank.authorize(world.request(A1, c, 1000), A1).response.decision == "approve"
    world.clock.advance(20)
    assert world.bank.authorize(world.request(A1, c, 10), A1).response.reason == Reason.LIMIT_DAILY
    from atm_msg.schemas import TxnReport
    from atm_wire.messages import PRESENT_NOT_PRESENTED

    assert r.txid and r.notes
    rep = world.report(A1, r.txid, req.command_nonce, r.notes, presented=0, status=PRESENT_NOT_PRESENTED)
    res = world.settler.settle(TxnReport(atm_id=A1, txid=r.txid, report=rep.hex(), ts_ms=0), A1)
    assert res.outcome == "reversed"
    world.clock.advance(20)
    assert world.bank.authorize(world.request(A1, c, 1000), A1).response.decision == "approve"


def test_denominate() -> None:
    assert denominate(380, [100, 50, 20, 10], [9, 9, 9, 9], 40) == [3, 1, 1, 1]
    assert denominate(60, [100, 50, 20, 10], [0, 1, 3, 0], 40) == [0, 0, 3, 0]
    with pytest.raises(DenominationError):
        denominate(30, [100, 50, 20, 10], [5, 5, 1, 0], 40)
    with pytest.raises(DenominationError):
        denominate(1000, [100, 50, 20, 10], [0, 0, 0, 100], 40)


def test_token_is_compact_and_rejects_tampering(world: World) -> None:
    c = next(iter(world.customers.values()))
    tok = world.token(c, 500)
    assert len(tok) < 200 and tok.startswith("ATM1:")
    keys = {1: world.signing_key.public_key()}
    t = qrtoken.verify(tok, keys, world.clock(), 0)
    assert (t.customer_id, t.account_id, t.amount_yuan) == (c.customer_id, c.account_id, 500)
    with pytest.raises(TokenError):
        qrtoken.verify(tok, keys, world.clock() + 121, 0)
    with pytest.raises(TokenError):
        qrtoken.issue(
            world.signing_key, key_id=1, customer_id=1, account_id=1, amount_yuan=0, now_s=0, ttl_s=121
        )
    with pytest.raises(TokenError):
        qrtoken.verify(tok[:-4], keys, world.clock(), 0)
