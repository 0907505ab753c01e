"""Power cuts on the emulated RP2040: at a sample of a dispense's flash erases/programs and pin changes.

The cut flash operation is left half done (the first half of an erase range erased, the first half of
a page's bytes programmed); the chip restarts from the kept flash and the books must reconcile exactly.
The same transaction driver and checks as the simulated board's every-step test (test_resilience).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from atm_host.link import CommandFailed, DeviceReset, LinkError

from hil_tests.rig import make_rig
from hil_tests.test_resilience import _check_books, _settle, _transaction  # pyright: ignore[reportPrivateUsage]

NOTES = (2, 1, 0, 0)


def _sample(steps: int, n: int, seed: int) -> list[int]:
    """The first and last step and n-2 others drawn at random (seeded: a failure reproduces)."""
    inner = list(range(2, steps))
    picks = random.Random(seed).sample(inner, min(len(inner), max(0, n - 2)))
    return sorted({1, steps, *picks})


def _cuts(tmp_path: Path, kind: str, samples: int) -> None:
    with make_rig(tmp_path / "calibrate") as rig:
        assert rig.board is not None
        txid, token = rig.token(NOTES)
        before = rig.board.flash_writes if kind == "flash" else rig.board.pin_writes
        _transaction(rig, txid, token)
        steps = (rig.board.flash_writes if kind == "flash" else rig.board.pin_writes) - before
    assert steps >= 2, f"a dispense made {steps} {kind} steps"
    load = [2000, 2000, 2000, 2000]
    outcomes: dict[str, int] = {}
    points = _sample(steps, samples, seed=11)
    with make_rig(tmp_path / "cuts", load=load) as rig:
        assert rig.board is not None
        for k in points:
            txid, token = rig.token(NOTES)
            taken_before = rig.board.mech.taken
            cuts_before = rig.board.power_cuts
            rig.board.cut_at(kind, k)
            try:
                _transaction(rig, txid, token)
            except (LinkError, DeviceReset, CommandFailed):
                pass
            if rig.board.armed:
                rig.board.disarm()
            try:
                reported = _settle(rig, txid, token)
            except AssertionError as exc:
                raise AssertionError(f"{kind} cut at step {k}/{steps}: {exc}") from exc
            got = rig.board.mech.taken - taken_before
            _check_books(rig, sum(load))
            key = "exact" if reported >= 0 else "unknown"
            outcomes[key] = outcomes.get(key, 0) + 1
            assert got <= sum(NOTES), f"step {k}: paid {got} notes for one {sum(NOTES)}-note transaction"
            if reported >= 0:
                assert reported == got, f"step {k}: report says {reported}, customer has {got}"
            assert rig.board.power_cuts in (cuts_before, cuts_before + 1)
    print(f"\n{kind} power cuts on the emulated RP2040: {steps} steps, cut at {points}, outcomes {outcomes}")
    assert outcomes.get("exact", 0) >= len(points) * 0.8, outcomes


@pytest.mark.rp2040
def test_rp2040_power_cut_at_sampled_flash_writes(tmp_path: Path) -> None:
    _cuts(tmp_path, "flash", samples=5)


@pytest.mark.rp2040
@pytest.mark.rp2040_full
def test_rp2040_power_cut_at_sampled_pin_changes(tmp_path: Path) -> None:
    _cuts(tmp_path, "pin", samples=12)
