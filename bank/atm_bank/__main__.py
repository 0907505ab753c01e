"""Command line of the bank side: serve, phone simulator, enrolment, key provisioning, reconciliation."""

import argparse
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from pathlib import Path

from atm_msg.errors import MsgError

from . import ledger, signing
from .config import load_config
from .db import Cursor, open_database
from .errors import BankError
from .phone import issue_token, render
from .registry import Template, enroll, provision_atm
from .settle import Settler
from .workers import run_worker


def cmd_serve(args: argparse.Namespace) -> int:
    """Run N worker processes and restart any that dies (same client id: its queued messages come back)."""
    load_config(args.config).require_thresholds()  # a bad config or manifest stops here, exit non-zero
    _preflight(args)  # signing key, database, broker: checked once here, not by a restart loop
    ctx = multiprocessing.get_context("spawn")
    # The children get the options only: the sub-command's function lives in __main__, which a spawned
    # child cannot import by name.
    args = argparse.Namespace(**{k: v for k, v in vars(args).items() if not callable(v)})
    procs = {i: ctx.Process(target=run_worker, args=(i, args), daemon=True) for i in range(args.workers)}
    for p in procs.values():
        p.start()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = dict.fromkeys(procs, time.monotonic())
    quick_deaths = 0
    while not stopping:
        for i, p in list(procs.items()):
            if not p.is_alive():
                quick_deaths = quick_deaths + 1 if time.monotonic() - started[i] < WORKER_MIN_LIFE_S else 0
                if quick_deaths >= WORKER_MAX_QUICK_DEATHS:  # a crash loop: fail the unit, do not spin
                    for q in procs.values():
                        q.terminate()
                    raise BankError(f"worker {i} keeps exiting at start (code {p.exitcode}): see its log")
                logging.warning("worker %d exited (%s); restarting", i, p.exitcode)
                started[i] = time.monotonic()
                procs[i] = ctx.Process(target=run_worker, args=(i, args), daemon=True)
                procs[i].start()
        time.sleep(0.2)
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        p.join(5)
    return 0


class BrokerUnavailableError(BankError):
    """The broker's port does not answer at start (exit 3: systemd may retry; config errors exit 2)."""


WORKER_MIN_LIFE_S = 10.0  # a worker that dies sooner than this after its start is in a crash loop
WORKER_MAX_QUICK_DEATHS = 3
BROKER_WAIT_S = 5.0  # how long `serve` waits for the broker's port before it gives up


def _preflight(args: argparse.Namespace) -> None:
    """What every worker needs, checked once before any starts: a failure is one error line and exit 2."""
    signing.load(args.signing_key)
    open_database(args.db).close()
    deadline = time.monotonic() + BROKER_WAIT_S
    while True:
        try:
            socket.create_connection((args.host, args.port), timeout=1.0).close()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"no MQTT broker at {args.host}:{args.port} ({exc.strerror or exc}); start mosquitto "
                    "or pass --host/--port"
                ) from exc
            time.sleep(0.25)


def _read_password(args: argparse.Namespace) -> None:
    """The broker password from --password-file or ATM_MQTT_PASSWORD, never needed on the command line."""
    if getattr(args, "password_file", None):
        try:
            args.password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BankError(f"password file {args.password_file}: {exc.strerror or exc}") from exc


