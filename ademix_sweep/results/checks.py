"""Fair-tuning checks: what makes a comparison of the two optimizers unfair or premature, found in
the stored studies. Shown by ``status``, ``best`` and ``compare`` (and in ``compare --json``);
docs/comparing.md says what each means and what to do.

- ``edge``: a best configuration's searched value lies in the outer 5% of its range, in the
  distribution's own scale (log for log_uniform, the half-life for half_life, log(1 - beta) for
  one_minus_log): the optimum may lie outside the range;
- ``budget``: the optimizers have different budgets or, once the sweep is done, different numbers
  of finished trials;
- ``startup``: fewer trials than the sampler counts toward its random start-up (TPE: 10 finished);
- ``diverged``: every complete trial of an optimizer diverged (its best value is +inf).

``compare`` adds its own: top configurations within noise of each other, a deterministic task.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ademix_sweep.engine.study import BUDGET_ATTR
from ademix_sweep.results.compare import chosen, paired_summary
from ademix_sweep.results.read import best_trial
from ademix_sweep.sweepfile.config import SweepConfig

EDGE = 0.05  # the outer share of a range that counts as its edge
STARTUP = {"tpe": 10, "cmaes": 1}  # Optuna's default start-up trials, by sampler


class Check(TypedDict):
    kind: str  # edge, budget, startup, diverged, top_within_noise, deterministic
    optimizer: str | None
    message: str


def fairness_checks(studies: dict[str, optuna.Study], cfg: SweepConfig | None = None) -> list[Check]:
    """Every check that fires on these studies (``cfg``, when the sweep file is known, adds the
    sampler's start-up phase)."""
    found: list[Check] = []
    for opt, study in studies.items():
        found += edge_checks(opt, study)
        found += _diverged(opt, study)
        if cfg is not None:
            found += _startup(opt, study, cfg)
    return found + _budgets(studies)


def position(dist: FloatDistribution | IntDistribution, value: float) -> float | None:
    """Where ``value`` lies in its range, 0 to 1, in the distribution's own scale."""
    low, high = float(dist.low), float(dist.high)
    if high <= low:
        return None
    if dist.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def edge_checks(optimizer: str, study: optuna.Study) -> list[Check]:
    """The best trial's searched values in the outer EDGE of their ranges."""
    best = best_trial(study)
    if best is None:
        return []
    found = []
    for name, dist in best.distributions.items():
        if not isinstance(dist, FloatDistribution | IntDistribution):
            continue
        where = position(dist, best.params[name])
        if where is None or EDGE < where < 1 - EDGE:
            continue
        side = "top" if where >= 1 - EDGE else "bottom"
        plain = _plain_name(name)
        shown = name if plain == name else f"{name} (the sampled form of {plain})"
        scale = " (log scale)" if dist.log else ""
        found.append(
            Check(
                kind="edge",
                optimizer=optimizer,
                message=f"{optimizer}'s best {shown} {best.params[name]:.4g} is at the {side} of its range "
                f"[{dist.low:.4g}, {dist.high:.4g}]{scale}: widen it, the best value may lie beyond",
            )
        )
    return found


def _plain_name(param: str) -> str:
    return param.removesuffix("_half_life").removeprefix("one_minus_")


def _diverged(optimizer: str, study: optuna.Study) -> list[Check]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete and best_trial(study) is None:
        message = f"every complete {optimizer} trial diverged (best value +inf): lower its lr range"
        return [Check(kind="diverged", optimizer=optimizer, message=message)]
    return []


def _startup(optimizer: str, study: optuna.Study, cfg: SweepConfig) -> list[Check]:
    startup = cfg.sampler.startup_trials if cfg.sampler.startup_trials is not None else STARTUP.get(cfg.sampler.type)
    # what the sampler counts toward its start-up: TPE finished trials (pruned too), CMA-ES complete ones
    states = (TrialState.COMPLETE, TrialState.PRUNED) if cfg.sampler.type == "tpe" else (TrialState.COMPLETE,)
    done = len(study.get_trials(deepcopy=False, states=states))
    if not startup or done >= startup:
        return []
    kind = "finished" if cfg.sampler.type == "tpe" else "complete"
    message = (
        f"{optimizer} has {done} {kind} trial(s), fewer than the {cfg.sampler.type} sampler's {startup} "
        "random start-up trials: its search has not used its model yet (raise budget.trials)"
    )
    return [Check(kind="startup", optimizer=optimizer, message=message)]


def _budgets(studies: dict[str, optuna.Study]) -> list[Check]:
    if len(studies) < 2:
        return []
    budgets = {opt: study.user_attrs.get(BUDGET_ATTR) for opt, study in studies.items()}
    if len(set(budgets.values())) > 1:
        shown = ", ".join(f"{opt} {b}" for opt, b in budgets.items())
        return [Check(kind="budget", optimizer=None, message=f"the optimizers have different budgets ({shown})")]
    live = (TrialState.RUNNING, TrialState.WAITING)
    if any(study.get_trials(deepcopy=False, states=live) for study in studies.values()):
        return []  # still running: the counts are not final
    finished = {
        opt: len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        for opt, study in studies.items()
    }
    if len(set(finished.values())) > 1:
        shown = ", ".join(f"{opt} {n}" for opt, n in finished.items())
        message = f"the optimizers finished different numbers of trials ({shown}): resume the sweep to even them"
        return [Check(kind="budget", optimizer=None, message=message)]
    return []


def compare_checks(summary: dict[str, Any], gathered: dict[str, list[Any]]) -> list[Check]:
    """``compare``'s own: a deterministic task, and top configurations within noise of each other."""
    found: list[Check] = []
    paired = summary.get("paired")
    if paired and paired.get("deterministic"):
        message = "the task is deterministic: every seed gives the same result, so compare reports one difference"
        found.append(Check(kind="deterministic", optimizer=None, message=message))
    for opt, configs in gathered.items():
        pick = chosen(configs)
        for other in configs:
            if pick is None or other is pick:
                continue
            p = paired_summary(other.values, pick.values)
            if p is not None and p["within_noise"]:
                message = (
                    f"{opt}'s configurations #{pick.source_trial} and #{other.source_trial} are within noise of "
                    "each other: the pick between them is not meaningful"
                )
                found.append(Check(kind="top_within_noise", optimizer=opt, message=message))
    return found
