"""Command-line tool for the dispenser: python -m atm_host.cli --port URL <command> [options]."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from atm_wire import messages as m

from atm_host.link import (
    CommandFailed,
    CommandRejected,
    DispenserClient,
    LinkError,
    Report,
)
from atm_host.link import signing as auth

EXIT_OK = 0
EXIT_LINK = 3  # port, handshake, timeout, device reset
EXIT_DEVICE = 4  # the device refused or failed the command
EXIT_VERIFY = 5  # the signed report does not verify
EXIT_USAGE = 2


def table(rows: Sequence[tuple[str, object]]) -> str:
    """Two aligned columns."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def hexbytes(text: str, size: int, what: str) -> bytes:
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise SystemExit(f"error: {what} must be hex") from None
    if len(data) != size:
        raise SystemExit(f"error: {what} must be {size} bytes ({2 * size} hex digits), got {len(data)}")
    return data


def four(text: str, what: str) -> tuple[int, int, int, int]:
    try:
        values = [int(x) for x in text.split(",")]
    except ValueError:
        raise SystemExit(f"error: {what} must be {m.N_CASSETTES} comma-separated integers") from None
    if len(values) != m.N_CASSETTES or any(v < 0 or v > 0xFFFF for v in values):
        raise SystemExit(f"error: {what} must be {m.N_CASSETTES} integers 0..65535, e.g. 5,0,0,0")
    return (values[0], values[1], values[2], values[3])


def report_rows(rep: Report, key: bytes | None) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("txid", rep.txid.hex()),
        ("stacked", ",".join(rep.count_text(n) for n in rep.stacked)),
        ("presented", rep.count_text(rep.presented)),
        ("retracted", rep.count_text(rep.retracted)),
        ("rejected", rep.count_text(rep.rejected)),
        ("present status", rep.present_status_name),
        ("flags", f"0x{rep.flags:02x} (final={rep.final}, taken={rep.taken})"),
        ("raw", rep.raw.hex()),
    ]
    if key is not None:
        rows.append(("MAC", "VALID" if auth.verify_report(key, rep.raw) else "INVALID"))
    return rows


def cmd_hello(c: DispenserClient, a: argparse.Namespace) -> int:
    h = c.info
    print(
        table(
            [
                ("protocol", h.protocol_version),
                ("firmware", h.firmware),
                ("device id", h.device_id.hex()),
                ("capabilities", f"0x{h.capabilities:04x}"),
                ("boot count", h.boot_count),
                ("max payload", h.max_payload),
                ("cassettes", h.n_cassettes),
                ("retract timeout", f"{h.retract_timeout_ms} ms"),
                ("presenter capacity", f"{h.max_notes} notes"),
            ]
        )
    )
    return EXIT_OK


def cmd_status(c: DispenserClient, a: argparse.Namespace) -> int:
    s = c.status()
    print(
        table(
            [
                ("state", s.state_name),
                ("shutter", s.shutter_name),
                ("provisioned", s.provisioned),
                ("nonce outstanding", s.nonce_outstanding),
                ("locked", s.locked),
                ("tamper", s.tamper),
                ("door open", bool(s.door_open)),
                ("fault", s.fault),
                ("notes stacked", s.notes_stacked),
                ("notes presented", s.notes_presented),
                ("uptime", f"{s.uptime_s} s"),
            ]
        )
    )
    return EXIT_OK


def cmd_nonce(c: DispenserClient, a: argparse.Namespace) -> int:
    n = c.get_nonce()
    print(table([("nonce", n.nonce.hex()), ("valid for", f"{n.lifetime_ms} ms")]))
    return EXIT_OK


def cmd_counters(c: DispenserClient, a: argparse.Namespace) -> int:
    rows: list[tuple[str, object]] = list(c.counters().items())
    link = c.stats().link
    rows += [("host retransmits", link.retransmits), ("host crc errors", link.crc_errors)]
    print(table(rows))
    return EXIT_OK


