"""One trial: sample (space.py) -> train() -> report each evaluation for pruning -> value; and the
exact-budget rule that decides whether a trial may run at all.

Budget rule: a study's trials in states COMPLETE, PRUNED, RUNNING and WAITING are *counted*; a
trial may run only while fewer than ``budget`` counted trials have a smaller number, checked when
it starts and again when it ends (a trial created at the same moment elsewhere is then visible).
A trial that loses is failed as ``surplus``. Failed trials (a dead worker, Ctrl-C) drop out of the
count and are re-queued as WAITING copies, which the next ``ask`` on any machine picks up first.
So however many workers or machines take part, each study ends with exactly ``budget`` finished
(COMPLETE or PRUNED) trials.

A diverged trial is COMPLETE with value +inf (samplers then avoid its region) and user attributes
``diverged_step`` and ``failure`` = "diverged: <reason>".
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ademix_sweep.engine.attrs import (
    COMPARE,
    DEVICE,
    DIVERGED_STEP,
    FAILURE,
    INTERRUPTED,
    ITEMS_PER_S,
    LOG,
    PEAK_MEMORY_BYTES,
    PRECISION,
    SEED,
    SURPLUS,
    TRAIN_CURVE,
    UNIT,
    WALL_TIME_S,
    WARNING,
    WORKER_HOST,
    WORKER_PID,
    WORKER_RANK,
)
from ademix_sweep.engine.events import Event, Kind, OnEvent
from ademix_sweep.engine.space import hparams_at_length, sample_hparams
from ademix_sweep.sweepfile.scaling import scale_to
from ademix_sweep.tasks.outcome import TrialInfo

if TYPE_CHECKING:  # train imports torch: the parent of the workers does without it
    from ademix_sweep.engine.job import Job
    from ademix_sweep.train import Progress, TrainResult

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PROGRESS_EVERY_S = 0.5


class Surplus(Exception):
    """The budget was already taken by other trials."""


class Interrupted(Exception):
    """Ctrl-C: the trial stopped at an evaluation and will be retried."""


@dataclass(frozen=True)
class Worker:
    rank: int
    device: str
    logs: str | None = None  # the folder for command trials' logs
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def counted(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=COUNTED)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def within_budget(study: optuna.Study, number: int, budget: int) -> bool:
    return sum(t.number < number for t in counted(study)) < budget


def make_objective(
    job: Job,
    study: optuna.Study,
    budget: int,
    worker: Worker,
    emit: OnEvent,
    stopping: Callable[[], bool],
) -> Callable[[Trial], float]:
    """The sweep's objective for ``study.optimize(..., n_trials=1)`` in a worker."""
    space = job.cfg.optimizers.spaces()[job.optimizer]

    def objective(trial: Trial) -> float:
        base = _start(trial, job, worker, job.cfg.seed)
        if not within_budget(study, trial.number, budget):
            trial.set_user_attr(FAILURE, SURPLUS)
            raise Surplus
        hparams = sample_hparams(trial, space, job.cfg.train.steps)
        run = _TrialRun(trial, job, base, emit, stopping, lambda: _check_end(study, trial, budget), worker.logs)
        return run.run(hparams, job.cfg.seed)

    return objective


def make_compare_objective(
    jobs: dict[str, Job],
    study: optuna.Study,
    worker: Worker,
    emit: OnEvent,
    stopping: Callable[[], bool],
) -> Callable[[Trial], float]:
    """A compare run's objective: the configuration and seed come with the (enqueued) trial."""

    def objective(trial: Trial) -> float:
        run = trial.user_attrs.get(COMPARE)
        job = jobs[run["optimizer"]] if run else next(iter(jobs.values()))
        base = _start(trial, job, worker, run["seed"] if run else None)
        if run is None or _taken(study, trial.number, run):
            trial.set_user_attr(FAILURE, SURPLUS)  # no run left, or another copy of it ran
            raise Surplus
        space, steps = job.cfg.optimizers.spaces()[job.optimizer], job.cfg.train.steps
        length = run.get("steps") or steps  # compare --horizons: a full run at another length
        hparams = hparams_at_length(run["params"], space, steps, length)
        if length != steps:
            job = dataclasses.replace(job, cfg=scale_to(job.cfg, length))
        trial_run = _TrialRun(trial, job, base, emit, stopping, lambda: None, worker.logs, prune=False)
        return trial_run.run(hparams, run["seed"])

    return objective


def run_key(run: dict[str, Any]) -> tuple[str, int, int, int | None]:
    """A compare run: optimizer, configuration, seed and length (None: the sweep's own)."""
    return (run["optimizer"], run["source_trial"], run["seed"], run.get("steps"))


