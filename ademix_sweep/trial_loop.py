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
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from .objective import Interrupted, Surplus, Worker, counted, finished, make_objective, requeue
from .study import StorageError, SweepMismatch, create_or_resume, open_storage
from .yamlio import SweepFileError

if TYPE_CHECKING:
    from .train import Job
    from .workers import Slot, Spec

MAX_CONSECUTIVE_FAILURES = 3  # a worker whose trials keep failing (not diverging) gives up
WAIT_S = 2.0
EXIT_BAD_INPUT = 2
EXIT_GAVE_UP = 3

Emit = Callable[[dict[str, Any]], None]


def worker_main(spec: Spec, slot: Slot, events: Any, shared_stop: Any) -> None:
    """A worker process: trials until both budgets are finished or a stop is asked for.

    ``events`` is this worker's own pipe to the parent and ``shared_stop`` a lock-free shared
    flag: a worker killed at any moment cannot leave a lock held that the others need.
    """
    import torch

    torch.set_num_threads(slot.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial events are reported by the parent
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat APIs
    interrupts = [0]
    stop = _Stop(shared_stop)

    def on_sigint(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        stop.set()
        if interrupts[0] > 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    emit = _emitter(events, slot.rank)
    try:
        _work(spec, slot, emit, stop)
    except KeyboardInterrupt:
        emit({"event": "worker_exit", "reason": "interrupted"})
        raise SystemExit(130) from None


class _Stop:
    """The parent's shared flag, or this process's own (set by its signal handlers)."""

    def __init__(self, shared: Any) -> None:
        self.shared, self.local = shared, False

    def set(self) -> None:
        self.local = True

    def is_set(self) -> bool:
        return self.local or bool(self.shared.value)


def _emitter(events: Any, rank: int) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        try:
            events.send({"rank": rank, "time": time.time(), **event})
        except OSError:  # the parent is gone: events have no reader
            pass

    return emit


def _setup(spec: Spec, slot: Slot, emit: Emit) -> tuple[dict[str, Job], dict[str, optuna.Study]]:
    """The task and both studies; bad input ends the worker with EXIT_BAD_INPUT and one line."""
    from .train import BadDevice, prepare_job

    try:
        base = prepare_job(spec.file, spec.optimizers[0], (), spec.overrides, slot.device)
        storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s)
        studies = {
            opt: create_or_resume(storage, base.cfg, opt, base.task.fingerprint, rank=slot.rank)
            for opt in spec.optimizers
        }
    except (SweepFileError, BadDevice, StorageError, SweepMismatch) as exc:
        message = str(exc) if isinstance(exc, SweepFileError) else f"{spec.file}: {exc}"
        emit({"event": "setup_failed", "message": message})
        raise SystemExit(EXIT_BAD_INPUT) from None
    jobs = {opt: dataclasses.replace(base, optimizer=opt, hparams={}, defaulted=[]) for opt in spec.optimizers}
    return jobs, studies


def _work(spec: Spec, slot: Slot, emit: Emit, stop: Any) -> None:
    jobs, studies = _setup(spec, slot, emit)
    worker = Worker(slot.rank, f"{slot.device}:{slot.gpu}" if slot.gpu is not None else slot.device)
    emit({"event": "worker_ready", "pid": os.getpid(), "device": worker.device})
    failures, turn, parent = 0, slot.rank, os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # an orphan finishes its trial, then stops
        choice = choose(studies, spec.budget, turn)
        if choice is None:
            break
        if choice == "wait":
            for study in studies.values():
                optuna.storages.fail_stale_trials(study)  # a vanished machine's trials come back
            time.sleep(WAIT_S)
            continue
        turn += 1
        study = studies[choice]
        objective = make_objective(jobs[choice], study, spec.budget, worker, emit, stop.is_set)
        try:
            study.optimize(objective, n_trials=1)
            failures = 0
        except Surplus:
            continue
        except Interrupted:
            trial = _my_last_trial(study, worker)
            requeue(study, trial)
            emit({"event": "interrupted", "optimizer": choice, "trial": trial.number})
            break
        except Exception as exc:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                emit(
                    {
                        "event": "worker_exit",
                        "reason": f"{failures} trials in a row failed; last: {type(exc).__name__}: {exc}"[:300],
                    }
                )
                raise SystemExit(EXIT_GAVE_UP) from None
    emit({"event": "worker_exit", "reason": "interrupted" if stop.is_set() else "done"})


def _my_last_trial(study: optuna.Study, worker: Worker) -> optuna.trial.FrozenTrial:
    mine = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("worker_pid") == worker.pid and t.user_attrs.get("worker_host") == worker.host
    ]
    return mine[-1]


def choose(studies: dict[str, optuna.Study], budget: int, turn: int) -> str | None:
    """The optimizer to run next: the one with the most free budget (alternating on ties);
    "wait" when every slot is taken but not yet finished; None when all budgets are finished."""
    free = {opt: budget - len(counted(study)) for opt, study in studies.items()}
    open_ = [opt for opt in studies if free[opt] > 0]
    if open_:
        order = open_[turn % len(open_) :] + open_[: turn % len(open_)]
        return max(order, key=lambda opt: free[opt])
    if all(finished(study) >= budget for study in studies.values()):
        return None
    return "wait"
