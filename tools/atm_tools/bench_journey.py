"""Journey benchmark: QR in view -> bank approval on the whole local system, median and p95, machine noted.

Real models, the real firmware on the simulated board over its pty, the real broker and bank service on
loopback (`atm_tools.demo.LocalStack`). The person's own time (walking up, typing) is excluded from the
machine figure and printed on its own line. `./atm bench` can call `main()`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from atm_host.journey.config import JourneyConfig

from atm_tools.bench_link import machine, percentile
from atm_tools.benchrows import record
from atm_tools.demo import LocalStack, StackOptions

ROWS = (
    ("qr_decode_ms", "QR decode (frame delivered -> token text)"),
    ("token_check_ms", "offline token check (Ed25519, expiry)"),
    ("face_ms", "face: 2 live frames (detect, align, embed, liveness)"),
    ("nonce_ms", "MCU nonce (GET_NONCE over the UART)"),
    ("authorize_ms", "bank authorization (MQTT 5 round trip + decision)"),
    ("machine_qr_to_approval_ms", "QR in view -> approval, machine time"),
    ("person_ms", "the person's own time (excluded above)"),
    ("dispense_ms", "dispense 5 notes (after approval)"),
    ("present_ms", "present (shutter open)"),
)
TARGET_P95_MS = 500.0


def run(n: int, workdir: Path) -> list[dict[str, float]]:
    """n withdrawals of 500 yuan; one customer per 4 (the bank's daily attempt limit is 5)."""
    opts = StackOptions(
        load=[2000, 200, 200, 200],
        journey=JourneyConfig.model_validate({"timeouts": {"outcome_s": 0.0}}),
        bank_config={"abuse": {"min_interval_s": 0}, "limits": {"per_customer_day_yuan": 2000}},
        customers=n // 4 + 1,
    )
    out: list[dict[str, float]] = []
    with LocalStack(workdir, opts, log=lambda _: None) as stack:
        stack.withdraw(stack.customers[-1], 100)  # warm-up: first model runs, first MQTT round trip
        for i in range(n):
            rec = stack.withdraw(stack.customers[i // 4], 500)
            if rec.outcome != "paid":
                raise RuntimeError(f"withdrawal {i} ended {rec.outcome} ({rec.reason})")
            out.append(rec.timings)
    return out


def table(samples: list[dict[str, float]]) -> str:
    lines = [
        f"machine: {machine()}",
        f"journey: {len(samples)} withdrawals of 500 yuan; ms (median / p95)",
        f"{'stage':56s} {'median':>9s} {'p95':>9s}",
    ]
    for key, label in ROWS:
        vals = [s[key] for s in samples if key in s]
        if vals:
            lines.append(f"{label:56s} {statistics.median(vals):9.1f} {percentile(vals, 0.95):9.1f}")
            record("journey", label, statistics.median(vals), percentile(vals, 0.95), "ms")
    total = [s["machine_qr_to_approval_ms"] for s in samples]
    p95 = percentile(total, 0.95)
    verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
    lines.append(f"target: QR in view -> approval p95 <= {TARGET_P95_MS:.0f} ms: {verdict} ({p95:.1f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atm_tools.bench_journey", description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="withdrawals to measure")
    parser.add_argument("--json", type=Path, default=None, help="also write the samples and table as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="atm-bench-journey-") as tmp:
        samples = run(args.n, Path(tmp))
    text = table(samples)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "samples": samples, "table": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
