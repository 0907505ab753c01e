"""`./atm test`: every check, in order, failing on the first broken step (lint, types, build, tests)."""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
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
