"""Storages, study naming and metadata, the heartbeat, and the check that a resumed sweep is the same.

One Optuna study per optimizer, ``<name>.ademamix`` and ``<name>.adamw``, in one storage. Each
study's user attributes hold ``ademix_sweep``: the parts of the sweep file that change results
(its *identity*) and their hash, the data fingerprint, and the package and torch versions. A run
on a storage that already holds the sweep resumes it only if the identity and data match; the
budget (and the name and storage themselves) may change.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import make_url

from . import __version__
from .config import SweepConfig
from .space import grid_space

ENV_STORAGE = "ADEMIX_SWEEP_STORAGE"
ATTR = "ademix_sweep"
BUDGET_ATTR = "ademix_sweep_budget"  # the last run's budget.trials, for readers without the file
HEARTBEAT_S = 20  # a running trial's heartbeat; stale (worker presumed dead) after GRACE_S
GRACE_S = 60
MAX_RETRY = 3  # a trial whose worker died is re-queued this many times at most
SQLITE_TIMEOUT_S = 60.0
CREATE_ATTEMPTS = 6
OUTAGE_S = 300.0  # how long workers wait for a database that went away (a restart, a failover)


T = TypeVar("T")


class StorageError(Exception):
    """A storage that cannot be used; the message is one line, with any password masked."""


def is_storage_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (as opposed to a bad query or a bug)."""
    while exc is not None:
        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


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


class SweepMismatch(Exception):
    """The storage holds a sweep of this name whose results-defining fields differ."""


def study_name(name: str, optimizer: str) -> str:
    return f"{name}.{optimizer}"


def compare_study_name(name: str) -> str:
    """The study of ``compare``'s re-runs (both optimizers; each trial names its run)."""
    return f"{name}.compare"


def resolve_storage_url(cli: str | None, in_file: str | None, name: str, env: dict[str, str] | None = None) -> str:
    """``--storage``, else the file's ``storage:``, else $ADEMIX_SWEEP_STORAGE, else
    ``sqlite:///runs/<name>.db`` (relative to the working directory)."""
    env = os.environ if env is None else env
    return cli or in_file or env.get(ENV_STORAGE) or f"sqlite:///runs/{name}.db"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (also when the URL does not parse)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # malformed: mask anything between "user:" and "@"
        scheme, sep, rest = url.partition("://")
        if not sep or "@" not in rest:
            return url
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def open_storage(
    url: str, *, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S, max_retry: int = MAX_RETRY
) -> RDBStorage:
    """An Optuna RDBStorage with a heartbeat that fails and re-queues trials of dead workers.

    SQLite gets its folder created, WAL journaling (readers never block the writer) and a 60 s
    lock wait. Raises StorageError (password masked) for a malformed, unreachable or refused URL.
    """
    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"storage {shown}: not a database URL (expected e.g. sqlite:///runs/x.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a server restart leaves dead pooled connections
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(parsed.database, shown)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5; we rely on it
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return SweepStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_s,
                        grace_period=grace_s,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                    )
            except sqlalchemy.exc.DatabaseError as exc:
                # Machines starting one new sweep together race to create Optuna's tables.
                if attempt + 1 == CREATE_ATTEMPTS or not _transient(exc):
                    raise
                time.sleep(0.2 + random.random() * (attempt + 1))
        raise AssertionError("unreachable")
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise StorageError(
            f'storage {shown}: no database driver ({_first_line(exc)}; expected: pip install "ademix-sweep[db]")'
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        raise StorageError(f"storage {shown}: cannot connect ({_first_line(exc, url)})") from None


def _transient(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("already exists", "duplicate", "database is locked", "deadlock"))


def _prepare_sqlite(database: str | None, shown: str) -> None:
    if not database or database == ":memory:":
        raise StorageError(f"storage {shown}: an in-memory SQLite database (expected a file: sqlite:///path.db)")
    path = Path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as conn:  # WAL persists in the file
            conn.execute("PRAGMA journal_mode=WAL")
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"storage {shown}: cannot open {path} ({exc})") from None


def _first_line(exc: BaseException, secret_url: str | None = None) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    if secret_url:
        password = _password(secret_url)
        if password:
            line = line.replace(password, "***")
    return line


def _password(url: str) -> str | None:
    try:
        return make_url(url).password  # type: ignore[return-value]
    except Exception:
        return None


