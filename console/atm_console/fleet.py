"""Server-side aggregation of the fleet's MQTT traffic: ATM state, alarms, transactions, availability.

Pure: no MQTT, no web. `Fleet.ingest(topic, payload)` validates with the shared schemas
(atm_msg.schemas), updates the state and returns what the browsers must hear about at once; ATM rows
that changed are collected in a dirty set and sent in batches (telemetry from 10,000 ATMs is coalesced).
"""

import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from atm_msg import topics
from atm_msg.schemas import (
    AuthResponse,
    Birth,
    Cassette,
    ConsoleAlarm,
    Death,
    Event,
    Telemetry,
    TxnResult,
)
from pydantic import ValidationError

from .config import BENCHMARK_AVAILABILITY, Thresholds

Severity = Literal["info", "warning", "alarm"]
Level = Literal["ok", "low", "empty", "missing"]
Json = dict[str, Any]

EVENT_HISTORY = 100  # events kept per ATM for the detail view
TXN_STREAM = 500  # transactions kept for the stream
SEEN_EVENTS = 200_000  # event_ids remembered to drop redeliveries (outbox re-sends after a reconnect)
MAX_CLOSED_ALARMS = 2000  # acknowledged-and-cleared alarms kept for the list

# Event kinds that raise an alarm whatever severity the ATM gave them, with the console's alarm kind.
ALARM_KINDS: dict[str, tuple[str, Severity]] = {
    "jam": ("dispenser_jam", "alarm"),
    "dispenser_jam": ("dispenser_jam", "alarm"),
    "tamper": ("tamper", "alarm"),
    "shutter_forced": ("tamper", "alarm"),
    "liveness_attack": ("liveness_attack", "alarm"),
    "liveness_fail": ("liveness_attack", "warning"),
    "presentation_attack": ("liveness_attack", "alarm"),
    "spoof": ("liveness_attack", "alarm"),
    "abuse": ("abuse_pattern", "alarm"),
}


def _level_rank(level: str) -> int:
    return {"ok": 0, "low": 1, "empty": 2, "missing": 2}.get(level, 0)


def cassette_level(c: Cassette, th: Thresholds, index: int = 1, loaded: int | None = None) -> Level:
    """The worse of what the ATM reports and the console's own thresholds.

    Low is relative to `loaded`, the count cassette `index` (1-4) was last loaded with, unless that
    cassette has a fixed low count in th.low_notes.
    """
    low = th.low_notes.get(index)
    if low is None:
        low = int(th.low_fraction * (c.count if loaded is None else loaded))
    mine: Level = "empty" if c.count <= th.empty_notes else "low" if c.count <= low else "ok"
    return c.status if _level_rank(c.status) >= _level_rank(mine) else mine


def track_loaded(loaded: list[int], before: list[Cassette], now: list[Cassette]) -> list[int]:
    """The count each cassette was last loaded with: its first count, and any count that went up."""
    out: list[int] = []
    for i, c in enumerate(now):
        if i >= len(loaded) or i >= len(before) or c.count > before[i].count:
            out.append(c.count)
        else:
            out.append(loaded[i])
    return out


