"""Command line: serve the web console, tail the fleet, add an operator, make the command key."""

import argparse
import getpass
import logging
import os
import ssl
import sys
from pathlib import Path

from atm_msg.errors import KeyFileError, MsgError

from .errors import BrokerUnavailableError, ConfigError, ConsoleError

BROKER_WAIT_S = 5.0  # `serve` gives up (exit 3) when the broker has not answered by then
PASSWORD_ENV = "ATM_CONSOLE_PASSWORD"  # adduser's password when neither --password-file nor stdin
MQTT_PASSWORD_ENV = "ATM_MQTT_PASSWORD"


def _read_secret(path: Path, what: str) -> str:
    """The first line of a password file (kept out of argv, which `ps` shows)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{what} file {path}: {exc.strerror or exc}") from exc
    if not lines or not lines[0]:
        raise ConfigError(f"{what} file {path} is empty")
    return lines[0]


def _tls(args: argparse.Namespace) -> dict[str, object]:
    """uvicorn's TLS options from --tls-cert/--tls-key/--client-ca (client certificates required)."""
    if args.require_client_cert and not args.client_ca:
        raise ConfigError("--require-client-cert needs --client-ca (the CA that signs operator certificates)")
    if not args.tls_cert and not args.tls_key and not args.client_ca:
        return {}
    if not args.tls_cert or not args.tls_key:
        raise ConfigError("--tls-cert and --tls-key go together (the console's HTTPS certificate)")
    for path in (args.tls_cert, args.tls_key, args.client_ca):
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    try:  # load once here: a wrong key or a bad PEM is one error line, not a uvicorn traceback
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(args.tls_cert), str(args.tls_key))
        if args.client_ca:
            ctx.load_verify_locations(str(args.client_ca))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS files: {exc}") from exc
    opts: dict[str, object] = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)}
    if args.client_ca:
        opts["ssl_ca_certs"] = str(args.client_ca)
        opts["ssl_cert_reqs"] = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
    return opts


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from atm_msg.cmdsign import CommandSigner
    from atm_msg.settings import BrokerSettings

    from .config import ConsoleConfig
    from .core import Console
    from .mqtt import FleetLink
    from .store import Store
    from .web import create_app

    tls = _tls(args)
    cfg = ConsoleConfig(
        broker=BrokerSettings(
            host=args.broker_host,
            port=args.broker_port,
            username=args.mqtt_username,
            password=None if args.mqtt_password_file else args.mqtt_password,
            password_file=args.mqtt_password_file,
            ca_file=args.mqtt_ca,
            cert_file=args.mqtt_cert,
            key_file=args.mqtt_key,
            client_id=args.client_id,
        ),
        http_host=args.http_host,
        http_port=args.http_port,
        db_path=args.db,
        command_key=args.command_key,
        availability_bucket_s=args.bucket_s,
        cookie_secure=bool(tls),
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
    if not link.wait_connected(BROKER_WAIT_S):
        link.stop()
        store.close()
        raise BrokerUnavailableError(
            f"no MQTT broker at {cfg.broker.host}:{cfg.broker.port} after {BROKER_WAIT_S:g} s; start "
            "mosquitto or pass --broker-host/--broker-port"
        )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(console),
            host=cfg.http_host,
            port=cfg.http_port,
            log_level="warning",
            timeout_graceful_shutdown=2,
            **tls,  # pyright: ignore[reportArgumentType]
        )
    )
    key = "signed commands on" if signer else "no command key: commands disabled"
    broker = f"{cfg.broker.host}:{cfg.broker.port}"
    scheme = "https" if tls else "http"
    certs = ", client certificates required" if tls.get("ssl_cert_reqs") == ssl.CERT_REQUIRED else ""
    url = f"{scheme}://{cfg.http_host}:{cfg.http_port}"
    print(f"console on {url} (broker {broker}, {key}{certs})", flush=True)
    try:
        server.run()
    finally:
        link.stop()
        store.close()
    return 0


def _adduser(args: argparse.Namespace) -> int:
    from .auth import Auth
    from .store import Store

    if args.password_file:
        password = _read_secret(args.password_file, "password")
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get(PASSWORD_ENV):
        password = os.environ[PASSWORD_ENV]
    else:
        password = getpass.getpass("password: ")
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
    parser = argparse.ArgumentParser(
        prog="./atm console",
        description=__doc__,
        epilog=f"adduser reads the password from --password-file, --password-stdin, ${PASSWORD_ENV} "
        "or a prompt.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="run the web console")
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--broker-port", type=int, default=1883)
    p.add_argument("--mqtt-username", default=None)
    p.add_argument(
        "--mqtt-password",
        default=os.environ.get(MQTT_PASSWORD_ENV),
        help=f"broker password (default ${MQTT_PASSWORD_ENV}; prefer --mqtt-password-file: argv shows in ps)",
    )
    p.add_argument("--mqtt-password-file", type=Path, default=None, help="file whose first line is it")
    p.add_argument("--mqtt-ca", default=None, help="CA of the broker's certificate: MQTT over TLS")
    p.add_argument("--mqtt-cert", default=None, help="the console's client certificate (CN=console)")
    p.add_argument("--mqtt-key", default=None, help="its private key")
    p.add_argument("--tls-cert", type=Path, default=None, help="HTTPS: the console's server certificate")
    p.add_argument("--tls-key", type=Path, default=None, help="HTTPS: its private key")
    p.add_argument("--client-ca", type=Path, default=None, help="CA of operators' client certificates")
    p.add_argument(
        "--require-client-cert",
        action="store_true",
        help="refuse browsers without a certificate from --client-ca (docs/deployment.md)",
    )
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
    p.add_argument("--password-file", type=Path, default=None, help="read it from the file's first line")
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
        return 3 if isinstance(exc, BrokerUnavailableError) else 2


if __name__ == "__main__":
    raise SystemExit(main())