def identity(cfg: SweepConfig, optimizer: str) -> dict[str, Any]:
    """What a study's results depend on: seed, metric, search, task, training and the optimizer's
    space. Not the name, storage or budget."""
    space = cfg.optimizers.spaces()[optimizer]
    return {
        "optimizer": optimizer,
        "seed": cfg.seed,
        "metric": cfg.metric,
        "sampler": cfg.sampler.model_dump(mode="json"),
        "pruner": cfg.pruner.model_dump(mode="json"),
        "task": cfg.task.model_dump(mode="json"),
        "train": cfg.train.model_dump(mode="json"),
        "space": {field: [dist.kind, list(dist.values)] for field, dist in space},
    }


def identity_hash(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def study_metadata(cfg: SweepConfig, optimizer: str, data_fingerprint: str | None) -> dict[str, Any]:
    ident = identity(cfg, optimizer)
    return {
        "identity": ident,
        "identity_hash": identity_hash(ident),
        "data_fingerprint": data_fingerprint,
        "package_version": __version__,
        "torch_version": _version("torch"),
        "optuna_version": optuna.__version__,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new), key=str)
            for d in differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        ]
    return [] if old == new else [path or "(root)"]


def create_or_resume(
    storage: RDBStorage, cfg: SweepConfig, optimizer: str, data_fingerprint: str | None, *, rank: int = 0
) -> optuna.Study:
    """Create the optimizer's study, or load it and check that it is the same sweep.

    ``data_fingerprint`` None defers the data check to whoever builds the task (``run``'s parent
    checks the file before its workers load the data); the first fingerprint given is recorded.
    ``rank`` offsets the sampler seed, so workers do not all start with the same trials.
    Raises SweepMismatch naming the fields (as sweep-file paths) that differ.
    """
    study = optuna.create_study(
        storage=storage,
        study_name=study_name(cfg.name, optimizer),
        direction="minimize",
        sampler=make_sampler(cfg, optimizer, cfg.seed + rank),
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )
    if study.user_attrs.get(ATTR) is None:
        study.set_user_attr(ATTR, study_metadata(cfg, optimizer, data_fingerprint))
    stored = check_same_sweep(study, cfg, optimizer)
    if data_fingerprint is not None and stored.get("data_fingerprint") is None:
        study.set_user_attr(ATTR, {**stored, "data_fingerprint": data_fingerprint})
        stored = study.user_attrs[ATTR]  # read back: two first writers agree on one
    if data_fingerprint is not None and stored.get("data_fingerprint") != data_fingerprint:
        raise SweepMismatch(
            f"sweep {cfg.name!r} in this storage was run on different data (fingerprint "
            f"{stored.get('data_fingerprint')}, here {data_fingerprint}): another Python version's builtin "
            "corpus, or changed data files (expected the same data; or give the sweep a new name)"
        )
    return study


def check_same_sweep(study: optuna.Study, cfg: SweepConfig, optimizer: str) -> dict[str, Any]:
    """The study's recorded metadata; SweepMismatch naming the fields if ``cfg`` differs from it."""
    stored = study.user_attrs.get(ATTR) or {}
    ident = identity(cfg, optimizer)
    if stored.get("identity_hash") != identity_hash(ident):
        changed = [_as_file_path(p, optimizer) for p in differences(stored.get("identity"), ident)]
        raise SweepMismatch(
            f"sweep {cfg.name!r} in this storage was run with different settings: {', '.join(changed)} "
            "(expected the same file; change only budget.trials, or give the sweep a new name)"
        )
    return stored


def _as_file_path(path: str, optimizer: str) -> str:
    """identity paths -> sweep-file paths: space.alpha -> optimizers.ademamix.alpha."""
    head, _, rest = path.partition(".")
    if head == "space":
        return f"optimizers.{optimizer}.{rest}"
    return path


def make_sampler(cfg: SweepConfig, optimizer: str, seed: int) -> optuna.samplers.BaseSampler:
    kind, startup = cfg.sampler.type, cfg.sampler.startup_trials
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_space(cfg.optimizers.spaces()[optimizer]), seed=seed)
    if kind == "cmaes":
        extra = {} if startup is None else {"n_startup_trials": startup}
        return optuna.samplers.CmaEsSampler(seed=seed, **extra)
    extra = {} if startup is None else {"n_startup_trials": startup}
    return optuna.samplers.TPESampler(seed=seed, **extra)


def make_pruner(cfg: SweepConfig) -> optuna.pruners.BasePruner:
    """Pruning compares evaluations by training step; none before ``pruner.min_steps``."""
    kind, min_steps = cfg.pruner.type, cfg.pruner.min_steps
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=min_steps)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(min_steps, cfg.train.eval_every), max_resource=cfg.train.steps
        )
    return optuna.pruners.NopPruner()
