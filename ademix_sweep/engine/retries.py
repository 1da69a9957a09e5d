"""Failing a trial and re-queuing it: once, whoever does it.

Several processes may fail the same trial: its own worker (Ctrl-C, a lost connection), the parent
that saw the worker die, a later run's start-up check, the heartbeat's stale check on any machine.
Each of them may then re-queue it as a WAITING copy (same parameters; Optuna's ``ask`` runs
waiting trials first). Two rules make this safe across processes and machines:

- failing is a state change that succeeds once: a process that finds the trial already finished
  has lost a race, which is not an error;
- re-queuing first *claims* the failed trial: one row in the table ``ademix_sweep_requeues``,
  keyed by the trial's id, which the database lets one process insert. Only the claimant adds
  the copy, so a failed trial has at most one re-queued copy.

A trial whose worker process dies while running it (an out-of-memory kill, a segfault) is re-queued,
but a copy that kills its worker again is not: after MAX_WORKER_DEATHS deaths along its copies
(system attribute ``worker_deaths``) it is failed for good with the likely cause as ``failure``.
"""

from __future__ import annotations

import os
import signal
import socket

import optuna
import sqlalchemy as sa
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from ademix_sweep.engine.attrs import COMPARE, DEATHS, FAILURE, INTERRUPTED, WORKER_HOST, WORKER_PID
from ademix_sweep.engine.storage import open_storage

REQUEUED_FAILURES = (None, INTERRUPTED)  # a FAIL trial with one of these failures is owed a copy
MAX_WORKER_DEATHS = 2  # a trial whose worker died this many times is failed for good
MAX_STALE_RETRIES = 3  # a trial the heartbeat found stale is re-queued this many times at most

_claims = sa.Table(
    "ademix_sweep_requeues",
    sa.MetaData(),
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("study_name", sa.String(512)),
    sa.Column("trial_number", sa.Integer),
)
_ready: set[tuple[int, str]] = set()  # (pid, engine URL) whose claim table is known to exist


def _ensure_claims(engine: sa.Engine) -> None:
    key = (os.getpid(), str(engine.url))
    if key in _ready:
        return
    try:
        _claims.metadata.create_all(engine, checkfirst=True)
    except sa.exc.DatabaseError:  # two processes created it at once: fine if it is there now
        if not sa.inspect(engine).has_table(_claims.name):
            raise
    _ready.add(key)


def claim(storage: RDBStorage, trial: FrozenTrial, study_name: str) -> bool:
    """Take the right to re-queue ``trial``: True for exactly one caller, across processes.
    ``storage`` is an RDBStorage, or the cache Optuna wraps one in (``study._storage``)."""
    engine = getattr(storage, "_backend", storage).engine
    _ensure_claims(engine)
    try:
        with engine.begin() as conn:
            row = {"trial_id": trial._trial_id, "study_name": study_name, "trial_number": trial.number}
            conn.execute(sa.insert(_claims).values(**row))
    except sa.exc.IntegrityError:
        return False
    return True


def requeue(study: optuna.Study, trial: FrozenTrial, deaths: int | None = None) -> bool:
    """Add the one WAITING copy of a failed trial (same parameters), unless another process has.
    ``deaths`` is the copy's count of worker deaths (default: the trial's own). True if added."""
    if any(t.system_attrs.get("retry_history", [None])[-1] == trial.number for t in _copies(study)):
        return False  # re-queued before claims existed (an older version, or Optuna's own callback)
    if not claim(study._storage, trial, study.study_name):
        return False
    system_attrs = {
        **trial.system_attrs,
        "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
        "retry_history": [*trial.system_attrs.get("retry_history", []), trial.number],
        DEATHS: trial.system_attrs.get(DEATHS, 0) if deaths is None else deaths,
    }
    keep = {k: v for k, v in trial.user_attrs.items() if k == COMPARE}  # what a compare run is
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=keep,
            system_attrs=system_attrs,
        )
    )
    return True


def _copies(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if "retry_history" in t.system_attrs]


def requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """The heartbeat's callback for a trial it failed as stale (its machine vanished)."""
    if len(trial.system_attrs.get("retry_history", [])) < MAX_STALE_RETRIES:
        requeue(study, trial)


def how_it_ended(exitcode: int | None) -> str:
    """A worker's exit code in words: "killed by SIGKILL (out of memory?)", "exit code 1"."""
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        return f"killed by {name}" + (" (out of memory?)" if -exitcode == signal.SIGKILL else "")
    return f"exit code {exitcode}"


def death_reason(exitcode: int | None, deaths: int) -> str:
    """Why a worker's trial failed: "worker died (exit code -9)", or after MAX_WORKER_DEATHS the
    likely cause ("worker killed by SIGKILL while running this trial 2 times: out of memory?")."""
    if deaths < MAX_WORKER_DEATHS:
        return f"worker died (exit code {exitcode})"
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else f"signal {-exitcode}"
        cause = ": out of memory?" if -exitcode == signal.SIGKILL else ""
        return f"worker killed by {name} while running this trial {deaths} times{cause}"
    return f"worker died (exit code {exitcode}) while running this trial {deaths} times"


def fail_trials_of(
    storage_url: str,
    names: list[str],
    pid: int,
    reason: str,
    *,
    exitcode: int | None = None,
    retry: bool = True,
) -> list[tuple[str, int]]:
    """After a worker process of this host ended: fail its RUNNING trials with ``reason`` and
    re-queue them (``retry``), and re-queue any trial it failed on its way out (a second Ctrl-C)
    that has no copy yet. ``exitcode`` set: the worker died, and the death is counted. Losing a
    race to another process that fails or re-queues the same trial is not an error. Returns the
    (study, trial number) re-queued."""
    host, done = socket.gethostname(), []
    storage = open_storage(storage_url)
    try:
        for name in names:
            try:
                study = optuna.load_study(storage=storage, study_name=name)
            except KeyError:  # not created yet: the worker died setting up
                continue
            for t in study.get_trials(deepcopy=False):
                if t.user_attrs.get(WORKER_PID) == pid and t.user_attrs.get(WORKER_HOST) == host:
                    if _fail_one(study, t, reason, exitcode, retry):
                        done.append((name, t.number))
    finally:
        storage.engine.dispose()
    return done


def _fail_one(study: optuna.Study, t: FrozenTrial, reason: str, exitcode: int | None, retry: bool) -> bool:
    """Fail (if RUNNING) and re-queue one trial of a worker that ended; True if this call re-queued it."""
    storage = study._storage
    deaths = t.system_attrs.get(DEATHS, 0) + (exitcode is not None)
    if t.state == TrialState.RUNNING:
        if exitcode is not None:
            reason = death_reason(exitcode, deaths)
            retry = retry and deaths < MAX_WORKER_DEATHS
        try:
            storage.set_trial_user_attr(t._trial_id, FAILURE, reason)  # first: a FAIL trial is frozen
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                return False
        except UpdateFinishedTrialError:  # another process failed it first, and re-queues it
            return False
    elif t.state != TrialState.FAIL or t.user_attrs.get(FAILURE) not in REQUEUED_FAILURES:
        return False
    return retry and requeue(study, storage.get_trial(t._trial_id), deaths)


def fail_dead_local_trials(storage_url: str, names: list[str]) -> list[tuple[str, int]]:
    """RUNNING trials of this host whose worker process is gone (a run killed with its workers):
    failed and re-queued now, instead of after the heartbeat's grace period."""
    host, dead = socket.gethostname(), set()
    storage = open_storage(storage_url)
    try:
        for name in names:
            for t in optuna.load_study(storage=storage, study_name=name).get_trials(states=(TrialState.RUNNING,)):
                pid = t.user_attrs.get(WORKER_PID)
                if t.user_attrs.get(WORKER_HOST) == host and isinstance(pid, int) and not _alive(pid):
                    dead.add(pid)
    finally:
        storage.engine.dispose()
    return [done for pid in sorted(dead) for done in fail_trials_of(storage_url, names, pid, "worker died")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True

