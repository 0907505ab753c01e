"""Fixtures: a throwaway mosquitto and PostgreSQL on free loopback ports, and a provisioned bank."""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_bank.db import Database, SqliteDatabase, open_database
from atm_tools.mosquitto import Mosquitto, find_mosquitto, free_port

from .helpers import World, make_world

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


def _pg_bin() -> Path | None:
    found = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")))
    return next((p for p in reversed(found) if (p / "initdb").exists()), None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (initdb + pg_ctl) in a temp dir on a free loopback port."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(f"PostgreSQL server binaries not found under {PG_BIN_GLOB} (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="atm-pg-"))
    user: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres (or nobody) user
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None:
            pytest.skip("running as root and no postgres/nobody user to run PostgreSQL as")
        shutil.chown(base, user)
    data, port = base / "data", free_port()
    run = {"user": user} if user else {}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "bank", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        **run,  # type: ignore[arg-type]
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} -c fsync=off"
    subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "pg.log"), "-w", "start"],
        check=True,
        capture_output=True,
        **run,  # type: ignore[arg-type]
    )
    try:
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "bank", "bank"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://bank@127.0.0.1:{port}/bank"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            **run,  # type: ignore[arg-type]
        )
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


_pg_counter = [0]


def fresh_postgres(url: str) -> Database:
    """A new empty database on the test server."""
    import psycopg
    from psycopg import sql

    _pg_counter[0] += 1
    name = f"t{os.getpid()}_{_pg_counter[0]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return open_database(url.rsplit("/", 1)[0] + "/" + name)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = SqliteDatabase(tmp_path / "bank.db")
    yield db
    db.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same tests on both backends."""
    if request.param == "sqlite":
        db: Database = SqliteDatabase(tmp_path / "bank.db")
    else:
        db = fresh_postgres(request.getfixturevalue("postgres_url"))
    yield db
    with contextlib.suppress(Exception):
        db.close()


@pytest.fixture
def world(sqlite_db: Database) -> World:
    return make_world(sqlite_db)
