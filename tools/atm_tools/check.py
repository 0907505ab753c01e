"""`./atm test`: every check, in order, failing on the first broken step (lint, types, build, tests)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _step(title: str, args: list[str], cwd: Path = REPO) -> None:
    print(f"\n=== {title}: {' '.join(args)}", flush=True)
    t0 = time.monotonic()
    res = subprocess.run(args, cwd=cwd, check=False)
    took = time.monotonic() - t0
    if res.returncode != 0:
        print(f"=== FAILED: {title} (exit {res.returncode}, {took:.1f} s)", flush=True)
        sys.exit(res.returncode)
    print(f"=== ok: {title} ({took:.1f} s)", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """`./atm test --help`: what runs, and that other arguments go to pytest."""
    return argparse.ArgumentParser(
        prog="./atm test",
        description="Every check, in order, stopping at the first failure: ruff lint, ruff format "
        "--check, pyright strict (host, bank, console, sim, tools), pyright of the firmware against the "
        "RP2040 stubs, mpy-cross of the firmware image, the models step (sha256), then pytest.",
        epilog="Any other argument goes to pytest, e.g. `./atm test tests/console -x` or "
        "`./atm test -k dispense`. ATM_SKIP_MODELS=1 skips the models step.",
    )


def main(argv: list[str] | None = None) -> int:
    _, extra = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    py = str(BIN / "python")
    _step("ruff lint", [str(BIN / "ruff"), "check", "."])
    _step("ruff format", [str(BIN / "ruff"), "format", "--check", "."])
    _step("pyright (host, bank, sim, tools: strict)", [str(BIN / "pyright")])
    _step(
        "pyright (firmware + wire protocol against the RP2040 stubs)",
        [str(BIN / "pyright"), "-p", "pyrightconfig.json"],
        cwd=REPO / "firmware",
    )
    _step(
        "mpy-cross (firmware image)",
        [
            py,
            "-c",
            "from atm_sim.board import build_image_tree; from pathlib import Path; "
            "build_image_tree(Path('build/image-tree')); print('firmware compiles with mpy-cross')",
        ],
    )
    if (REPO / "host" / "atm_host" / "vision" / "__main__.py").exists() and not os.environ.get(
        "ATM_SKIP_MODELS"
    ):
        _step("models step (fetch, verify sha256)", [py, "-m", "atm_host.vision", "models"])
    _step("pytest (unit, integration, hardware-in-the-loop)", [py, "-m", "pytest", "-q", *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main())
