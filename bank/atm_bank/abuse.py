"""Attempt counters, minimum intervals, escalating lockouts and once-a-day alarms (the 1-won lesson)."""

import os

from atm_msg.schemas import ConsoleAlarm

from .config import Abuse
from .db import Cursor

Scope = str  # "customer" | "account" | "atm"


def count_attempts(cur: Cursor, subjects: list[tuple[Scope, str]], day: int, now_ms: int) -> None:
    """Count one attempt for each (scope, subject) in one statement (a write nothing waits for).

    The caller knows the new counts: it read them in its snapshot under the subjects' locks (snapshot.py).
    """
    values = ",".join(["(?,?,?,1,?,0)"] * len(subjects))
    params: list[object] = []
    for scope, subject in subjects:
        params += (scope, subject, day, now_ms)
    cur.w(
        f"INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES {values} "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET count = attempts.count + 1, "
        "last_ms = excluded.last_ms",
        params,
    )


def note_rate_violation(cur: Cursor, scope: Scope, subject: str, day: int) -> None:
    """Count one too-frequent attempt (the caller knows the new count from its snapshot)."""
    cur.w(
        "INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES (?,?,?,0,0,1) "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET rate_violations = attempts.rate_violations + 1",
        (scope, subject, day),
    )


def note_invalid_token(cur: Cursor, atm_id: str, day: int, now_ms: int) -> int:
    """Count one invalid token (forged, tampered, expired, replayed) from this ATM today; the new count."""
    row = cur.one(
        "INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES (?,?,?,1,?,0) "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET count = attempts.count + 1, "
        "last_ms = excluded.last_ms RETURNING count",
        ("atm_invalid_token", atm_id, day, now_ms),
    )
    return int(row[0]) if row else 0


def register_failure(cur: Cursor, cfg: Abuse, scope: Scope, subject: str, now_ms: int) -> int:
    """Count a failed verification; lock (escalating) after cfg.failures_before_lockout; return until_ms."""
    row = cur.one("SELECT failures, level FROM lockouts WHERE scope=? AND subject=?", (scope, subject))
    failures, level = (int(row[0]), int(row[1])) if row else (0, 0)
    failures += 1
    until = 0
    if failures >= cfg.failures_before_lockout:
        step = cfg.lockout_steps_s[min(level, len(cfg.lockout_steps_s) - 1)]
        until = now_ms + step * 1000
        level += 1
        failures = 0
    cur.x(
        "INSERT INTO lockouts (scope, subject, failures, level, until_ms) VALUES (?,?,?,?,?) "
        "ON CONFLICT (scope, subject) DO UPDATE SET failures = excluded.failures, level = excluded.level, "
        "until_ms = CASE WHEN excluded.until_ms > 0 THEN excluded.until_ms ELSE lockouts.until_ms END",
        (scope, subject, failures, level, until),
    )
    return until


def register_success(cur: Cursor, scope: Scope, subject: str) -> None:
    """A verified customer: the consecutive-failure count restarts (the escalation level stays)."""
    cur.w("UPDATE lockouts SET failures = 0 WHERE scope=? AND subject=?", (scope, subject))


def raise_alarm(
    cur: Cursor, *, kind: str, scope: Scope, subject: str, day: int, detail: str, now_ms: int
) -> ConsoleAlarm | None:
    """Record an alarm at most once per (kind, subject, day); return it when it is new."""
    alarm_id = os.urandom(16).hex()
    n = cur.x(
        "INSERT INTO alarms (alarm_id, kind, scope, subject, day, detail, at_ms) VALUES (?,?,?,?,?,?,?) "
        "ON CONFLICT (kind, scope, subject, day) DO NOTHING",
        (alarm_id, kind, scope, subject, day, detail, now_ms),
    )
    if n != 1:
        return None
    return ConsoleAlarm(
        alarm_id=alarm_id,
        ts_ms=now_ms,
        kind=kind,
        scope=scope,  # type: ignore[arg-type]
        subject=subject,
        detail=detail[:200],
    )
