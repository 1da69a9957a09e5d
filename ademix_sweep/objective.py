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

import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from .space import sample_hparams

if TYPE_CHECKING:  # train imports torch: the parent of the workers does without it
    from .train import Job, Progress

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
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


def counted(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=COUNTED)


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def within_budget(study: optuna.Study, number: int, budget: int) -> bool:
    return sum(t.number < number for t in counted(study)) < budget


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Add a WAITING copy of a failed trial (same parameters), as Optuna's retry callback does."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    system_attrs = {
        **trial.system_attrs,
        "failed_trial": trial.system_attrs.get("failed_trial", trial.number),
        "retry_history": history,
    }
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions, system_attrs=system_attrs
        )
    )


Event = Callable[[dict[str, Any]], None]


def make_objective(
    job: Job,
    study: optuna.Study,
    budget: int,
    worker: Worker,
    emit: Event,
    stopping: Callable[[], bool],
) -> Callable[[Trial], float]:
    """The objective for ``study.optimize(..., n_trials=1)`` in a worker."""
    from .train import Diverged, train

    space = job.cfg.optimizers.spaces()[job.optimizer]
    steps = job.cfg.train.steps

    def objective(trial: Trial) -> float:
        base = {"optimizer": job.optimizer, "trial": trial.number, "rank": worker.rank, "device": worker.device}
        for key, value in (  # first, so that every trial names its worker
            ("worker_host", worker.host),
            ("worker_pid", worker.pid),
            ("worker_rank", worker.rank),
            ("device", worker.device),
            ("failure", None),
            ("seed", job.cfg.seed),
        ):
            trial.set_user_attr(key, value)
        if not within_budget(study, trial.number, budget):
            trial.set_user_attr("failure", "surplus")
            raise Surplus
        hparams = sample_hparams(trial, space, steps)
        emit({**base, "event": "start", "steps": steps})
        last: list[float] = []

        def on_eval(step: int, value: float) -> None:
            trial.report(value, step)
            last.append(value)
            emit({**base, "event": "eval", "step": step, "steps": steps, "value": value})
            if stopping():
                raise Interrupted
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")

        shown = [0.0]

        def on_log(p: Progress) -> None:
            if p.elapsed_s - shown[0] >= PROGRESS_EVERY_S:  # a few per second at most
                shown[0] = p.elapsed_s
                emit({**base, "event": "progress", "step": p.step, "steps": steps, "loss": p.loss})

        try:
            result = train(
                job.task,
                job.optimizer,
                hparams,
                job.cfg.train,
                device=job.device,
                seed=job.cfg.seed,
                on_eval=on_eval,
                on_log=on_log,
            )
        except Diverged as exc:
            trial.set_user_attr("diverged_step", exc.step)
            trial.set_user_attr("failure", f"diverged: {exc.reason}")
            trial.set_user_attr("train_curve", exc.curves["train"])
            _check_end(study, trial, budget, emit, base)
            emit({**base, "event": "diverged", "step": exc.step, "reason": exc.reason})
            return math.inf
        except optuna.TrialPruned:
            _check_end(study, trial, budget, emit, base)
            emit({**base, "event": "pruned", "value": last[-1] if last else None})
            raise
        except Interrupted:
            trial.set_user_attr("failure", "interrupted")
            raise
        except Exception as exc:
            trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}"[:500])
            emit({**base, "event": "failed", "reason": f"{type(exc).__name__}: {exc}"})
            raise
        for key, value in (
            ("train_curve", result.train_curve),
            ("items_per_s", result.items_per_s),
            ("unit", result.unit),
            ("wall_time_s", result.wall_time_s),
            ("peak_memory_bytes", result.peak_memory_bytes),
            ("device", result.device),
            ("precision", result.precision),
        ):
            trial.set_user_attr(key, value)
        _check_end(study, trial, budget, emit, base)
        emit({**base, "event": "complete", "value": result.final_val_loss})
        return result.final_val_loss

    return objective


def _check_end(study: optuna.Study, trial: Trial, budget: int, emit: Event, base: dict[str, Any]) -> None:
    if not within_budget(study, trial.number, budget):
        trial.set_user_attr("failure", "surplus")
        emit({**base, "event": "surplus"})
        raise Surplus