class Availability:
    """Seconds an ATM was available (online and in service) per time bucket."""

    def __init__(self, bucket_s: int, keep: int, now: float) -> None:
        self.bucket_s = bucket_s
        self.keep = keep
        self.buckets: dict[int, list[float]] = {}  # bucket index -> [up seconds, observed seconds]
        self.since = now
        self.t = now
        self.up = False

    def advance(self, now: float) -> None:
        t = self.t
        while t < now:
            b = int(t // self.bucket_s)
            end = min(now, (b + 1) * self.bucket_s)
            acc = self.buckets.setdefault(b, [0.0, 0.0])
            acc[1] += end - t
            if self.up:
                acc[0] += end - t
            t = end
        self.t = max(self.t, now)
        if len(self.buckets) > self.keep:
            for b in sorted(self.buckets)[: len(self.buckets) - self.keep]:
                del self.buckets[b]

    def set(self, up: bool, now: float) -> None:
        self.advance(now)
        self.up = up

    def series(self, now: float, n: int) -> list[tuple[float, float | None]]:
        """(bucket start, fraction up or None when not observed), oldest first, the last n buckets."""
        self.advance(now)
        last = int(now // self.bucket_s)
        out: list[tuple[float, float | None]] = []
        for b in range(last - n + 1, last + 1):
            acc = self.buckets.get(b)
            out.append((b * self.bucket_s, acc[0] / acc[1] if acc and acc[1] > 0 else None))
        return out

    def ratio(self, now: float) -> float | None:
        """Fraction up over every bucket kept."""
        up, total = self.seconds(now)
        return up / total if total > 0 else None

    def seconds(self, now: float) -> tuple[float, float]:
        """(seconds up, seconds observed) over every bucket kept."""
        self.advance(now)
        return sum(a[0] for a in self.buckets.values()), sum(a[1] for a in self.buckets.values())

    def bucket_seconds(self, now: float, n: int) -> list[tuple[float, float, float]]:
        """(bucket start, seconds up, seconds observed) of the last n buckets, oldest first."""
        self.advance(now)
        last = int(now // self.bucket_s)
        out: list[tuple[float, float, float]] = []
        for b in range(last - n + 1, last + 1):
            acc = self.buckets.get(b, [0.0, 0.0])
            out.append((b * self.bucket_s, acc[0], acc[1]))
        return out


@dataclass
class Alarm:
    """One alarm as the operator sees it."""

    alarm_id: str
    key: str  # dedupe key: one live alarm per (atm/subject, kind, sub-key)
    atm_id: str | None
    subject: str
    kind: str
    severity: Severity
    text: str
    raised_ms: int
    last_ms: int
    count: int = 1
    active: bool = True
    cleared_ms: int | None = None
    acked_by: str | None = None
    acked_ms: int | None = None

    def as_dict(self) -> Json:
        return {
            "alarm_id": self.alarm_id,
            "atm_id": self.atm_id,
            "subject": self.subject,
            "kind": self.kind,
            "severity": self.severity,
            "text": self.text,
            "raised_ms": self.raised_ms,
            "last_ms": self.last_ms,
            "count": self.count,
            "active": self.active,
            "cleared_ms": self.cleared_ms,
            "acked_by": self.acked_by,
            "acked_ms": self.acked_ms,
        }


@dataclass
class Atm:
    """Everything the console knows about one ATM."""

    atm_id: str
    availability: Availability
    online: bool = False
    bd_seq: int | None = None
    death_bd_seq: int | None = None
    device_id: str = ""
    host_version: str = ""
    config_version: int | None = None
    versions: dict[str, str] = field(default_factory=dict[str, str])  # firmware, model, ... from events
    state: str = "unknown"
    cassettes: list[Cassette] = field(default_factory=list[Cassette])
    loaded: list[int] = field(default_factory=list[int])  # per cassette, the count of its last loading
    counters: dict[str, int] = field(default_factory=dict[str, int])
    outbox_depth: int = 0
    max_notes: int | None = None  # presenter capacity, as the dispenser MCU states it (telemetry)
    last_seen: float = 0.0
    last_ts_ms: int = 0
    last_seq: int | None = None
    seq_gaps: int = 0
    births: int = 0
    deaths: int = 0
    last_txn: Json | None = None
    events: deque[Json] = field(default_factory=lambda: deque[Json](maxlen=EVENT_HISTORY))


def _now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    """The aggregated fleet; thread-safe (the MQTT thread ingests, the web server reads)."""

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        *,
        bucket_s: int = 3600,
        buckets: int = 48,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.th = thresholds or Thresholds()
        self.bucket_s = bucket_s
        self.n_buckets = buckets
        self.clock = clock
        self.lock = threading.RLock()
        self.atms: dict[str, Atm] = {}
        self.alarms: OrderedDict[str, Alarm] = OrderedDict()
        self._live: dict[str, str] = {}  # dedupe key -> alarm_id of the live alarm
        self.txns: deque[Json] = deque(maxlen=TXN_STREAM)
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._dirty: set[str] = set()
        self._alarm_seq = 0
        self.stats: dict[str, int] = {
            "messages": 0,
            "malformed": 0,
            "duplicates": 0,
            "births": 0,
            "deaths": 0,
            "telemetry": 0,
            "events": 0,
            "txns": 0,
        }

    # ----- ingest -----------------------------------------------------------------------------------
    def ingest(self, topic: str, payload: bytes) -> list[tuple[str, Json]]:
        """Apply one MQTT message; returns immediate updates [(kind, data)] for the browsers."""
        with self.lock:
            self.stats["messages"] += 1
            try:
                return self._dispatch(topic, payload)
            except (ValidationError, ValueError, UnicodeDecodeError):
                self.stats["malformed"] += 1
                return []

    def _dispatch(self, topic: str, payload: bytes) -> list[tuple[str, Json]]:
        if topic == topics.CONSOLE_ALARM:
            return self._bank_alarm(ConsoleAlarm.model_validate_json(payload))
        atm_id = topics.atm_of(topic)
        if atm_id is None:
            return []
        leaf = topic[len(topics.ROOT) + len(atm_id) + 2 :]
        if leaf == "telemetry":
            return self._telemetry(atm_id, Telemetry.model_validate_json(payload))
        if leaf == "event":
            return self._event(atm_id, Event.model_validate_json(payload))
        if leaf == "birth":
            return self._birth(atm_id, Birth.model_validate_json(payload))
        if leaf == "death":
            return self._death(atm_id, Death.model_validate_json(payload))
        if leaf == "auth/res":
            return self._auth(atm_id, AuthResponse.model_validate_json(payload))
        if leaf == "txn/result":
            return self._txn_result(atm_id, TxnResult.model_validate_json(payload))
        return []

    def _atm(self, atm_id: str) -> Atm:
        atm = self.atms.get(atm_id)
        if atm is None:
            atm = Atm(atm_id, Availability(self.bucket_s, self.n_buckets, self.clock()))
            self.atms[atm_id] = atm
        return atm

    def _touch(self, atm: Atm) -> None:
        atm.last_seen = self.clock()
        self._dirty.add(atm.atm_id)

    def _availability(self, atm: Atm) -> None:
        atm.availability.set(atm.online and atm.state == "in_service", self.clock())

    def _seq(self, atm: Atm, seq: int) -> None:
        if atm.last_seq is not None and seq != (atm.last_seq + 1) % 256:
            atm.seq_gaps += 1
        atm.last_seq = seq

    def _birth(self, atm_id: str, b: Birth) -> list[tuple[str, Json]]:
        if b.atm_id != atm_id:
            raise ValueError("atm_id does not match the topic")
        atm = self._atm(atm_id)
        self.stats["births"] += 1
        atm.births += 1
        atm.bd_seq = b.bd_seq
        atm.device_id = b.device_id
        atm.host_version = b.host_version
        atm.config_version = b.config_version
        atm.loaded = track_loaded(atm.loaded, atm.cassettes, list(b.cassettes))
        atm.cassettes = list(b.cassettes)
        atm.last_seq = 0
        atm.last_ts_ms = b.ts_ms
        # A death already seen for this bd_seq means this connection has ended (retained order varies).
        atm.online = atm.death_bd_seq != b.bd_seq
        if atm.state == "unknown":
            atm.state = "in_service"
        self._availability(atm)
        self._touch(atm)
        out: list[tuple[str, Json]] = []
        if atm.online:
            out += self._clear(f"{atm_id}:comms_lost")
        out += self._cassette_alarms(atm)
        return out

    def _death(self, atm_id: str, d: Death) -> list[tuple[str, Json]]:
        if d.atm_id != atm_id:
            raise ValueError("atm_id does not match the topic")
        atm = self._atm(atm_id)
        self.stats["deaths"] += 1
        atm.death_bd_seq = d.bd_seq
        if atm.bd_seq is not None and d.bd_seq != atm.bd_seq:
            return []  # the Will of an older connection: stale
        if not atm.online and atm.bd_seq is not None:
            return []
        atm.deaths += 1
        atm.online = False
        self._availability(atm)
        self._touch(atm)
        return self._raise(
            f"{atm_id}:comms_lost", atm_id, atm_id, "comms_lost", "alarm", "connection lost (MQTT Will)"
        )

    def _telemetry(self, atm_id: str, t: Telemetry) -> list[tuple[str, Json]]:
        if t.atm_id != atm_id:
            raise ValueError("atm_id does not match the topic")
        atm = self._atm(atm_id)
        self.stats["telemetry"] += 1
        self._seq(atm, t.seq)
        changed_state = atm.state != t.state
        atm.state = t.state
        atm.loaded = track_loaded(atm.loaded, atm.cassettes, list(t.cassettes))
        atm.cassettes = list(t.cassettes)
        atm.counters = dict(t.counters)
        atm.outbox_depth = t.outbox_depth
        if t.max_notes is not None:
            atm.max_notes = t.max_notes
        atm.last_ts_ms = t.ts_ms
        if changed_state:
            self._availability(atm)
        self._touch(atm)
        out = self._cassette_alarms(atm)
        if t.state == "fault":
            out += self._raise(f"{atm_id}:fault", atm_id, atm_id, "atm_fault", "alarm", "ATM reports fault")
        else:
            out += self._clear(f"{atm_id}:fault")
        return out

    def _event(self, atm_id: str, e: Event) -> list[tuple[str, Json]]:
        if e.atm_id != atm_id:
            raise ValueError("atm_id does not match the topic")
        if e.event_id in self._seen_events:
            self.stats["duplicates"] += 1
            return []
        self._seen_events[e.event_id] = None
        if len(self._seen_events) > SEEN_EVENTS:
            self._seen_events.popitem(last=False)
        atm = self._atm(atm_id)
        self.stats["events"] += 1
        self._seq(atm, e.seq)
        ev: Json = {
            "atm_id": atm_id,
            "event_id": e.event_id,
            "ts_ms": e.ts_ms,
            "kind": e.kind,
            "severity": e.severity,
            "detail": dict(e.detail),
        }
        atm.events.appendleft(ev)
        atm.last_ts_ms = max(atm.last_ts_ms, e.ts_ms)
        if e.kind == "versions":  # the host reports firmware/model versions as an info event
            atm.versions.update({k: str(v) for k, v in e.detail.items()})
        self._touch(atm)
        out: list[tuple[str, Json]] = [("event", ev)]
        detail = ", ".join(f"{k}={v}" for k, v in e.detail.items())
        mapped = ALARM_KINDS.get(e.kind)
        if mapped is not None:
            kind, sev = mapped
            sev = "alarm" if e.severity == "alarm" else sev
            out += self._raise(f"{atm_id}:{kind}", atm_id, atm_id, kind, sev, detail or e.kind, e.ts_ms)
        elif e.severity in ("alarm", "warning") and e.kind != "cassette_threshold":
            out += self._raise(
                f"{atm_id}:{e.kind}", atm_id, atm_id, e.kind, e.severity, detail or e.kind, e.ts_ms
            )
        return out

    def _auth(self, atm_id: str, r: AuthResponse) -> list[tuple[str, Json]]:
        atm = self._atm(atm_id)
        self.stats["txns"] += 1
        txn: Json = {
            "ts_ms": _now_ms(),
            "atm_id": atm_id,
            "txid": r.txid,
            "request_id": r.request_id,
            "stage": "authorized" if r.decision == "approve" else "declined",
            "amount_yuan": r.amount_yuan,
            "reason": r.reason,
        }
        return self._txn(atm, txn)

    def _txn_result(self, atm_id: str, r: TxnResult) -> list[tuple[str, Json]]:
        atm = self._atm(atm_id)
        self.stats["txns"] += 1
        txn: Json = {
            "ts_ms": _now_ms(),
            "atm_id": atm_id,
            "txid": r.txid,
            "request_id": None,
            "stage": r.outcome,
            "amount_yuan": r.debited_yuan,
            "reason": r.detail or None,
        }
        out = self._txn(atm, txn)
        if r.outcome == "suspect":
            out += self._raise(
                f"{atm_id}:suspect:{r.txid}", atm_id, atm_id, "suspect_txn", "alarm", f"txn {r.txid} suspect"
            )
        return out

    def _txn(self, atm: Atm, txn: Json) -> list[tuple[str, Json]]:
        self.txns.appendleft(txn)
        atm.last_txn = txn
        self._dirty.add(atm.atm_id)
        return [("txn", txn)]

    def _bank_alarm(self, a: ConsoleAlarm) -> list[tuple[str, Json]]:
        atm_id = a.subject if a.scope == "atm" and a.subject in self.atms else None
        return self._raise(
            f"bank:{a.kind}:{a.scope}:{a.subject}",
            atm_id,
            f"{a.scope} {a.subject}",
            "abuse_pattern",
            "alarm",
            f"{a.kind}: {a.detail}" if a.detail else a.kind,
            a.ts_ms,
        )

    def _cassette_alarms(self, atm: Atm) -> list[tuple[str, Json]]:
        out: list[tuple[str, Json]] = []
        for i, c in enumerate(atm.cassettes, start=1):
            level = cassette_level(c, self.th, i, atm.loaded[i - 1] if i <= len(atm.loaded) else None)
            low, empty = f"{atm.atm_id}:cassette{i}:low", f"{atm.atm_id}:cassette{i}:empty"
            text = f"cassette {i} ({c.denomination} yuan): {c.count} notes"
            if level in ("empty", "missing"):
                out += self._clear(low)
                out += self._raise(empty, atm.atm_id, atm.atm_id, "cassette_empty", "alarm", text)
            elif level == "low":
                out += self._clear(empty)
                out += self._raise(low, atm.atm_id, atm.atm_id, "cassette_low", "warning", text)
            else:
                out += self._clear(low) + self._clear(empty)
        return out

    # ----- alarms -----------------------------------------------------------------------------------
    def _raise(
        self,
        key: str,
        atm_id: str | None,
        subject: str,
        kind: str,
        severity: Severity,
        text: str,
        ts_ms: int | None = None,
    ) -> list[tuple[str, Json]]:
        now = _now_ms() if ts_ms is None else ts_ms
        live_id = self._live.get(key)
        if live_id is not None:
            alarm = self.alarms[live_id]
            if alarm.severity == severity and alarm.text == text and alarm.acked_by is None:
                return []  # the same condition again (e.g. every telemetry of a low cassette)
            if alarm.text == text and alarm.acked_by is not None and kind.startswith("cassette"):
                return []  # acknowledged and unchanged: stay quiet
            alarm.count += 1
            alarm.last_ms = now
            alarm.severity = severity
            alarm.text = text
            alarm.acked_by = None  # a new occurrence needs a new acknowledgement
            alarm.acked_ms = None
            return [("alarm", alarm.as_dict())]
        self._alarm_seq += 1
        alarm = Alarm(f"A{self._alarm_seq:07d}", key, atm_id, subject, kind, severity, text, now, now)
        self.alarms[alarm.alarm_id] = alarm
        self._live[key] = alarm.alarm_id
        if atm_id is not None:
            self._dirty.add(atm_id)
        self._prune()
        return [("alarm", alarm.as_dict())]

    def _clear(self, key: str) -> list[tuple[str, Json]]:
        live_id = self._live.pop(key, None)
        if live_id is None:
            return []
        alarm = self.alarms[live_id]
        alarm.active = False
        alarm.cleared_ms = _now_ms()
        if alarm.atm_id is not None:
            self._dirty.add(alarm.atm_id)
        return [("alarm", alarm.as_dict())]

    def _prune(self) -> None:
        closed = [a.alarm_id for a in self.alarms.values() if not a.active and a.acked_by is not None]
        for alarm_id in closed[: max(0, len(closed) - MAX_CLOSED_ALARMS)]:
            del self.alarms[alarm_id]

    def acknowledge(self, alarm_id: str, operator: str) -> Json | None:
        """Mark an alarm acknowledged; None when there is no such alarm."""
        with self.lock:
            alarm = self.alarms.get(alarm_id)
            if alarm is None:
                return None
            alarm.acked_by = operator
            alarm.acked_ms = _now_ms()
            if alarm.atm_id is not None:
                self._dirty.add(alarm.atm_id)
            self._prune()
            return alarm.as_dict()

    # ----- views ------------------------------------------------------------------------------------
    def mark_quiet(self) -> None:
        """Offline ATMs send nothing, yet their availability falls: their rows are re-sent (once a second)."""
        with self.lock:
            self._dirty.update(a.atm_id for a in self.atms.values() if not a.online)

    def take_dirty(self) -> list[Json]:
        """Summaries of the ATMs changed since the last call."""
        with self.lock:
            ids, self._dirty = self._dirty, set()
            return [self.summary(self.atms[i]) for i in ids if i in self.atms]

    def alarm_counts(self, atm_id: str) -> tuple[int, int]:
        """(active alarms, unacknowledged active alarms) of one ATM."""
        n = u = 0
        for key, alarm_id in self._live.items():
            if key.startswith(atm_id + ":"):
                n += 1
                u += self.alarms[alarm_id].acked_by is None
        return n, u

    def summary(self, atm: Atm) -> Json:
        now = self.clock()
        active, unacked = self.alarm_counts(atm.atm_id)
        ratio = atm.availability.ratio(now)
        return {
            "atm_id": atm.atm_id,
            "online": atm.online,
            "silent": atm.online and now - atm.last_seen > self.th.silent_s,
            "state": atm.state,
            "cassettes": [
                {
                    "denomination": c.denomination,
                    "count": c.count,
                    "level": cassette_level(
                        c, self.th, i, atm.loaded[i - 1] if i <= len(atm.loaded) else None
                    ),
                }
                for i, c in enumerate(atm.cassettes, start=1)
            ],
            "cash_yuan": sum(c.denomination * c.count for c in atm.cassettes),
            "last_txn": atm.last_txn,
            "alarms": active,
            "unacked": unacked,
            "availability": None if ratio is None else round(ratio, 5),
            "last_seen_ms": int(atm.last_seen * 1000),
            "ts_ms": atm.last_ts_ms,
            "host_version": atm.host_version,
        }

    def open_alarms(self, atm_id: str | None = None) -> list[Json]:
        """Alarms still active or not yet acknowledged (optionally of one ATM), oldest first."""
        with self.lock:
            return [
                a.as_dict()
                for a in self.alarms.values()
                if (a.active or a.acked_by is None) and (atm_id is None or a.atm_id == atm_id)
            ]

    def snapshot(self) -> Json:
        """Everything a browser needs when it connects."""
        with self.lock:
            return {
                "atms": [self.summary(a) for a in self.atms.values()],
                "alarms": self.open_alarms()[-500:],
                "txns": list(self.txns)[:100],
                "totals": self.totals(),
            }

    def totals(self) -> Json:
        with self.lock:
            now = self.clock()
            atms = list(self.atms.values())
            # ATM-time weighted, like each row: the fleet's seconds up over its seconds observed
            secs = [a.availability.seconds(now) for a in atms]
            observed = sum(t for _, t in secs)
            live = [self.alarms[i] for i in self._live.values()]
            return {
                "atms": len(atms),
                "online": sum(a.online for a in atms),
                "in_service": sum(a.online and a.state == "in_service" for a in atms),
                "cash_yuan": sum(sum(c.denomination * c.count for c in a.cassettes) for a in atms),
                "alarms": len(live),
                "unacked": sum(a.acked_by is None for a in live),
                "availability": round(sum(u for u, _ in secs) / observed, 5) if observed > 0 else None,
                "benchmark": BENCHMARK_AVAILABILITY,
                "stats": dict(self.stats),
            }

    def detail(self, atm_id: str) -> Json | None:
        """Per-ATM detail: versions, counters, cassettes, events, availability series."""
        with self.lock:
            atm = self.atms.get(atm_id)
            if atm is None:
                return None
            now = self.clock()
            return {
                **self.summary(atm),
                "bd_seq": atm.bd_seq,
                "device_id": atm.device_id,
                "config_version": atm.config_version,
                "versions": {"host": atm.host_version, **atm.versions},
                "counters": dict(atm.counters),
                "outbox_depth": atm.outbox_depth,
                "max_notes": atm.max_notes,
                "seq_gaps": atm.seq_gaps,
                "births": atm.births,
                "deaths": atm.deaths,
                "events": list(atm.events),
                "alarm_list": self.open_alarms(atm_id),
                "availability_series": atm.availability.series(now, self.n_buckets),
            }

    def fleet_series(self) -> list[tuple[float, float | None]]:
        """Availability of the fleet per bucket: seconds up over seconds observed, all ATMs together."""
        with self.lock:
            now = self.clock()
            sums: list[tuple[float, float, float]] = []
            for atm in self.atms.values():
                for i, (start, up, seen) in enumerate(atm.availability.bucket_seconds(now, self.n_buckets)):
                    if len(sums) <= i:
                        sums.append((start, 0.0, 0.0))
                    s, u, t = sums[i]
                    sums[i] = (s, u + up, t + seen)
            return [(s, u / t if t > 0 else None) for s, u, t in sums]


def dumps(obj: object) -> str:
    """Compact JSON for the browser."""
    return json.dumps(obj, separators=(",", ":"))
