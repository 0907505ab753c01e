"""Aggregation: real schema payloads in, fleet state, alarms, transactions and availability out."""

import json
import os
import time

from atm_console.config import Thresholds
from atm_console.fleet import Fleet
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


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def cassettes(*counts: int) -> list[Cassette]:
    return [Cassette(denomination=d, count=c) for d, c in zip((100, 50, 20, 10), counts, strict=True)]


def birth(atm: str, bd: int, counts: tuple[int, ...] = (1000, 1000, 1000, 1000)) -> bytes:
    return Birth(atm_id=atm, bd_seq=bd, seq=0, ts_ms=1, device_id="00" * 8, host_version="0.2.0",
                 config_version=3, cassettes=cassettes(*counts)).model_dump_json().encode()  # fmt: skip


def telemetry(atm: str, seq: int, state: str = "in_service", counts: tuple[int, ...] = (1000,) * 4) -> bytes:
    return (
        Telemetry.model_validate(
            {
                "atm_id": atm,
                "seq": seq,
                "ts_ms": 2,
                "state": state,
                "cassettes": [c.model_dump() for c in cassettes(*counts)],
                "counters": {"jams": 1},
            }
        )
        .model_dump_json()
        .encode()
    )


def event(atm: str, seq: int, kind: str, severity: str, event_id: str | None = None) -> bytes:
    return (
        Event.model_validate(
            {
                "atm_id": atm,
                "event_id": event_id or os.urandom(16).hex(),
                "seq": seq,
                "ts_ms": 3,
                "kind": kind,
                "severity": severity,
                "detail": {"location": "transport"},
            }
        )
        .model_dump_json()
        .encode()
    )


def fleet() -> tuple[Fleet, Clock]:
    clock = Clock()
    return Fleet(Thresholds(low_fraction=0.2, empty_notes=20), bucket_s=60, buckets=10, clock=clock), clock


def test_birth_then_will_marks_offline_and_raises_comms_lost() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 7))
    assert f.atms["A1"].online and f.atms["A1"].host_version == "0.2.0"
    out = f.ingest(topics.death("A1"), Death(atm_id="A1", bd_seq=7, ts_ms=1).model_dump_json().encode())
    assert not f.atms["A1"].online
    assert [(k, d["kind"]) for k, d in out] == [("alarm", "comms_lost")]
    f.ingest(topics.birth("A1"), birth("A1", 8))  # reconnect: the comms alarm clears
    assert f.atms["A1"].online
    assert f.totals()["alarms"] == 0


def test_stale_death_of_an_older_connection_is_ignored() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 8))
    f.ingest(topics.death("A1"), Death(atm_id="A1", bd_seq=7, ts_ms=1).model_dump_json().encode())
    assert f.atms["A1"].online


def test_retained_death_before_its_birth_keeps_the_atm_offline() -> None:
    f, _ = fleet()  # retained messages come in any order when the console subscribes
    f.ingest(topics.death("A1"), Death(atm_id="A1", bd_seq=5, ts_ms=1).model_dump_json().encode())
    f.ingest(topics.birth("A1"), birth("A1", 5))
    assert not f.atms["A1"].online


def test_cassette_thresholds_raise_low_then_empty_and_clear_on_replenishment() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 1))
    out = f.ingest(topics.telemetry("A1"), telemetry("A1", 1, counts=(150, 1000, 1000, 1000)))
    assert [d["kind"] for _, d in out] == ["cassette_low"]
    assert f.summary(f.atms["A1"])["cassettes"][0]["level"] == "low"
    assert f.ingest(topics.telemetry("A1"), telemetry("A1", 2, counts=(150, 1000, 1000, 1000))) == []
    out = f.ingest(topics.telemetry("A1"), telemetry("A1", 3, counts=(10, 1000, 1000, 1000)))
    kinds = {(d["kind"], d["active"]) for _, d in out}
    assert kinds == {("cassette_low", False), ("cassette_empty", True)}
    f.ingest(topics.telemetry("A1"), telemetry("A1", 4, counts=(2000, 1000, 1000, 1000)))
    assert f.totals()["alarms"] == 0
    assert f.totals()["cash_yuan"] == 2000 * 100 + 1000 * (50 + 20 + 10)


