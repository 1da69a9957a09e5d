"""Throwaway databases on the local PostgreSQL (started if it is down), one per test."""

from __future__ import annotations

import glob
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _connect():
    import psycopg

    return psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True, connect_timeout=5)


def ensure_postgres() -> None:
    """Start the local cluster if it is down; skip the test when there is no PostgreSQL at all."""
    try:
        _connect().close()
        return
    except Exception:
        pass
    versions = glob.glob("/etc/postgresql/*")
    if not versions:
        pytest.skip("no local PostgreSQL installed")
    version = versions[0].rsplit("/", 1)[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    _connect().close()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database; yields its SQLAlchemy URL and drops it afterwards."""
    ensure_postgres()
    name = f"ademix_test_{uuid.uuid4().hex[:12]}"
    with _connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with _connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ensure_mariadb() -> None:
    """Start the local MariaDB if it is down; skip the test when there is none."""
    import pymysql

    def ping() -> None:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5).close()

    try:
        ping()
        return
    except Exception:
        pass
    if not glob.glob("/etc/init.d/mariadb"):
        pytest.skip("no local MariaDB installed")
    subprocess.run(["/etc/init.d/mariadb", "start"], check=False, capture_output=True, timeout=120)
    ping()
