"""`./atm bench`: every component's benchmark in one run, each printing its own table (median, p95)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from atm_tools.bench_link import machine
from atm_tools.benchrows import Row, as_dicts, drain

# Component name -> module with main(argv) -> int. Quick arguments keep the whole run to minutes.
BENCHES: dict[str, tuple[str, list[str]]] = {
    "link": ("atm_tools.bench_link", []),
    "rp2040": ("atm_tools.bench_rp2040", []),
    "vision": ("atm_tools.bench_vision", []),
    "bank": (
        "atm_tools.bench_bank",
        ["--atms", "1000", "--requests", "3000", "--workers", "1,2,4", "--db", "sqlite,postgres"],
    ),
    "console": ("atm_tools.bench_console", []),
    "journey": ("atm_tools.bench_journey", ["-n", "20"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="atm bench", description=__doc__)
    ap.add_argument("only", nargs="*", help=f"components, any of {sorted(BENCHES)} (default: all)")
    ap.add_argument("--json", type=Path, default=Path("reports/bench.json"), help="where the table goes")
    args = ap.parse_args(argv)
    chosen = cast(list[str], args.only) or list(BENCHES)
    unknown = [c for c in chosen if c not in BENCHES]
    if unknown:
        ap.error(f"unknown component(s) {unknown}; choose from {sorted(BENCHES)}")
    status = 0
    rows: list[Row] = []
    drain()
    for name in chosen:
        module_name, bench_args = BENCHES[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            print(f"\n### {name}: not built yet ({module_name})")
            continue
        print(f"\n### {name}  ({module_name} {' '.join(bench_args)})", flush=True)
        t0 = time.monotonic()
        run = cast(Callable[[list[str]], int], module.main)
        rc = run(bench_args)
        print(f"### {name}: exit {rc}, {time.monotonic() - t0:.0f} s", flush=True)
        rows += drain()
        status = status or rc
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine(), "rows": as_dicts(rows)}, indent=1))
    print(f"written: {args.json}")
    return status


def print_table(rows: list[Row]) -> None:
    """One table for every component: median and p95 (a rate has no p95), machine described."""
    print(f"\n## all benchmarks — machine: {machine()}")
    print("| component | measure | median | p95 | unit | note |")
    print("|---|---|---:|---:|---|---|")
    for r in rows:
        p95 = "" if r.p95 is None else f"{r.p95:.2f}"
        print(f"| {r.component} | {r.measure} | {r.median:.2f} | {p95} | {r.unit} | {r.note} |")


if __name__ == "__main__":
    sys.exit(main())
