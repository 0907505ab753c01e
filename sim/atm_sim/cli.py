"""`./atm sim`: run a simulated board until Ctrl-C; `./atm sim ctl OP` drives a running one."""

from __future__ import annotations

import argparse
import json
import sys
import time

from atm_sim.board import SimBoard
from atm_sim.control import ControlServer, control


def _run(args: argparse.Namespace) -> int:
    with SimBoard(baud=args.baud, pluggable=args.pluggable) as board:
        board.mech.load([int(x) for x in args.load.split(",")])
        ctl = ControlServer(board, args.control_port).start()
        port = board.stable_port if args.pluggable else board.port
        print(f"simulated dispenser running; serial port: {port}; control port: {ctl.port}", flush=True)
        print(
            "  drive it with: ./atm sim ctl --port PORT take|state|jam|door --on true|power_cut|...",
            flush=True,
        )
        try:
            while True:
                time.sleep(0.2)
                if args.auto_take:
                    board.mech.take()
        except KeyboardInterrupt:
            print("\nstopping; mechanics:", board.mech.snapshot())
        finally:
            ctl.stop()
    return 0


def _ctl(args: argparse.Namespace) -> int:
    extra: dict[str, object] = {}
    for item in args.args:
        key, _, value = item.partition("=")
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            print(f"error: {item!r}: expected KEY=JSON, e.g. notes=2 or on=true", file=sys.stderr)
            return 2
    try:
        reply = control(args.port, args.op, **extra)
    except OSError as exc:
        print(
            f"error: no simulated board on control port {args.port} ({exc.strerror or exc}); "
            "`./atm sim` prints the port of a running one",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(reply, indent=2))
    return 0 if reply.get("ok") else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="atm sim", description=__doc__)
    sub = ap.add_subparsers(dest="cmd")
    run = sub.add_parser("run", help="start a board (the default)")
    for p in (ap, run):
        p.add_argument("--load", default="200,200,200,200", help="notes physically in cassettes 0..3")
        p.add_argument("--auto-take", action="store_true", help="the customer takes presented notes at once")
        p.add_argument("--baud", type=int, default=None, help="pace the UART at this baud rate")
        p.add_argument("--control-port", type=int, default=0, help="control channel port (0: any free)")
        p.add_argument(
            "--pluggable",
            action="store_true",
            help="behind a simulated USB-serial adapter: `ctl unplug` / `ctl replug`; prints the stable name",
        )
    ctl = sub.add_parser("ctl", help="send one control request to a running board")
    ctl.add_argument("--port", type=int, required=True, help="the board's control port")
    ctl.add_argument("op", help="state, load, take, double_pick, pick_failure, jam, clear_jam, door, ...")
    ctl.add_argument("args", nargs="*", help="KEY=JSON arguments, e.g. notes=2 cassette=0 on=true")
    args = ap.parse_args(argv)
    return _ctl(args) if args.cmd == "ctl" else _run(args)


if __name__ == "__main__":
    sys.exit(main())
