"""Reading a sweep back from its storage: its studies, each trial as a flat row, the status
figures and the best configuration. Plain data; ``report`` and ``cli`` show it.

A sweep is found from its file (name and storage as ``run`` resolves them) or from
``--storage URL --name NAME``. Nothing here writes to the storage, and a SQLite file that does
not exist is reported, not created.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import optuna
from optuna.trial import FrozenTrial, TrialState

from ademix_sweep.engine.attrs import DEVICE, DIVERGED_STEP, FAILURE, SURPLUS, WORKER_HOST
from ademix_sweep.engine.contract import study_name
from ademix_sweep.engine.space import plain_hyperparameters
from ademix_sweep.engine.storage import open_storage, storage_errors
from ademix_sweep.engine.study import ATTR, BUDGET_ATTR
from ademix_sweep.engine.urls import mask_url, resolve_storage_url, sqlite_path
from ademix_sweep.sweepfile.config import OPTIMIZERS, SweepConfig, read_sweep

COLUMNS = (
    "optimizer",
    "number",
    "state",
    "value",
    "duration_s",
    "device",
    "worker_host",
    "diverged_step",
    "failure",
    "datetime_start",
    "datetime_complete",
)


class NoSweep(Exception):
    """No sweep to read: a missing storage or study, or no way to find one."""


@dataclass
class Sweep:
    name: str
    url: str
    studies: dict[str, optuna.Study]  # optimizer -> its study, for those that exist
    budget: int | None  # finished trials per optimizer, as the file or the last run set it
    steps: int | None  # training steps per trial
    cfg: SweepConfig | None = None  # the sweep file, when the sweep was opened from one


def open_sweep(file: str | None, storage: str | None, name: str | None, overrides: list[str] | None = None) -> Sweep:
    """The sweep's studies. Raises NoSweep, SweepFileError or StorageError with one line."""
    budget = steps = cfg = None
    if file is not None:
        cfg, _ = read_sweep(file, overrides or [])
        name = name or cfg.name
        url = resolve_storage_url(storage, cfg.storage, cfg.name)
        optimizers: tuple[str, ...] = tuple(cfg.optimizers.spaces())
        budget, steps = cfg.budget.trials, cfg.train.steps
    elif name is None or (storage is None and "ADEMIX_SWEEP_STORAGE" not in os.environ):
        raise NoSweep("expected a sweep FILE, or --storage URL and --name NAME")
    else:
        url = resolve_storage_url(storage, None, name)
        optimizers = OPTIMIZERS
    _check_sqlite_exists(url)
    store = open_storage(url)
    with storage_errors(url):
        names = set(optuna.get_all_study_names(storage=store))
        studies = {
            opt: optuna.load_study(storage=store, study_name=study_name(name, opt))
            for opt in optimizers
            if study_name(name, opt) in names
        }
    if not studies:
        sweeps = sorted({n.rsplit(".", 1)[0] for n in names if n.rsplit(".", 1)[-1] in OPTIMIZERS})
        found = f"sweeps there: {', '.join(sweeps)}" if sweeps else "it holds no sweep"
        raise NoSweep(f"no sweep {name!r} in storage {mask_url(url)} ({found})")
    any_study = next(iter(studies.values()))
    if budget is None:
        budget = any_study.user_attrs.get(BUDGET_ATTR)
    if steps is None:
        steps = any_study.user_attrs.get(ATTR, {}).get("identity", {}).get("train", {}).get("steps")
    return Sweep(name, url, studies, budget, steps, cfg)


def _check_sqlite_exists(url: str) -> None:
    path = sqlite_path(url)
    if path and not Path(path).exists():
        raise NoSweep(f"storage {mask_url(url)}: no such SQLite file (expected the storage a run wrote)")


def state_of(trial: FrozenTrial) -> str:
    """complete, pruned, diverged (COMPLETE with value inf), failed, running or waiting."""
    if trial.state == TrialState.COMPLETE and trial.value is not None and not math.isfinite(trial.value):
        return "diverged"
    return {TrialState.FAIL: "failed"}.get(trial.state, trial.state.name.lower())


def hyperparameters(trial: FrozenTrial) -> dict[str, Any]:
    """The trial's parameters under the sweep file's field names, in plain units (a half-life
    sampled for beta3 appears as beta3), as ``train --param`` takes them."""
    return plain_hyperparameters(trial.params, trial.user_attrs)


