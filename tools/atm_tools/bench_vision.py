"""`./atm bench` vision part: per-stage face pipeline latency and QR decoders side by side."""

from atm_host.vision.bench import main as _bench_main


def main(argv: list[str] | None = None) -> int:
    """Run the vision benchmark (see `python -m atm_host.vision bench --help`); returns the exit code."""
    return _bench_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
