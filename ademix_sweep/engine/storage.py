"""Storages: opening one and telling its faults apart (its URL, file and secrets: ``urls``).

A database fault is one of three kinds, each handled its own way:

- an *outage* (a lost or refused connection, a lock held too long): waited out by ``retrying``;
- a *storage failure* (the disk is full, the file is corrupt): no wait mends it, so it is reported
  at once as one line (``storage_failure`` gives it, ``StorageError`` carries it);
- anything else is a bug and passes.

A storage URL's password, in its user-info or its query string, is never shown: ``urls.mask_url`` and
``StorageError`` messages replace it with ``***``.
"""

from __future__ import annotations

import errno
import random
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage
from sqlalchemy.engine import make_url

from ademix_sweep.engine.urls import mask_url, scrub, split_url, sqlite_path

HEARTBEAT_S = 20  # a running trial's heartbeat; stale (worker presumed dead) after GRACE_S
GRACE_S = 60
SQLITE_TIMEOUT_S = 60.0
CREATE_ATTEMPTS = 6
OUTAGE_S = 300.0  # how long workers wait for a database that went away (a restart, a failover)

T = TypeVar("T")


class StorageError(Exception):
    """A storage that cannot be used; the message is one line, with any password masked."""


def _first_line(exc: BaseException, secret_url: str | None = None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return scrub(line, secret_url) if secret_url else line


# --- faults ---------------------------------------------------------------------------------

_DISK_FULL = ("disk is full", "disk full", "no space left on device", "could not extend file", "table is full")
_CORRUPT = ("malformed", "file is not a database")


def storage_failure(exc: BaseException) -> str | None:
    """What is wrong when no wait will mend the storage: "disk full" or "corrupt"; else None."""
    found = _failure(exc)
    return found[0] if found else None


def _failure(exc: BaseException | None) -> tuple[str, BaseException] | None:
    """The kind of storage failure, and the exception in ``exc``'s chain that says it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return "disk full", exc
        if isinstance(exc, sqlalchemy.exc.DatabaseError | sqlite3.DatabaseError):
            text = str(getattr(exc, "orig", None) or exc).lower()
            if any(word in text for word in _DISK_FULL):
                return "disk full", exc
            if any(word in text for word in _CORRUPT):
                return "corrupt", exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_storage_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (as opposed to a bad query, a full disk or a bug)."""
    if storage_failure(exc):
        return False
    while exc is not None:
        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def failure_message(url: str, exc: BaseException) -> str:
    """One line for a storage failure, naming the storage and what to do."""
    kind, cause = _failure(exc) or ("", exc)
    shown, path = mask_url(url), sqlite_path(url)
    if kind == "disk full":
        where = f" (the disk holding {path})" if path else ""
        return f"storage {shown}: disk full{where}; free some space, then run the same command again to resume"
    if kind == "corrupt":
        check = f'; check it with: sqlite3 {path} "PRAGMA integrity_check"' if path else ""
        return f"storage {shown}: the database is damaged ({_first_line(cause, url)}){check}"
    return f"storage {shown}: {_first_line(cause, url)}"


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Storage failures (a full disk, a corrupt file) raised inside become StorageError with one line."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        if storage_failure(exc) is None:
            raise
        raise StorageError(failure_message(url, exc)) from None


def retrying(fn: Callable[[], T], *, wait_s: float = OUTAGE_S, on_wait: Callable[[str], None] | None = None) -> T:
    """``fn()``, retried with backoff while the database is unreachable, for up to ``wait_s``."""
    deadline, pause = time.monotonic() + wait_s, 0.5
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_storage_outage(exc) or time.monotonic() + pause > deadline:
                raise
            if on_wait is not None:
                on_wait(_first_line(exc))
            time.sleep(pause)
            pause = min(pause * 2, 10.0)


# --- opening ----------------------------------------------------------------------------------


class SweepStorage(RDBStorage):
    """Optuna's RDBStorage whose heartbeat survives a short database outage: a failed beat is
    skipped, not fatal (Optuna's heartbeat thread ends at its first exception, and the trial is
    then failed as stale while it still trains)."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            if not is_storage_outage(exc):
                raise


def open_storage(
    url: str,
    *,
    heartbeat_s: int = HEARTBEAT_S,
    grace_s: int = GRACE_S,
    on_stale: Callable[[optuna.Study, Any], None] | None = None,
) -> RDBStorage:
    """An Optuna RDBStorage with a heartbeat; ``on_stale(study, trial)`` runs for each trial the
    heartbeat fails (the engine re-queues it).

    SQLite gets its folder created, WAL journaling (readers never block the writer) and a 60 s
    lock wait. Raises StorageError (password masked) for a malformed, unreachable, refused,
    full or corrupt storage.
    """
    shown = mask_url(url)
    parsed = _parse(url, shown)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a server restart leaves dead pooled connections
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(parsed.database, url)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        with storage_errors(url):
            return _create(url, engine_kwargs, heartbeat_s, grace_s, on_stale)
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise StorageError(
            f'storage {shown}: no database driver ({_first_line(exc)}; expected: pip install "ademix-sweep[db]")'
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        raise StorageError(f"storage {shown}: cannot connect ({_first_line(exc, url)})") from None


def _parse(url: str, shown: str) -> Any:
    """The parsed URL; StorageError for one that does not parse or has an unencoded ``@`` in its password."""
    expected = "expected e.g. sqlite:///runs/x.db or postgresql+psycopg://user@host/db"
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsing the port raises for a malformed host part
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise StorageError(f"storage {shown}: not a database URL ({expected})") from None
    parts = split_url(url)
    if parts and parts[1].count("@"):
        raise StorageError(
            f"storage {shown}: the password holds an unencoded '@' (expected it URL-encoded as %40)"
        )
    return parsed


def _create(
    url: str,
    engine_kwargs: dict[str, Any],
    heartbeat_s: int,
    grace_s: int,
    on_stale: Callable[[optuna.Study, Any], None] | None,
) -> RDBStorage:
    for attempt in range(CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5; we rely on it
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return SweepStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=on_stale,
                )
        except sqlalchemy.exc.DatabaseError as exc:
            # Machines starting one new sweep together race to create Optuna's tables.
            if attempt + 1 == CREATE_ATTEMPTS or not _transient(exc):
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def _transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    words = ("already exists", "duplicate", "unique constraint", "database is locked", "deadlock")
    return any(word in text for word in words)


def _prepare_sqlite(database: str | None, url: str) -> None:
    shown = mask_url(url)
    if not database or database == ":memory:":
        raise StorageError(f"storage {shown}: an in-memory SQLite database (expected a file: sqlite:///path.db)")
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # WAL persists in the file
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        if storage_failure(exc):
            raise StorageError(failure_message(url, exc)) from None
        raise StorageError(f"storage {shown}: cannot open {path} ({exc})") from None


def checkpoint_sqlite(url: str, timeout_s: float = 1.0) -> bool:
    """Fold a SQLite storage's write-ahead log back into the database and truncate it (a long
    sweep's readers can keep SQLite's own checkpoints from ever finishing). True when done; a
    database busy past ``timeout_s`` is left for the next call. Other storages: nothing to do."""
    path = sqlite_path(url)
    if not path or not Path(path).exists():
        return False
    try:
        conn = sqlite3.connect(path, timeout=timeout_s)
    except sqlite3.Error:
        return False
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return busy == 0
