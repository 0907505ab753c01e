"""The rows every benchmark records besides its own printout, so `./atm bench` can show one table."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    component: str
    measure: str
    median: float
    p95: float | None
    unit: str
    note: str = ""


_ROWS: list[Row] = []


def record(component: str, measure: str, median: float, p95: float | None, unit: str, note: str = "") -> None:
    """Add one result row (p95 None where the measure is a single figure, e.g. a rate)."""
    _ROWS.append(Row(component, measure, float(median), None if p95 is None else float(p95), unit, note))


def drain() -> list[Row]:
    """Every row recorded since the last drain."""
    rows = list(_ROWS)
    _ROWS.clear()
    return rows


def as_dicts(rows: list[Row]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]