def test_a_freshly_loaded_atm_is_not_low_whatever_it_was_loaded_with() -> None:
    f, _ = fleet()
    out = f.ingest(topics.birth("A1"), birth("A1", 1, counts=(200, 200, 200, 200)))  # the demo's load
    out += f.ingest(topics.telemetry("A1"), telemetry("A1", 1, counts=(195, 200, 200, 200)))
    assert [d for _, d in out if str(d.get("kind", "")).startswith("cassette")] == []
    assert [c["level"] for c in f.summary(f.atms["A1"])["cassettes"]] == ["ok"] * 4  # type: ignore[index]
    out = f.ingest(topics.telemetry("A1"), telemetry("A1", 2, counts=(40, 200, 200, 200)))  # 20% left
    assert [d["kind"] for _, d in out] == ["cassette_low"]
    # a cassette with a fixed low count of its own (configured per cassette)
    g = Fleet(Thresholds(low_notes={2: 500}), bucket_s=60, buckets=10, clock=Clock())
    out = g.ingest(topics.birth("A2"), birth("A2", 1, counts=(2000, 400, 2000, 2000)))
    out += g.ingest(topics.telemetry("A2"), telemetry("A2", 1, counts=(2000, 400, 2000, 2000)))
    assert [str(d["text"]) for _, d in out if d.get("kind") == "cassette_low"] == [
        "cassette 2 (50 yuan): 400 notes"
    ]


def test_presenter_capacity_shown_is_the_one_the_atm_reports() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 1))
    assert f.detail("A1")["max_notes"] is None  # type: ignore[index]
    body = Telemetry.model_validate({**json.loads(telemetry("A1", 1)), "max_notes": 5})
    f.ingest(topics.telemetry("A1"), body.model_dump_json().encode())
    assert f.detail("A1")["max_notes"] == 5  # type: ignore[index]
    f.ingest(topics.telemetry("A1"), telemetry("A1", 2))  # a sample without it keeps the last known value
    assert f.detail("A1")["max_notes"] == 5  # type: ignore[index]


def test_jam_tamper_and_liveness_events_raise_alarms_and_ack_works() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 1))
    kinds = []
    for seq, kind in enumerate(("jam", "tamper", "liveness_attack"), start=1):
        out = f.ingest(topics.event("A1"), event("A1", seq, kind, "alarm"))
        kinds += [d["kind"] for k, d in out if k == "alarm"]
    assert kinds == ["dispenser_jam", "tamper", "liveness_attack"]
    assert f.summary(f.atms["A1"])["unacked"] == 3
    jam = next(a for a in f.alarms.values() if a.kind == "dispenser_jam")
    acked = f.acknowledge(jam.alarm_id, "alice")
    assert acked is not None and acked["acked_by"] == "alice"
    assert f.summary(f.atms["A1"])["unacked"] == 2
    assert f.acknowledge("nope", "alice") is None
    # a second jam re-raises the same alarm and needs a new acknowledgement
    out = f.ingest(topics.event("A1"), event("A1", 4, "jam", "alarm"))
    assert out[-1][1]["count"] == 2 and out[-1][1]["acked_by"] is None


def test_repeated_event_id_is_dropped_and_info_events_do_not_alarm() -> None:
    f, _ = fleet()
    eid = os.urandom(16).hex()
    assert len(f.ingest(topics.event("A1"), event("A1", 1, "items_taken", "info", eid))) == 1
    assert f.ingest(topics.event("A1"), event("A1", 1, "items_taken", "info", eid)) == []
    assert f.stats["duplicates"] == 1 and f.totals()["alarms"] == 0
    assert len(f.detail("A1")["events"]) == 1  # type: ignore[index]


def test_bank_alarm_is_an_abuse_pattern() -> None:
    f, _ = fleet()
    msg = ConsoleAlarm(alarm_id="ab" * 16, ts_ms=5, kind="attempts_exceeded", scope="customer",
                       subject="1000", detail="6 attempts")  # fmt: skip
    out = f.ingest(topics.CONSOLE_ALARM, msg.model_dump_json().encode())
    assert out[0][1]["kind"] == "abuse_pattern" and "attempts_exceeded" in out[0][1]["text"]