def _taken(study: optuna.Study, number: int, run: dict[str, Any]) -> bool:
    """Another trial of the same compare run is complete, or running and older."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        other = t.user_attrs.get(COMPARE)
        if t.number != number and other and run_key(other) == run_key(run):
            if t.state == TrialState.COMPLETE or t.number < number:
                return True
    return False


def _start(trial: Trial, job: Job, worker: Worker, seed: int | None) -> Event:
    """Name the trial's worker (first, so that every trial has one); the base of its events."""
    for key, value in (
        (WORKER_HOST, worker.host),
        (WORKER_PID, worker.pid),
        (WORKER_RANK, worker.rank),
        (DEVICE, worker.device),
        (FAILURE, None),
        (SEED, seed),
    ):
        trial.set_user_attr(key, value)
    return Event("start", worker.rank, optimizer=job.optimizer, trial=trial.number, device=worker.device)


@dataclass
class _TrialRun:
    """One trial's training: report each evaluation (and prune), record the result on the trial,
    and tell the parent (``emit``) what happens."""

    trial: Trial
    job: Job
    base: Event  # the fields of every event of this trial
    emit: OnEvent
    stopping: Callable[[], bool]
    check_end: Callable[[], None]  # raises Surplus when the budget was taken meanwhile
    logs: str | None = None  # the folder for a command task's log
    prune: bool = True
    last: list[float] = field(default_factory=list)  # the evaluations so far
    shown_s: float = 0.0  # when progress was last sent

    def event(self, kind: Kind, **fields: Any) -> None:
        self.emit(self.base.but(kind=kind, **fields))

    def on_eval(self, step: int, value: float) -> None:
        self.trial.report(value, step)
        self.last.append(value)
        self.event("eval", step=step, steps=self.job.cfg.train.steps, value=value)
        if self.stopping():
            raise Interrupted
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step}")

    def on_log(self, p: Progress) -> None:
        if p.elapsed_s - self.shown_s >= PROGRESS_EVERY_S:  # a few per second at most
            self.shown_s = p.elapsed_s
            self.event("progress", step=p.step, steps=self.job.cfg.train.steps, loss=p.loss)

    def run(self, hparams: dict[str, Any], seed: int) -> float:
        """Train; the trial's value (inf when it diverged). Pruning, Ctrl-C and the task's own
        errors pass as exceptions, with the failure recorded."""
        from ademix_sweep.train import Diverged, train

        job = self.job
        self.event("start", steps=job.cfg.train.steps)
        try:
            result = train(
                job.task,
                job.optimizer,
                hparams,
                job.cfg.train,
                device=job.device,
                seed=seed,
                on_eval=self.on_eval,
                on_log=self.on_log,
                trial=self.info(),
            )
        except Diverged as exc:
            self.record({DIVERGED_STEP: exc.step, FAILURE: f"diverged: {exc.reason}", TRAIN_CURVE: exc.curves["train"]})
            self.ended("diverged", step=exc.step, reason=exc.reason)
            return math.inf
        except optuna.TrialPruned:
            self.ended("pruned", value=self.last[-1] if self.last else None)
            raise
        except Interrupted:
            self.record({FAILURE: INTERRUPTED})
            raise
        except Exception as exc:
            self.record({FAILURE: f"{type(exc).__name__}: {exc}"[:500]})
            self.event("failed", reason=f"{type(exc).__name__}: {exc}")
            raise
        self.record(_result_attrs(result))
        self.ended("complete", value=result.final_val_loss)
        return result.final_val_loss

    def info(self) -> TrialInfo:
        """What a command task needs to know of its trial: where its log goes, and whom to tell
        of its process group (the parent kills it if this worker dies) and of warnings."""
        log = None
        if self.logs is not None and self.job.cfg.task.kind == "command":  # built-in tasks print nothing
            prefix = "compare-" if self.trial.user_attrs.get(COMPARE) else ""
            log = str(Path(self.logs).resolve() / f"{prefix}{self.job.optimizer}-{self.trial.number}.log")
            self.record({LOG: f"{socket.gethostname()}:{log}"})

        def warn(message: str) -> None:
            self.record({WARNING: message})
            self.event("warning", reason=message)

        return TrialInfo(
            self.trial.number,
            self.trial.study.study_name,
            log,
            on_process=lambda pid: self.event("command", pid=pid),
            on_warning=warn,
        )

    def record(self, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)

    def ended(self, kind: Kind, **fields: Any) -> None:
        """The trial is over: unless the budget was taken meanwhile (surplus), say how."""
        try:
            self.check_end()
        except Surplus:
            self.event("surplus")
            raise
        self.event(kind, **fields)


def _result_attrs(result: TrainResult) -> dict[str, Any]:
    return {
        TRAIN_CURVE: result.train_curve,
        ITEMS_PER_S: result.items_per_s,
        UNIT: result.unit,
        WALL_TIME_S: result.wall_time_s,
        PEAK_MEMORY_BYTES: result.peak_memory_bytes,
        DEVICE: result.device,
        PRECISION: result.precision,
    }


def _check_end(study: optuna.Study, trial: Trial, budget: int) -> None:
    if not within_budget(study, trial.number, budget):
        trial.set_user_attr(FAILURE, SURPLUS)
        raise Surplus
