"""Fair-tuning checks: each one fired by a crafted study, and silent on a clean one."""

from __future__ import annotations

import math

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from ademix_sweep.engine.study import BUDGET_ATTR
from ademix_sweep.results.checks import compare_checks, fairness_checks, position
from ademix_sweep.results.compare import Config, summary
from ademix_sweep.sweepfile.config import SweepConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR = FloatDistribution(1e-3, 1e-1, log=True)
HALF = FloatDistribution(50, 2000, log=True)


def _study(values, lrs, budget=12, half=None, states=None) -> optuna.Study:
    study = optuna.create_study()
    study.set_user_attr(BUDGET_ATTR, budget)
    for i, (value, lr) in enumerate(zip(values, lrs, strict=True)):
        params, dists = {"lr": lr}, {"lr": LR}
        if half is not None:
            params["beta3_half_life"], dists["beta3_half_life"] = half[i], HALF
        state = states[i] if states else TrialState.COMPLETE
        study.add_trial(
            create_trial(state=state, value=value if state == TrialState.COMPLETE else None, params=params,
                         distributions=dists, intermediate_values={10: value} if state == TrialState.PRUNED else None)
        )  # fmt: skip
    return study


def _cfg(sampler: str) -> SweepConfig:
    return SweepConfig.model_validate(
        {
            "name": "c",
            "budget": {"trials": 12},
            "sampler": {"type": sampler},
            "task": {"kind": "rosenbrock"},
            "train": {"steps": 10},
            "optimizers": {"adamw": {"lr": 1e-3}},
        }
    )


def _clean() -> dict[str, optuna.Study]:
    values = [1.0 + 0.1 * i for i in range(12)]
    lrs = [0.01 * (1.1**i) for i in range(12)]  # best (first) lr 0.01: the middle of the log range
    return {"ademamix": _study(values, lrs, half=[300.0] * 12), "adamw": _study(values, lrs)}


def test_a_clean_sweep_fires_no_check():
    assert fairness_checks(_clean(), _cfg("tpe")) == []


def test_a_best_value_at_the_edge_of_its_range_in_its_own_scale():
    assert position(LR, 0.01) == 0.5 and position(HALF, 2000) == 1.0
    studies = _clean()
    studies["adamw"] = _study([1.0, 2.0], [0.0989, 0.01], budget=12)  # the shipped rosenbrock sweep's case
    studies["ademamix"] = _study([1.0, 2.0], [0.01, 0.01], half=[52.0, 300.0])
    messages = [c["message"] for c in fairness_checks(studies) if c["kind"] == "edge"]
    assert messages == [
        "ademamix's best beta3_half_life (the sampled form of beta3) 52 is at the bottom of its range [50, 2000] "
        "(log scale): widen it, the best value may lie beyond",
        "adamw's best lr 0.0989 is at the top of its range [0.001, 0.1] (log scale): widen it, the best value may "
        "lie beyond",
    ]


def test_budgets_and_finished_counts_that_differ():
    studies = _clean()
    studies["adamw"].set_user_attr(BUDGET_ATTR, 20)
    (check,) = fairness_checks(studies)
    assert check["kind"] == "budget" and "different budgets (ademamix 12, adamw 20)" in check["message"]
    studies = _clean()
    studies["adamw"] = _study([1.0] * 8, [0.01] * 8)
    (check,) = fairness_checks(studies)
    assert "finished different numbers of trials (ademamix 12, adamw 8)" in check["message"]
    studies["adamw"].add_trial(create_trial(state=TrialState.WAITING))  # still going: counts are not final
    assert fairness_checks(studies) == []


def test_too_few_trials_for_the_samplers_start_up_and_all_diverged():
    studies = {"adamw": _study([1.0, 2.0, 3.0], [0.01, 0.02, 0.03])}
    (check,) = fairness_checks(studies, _cfg("tpe"))
    assert check["kind"] == "startup" and "3 finished trial(s), fewer than the tpe sampler's 10" in check["message"]
    pruned = [TrialState.COMPLETE, TrialState.COMPLETE] + [TrialState.PRUNED] * 8  # TPE counts pruned ones too
    assert fairness_checks({"adamw": _study([1.0] * 10, [0.01] * 10, states=pruned)}, _cfg("tpe")) == []
    assert fairness_checks(studies, _cfg("random")) == []
    studies = {"adamw": _study([math.inf, math.inf], [0.01, 0.02])}
    assert [c["kind"] for c in fairness_checks(studies)] == ["diverged"]


def test_compare_checks_for_a_deterministic_task_and_top_configurations_within_noise():
    a = Config("ademamix", 1, 0, {}, values={1: 0.5, 2: 0.5, 3: 0.5})
    b = Config("adamw", 2, 0, {}, values={1: 0.7, 2: 0.7, 3: 0.7})
    gathered = {"ademamix": [a], "adamw": [b]}
    assert [c["kind"] for c in compare_checks(summary(gathered, [1, 2, 3]), gathered)] == ["deterministic"]
    first = Config("adamw", 2, 0, {}, values={1: 0.70, 2: 0.74, 3: 0.69})
    second = Config("adamw", 5, 1, {}, values={1: 0.72, 2: 0.71, 3: 0.73})
    noisy = Config("ademamix", 1, 0, {}, values={1: 0.5, 2: 0.52, 3: 0.49})
    gathered = {"ademamix": [noisy], "adamw": [first, second]}
    (check,) = compare_checks(summary(gathered, [1, 2, 3]), gathered)
    assert check["kind"] == "top_within_noise" and "configurations #2 and #5 are within noise" in check["message"]
    apart = Config("adamw", 5, 1, {}, values={1: 0.90, 2: 0.91, 3: 0.92})
    gathered = {"ademamix": [noisy], "adamw": [first, apart]}
    assert compare_checks(summary(gathered, [1, 2, 3]), gathered) == []
