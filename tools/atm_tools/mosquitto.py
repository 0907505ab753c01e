"""A throwaway mosquitto for tests and demos: own config in a temp dir, free loopback port, persistence."""

import argparse
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")
DYNSEC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/arm-linux-gnueabihf/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
)
# The bound on one message (docs/mqtt.md "Message size"): the largest legitimate message is an
# AuthRequest with a 1,024-float face embedding (about 26 KB of JSON); 64 KiB leaves room, and a
# publish above it never reaches a subscriber. The packet bound adds room for topic and properties.
MESSAGE_SIZE_LIMIT = 65536
MAX_PACKET_SIZE = 69632


class BrokerError(Exception):
    """The broker binary is missing or it did not start."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener that requires client certificates (CN becomes the username)."""

    ca: Path
    cert: Path
    key: Path


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_CANDIDATES if os.access(p, os.X_OK)), None)


def find_dynsec_plugin() -> str | None:
    """Path of the dynamic-security plugin shipped with Debian's mosquitto package, or None."""
    return next((p for p in DYNSEC_CANDIDATES if os.access(p, os.R_OK)), None)


ATM_SENDS = (
    "birth",
    "death",
    "telemetry",
    "event",
    "auth/req",
    "txn/report",
    "txn/abandon",
    "cmd/result",
    "maint/req",
)
ATM_RECEIVES = ("auth/res", "txn/result", "cmd", "config", "maint/res")
FLEET_CONFIG_TOPIC = "atm/v1/fleet/config"


def atm_role(atm_id: str) -> dict[str, object]:
    """One ATM's own dynamic-security role: literal topics under atm/v1/<id>/ and the fleet config.

    mosquitto 2.0.11's dynamic security has no %u/%c substitution, so every ATM gets its own role;
    anything not listed is refused (defaultACLAccess is deny for everything but unsubscribe).
    """
    root = f"atm/v1/{atm_id}"
    acls: list[dict[str, object]] = []
    for leaf in ATM_SENDS:
        acls.append({"acltype": "publishClientSend", "topic": f"{root}/{leaf}", "priority": 0, "allow": True})
    for topic in (*(f"{root}/{leaf}" for leaf in ATM_RECEIVES), FLEET_CONFIG_TOPIC):
        acls.append({"acltype": "publishClientReceive", "topic": topic, "priority": 0, "allow": True})
        acls.append({"acltype": "subscribeLiteral", "topic": topic, "priority": 0, "allow": True})
    return {"rolename": f"atm:{atm_id}", "textdescription": f"ATM {atm_id}'s own topics", "acls": acls}


def dynsec_config(template: Path, out: Path, atm_ids: list[str]) -> Path:
    """The deployed dynamic-security rules (template) with these ATM identities provisioned.

    Each ATM becomes a client named by its certificate CN with the common role `atm` (no `$share`)
    and its own role `atm:<id>`; on a live broker `mosquitto_ctrl dynsec` does the same (docs/mqtt.md).
    """
    tree = json.loads(template.read_text())
    known = {c["username"] for c in tree["clients"]}
    for atm in atm_ids:
        if atm in known:
            continue
        tree["roles"].append(atm_role(atm))
        tree["clients"].append(
            {"username": atm, "roles": [{"rolename": "atm", "priority": 10}, {"rolename": f"atm:{atm}"}]}
        )
    out.write_text(json.dumps(tree, indent=2))
    out.chmod(0o600)
    return out


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One broker process; config, persistence file and log live in workdir."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        persistence: bool = True,
        tls: TlsFiles | None = None,
        acl_file: Path | None = None,
        password_file: Path | None = None,
        dynsec_file: Path | None = None,
        extra: list[str] | None = None,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto not found (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.persistence = persistence
        self.tls = tls
        self.acl_file = acl_file
        self.password_file = password_file
        self.dynsec_file = dynsec_file
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"

    def config_text(self) -> str:
        """The broker config: every setting that matters for money is explicit (never the defaults)."""
        lines = [
            f"user {getpass.getuser()}",
            f"pid_file {self.workdir / 'mosquitto.pid'}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",  # default 1800 s: a crash would lose half an hour of queued money messages
            "max_inflight_messages 100",
            "max_queued_messages 100000",
            "max_queued_bytes 0",
            "persistent_client_expiration 1d",
            "set_tcp_nodelay true",
            f"message_size_limit {MESSAGE_SIZE_LIMIT}",
            f"max_packet_size {MAX_PACKET_SIZE}",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.cert}",
                f"keyfile {self.tls.key}",
                "require_certificate true",
                "use_identity_as_username true",
                "tls_version tlsv1.2",
            ]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        lines.append(
            "allow_anonymous "
            + ("false" if self.tls or self.password_file or self.acl_file or self.dynsec_file else "true")
        )
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.dynsec_file is not None:
            plugin = find_dynsec_plugin()
            if plugin is None:
                raise BrokerError("mosquitto_dynamic_security.so not found (Debian package mosquitto)")
            lines += [f"plugin {plugin}", f"plugin_opt_config_file {self.dynsec_file}"]
        return "\n".join(lines + self.extra) + "\n"

    def start(self, timeout_s: float = 10.0) -> None:
        """Write the config, start the broker and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.config_path.write_text(self.config_text())
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                return
            time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM): the broker writes its persistence file."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Hard kill (SIGKILL): only what autosave wrote survives."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0, hard: bool = False) -> None:
        """Stop (or kill), stay down down_s seconds, start again on the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def log_tail(self, n: int = 20) -> str:
        """The last n lines of the broker log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def __enter__(self) -> "Mosquitto":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a throwaway broker in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="work dir for config, persistence and log")
    parser.add_argument("--port", type=int, default=0, help="loopback port (0: a free one)")
    args = parser.parse_args(argv)
    broker = Mosquitto(args.dir, args.port or None)
    broker.start()
    print(f"mosquitto on 127.0.0.1:{broker.port}, log {broker.log_path}", flush=True)
    try:
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