def duration_s(trial: FrozenTrial, now: datetime | None = None) -> float | None:
    if trial.datetime_start is None:
        return None
    end = trial.datetime_complete or (now or datetime.now())
    return (end - trial.datetime_start).total_seconds()


def trial_row(optimizer: str, trial: FrozenTrial) -> dict[str, Any]:
    """One trial for export: COLUMNS, then ``param_<name>`` for each hyperparameter."""
    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "optimizer": optimizer,
        "number": trial.number,
        "state": state_of(trial),
        "value": trial.value if trial.value is None or math.isfinite(trial.value) else None,
        "duration_s": duration_s(trial) if trial.datetime_complete else None,
        "device": attrs.get(DEVICE),
        "worker_host": attrs.get(WORKER_HOST),
        "diverged_step": attrs.get(DIVERGED_STEP),
        "failure": attrs.get(FAILURE),
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }
    row.update({f"param_{k}": v for k, v in sorted(hyperparameters(trial).items())})
    return row


def all_rows(sweep: Sweep) -> tuple[list[str], list[dict[str, Any]]]:
    """Every trial of every optimizer, and the columns (COLUMNS then the sorted param columns)."""
    rows = [trial_row(opt, t) for opt, study in sweep.studies.items() for t in study.get_trials(deepcopy=False)]
    params = sorted({k for row in rows for k in row if k.startswith("param_")})
    return [*COLUMNS, *params], [{c: row.get(c) for c in (*COLUMNS, *params)} for row in rows]


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    """The k complete trials with the lowest finite values (diverged ones never win)."""
    good = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if finite_trial(t)]
    return sorted(good, key=lambda t: (t.value, t.number))[:k]


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    top = top_trials(study, 1)
    return top[0] if top else None


def finite_trial(trial: FrozenTrial) -> bool:
    """A complete trial with a finite value (not diverged)."""
    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value)


class Figures(TypedDict):
    """What the live view shows for one optimizer, of a sweep or of a compare."""

    finished: int  # complete, pruned and diverged trials (compare: runs done)
    diverged: int
    best_value: float | None
    best_number: int | None  # the best trial's number (compare: the configuration's source trial)


class OptimizerStatus(Figures):
    """One optimizer's study in figures: what ``status`` and the end of ``run`` show."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int  # re-queued, not yet picked up
    surplus: int  # failed at once because the budget was taken elsewhere; not a failure
    budget: int | None
    compute_s: float
    divergence_rate: float | None
    best_params: dict[str, Any]


def optimizer_status(study: optuna.Study, budget: int | None, now: datetime | None = None) -> OptimizerStatus:
    """Counts by state, budget used (finished trials and compute seconds), best, divergence rate."""
    trials = study.get_trials(deepcopy=False)
    counts = {s: 0 for s in ("complete", "pruned", "diverged", "failed", "running", "waiting", "surplus")}
    for t in trials:  # surplus: failed at once because the budget was taken elsewhere; not a failure
        counts["surplus" if t.user_attrs.get(FAILURE) == SURPLUS else state_of(t)] += 1
    finished = counts["complete"] + counts["pruned"] + counts["diverged"]
    best = best_trial(study)
    return OptimizerStatus(
        **counts,  # type: ignore[typeddict-item]
        finished=finished,
        budget=budget,
        compute_s=sum(duration_s(t, now) or 0.0 for t in trials if t.state != TrialState.WAITING),
        divergence_rate=counts["diverged"] / finished if finished else None,
        best_value=best.value if best else None,
        best_number=best.number if best else None,
        best_params=hyperparameters(best) if best else {},
    )


def running_trials(sweep: Sweep, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each RUNNING trial with its progress: last evaluated step, its value, elapsed seconds."""
    out = []
    for opt, study in sweep.studies.items():
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            step = max(t.intermediate_values, default=None)
            out.append(
                {
                    "optimizer": opt,
                    "number": t.number,
                    "worker_host": t.user_attrs.get(WORKER_HOST),
                    "device": t.user_attrs.get(DEVICE),
                    "step": step,
                    "steps": sweep.steps,
                    "value": t.intermediate_values[step] if step is not None else None,
                    "elapsed_s": duration_s(t, now),
                }
            )
    return out
