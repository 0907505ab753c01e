"""Command line: serve the web console, tail the fleet, add an operator, make the command key."""

import argparse
import getpass
import logging
import sys
from pathlib import Path

from atm_msg.errors import KeyFileError, MsgError

from .errors import ConfigError, ConsoleError


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from atm_msg.cmdsign import CommandSigner
    from atm_msg.settings import BrokerSettings

    from .config import ConsoleConfig
    from .core import Console
    from .mqtt import FleetLink
    from .store import Store
    from .web import create_app

    cfg = ConsoleConfig(
        broker=BrokerSettings(
            host=args.broker_host,
            port=args.broker_port,
            username=args.mqtt_username,
            password=args.mqtt_password,
            client_id=args.client_id,
        ),
        http_host=args.http_host,
        http_port=args.http_port,
        db_path=args.db,
        command_key=args.command_key,
        availability_bucket_s=args.bucket_s,
    )
    try:
        signer = CommandSigner.from_file(cfg.command_key) if cfg.command_key else None
    except KeyFileError as exc:
        raise ConfigError(f"command_key: {exc}") from exc
    store = Store(cfg.db_path)
    console = Console(cfg, store, signer)
    link = FleetLink(cfg.broker, console.ingest, on_connection=console.connection)
    console.publish = link.publish_signed
    link.start()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(console),
            host=cfg.http_host,
            port=cfg.http_port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    key = "signed commands on" if signer else "no command key: commands disabled"
    broker = f"{cfg.broker.host}:{cfg.broker.port}"
    print(f"console on http://{cfg.http_host}:{cfg.http_port} (broker {broker}, {key})", flush=True)
    try:
        server.run()
    finally:
        link.stop()
        store.close()
    return 0


def _adduser(args: argparse.Namespace) -> int:
    from .auth import Auth
    from .store import Store

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    store = Store(args.db)
    try:
        Auth(store).add_operator(args.username, password)
        store.audit("admin", "add_operator", args.username, "ok")
    finally:
        store.close()
    print(f"operator {args.username} saved in {args.db}")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from atm_msg.cmdsign import generate_key, public_hex

    try:
        signer = generate_key(args.key)
    except KeyFileError as exc:
        raise ConfigError(f"command_key: {exc}") from exc
    print(f"command key {args.key}: kid {signer.kid}, public key {public_hex(signer.public)}")
    print("provision every ATM with this public key (docs/console.md, Command signing)")
    return 0


def _verify_audit(args: argparse.Namespace) -> int:
    from .store import Store

    store = Store(args.db)
    try:
        n = store.verify_audit()
    finally:
        store.close()
    print(f"audit trail intact: {n} lines")
    return 0


def _tail(args: argparse.Namespace) -> int:
    from .tail import run

    return run(args.host, args.port, duration_s=args.duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atm_console", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the web console")
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--broker-port", type=int, default=1883)
    p.add_argument("--mqtt-username", default=None)
    p.add_argument("--mqtt-password", default=None)
    p.add_argument("--client-id", default="atm-console")
    p.add_argument("--http-host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--db", type=Path, default=Path("var/console.db"))
    p.add_argument("--command-key", type=Path, default=None, help="Ed25519 PEM key that signs commands")
    p.add_argument("--bucket-s", type=int, default=3600, help="availability bar width in seconds")
    p.set_defaults(fn=_serve)
    p = sub.add_parser("tail", help="print alarms and events as they arrive")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(fn=_tail)
    p = sub.add_parser("adduser", help="create an operator (or set a new password)")
    p.add_argument("--db", type=Path, default=Path("var/console.db"))
    p.add_argument("--username", required=True)
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.set_defaults(fn=_adduser)
    p = sub.add_parser("keygen", help="create the Ed25519 command-signing key")
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(fn=_keygen)
    p = sub.add_parser("verify-audit", help="check the audit trail's hash chain")
    p.add_argument("--db", type=Path, default=Path("var/console.db"))
    p.set_defaults(fn=_verify_audit)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.fn(args))
    except (ConsoleError, MsgError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
