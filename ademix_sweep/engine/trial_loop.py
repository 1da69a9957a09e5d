"""Inside a worker process: set up once, then one trial at a time until both budgets are finished.

A worker reads the sweep file and builds the task itself (the parent never loads data or torch on
a CPU-only install, so workers start sooner), joins both studies (sampler seed = sweep seed +
rank, so workers do not repeat each other's first trials), and always runs the optimizer furthest
from its budget. A set-up that fails on bad input (the file, its data, a study of other data)
is reported to the parent as ``setup_failed`` and ends the worker with exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from ademix_sweep.engine.attrs import COMPARE, INTERRUPTED, WORKER_HOST, WORKER_PID
from ademix_sweep.engine.contract import EXIT_BAD_INPUT, EXIT_GAVE_UP, EXIT_STORAGE, Slot, Spec, compare_study_name
from ademix_sweep.engine.events import Event, OnEvent, encode
from ademix_sweep.engine.objective import (
    Interrupted,
    Surplus,
    Worker,
    counted,
    finished,
    make_compare_objective,
    make_objective,
)
from ademix_sweep.engine.retries import fail_trials_of, requeue, requeue_stale
from ademix_sweep.engine.storage import (
    StorageError,
    failure_message,
    is_storage_outage,
    open_storage,
    retrying,
    storage_failure,
)
from ademix_sweep.engine.study import SweepMismatch, create_or_resume
from ademix_sweep.sweepfile.yamlio import SweepFileError
from ademix_sweep.tasks.groups import RUNNING, kill_group

if TYPE_CHECKING:
    from ademix_sweep.engine.job import Job

MAX_CONSECUTIVE_FAILURES = 3  # a worker whose trials keep failing (not diverging) gives up
WAIT_S = 0.25
STALE_CHECK_S = 5.0
ORPHAN_CHECK_S = 0.5

def worker_main(spec: Spec, slot: Slot, events: Any, shared_stop: Any) -> None:
    """A worker process: trials until both budgets are finished or a stop is asked for.

    ``events`` is this worker's own pipe to the parent and ``shared_stop`` a lock-free shared
    flag: a worker killed at any moment cannot leave a lock held that the others need.
    """
    emit = _emitter(events, slot.rank)
    stop = _Stop(shared_stop)
    _watch_parent(spec, stop)
    import torch

    torch.set_num_threads(slot.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial events are reported by the parent
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat APIs
    interrupts = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        stop.set()
        if interrupts[0] > 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        _work(spec, slot, emit, stop)
        code = 0
    except Exception as exc:
        if storage_failure(exc) is None:
            raise
        emit(Event("storage_failed", message=failure_message(spec.storage, exc)))
        code = EXIT_STORAGE
    except KeyboardInterrupt:
        emit(Event("worker_exit", reason="interrupted"))
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is in the storage: skip tearing down torch's modules (about 1 s)


def _watch_parent(spec: Spec, stop: _Stop) -> None:
    """A thread that stops this worker when its parent is gone (killed, crashed, out of memory):
    at once the worker stops as after one Ctrl-C; a trial that reaches no evaluation within
    the stop grace is failed and re-queued here, and the worker ends. No worker outlives its parent."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_S)
        stop.set()
        time.sleep(spec.stop_grace_s)
        for pgid in list(RUNNING):  # a command trial that did not stop in time goes with this worker
            kill_group(pgid)
        with suppress(Exception):  # the storage may be what failed: the next run's start-up re-queues
            fail_trials_of(spec.storage, spec.study_names(), os.getpid(), INTERRUPTED)
        os._exit(1)

    threading.Thread(target=watch, name="ademix-parent-watch", daemon=True).start()


class _Stop:
    """The parent's shared flag, or this process's own (set by its signal handlers)."""

    def __init__(self, shared: Any) -> None:
        self.shared, self.local = shared, False

    def set(self) -> None:
        self.local = True

    def is_set(self) -> bool:
        return self.local or bool(self.shared.value)


def _emitter(events: Any, rank: int) -> OnEvent:
    def emit(event: Event) -> None:
        try:
            events.send(encode(dataclasses.replace(event, rank=rank)))
        except OSError:  # the parent is gone: events have no reader
            pass

    return emit


def _setup(spec: Spec, slot: Slot, emit: OnEvent) -> tuple[dict[str, Job], dict[str, optuna.Study], RDBStorage]:
    """The task and both studies; bad input ends the worker with EXIT_BAD_INPUT and one line."""
    from ademix_sweep.engine.job import BadDevice, prepare_job

    try:
        base = prepare_job(spec.file, spec.optimizers[0], (), spec.overrides, slot.device)
        storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s, on_stale=requeue_stale)
        studies = {
            opt: create_or_resume(storage, base.cfg, opt, base.task.fingerprint, rank=slot.rank)
            for opt in spec.optimizers
        }
    except (SweepFileError, BadDevice, StorageError, SweepMismatch) as exc:
        message = str(exc) if isinstance(exc, SweepFileError) else f"{spec.file}: {exc}"
        emit(Event("setup_failed", message=message))
        raise SystemExit(EXIT_BAD_INPUT) from None
    jobs = {opt: dataclasses.replace(base, optimizer=opt, hparams={}, defaulted=[]) for opt in spec.optimizers}
    return jobs, studies, storage