def test_transactions_stream_and_last_txn() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 1))
    txid = "cd" * 16
    ok = AuthResponse(
        request_id="ef" * 16, decision="approve", txid=txid, amount_yuan=500, notes=[5, 0, 0, 0]
    )
    f.ingest(topics.auth_response("A1"), ok.model_dump_json().encode())
    f.ingest(
        topics.txn_result("A1"),
        TxnResult(txid=txid, outcome="debited", debited_yuan=500).model_dump_json().encode(),
    )
    assert [t["stage"] for t in f.txns] == ["debited", "authorized"]
    assert f.summary(f.atms["A1"])["last_txn"]["stage"] == "debited"  # type: ignore[index]
    f.ingest(topics.txn_result("A1"), TxnResult(txid=txid, outcome="suspect").model_dump_json().encode())
    assert any(a.kind == "suspect_txn" for a in f.alarms.values())


def test_malformed_and_mismatched_payloads_are_counted_not_applied() -> None:
    f, _ = fleet()
    f.ingest(topics.telemetry("A1"), b"{not json")
    f.ingest(topics.telemetry("A1"), telemetry("A2", 1))  # body names another ATM than the topic
    f.ingest(topics.birth("A1"), birth("A1", 1)[:-1] + b',"extra":1}')
    assert f.stats["malformed"] == 3 and "A2" not in f.atms and "A1" not in f.atms


def test_availability_counts_online_in_service_time_per_bucket() -> None:
    f, clock = fleet()
    clock.t = 60 * 1000.0  # bucket boundary
    f.ingest(topics.birth("A1"), birth("A1", 1))
    clock.t += 30
    f.ingest(topics.telemetry("A1"), telemetry("A1", 1, state="out_of_service"))
    clock.t += 30  # 30 s up, 30 s out of service
    f.ingest(topics.telemetry("A1"), telemetry("A1", 2, state="in_service"))
    clock.t += 60
    series = f.atms["A1"].availability.series(clock.t, 3)
    assert [r for _, r in series][-3:-1] == [0.5, 1.0]
    ratio = f.atms["A1"].availability.ratio(clock.t)
    assert ratio is not None and abs(ratio - 0.75) < 1e-9
    assert f.fleet_series()[-2][1] == 1.0


def test_fleet_availability_agrees_with_the_rows() -> None:
    """The fleet figure is the rows' ATM-time together: one ATM -> its row; two -> seconds up / observed."""
    f, clock = fleet()
    clock.t = 60 * 1000.0
    f.ingest(topics.birth("A1"), birth("A1", 1))
    clock.t += 100
    one = f.summary(f.atms["A1"])["availability"]
    assert f.totals()["availability"] == one == 1.0
    f.ingest(topics.birth("A2"), birth("A2", 1))
    clock.t += 10
    f.ingest(topics.telemetry("A2"), telemetry("A2", 1, state="out_of_service"))
    clock.t += 10  # A1: 120 s up of 120; A2: 10 s up of 20
    rows = {a: f.summary(f.atms[a])["availability"] for a in ("A1", "A2")}
    assert rows == {"A1": 1.0, "A2": 0.5}
    assert f.totals()["availability"] == round(130 / 140, 5)
    f.ingest(topics.death("A2"), Death(atm_id="A2", bd_seq=1, ts_ms=3).model_dump_json().encode())
    f.take_dirty()
    clock.t += 20  # A2 offline: no message, yet its row's availability falls with the fleet figure
    f.mark_quiet()
    rows = {str(r["atm_id"]): r["availability"] for r in f.take_dirty()}
    assert rows == {"A2": round(10 / 40, 5)}
    assert f.totals()["availability"] == round(150 / 180, 5)
    last = [r for _, r in f.fleet_series() if r is not None]
    assert last and all(0.0 <= r <= 1.0 for r in last)


def test_availability_chart_has_dated_axis_labels() -> None:
    from atm_console.svg import availability_svg

    start = 1_764_806_400.0  # 2025-12-04 00:00 UTC
    series: list[tuple[float, float | None]] = [(start + i * 3600, 1.0) for i in range(48)]
    svg = availability_svg(series, "Fleet availability")
    dates = [time.strftime("%Y-%m-%d %H:%M", time.localtime(series[i][0])) for i in (0, 23, 47)]
    for d in dates:
        assert f">{d}</text>" in svg, d
    assert "48 bars of 1 h, local time" in svg


def test_sequence_gap_is_counted() -> None:
    f, _ = fleet()
    f.ingest(topics.birth("A1"), birth("A1", 1))
    f.ingest(topics.telemetry("A1"), telemetry("A1", 1))
    f.ingest(topics.telemetry("A1"), telemetry("A1", 3))
    assert f.atms["A1"].seq_gaps == 1
