"""``compare`` as a library call: plan each optimizer's re-runs on fresh seeds, enqueue them in
the sweep's compare study (so an interrupted compare resumes), run the workers, summarize.

    plan = plan_compare("sweeps/rosenbrock.yaml", slots=slots, seeds=5)
    if pending(plan):
        run_compare(plan)                # an Outcome, as for a sweep
    compare_summary(plan)                # the statistics compare prints (see compare.summary)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from ademix_sweep.engine.contract import STOP_GRACE_S, Slot, Spec, compare_study_name
from ademix_sweep.engine.events import OnEvent
from ademix_sweep.engine.retries import fail_dead_local_trials
from ademix_sweep.engine.storage import open_storage, storage_errors
from ademix_sweep.engine.study import check_same_sweep
from ademix_sweep.engine.sweep import gpus_per_trial, trial_timeout
from ademix_sweep.engine.urls import logs_dir
from ademix_sweep.engine.workers import Outcome, run_sweep
from ademix_sweep.results import horizons
from ademix_sweep.results.checks import compare_checks, fairness_checks
from ademix_sweep.results.compare import (
    Config,
    compare_seeds,
    enqueue,
    gather,
    plan,
    seed_agreement,
    seed_checks,
    summary,
)
from ademix_sweep.results.read import Figures, Sweep, open_sweep
from ademix_sweep.sweepfile.sections import CommandTask


@dataclass(frozen=True)
class ComparePlan:
    sweep: Sweep
    seeds: list[int]
    runs: list[dict[str, Any]]  # one per (configuration, seed), both optimizers
    checks: list[dict[str, Any]]  # command sweeps: the best configurations again on the sweep's seed
    study: optuna.Study  # the compare study that holds them
    added: int  # runs enqueued by this plan (0 when resuming a finished compare)
    spec: Spec
    slots: list[Slot]
    lengths: list[int | None]  # compare --horizons: the run lengths (None: the sweep's own), shortest first


def plan_compare(
    file: str,
    *,
    slots: list[Slot] | Callable[[int], list[Slot]],
    storage: str | None = None,
    seeds: int = 5,
    top_k: int = 1,
    stop_grace_s: float = STOP_GRACE_S,
    overrides: Sequence[str] = (),
    horizons: Sequence[float] = (),
    steps: int | None = None,
) -> ComparePlan:
    """Check the file against its stored sweep and enqueue the re-runs not yet there. Raises
    SweepFileError, NoSweep, StorageError, SweepMismatch or ValueError, one line each."""
    sweep = open_sweep(file, storage, None, list(overrides))
    cfg = sweep.cfg
    assert cfg is not None  # opened from the file
    if callable(slots):
        slots = slots(gpus_per_trial(cfg))
    seed_list = compare_seeds(cfg.seed, seeds)
    lengths = run_lengths(cfg.train.steps, horizons, steps)
    runs = plan(sweep.studies, top_k, seed_list, lengths)
    checks = seed_checks(sweep.studies, cfg.seed) if isinstance(cfg.task, CommandTask) else []
    for opt, study in sweep.studies.items():
        check_same_sweep(study, cfg, opt)
    with storage_errors(sweep.url):
        study = optuna.create_study(
            storage=open_storage(sweep.url),
            study_name=compare_study_name(sweep.name),
            sampler=optuna.samplers.RandomSampler(seed=cfg.seed),
            load_if_exists=True,
        )
        added = enqueue(study, runs + checks)
        fail_dead_local_trials(sweep.url, [study.study_name])
    per_optimizer = len(runs + checks) // len(sweep.studies)
    spec = Spec(
        file,
        sweep.name,
        tuple(overrides),
        sweep.url,
        per_optimizer,
        tuple(sweep.studies),
        mode="compare",
        timeout_s=trial_timeout(cfg),
        stop_grace_s=stop_grace_s,
        logs=logs_dir(sweep.url, sweep.name),
    )
    return ComparePlan(sweep, seed_list, runs, checks, study, added, spec, slots, lengths)


def run_lengths(steps: int, horizons: Sequence[float], extra: int | None = None) -> list[int | None]:
    """The lengths ``--horizons`` asks for (multiples of ``train.steps``) and ``--steps`` (``extra``),
    the sweep's own always among them (as None), shortest first; ValueError for a horizon that
    gives no step."""
    lengths = {steps} | ({extra} if extra is not None else set())
    for h in horizons:
        if not h > 0 or round(h * steps) < 1:
            raise ValueError(f"--horizons {h:g}: expected multiples of train.steps above 0 (such as 0.5,1,2,4)")
        lengths.add(round(h * steps))
    return [None if n == steps else n for n in sorted(lengths)]


def length_values(plan: ComparePlan) -> dict[str, dict[int, dict[int, float]]]:
    """optimizer -> length -> seed -> final loss of its top configuration, at every length run."""
    base = plan.sweep.cfg.train.steps if plan.sweep.cfg else 0
    out: dict[str, dict[int, dict[int, float]]] = {}
    for length in plan.lengths:
        for opt, configs in gather(plan.study, plan.runs, length).items():
            top = min(configs, key=lambda c: c.rank)
            out.setdefault(opt, {})[length or base] = dict(top.values)
    return out


def pending(plan: ComparePlan) -> bool:
    """Runs to do: newly enqueued, or left waiting or running by an interrupted compare."""
    states = (TrialState.WAITING, TrialState.RUNNING)
    return bool(plan.added or plan.study.get_trials(deepcopy=False, states=states))


def run_compare(
    plan: ComparePlan,
    *,
    on_event: OnEvent = lambda event: None,
    on_tick: Callable[[], None] = lambda: None,
    tick_s: float = 2.0,
) -> Outcome:
    """Run the workers until every re-run is finished (or a stop); as ``run_planned`` does."""
    return run_sweep(plan.spec, plan.slots, on_event, on_tick, tick_s)


def gathered(plan: ComparePlan) -> dict[str, list[Config]]:
    """Each optimizer's configurations with their re-runs' results so far."""
    return gather(plan.study, plan.runs)


def figures(plan: ComparePlan) -> dict[str, Figures]:
    """Each optimizer's progress for a live view: runs done, diverged, the best mean so far."""
    out, every = {}, gathered(plan)
    at_lengths = [gather(plan.study, plan.runs, length) for length in plan.lengths]
    for opt in plan.spec.optimizers:
        configs = every.get(opt, [])
        means = [(c.mean, c.source_trial) for c in configs if c.mean is not None]
        best = min(means) if means else (None, None)
        done = [c for found in at_lengths for c in found.get(opt, [])]
        out[opt] = Figures(
            finished=sum(len(c.values) for c in done),
            diverged=sum(c.diverged for c in done),
            best_value=best[0],
            best_number=best[1],
        )
    return out


def compare_summary(plan: ComparePlan) -> dict[str, Any]:
    """The statistics ``compare`` reports (see ``compare.summary``)."""
    every = gathered(plan)
    out = summary(every, plan.seeds, seed_agreement(plan.study, plan.checks, plan.sweep.studies))
    out["checks"] = fairness_checks(plan.sweep.studies, plan.sweep.cfg) + compare_checks(out, every)
    if len(plan.lengths) > 1 and plan.sweep.cfg is not None:
        base = plan.sweep.cfg.train.steps
        out["horizons"] = horizons.summary(length_values(plan), [n or base for n in plan.lengths], base)
    return out
