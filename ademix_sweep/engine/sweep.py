"""A sweep as a library call: what ``ademix-sweep run`` does, with no Typer and no printing.

    from ademix_sweep.engine.slots import plan_slots
    from ademix_sweep.engine.sweep import plan_sweep, run_planned

    plan = plan_sweep("sweeps/rosenbrock.yaml", overrides=["budget.trials=8"], slots=plan_slots("cpu", 2, 1, 0, 2))
    outcome = run_planned(plan)
    outcome.code                         # 0, 1 (gave up: outcome.reason), 130 or 143
    plan.studies["ademamix"].best_value

``run_planned`` installs handlers for SIGINT and SIGTERM while it runs (a stop as ``run`` takes
it), so call it from the main thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ademix_sweep.engine.contract import STOP_GRACE_S, Slot, Spec
from ademix_sweep.engine.events import OnEvent
from ademix_sweep.engine.retries import fail_dead_local_trials
from ademix_sweep.engine.storage import open_storage, storage_errors
from ademix_sweep.engine.study import BUDGET_ATTR, create_or_resume
from ademix_sweep.engine.urls import logs_dir, resolve_storage_url
from ademix_sweep.engine.workers import Outcome, run_sweep
from ademix_sweep.sweepfile.config import SweepConfig, read_sweep
from ademix_sweep.sweepfile.sections import CommandTask
from ademix_sweep.sweepfile.yamlio import SweepFileError, dotted
from ademix_sweep.tasks import TaskError, build_task

Studies = dict[str, optuna.Study]


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep file and where and on what its trials will run."""

    cfg: SweepConfig
    spec: Spec
    slots: list[Slot]
    studies: Studies = field(default_factory=dict)  # optimizer -> its study, once run_planned opened it


def plan_sweep(
    file: str,
    *,
    slots: list[Slot] | Callable[[int], list[Slot]],
    storage: str | None = None,
    overrides: Sequence[str] = (),
    stop_grace_s: float = STOP_GRACE_S,
) -> SweepPlan:
    """Read and check the sweep file (``--set``-style ``overrides``); SweepFileError if it is bad.
    ``slots`` may be a function of the task's GPUs per trial (1 but for a command task's own)."""
    cfg = check_file(file, overrides)
    if callable(slots):
        slots = slots(gpus_per_trial(cfg))
    url = resolve_storage_url(storage, cfg.storage, cfg.name)
    spec = Spec(
        file,
        cfg.name,
        tuple(overrides),
        url,
        cfg.budget.trials,
        tuple(cfg.optimizers.spaces()),
        timeout_s=trial_timeout(cfg),
        stop_grace_s=stop_grace_s,
        logs=logs_dir(url, cfg.name),
    )
    return SweepPlan(cfg, spec, slots)


def check_file(file: str, overrides: Sequence[str] = ()) -> SweepConfig:
    """Read and validate a sweep file; a command task's program and folder are checked too (no
    torch is imported). Raises SweepFileError (file, line, field) for anything wrong."""
    cfg, doc = read_sweep(file, list(overrides), optimizer=None, params=())
    if isinstance(cfg.task, CommandTask):
        try:
            build_task(cfg.task, Path(file).parent)
        except TaskError as exc:
            raise SweepFileError(doc.source, doc.line_of(exc.loc), dotted(exc.loc), exc.message) from None
    return cfg


def gpus_per_trial(cfg: SweepConfig) -> int:
    """The GPUs one trial gets: a command task's ``gpus_per_trial``; one for built-in tasks."""
    return cfg.task.gpus_per_trial if isinstance(cfg.task, CommandTask) else 1


def trial_timeout(cfg: SweepConfig) -> float | None:
    """How long a trial may run: train.timeout, or a command task's timeout (the shorter of both)."""
    limits = [cfg.train.timeout, cfg.task.timeout if isinstance(cfg.task, CommandTask) else None]
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None


def run_planned(
    plan: SweepPlan,
    *,
    on_event: OnEvent = lambda event: None,
    on_tick: Callable[[], None] = lambda: None,
    tick_s: float = 2.0,
) -> Outcome:
    """Create or resume the sweep's studies into ``plan.studies`` (while the workers start), run
    the workers until the budgets are finished or a stop, and return how they ended. ``on_event``
    gets each worker event; ``on_tick`` runs every ``tick_s``. Raises BadSweep, StorageError or
    SweepMismatch (one line each) for bad input found on the way."""
    loaded, url = plan.studies, plan.spec.storage

    def prepare() -> None:
        store = open_storage(url)
        with storage_errors(url):
            for opt in plan.spec.optimizers:
                loaded[opt] = create_or_resume(store, plan.cfg, opt, None)
                loaded[opt].set_user_attr(BUDGET_ATTR, plan.spec.budget)
            fail_dead_local_trials(url, plan.spec.study_names())

    return run_sweep(plan.spec, plan.slots, on_event, on_tick, tick_s, prepare)
