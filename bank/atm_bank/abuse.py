"""Attempt counters, minimum intervals, escalating lockouts and once-a-day alarms (the 1-won lesson)."""

import os
from dataclasses import dataclass, field

from .config import Abuse
from .db import Cursor
from .schemas import ConsoleAlarm

Scope = str  # "customer" | "account" | "atm"


def bump_attempt(cur: Cursor, scope: Scope, subject: str, day: int, now_ms: int) -> int:
    """Count one attempt; return the day's count including it."""
    row = cur.one(
        "INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES (?,?,?,1,?,0) "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET count = attempts.count + 1, "
        "last_ms = excluded.last_ms RETURNING count",
        (scope, subject, day, now_ms),
    )
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Standing:
    """What the abuse rules know about a customer and account before a decision (two reads)."""

    locked_until: dict[Scope, int] = field(default_factory=dict[Scope, int])
    failures: dict[Scope, int] = field(default_factory=dict[Scope, int])
    attempts_today: int = 0
    last_attempt_ms: int | None = None


def standing(cur: Cursor, customer: str, account: str, day: int) -> Standing:
    """Lockouts of the customer and the account, the customer's attempts today and last attempt time.

    The same values as locked_until(), attempts_today() and last_attempt_ms() (today or yesterday).
    """
    locked: dict[Scope, int] = {}
    failures: dict[Scope, int] = {}
    for scope, until, fails in cur.q(
        "SELECT scope, until_ms, failures FROM lockouts "
        "WHERE (scope='customer' AND subject=?) OR (scope='account' AND subject=?)",
        (customer, account),
    ):
        locked[str(scope)], failures[str(scope)] = int(until), int(fails)
    today = 0
    last: int | None = None
    for d, count, last_ms in cur.q(
        "SELECT day, count, last_ms FROM attempts WHERE scope='customer' AND subject=? AND day IN (?, ?)",
        (customer, day, day - 1),
    ):
        if int(d) == day:
            today = int(count)
        last = int(last_ms) if last is None else max(last, int(last_ms))
    return Standing(locked, failures, today, last)


def attempts_today(cur: Cursor, scope: Scope, subject: str, day: int) -> int:
    """Attempts counted for the subject today."""
    row = cur.one("SELECT count FROM attempts WHERE scope=? AND subject=? AND day=?", (scope, subject, day))
    return int(row[0]) if row else 0


def last_attempt_ms(cur: Cursor, scope: Scope, subject: str, day: int) -> int | None:
    """When the subject last made a counted attempt (today or yesterday)."""
    row = cur.one(
        "SELECT MAX(last_ms) FROM attempts WHERE scope=? AND subject=? AND day IN (?, ?)",
        (scope, subject, day, day - 1),
    )
    return None if row is None or row[0] is None else int(row[0])


def note_rate_violation(cur: Cursor, scope: Scope, subject: str, day: int, now_ms: int) -> int:
    """Count one too-frequent attempt; return the day's count."""
    row = cur.one(
        "INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES (?,?,?,0,0,1) "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET rate_violations = attempts.rate_violations + 1 "
        "RETURNING rate_violations",
        (scope, subject, day),
    )
    return int(row[0]) if row else 0


def locked_until(cur: Cursor, scope: Scope, subject: str) -> int:
    """End of the subject's lockout (ms), 0 when never locked."""
    row = cur.one("SELECT until_ms FROM lockouts WHERE scope=? AND subject=?", (scope, subject))
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
    cur.x("UPDATE lockouts SET failures = 0 WHERE scope=? AND subject=?", (scope, subject))


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
