"""The FrameParser + Link fuzz script run on MicroPython with an RP2040-sized heap (and on CPython)."""

from __future__ import annotations

from mp_runner import run_cpython, run_mp


def test_fuzz_on_micropython() -> None:
    result = run_mp("fuzz_check.py", "20000", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fuzz: 20000 inputs" in result.stdout


def test_fuzz_on_micropython_other_seed() -> None:
    result = run_mp("fuzz_check.py", "5000", "99")
    assert result.returncode == 0, result.stdout + result.stderr


def test_fuzz_script_on_cpython_same_counts() -> None:
    mp = run_mp("fuzz_check.py", "3000", "5")
    cp = run_cpython("fuzz_check.py", "3000", "5")
    assert mp.returncode == cp.returncode == 0, mp.stderr + cp.stderr
    assert mp.stdout == cp.stdout  # same seed, same counters on both runtimes
