"""Fixtures: a throwaway mosquitto and PostgreSQL on free loopback ports, and a provisioned bank."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from atm_bank.db import Database, SqliteDatabase, open_database
from atm_tools.mosquitto import Mosquitto, find_mosquitto
from atm_tools.postgres import PG_BIN_GLOB, Postgres, PostgresError, find_pg_bin

from .helpers import World, make_world


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    b = Mosquitto(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server (initdb + pg_ctl, atm_tools.postgres) on a free loopback port."""
    if find_pg_bin() is None:
        pytest.skip(f"PostgreSQL server binaries not found under /{PG_BIN_GLOB} (apt-get install postgresql)")
    try:
        pg = Postgres()
    except PostgresError as exc:  # e.g. running as root with no user to run the server as
        pytest.skip(str(exc))
    pg.start()
    try:
        yield pg.url
    finally:
        pg.stop()


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
