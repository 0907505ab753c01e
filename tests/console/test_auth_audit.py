"""Operators, sessions, CSRF, the append-only hash-chained audit trail, command building and signing."""

import sqlite3
from pathlib import Path

import pytest
from atm_console import commands
from atm_console.auth import MAX_FAILURES, Auth, check_password, hash_password
from atm_console.config import LimitCaps
from atm_console.errors import (
    AuditError,
    AuthError,
    CommandError,
    NotSignedInError,
    SessionExpiredError,
)
from atm_console.store import Store
from atm_msg import topics
from atm_msg.cmdsign import generate_key, verify
from atm_msg.errors import KeyFileError


def test_password_hash_is_salted_scrypt() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$32768$8$1$")
    assert check_password("correct horse battery", a)
    assert not check_password("correct horse batterY", a)
    assert not check_password("x", "md5$whatever")


def test_login_session_csrf_logout_and_lockout(tmp_path: Path) -> None:
    auth = Auth(Store(tmp_path / "c.db"), idle_s=60)
    auth.add_operator("alice", "operator-password-1")
    with pytest.raises(AuthError):
        auth.add_operator("bob", "short")
    token, s = auth.login("alice", "operator-password-1", now=100.0)
    assert auth.session(token, now=130.0).username == "alice"
    auth.check_csrf(s, s.csrf)
    for bad in (None, "", s.csrf[:-1] + "x"):
        with pytest.raises(AuthError):
            auth.check_csrf(s, bad)
    with pytest.raises(SessionExpiredError):  # idle for longer than idle_s: typed, the web layer says 401
        auth.session(token, now=300.0)
    token, _ = auth.login("alice", "operator-password-1", now=400.0)
    auth.logout(token)
    with pytest.raises(NotSignedInError):
        auth.session(token, now=401.0)
    with pytest.raises(AuthError):
        auth.login("mallory", "operator-password-1")
    for _ in range(MAX_FAILURES):
        with pytest.raises(AuthError, match="wrong"):
            auth.login("alice", "guess-guess-guess", now=500.0)
    with pytest.raises(AuthError, match="too many"):  # even the right password is refused while locked
        auth.login("alice", "operator-password-1", now=501.0)


def test_audit_is_append_only_and_hash_chained(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    store.audit("alice", "command:out_of_service", "ATM0001", "requested", "{}", "aa" * 16)
    store.audit("alice", "result:out_of_service", "ATM0001", "ok", "out of service", "aa" * 16)
    assert store.verify_audit() == 2
    rows = store.audit_rows(command_id="aa" * 16)
    assert [r.result for r in rows] == ["ok", "requested"] and rows[0].prev == rows[1].hash
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("UPDATE audit SET result='failed'")  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._db.execute("DELETE FROM audit")  # pyright: ignore[reportPrivateUsage]
    store.close()
    # Someone with the file drops the triggers and rewrites history: the chain shows it.
    db = sqlite3.connect(tmp_path / "c.db")
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET operator='bob' WHERE id=1")
    db.commit()
    db.close()
    with pytest.raises(AuditError, match="line 1"):
        Store(tmp_path / "c.db").verify_audit()


def test_the_console_offers_only_what_the_real_host_obeys() -> None:
    caps = LimitCaps()
    assert commands.build("status", {}, caps, 60).name == "send_counters"
    for action in ("in_service", "out_of_service", "rebirth"):
        cmd = commands.build(action, {}, caps, 60, now_ms=0)
        assert cmd.name == action and cmd.args == {} and cmd.expires_ms == 60_000
    # refused by atm_host.journey's _on_command: the console does not offer them (and says why)
    for action in ("reset_dispenser", "replenish", "limits"):
        with pytest.raises(CommandError, match="not offered"):
            commands.build(action, {"cassette": 1, "denomination": 100, "count": 2000}, caps, 60)
    with pytest.raises(CommandError, match="unknown action"):
        commands.build("dispense", {}, caps, 60)
    with pytest.raises(CommandError, match="no arguments"):
        commands.build("in_service", {"x": 1}, caps, 60)
    assert set(commands.ACTIONS) == {"in_service", "out_of_service", "status", "rebirth"}


def test_signature_binds_key_topic_and_payload(tmp_path: Path) -> None:
    signer = generate_key(tmp_path / "k.pem")
    with pytest.raises(KeyFileError):
        generate_key(tmp_path / "k.pem")  # never overwrites a key
    other = generate_key(tmp_path / "other.pem")
    keys = {signer.kid: signer.public}
    topic, payload = topics.command("ATM0001"), b'{"v":1}'
    props = signer.properties(topic, payload)
    assert verify(topic, payload, props, keys)
    assert not verify(topics.command("ATM0002"), payload, props, keys)  # replay to another ATM
    assert not verify(topic, b'{"v":2}', props, keys)
    assert not verify(topic, payload, other.properties(topic, payload), keys)  # unknown key
    assert not verify(topic, payload, [], keys)
    forged = [(k, v if k != "kid" else signer.kid) for k, v in other.properties(topic, payload)]
    assert not verify(topic, payload, forged, keys)