def cmd_cassettes(c: DispenserClient, a: argparse.Namespace) -> int:
    info = c.cassette_info()
    print("  cassette  denomination  count  status")
    for i in range(m.N_CASSETTES):
        d, n, st = info.denominations[i], info.counts[i], info.unit_status_names[i]
        print(f"  {i:>8}  {d:>12}  {n:>5}  {st}")
    print(table([("reject bin", info.reject_bin), ("retract bin", info.retract_bin)]))
    return EXIT_OK


def cmd_dispense(c: DispenserClient, a: argparse.Namespace) -> int:
    key = hexbytes(a.key_hex, m.KEY_LEN, "--key-hex")
    notes = four(a.notes, "--notes")
    txid = hexbytes(a.txid_hex, m.TXID_LEN, "--txid-hex") if a.txid_hex else os.urandom(m.TXID_LEN)
    nonce = c.get_nonce().nonce
    token = auth.sign_dispense(key, c.info.device_id, nonce, txid, notes)
    print(table([("txid", txid.hex()), ("nonce", nonce.hex()), ("notes", notes)]))
    with c.event_queue() as events:
        result = c.dispense(token)
        print(table([("stacked", result.stacked), ("rejected", result.rejected), ("flags", result.flags)]))
        presented = c.present(txid)
        print(table([("presented", presented)]))
        wait = a.wait if a.wait is not None else c.info.retract_timeout_ms / 1000 + 10
        ev = events.wait_for(["items_taken", "items_retracted"], txid=txid, timeout=wait)
        print(table([("event", f"{ev.name} {ev.fields[1:]}")]))
    rep = c.get_report(txid)
    print("signed report:")
    print(table(report_rows(rep, key)))
    return EXIT_OK if auth.verify_report(key, rep.raw) else EXIT_VERIFY


def cmd_present(c: DispenserClient, a: argparse.Namespace) -> int:
    print(table([("presented", c.present(hexbytes(a.txid, m.TXID_LEN, "--txid")))]))
    return EXIT_OK


def cmd_retract(c: DispenserClient, a: argparse.Namespace) -> int:
    print(table([("retracted", c.retract(hexbytes(a.txid, m.TXID_LEN, "--txid")))]))
    return EXIT_OK


def cmd_report(c: DispenserClient, a: argparse.Namespace) -> int:
    key = hexbytes(a.key_hex, m.KEY_LEN, "--key-hex") if a.key_hex else None
    rep = c.get_report(hexbytes(a.txid, m.TXID_LEN, "--txid"))
    print(table(report_rows(rep, key)))
    return EXIT_VERIFY if key is not None and not auth.verify_report(key, rep.raw) else EXIT_OK


def cmd_provision(c: DispenserClient, a: argparse.Namespace) -> int:
    c.provision(hexbytes(a.key_hex, m.KEY_LEN, "--key-hex"))
    print("  key provisioned")
    return EXIT_OK


def cmd_replenish(c: DispenserClient, a: argparse.Namespace) -> int:
    key = hexbytes(a.key_hex, m.KEY_LEN, "--key-hex")
    denoms, counts = four(a.denoms, "--denoms"), four(a.counts, "--counts")
    nonce = c.get_nonce().nonce
    c.replenish(auth.sign_replenish(key, c.info.device_id, nonce, denoms, counts))
    return cmd_cassettes(c, a)