def _one_line(exc: BaseException) -> str:
    """An exception as one line (pydantic's multi-line reports included)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return "; ".join(ln for ln in lines if not ln.startswith("For further information"))


def cmd_issue_token(args: argparse.Namespace) -> int:
    token = issue_token(
        signing.load(args.signing_key),
        key_id=args.key_id,
        customer_id=args.customer,
        account_id=args.account,
        amount_yuan=args.amount,
        ttl_s=load_config(args.config).tokens.ttl_s,
    )
    print(token)
    print(render(token, args.png, terminal=not args.no_terminal))
    return 0


def cmd_gen_signing_key(args: argparse.Namespace) -> int:
    signing.generate(args.signing_key)
    print(f"wrote {args.signing_key}")
    return 0


def cmd_provision_key(args: argparse.Namespace) -> int:
    denoms = [int(x) for x in args.denominations.split(",")]
    key = provision_atm(open_database(args.db), args.atm, bytes.fromhex(args.device_id), denoms)
    # Printed once, to be written into the MCU with the PROVISION command at install; never stored elsewhere.
    print(key.hex())
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    data = json.loads(Path(args.template).read_text())
    template = Template(
        str(data["model_id"]),
        int(data["template_version"]),
        [float(x) for x in data["embedding"]],
        float(data["quality"]),
    )
    enroll(
        open_database(args.db),
        customer_id=args.customer,
        account_id=args.account,
        account_number=args.account_number,
        mobile=args.mobile,
        template=template,
    )
    print(f"enrolled customer {args.customer} account {args.account}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    db = open_database(args.db)
    settler = Settler(db)
    if args.txid:
        print(settler.reconcile(args.txid, args.paid).model_dump_json())
    expired = settler.expire_reservations(args.expire_after_s)
    print(f"{len(expired)} reservation(s) without a report moved to suspect")

    def check(cur: Cursor) -> list[str]:
        return ledger.check_balanced(cur)

    problems = db.run(check)
    for p in problems:
        print("UNBALANCED:", p)
    print("ledger balanced" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _broker_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--name", default="bank-worker", help="client id prefix (fixed: persistent sessions)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=1883)
    s.add_argument("--username")
    s.add_argument(
        "--password",
        default=os.environ.get("ATM_MQTT_PASSWORD"),
        help="broker password (default: $ATM_MQTT_PASSWORD; prefer --password-file: argv is visible in ps)",
    )
    s.add_argument("--password-file", help="file holding the broker password")
    s.add_argument("--ca", help="CA file: enables TLS")
    s.add_argument("--cert", help="client certificate (CN = identity in the broker ACL)")
    s.add_argument("--key", help="client key")


def cmd_worker(args: argparse.Namespace) -> int:
    load_config(args.config).require_thresholds()
    _preflight(args)
    run_worker(args.index, args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m atm_bank", description=__doc__)
    parser.add_argument("--db", default="sqlite:///var/bank.db", help="sqlite:///PATH or postgresql://DSN")
    parser.add_argument(
        "--config", type=Path, default=None, help="bank config JSON (default: built-in rules)"
    )
    parser.add_argument("--signing-key", type=Path, default=Path("var/bank-signing.pem"), help="Ed25519 PEM")
    parser.add_argument("--key-id", type=int, default=1, help="id of the signing key inside tokens")
    sub = parser.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run bank workers on shared subscriptions")
    s.add_argument("--workers", type=int, default=1)
    _broker_options(s)
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("worker", help="run one worker in the foreground (what serve starts N of)")
    s.add_argument("--index", type=int, default=0)
    _broker_options(s)
    s.set_defaults(fn=cmd_worker)

    s = sub.add_parser("issue-token", help="phone-app simulator: issue a token and show its QR")
    s.add_argument("--customer", type=int, required=True)
    s.add_argument("--account", type=int, required=True)
    s.add_argument("--amount", type=int, default=0, help="yuan; 0 = chosen at the ATM")
    s.add_argument("--png", type=Path, default=None)
    s.add_argument("--no-terminal", action="store_true")
    s.set_defaults(fn=cmd_issue_token)

    s = sub.add_parser("gen-signing-key", help="create the bank's Ed25519 token-signing key")
    s.set_defaults(fn=cmd_gen_signing_key)

    s = sub.add_parser("provision-key", help="create an ATM's dispenser key (print it once for the MCU)")
    s.add_argument("--atm", required=True)
    s.add_argument("--device-id", required=True, help="MCU unique id, 16 hex digits")
    s.add_argument("--denominations", default="100,50,20,10")
    s.set_defaults(fn=cmd_provision_key)

    s = sub.add_parser("enroll", help="enrol a customer's account, mobile and face template")
    s.add_argument("--customer", type=int, required=True)
    s.add_argument("--account", type=int, required=True)
    s.add_argument("--account-number", required=True)
    s.add_argument("--mobile", required=True)
    s.add_argument("--template", required=True, help="JSON: model_id, template_version, embedding, quality")
    s.set_defaults(fn=cmd_enroll)

    s = sub.add_parser("reconcile", help="settle suspects, expire stale reservations, check the ledger")
    s.add_argument("--txid", help="suspect transaction to settle")
    s.add_argument("--paid", type=int, default=0, help="yuan the cash count shows as paid")
    s.add_argument("--expire-after-s", type=float, default=6 * 3600)
    s.set_defaults(fn=cmd_reconcile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _read_password(args)
        return int(args.fn(args))
    except (BankError, MsgError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 3 if isinstance(exc, BrokerUnavailableError) else 2


if __name__ == "__main__":
    raise SystemExit(main())