def _work(spec: Spec, slot: Slot, emit: OnEvent, stop: Any) -> None:
    jobs, studies, storage = _setup(spec, slot, emit)
    worker = Worker(slot.rank, f"{slot.device}:{slot.gpu}" if slot.gpu is not None else slot.device, spec.logs)
    if spec.mode == "compare":
        runs = optuna.load_study(storage=storage, study_name=compare_study_name(spec.name))
        objective = make_compare_objective(jobs, runs, worker, emit, stop.is_set)

        def pick(turn: int) -> Any:
            nxt = next_run(runs)
            return (runs, objective) if nxt == "run" else nxt

        watched = [runs]
    else:

        def pick(turn: int) -> Any:
            opt = choose(studies, spec.budget, turn)
            if opt in (None, "wait"):
                return opt
            return studies[opt], make_objective(jobs[opt], studies[opt], spec.budget, worker, emit, stop.is_set)

        watched = list(studies.values())
    try:
        emit(Event("worker_ready", pid=os.getpid(), device=worker.device))
        _trials(pick, watched, spec.storage, worker, emit, stop)
    finally:
        storage.engine.dispose()  # close the connections before the fast exit


def _trials(
    pick: Callable[[int], Any], watched: list[optuna.Study], url: str, worker: Worker, emit: OnEvent, stop: Any
) -> None:
    """Trials one at a time: ``pick`` gives the next (study, objective), "wait" or None (done).
    A database outage is waited out (up to study.OUTAGE_S); a trial it broke is re-queued."""
    names = [study.study_name for study in watched]
    failures, turn, stale_check = 0, worker.rank, 0.0
    while not stop.is_set():
        choice = retrying(partial(pick, turn), on_wait=lambda why: emit(Event("storage_wait", reason=why)))
        if choice is None:
            break
        if choice == "wait":  # the last trials are running elsewhere
            stale_check = _wait_for_others(watched, stale_check)
            continue
        turn += 1
        ended = _one_trial(*choice, names, url, worker, emit)
        if ended == "interrupted":
            break
        if isinstance(ended, Exception):
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                why = f"{failures} trials in a row failed; last: {type(ended).__name__}: {ended}"
                emit(Event("worker_exit", reason=why[:300]))
                raise SystemExit(EXIT_GAVE_UP) from None
        elif ended == "done":
            failures = 0
    emit(Event("worker_exit", reason="interrupted" if stop.is_set() else "done"))


def _wait_for_others(watched: list[optuna.Study], stale_check: float) -> float:
    """Wait a moment; now and then fail a vanished machine's trials so that they come back."""
    if time.monotonic() - stale_check >= STALE_CHECK_S:
        for study in watched:
            retrying(partial(optuna.storages.fail_stale_trials, study))
        stale_check = time.monotonic()
    time.sleep(WAIT_S)
    return stale_check


def _one_trial(
    study: optuna.Study, objective: Callable[..., float], names: list[str], url: str, worker: Worker, emit: OnEvent
) -> str | Exception:
    """Run one trial: "done", "skipped" (no budget left, or the storage broke it and it was
    re-queued), "interrupted" (re-queued), or the exception that failed it."""
    try:
        study.optimize(objective, n_trials=1)
    except (Surplus, UpdateFinishedTrialError):  # no slot left; or failed elsewhere as stale, and re-queued
        return "skipped"
    except Interrupted:
        trial = _my_last_trial(study, worker)
        requeue(study, trial)
        emit(Event("interrupted", optimizer=_optimizer_of(study, trial), trial=trial.number))
        return "interrupted"
    except Exception as exc:
        if storage_failure(exc):
            raise
        if is_storage_outage(exc):  # the database went away mid-trial: put the trial back once it is back
            retrying(partial(fail_trials_of, url, names, os.getpid(), "storage connection lost"))
            return "skipped"
        return exc
    return "done"


def _optimizer_of(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    run = trial.user_attrs.get(COMPARE)
    return run["optimizer"] if run else study.study_name.rsplit(".", 1)[-1]


def next_run(study: optuna.Study) -> str | None:
    """For compare: "run" while runs wait, "wait" while the last ones run elsewhere, else None."""
    states = {t.state for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))}
    if TrialState.WAITING in states:
        return "run"
    return "wait" if states else None


def _my_last_trial(study: optuna.Study, worker: Worker) -> optuna.trial.FrozenTrial:
    mine = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get(WORKER_PID) == worker.pid and t.user_attrs.get(WORKER_HOST) == worker.host
    ]
    return mine[-1]


def choose(studies: dict[str, optuna.Study], budget: int, turn: int) -> str | None:
    """The optimizer to run next: the one with the most work left, free budget slots and waiting
    (re-queued) trials alike (alternating on ties); "wait" when every slot is taken by a running
    trial; None when all budgets are finished. A waiting trial holds a slot that only running it
    can fill: it is work, never a reason to wait."""
    free = {}
    for opt, study in studies.items():
        trials = counted(study)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        free[opt] = budget - len(trials) + waiting
    open_ = [opt for opt in studies if free[opt] > 0]
    if open_:
        order = open_[turn % len(open_) :] + open_[: turn % len(open_)]
        return max(order, key=lambda opt: free[opt])
    if all(finished(study) >= budget for study in studies.values()):
        return None
    return "wait"
