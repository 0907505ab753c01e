"""Attempt counters, minimum intervals, escalating lockouts and once-a-day alarms (the 1-won lesson)."""

import os
from dataclasses import dataclass, field

from .config import Abuse
from .db import Cursor
from .schemas import ConsoleAlarm

Scope = str  # "customer" | "account" | "atm"


def bump_attempt(cur: Cursor, scope: Scope, subject: str, day: int, now_ms: int) -> int:
    """Count one attempt; return the day's count including it."""
    return bump_attempts(cur, [(scope, subject)], day, now_ms)[scope]


def bump_attempts(cur: Cursor, subjects: list[tuple[Scope, str]], day: int, now_ms: int) -> dict[Scope, int]:
    """Count one attempt for each (scope, subject) in one statement; the day's counts including it."""
    values = ",".join(["(?,?,?,1,?,0)"] * len(subjects))
    params: list[object] = []
    for scope, subject in subjects:
        params += (scope, subject, day, now_ms)
    rows = cur.q(
        f"INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES {values} "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET count = attempts.count + 1, "
        "last_ms = excluded.last_ms RETURNING scope, count",
        params,
    )
    return {str(scope): int(count) for scope, count in rows}


@dataclass(frozen=True)
class Standing:
    """What the abuse rules know about a customer and account before a decision (two reads)."""

    locked_until: dict[Scope, int] = field(default_factory=dict[Scope, int])
    failures: dict[Scope, int] = field(default_factory=dict[Scope, int])
    attempts_today: int = 0
    last_attempt_ms: int | None = None


def standing(cur: Cursor, customer: str, account: str, day: int) -> Standing:
    """Lockouts of the customer and the account, the customer's attempts today and last attempt time.

    One statement: the lockout rows (scope, until_ms, failures) and the customer's attempt rows of today
    and yesterday (tagged 'attempts': day, count, last_ms).
    """
    locked: dict[Scope, int] = {}
    failures: dict[Scope, int] = {}
    today = 0
    last: int | None = None
    for tag, a, b, c in cur.q(
        "SELECT scope, until_ms, failures, 0 FROM lockouts "
        "WHERE (scope='customer' AND subject=?) OR (scope='account' AND subject=?) "
        "UNION ALL SELECT 'attempts', day, count, last_ms FROM attempts "
        "WHERE scope='customer' AND subject=? AND day IN (?, ?)",
        (customer, account, customer, day, day - 1),
    ):
        if tag == "attempts":
            if int(a) == day:
                today = int(b)
            last = int(c) if last is None else max(last, int(c))
        else:
            locked[str(tag)], failures[str(tag)] = int(a), int(b)
    return Standing(locked, failures, today, last)


def note_rate_violation(cur: Cursor, scope: Scope, subject: str, day: int, now_ms: int) -> int:
    """Count one too-frequent attempt; return the day's count."""
    row = cur.one(
        "INSERT INTO attempts (scope, subject, day, count, last_ms, rate_violations) VALUES (?,?,?,0,0,1) "
        "ON CONFLICT (scope, subject, day) DO UPDATE SET rate_violations = attempts.rate_violations + 1 "
        "RETURNING rate_violations",
        (scope, subject, day),
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