def read_key_file(path: str) -> bytes:
    """The device key of a maintenance engineer: 64 hex digits (one line) or the 32 raw bytes."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: --key-file {path}: {exc.strerror}") from None
    text = raw.strip()
    if len(text) == 2 * m.KEY_LEN:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(raw) == m.KEY_LEN:
        return raw
    raise SystemExit(
        f"error: --key-file {path}: expected {2 * m.KEY_LEN} hex digits or {m.KEY_LEN} raw bytes"
    )


def cmd_maint(name: str) -> Callable[[DispenserClient, argparse.Namespace], int]:
    """A maintenance command: signed here with the key file against a fresh nonce of the device."""

    def run(c: DispenserClient, a: argparse.Namespace) -> int:
        key = read_key_file(a.key_file)
        if name == "count":
            n = c.count(a.cassette, token=c.maint_token(key, "count", a.cassette))
            print(table([(f"cassette {a.cassette}", n)]))
        elif name == "reject":
            print(table([("rejected", c.reject(token=c.maint_token(key, "reject")))]))
        else:
            c.open_shutter(token=c.maint_token(key, "open_shutter"))
        return EXIT_OK

    return run


def cmd_simple(name: str) -> Callable[[DispenserClient, argparse.Namespace], int]:
    def run(c: DispenserClient, a: argparse.Namespace) -> int:
        if name == "reset":
            print(table([("cleared", c.reset())]))
        elif name == "close-shutter":
            c.close_shutter()
        elif name == "set-config":
            c.set_config(a.retract_timeout_ms)
        return EXIT_OK

    return run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="atm_host.cli", description=__doc__)
    p.add_argument("--port", required=True, help="/dev/ttyACM0, a pty path, socket://host:port, loop://")
    p.add_argument("--baud", type=int, default=115200, help="115200 (default) or 921600")
    p.add_argument("--timeout", type=float, default=5.0, help="handshake timeout in seconds")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn in (
        ("hello", cmd_hello),
        ("status", cmd_status),
        ("nonce", cmd_nonce),
        ("counters", cmd_counters),
        ("cassettes", cmd_cassettes),
        ("reset", cmd_simple("reset")),
        ("close-shutter", cmd_simple("close-shutter")),
    ):
        sub.add_parser(name).set_defaults(fn=fn)
    key_help = "the device key (64 hex digits or 32 bytes): maintenance commands are signed with it"
    for name in ("reject", "open-shutter"):
        mt = sub.add_parser(name, help="maintenance: signed with --key-file")
        mt.add_argument("--key-file", required=True, help=key_help)
        mt.set_defaults(fn=cmd_maint(name))
    d = sub.add_parser("dispense", help="nonce, signed token, dispense, present, wait, signed report")
    d.add_argument("--notes", required=True, help="notes per cassette, e.g. 5,0,0,0")
    d.add_argument("--key-hex", required=True, help="the device's 32-byte key (a test key)")
    d.add_argument("--txid-hex", help="16-byte transaction id (random when omitted)")
    d.add_argument("--wait", type=float, help="seconds to wait for taken/retracted")
    d.set_defaults(fn=cmd_dispense)
    for name, fn in (("present", cmd_present), ("retract", cmd_retract)):
        s = sub.add_parser(name)
        s.add_argument("--txid", required=True, help="16-byte transaction id in hex")
        s.set_defaults(fn=fn)
    r = sub.add_parser("report", help="the signed present-status report of a transaction")
    r.add_argument("--txid", required=True)
    r.add_argument("--key-hex", help="verify the MAC with this key")
    r.set_defaults(fn=cmd_report)
    pv = sub.add_parser("provision", help="one-time install of the device key")
    pv.add_argument("--key-hex", required=True)
    pv.set_defaults(fn=cmd_provision)
    rp = sub.add_parser("replenish", help="load cassettes against a token signed with --key-hex")
    rp.add_argument("--key-hex", required=True)
    rp.add_argument("--denoms", required=True, help="e.g. 10,20,50,100")
    rp.add_argument("--counts", required=True, help="e.g. 500,500,500,200")
    rp.set_defaults(fn=cmd_replenish)
    ct = sub.add_parser("count", help="maintenance: move a cassette's notes to the reject bin, counted")
    ct.add_argument("--cassette", type=int, required=True, help="0-based cassette index")
    ct.add_argument("--key-file", required=True, help=key_help)
    ct.set_defaults(fn=cmd_maint("count"))
    sc = sub.add_parser("set-config")
    sc.add_argument("--retract-timeout-ms", type=int, required=True)
    sc.set_defaults(fn=cmd_simple("set-config"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fn: Callable[[DispenserClient, argparse.Namespace], int] = args.fn
    try:
        with DispenserClient.connect(args.port, args.baud, timeout=args.timeout) as client:
            return fn(client, args)
    except (CommandRejected, CommandFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DEVICE
    except LinkError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_LINK


if __name__ == "__main__":
    sys.exit(main())
