"""A throwaway PostgreSQL for tests and benchmarks: initdb + pg_ctl in a temp dir on a free loopback port."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from atm_tools.mosquitto import free_port

PG_BIN_GLOB = "usr/lib/postgresql/*/bin"


class PostgresError(Exception):
    """The server binaries are missing or the server did not start."""


def find_pg_bin() -> Path | None:
    """The newest PostgreSQL server bin directory (with initdb), or None."""
    found = sorted(Path("/").glob(PG_BIN_GLOB))
    return next((p for p in reversed(found) if (p / "initdb").exists()), None)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class Postgres:
    """One private server; trust auth on 127.0.0.1 only; user and database 'bank'.

    fsync is off by default: a scratch server for tests and benchmarks, never for money that matters.
    """

    def __init__(self, base: Path | None = None, *, fsync: bool = False) -> None:
        bindir = find_pg_bin()
        if bindir is None:
            raise PostgresError(f"PostgreSQL server binaries not found under /{PG_BIN_GLOB}")
        self.bindir = bindir
        # The server user must reach the data dir: as root, give a fresh dir (not one under 0700 parents).
        self.base = base or Path(tempfile.mkdtemp(prefix="atm-pg-"))
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as postgres (or nobody)
            self.user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
            if self.user is None:
                raise PostgresError("running as root and no postgres/nobody user to run PostgreSQL as")
            shutil.chown(self.base, self.user)
        self.data = self.base / "data"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://bank@127.0.0.1:{self.port}/bank"

    def _run(self, *cmd: str, as_owner: bool = True) -> None:
        user = self.user if as_owner else None
        done: subprocess.CompletedProcess[bytes] = subprocess.run(
            list(cmd), capture_output=True, check=False, user=user
        )
        if done.returncode != 0:
            raise PostgresError(f"{cmd[0]} failed: {done.stderr.decode(errors='replace')[-500:]}")

    def start(self) -> None:
        """initdb, start, create the 'bank' database; remember the postmaster pid (for CPU figures)."""
        b = self.bindir
        self._run(str(b / "initdb"), "-D", str(self.data), "-U", "bank", "--auth=trust", "-E", "UTF8")
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.base} "
            f"-c fsync={'on' if self.fsync else 'off'}"
        )
        log = str(self.base / "pg.log")
        self._run(str(b / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")
        self._run(
            str(b / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "bank", "bank", as_owner=False
        )
        pidfile = self.data / "postmaster.pid"
        try:
            self.pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.pid = None

    def stop(self) -> None:
        """Fast shutdown and remove the data directory."""
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            user=self.user,
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def all_pids(self) -> list[int]:
        """The postmaster and its children (backends, writer, WAL writer): their CPU is the server's."""
        if self.pid is None:
            return []
        pids = [self.pid]
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        return pids + [int(c) for c in children]

    def __enter__(self) -> "Postgres":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
