"""`./atm sim`: run a simulated board until Ctrl-C and print the serial port the host should open."""

from __future__ import annotations

import argparse
import sys
import time

from atm_sim.board import SimBoard


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="atm sim", description=__doc__)
    ap.add_argument("--load", default="200,200,200,200", help="notes physically in cassettes 0..3")
    ap.add_argument("--auto-take", action="store_true", help="the customer takes presented notes at once")
    args = ap.parse_args(argv)
    with SimBoard() as board:
        board.mech.load([int(x) for x in args.load.split(",")])
        print(f"simulated dispenser running; serial port: {board.port}  (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(0.2)
                if args.auto_take:
                    board.mech.take()
        except KeyboardInterrupt:
            print("\nstopping; mechanics:", board.mech.snapshot())
    return 0


if __name__ == "__main__":
    sys.exit(main())
