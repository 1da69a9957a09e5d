"""Best against best: re-train each optimizer's top configuration(s) on K fresh seeds (both
optimizers on the same seeds, so the same initialisation and data order: common random numbers),
and the statistics that answer "is AdEMAMix better here, and by how much?".

The runs live in the sweep's storage as the study ``<name>.compare``: one enqueued trial per
(optimizer, configuration, seed, length), run by the same workers as ``run``, so an interrupted
compare resumes where it stopped. Seeds are ``sweep seed + 1000 + i``: not the seed the
configurations were selected on, which would favour them (the winner's curse).

Statistics, with d = AdEMAMix - AdamW per seed (negative: AdEMAMix better):
- per configuration the mean and sample standard deviation of the final validation loss;
- the paired mean of d with Student's t 95% interval, the paired t and exact Wilcoxon p-values
  (``stats``) and the win rate; "within noise" when the t interval contains 0; a verdict only
  from 3 paired seeds; the percentile bootstrap only from 10; a deterministic task's single
  difference instead of a statistic;
- at several lengths (``--horizons``), the steps AdamW needs to match AdEMAMix from separate runs
  (``horizons``); with one length, the quick within-schedule estimate: the step at which
  AdEMAMix's mean validation curve first reaches AdamW's final loss, as a ratio T / s.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ademix_sweep.engine.attrs import COMPARE
from ademix_sweep.engine.objective import run_key
from ademix_sweep.results.read import hyperparameters, top_trials
from ademix_sweep.results.stats import MIN_PAIRS, paired_test

SEED_OFFSET = 1000
BOOTSTRAP = 10_000


def compare_seeds(sweep_seed: int, count: int) -> list[int]:
    return [sweep_seed + SEED_OFFSET + i for i in range(count)]


def plan(
    studies: dict[str, optuna.Study], top_k: int, seeds: list[int], lengths: list[int | None] | None = None
) -> list[dict[str, Any]]:
    """One run per optimizer, top-k configuration, seed and length (None: the sweep's own; other
    lengths only for the top configuration); ValueError if an optimizer has none. Shortest length
    first, then seed by seed, so that an interrupted compare leaves pairs, not one optimizer's runs."""
    lengths = lengths or [None]
    tops = {}
    for opt, study in studies.items():
        tops[opt] = top_trials(study, top_k)
        if not tops[opt]:
            raise ValueError(f"{opt} has no complete trial yet (expected a sweep that has run)")
    return [
        {
            "optimizer": opt,
            "source_trial": trial.number,
            "rank": rank,
            "seed": seed,
            "params": trial.params,  # as stored: what the worker re-samples from
            "hparams": hyperparameters(trial),  # plain names and units, for people
            **({} if length is None else {"steps": length}),
        }
        for length in lengths
        for seed in seeds
        for rank in range(top_k if length is None else 1)
        for opt, top in tops.items()
        if rank < len(top)
        for trial in (top[rank],)
    ]


SAME_SEED_RTOL = 1e-6  # two runs of one seed whose values differ by more than this disagree


def seed_checks(studies: dict[str, optuna.Study], sweep_seed: int) -> list[dict[str, Any]]:
    """One run per optimizer of its best configuration on the sweep's own seed: the sweep's trial
    ran it already, so the two values should agree if the training command honours the seed."""
    return [dict(run, check=True) for run in plan(studies, 1, [sweep_seed])]


def seed_agreement(study: optuna.Study, checks: list[dict[str, Any]], sweeps: dict[str, optuna.Study]) -> list[dict]:
    """For each finished check run: the sweep trial's value, the re-run's, and whether they agree."""
    done = {
        run_key(t.user_attrs[COMPARE]): t.value
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if COMPARE in t.user_attrs
    }
    out = []
    for run in checks:
        again = done.get(run_key(run))
        if again is None:
            continue
        first = sweeps[run["optimizer"]].trials[run["source_trial"]].value
        agree = first is not None and math.isclose(first, again, rel_tol=SAME_SEED_RTOL, abs_tol=1e-12)
        out.append(
            {"optimizer": run["optimizer"], "trial": run["source_trial"], "seed": run["seed"], "values": [first, again],
             "agree": agree}
        )  # fmt: skip
    return out


def enqueue(study: optuna.Study, runs: list[dict[str, Any]]) -> int:
    """Add the runs that have no complete, running or waiting trial; returns how many."""
    live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    have = {
        run_key(t.user_attrs[COMPARE]) for t in study.get_trials(deepcopy=False, states=live) if COMPARE in t.user_attrs
    }
    added = 0
    for run in runs:
        if run_key(run) not in have:
            study.enqueue_trial({}, user_attrs={COMPARE: run})
            have.add(run_key(run))
            added += 1
    return added


@dataclass
class Config:
    optimizer: str
    source_trial: int
    rank: int
    params: dict[str, Any]  # plain hyperparameters
    values: dict[int, float] = field(default_factory=dict)  # seed -> final loss (inf: diverged)
    curves: dict[int, dict[int, float]] = field(default_factory=dict)  # seed -> step -> val loss

    @property
    def finite(self) -> dict[int, float]:
        return {s: v for s, v in self.values.items() if math.isfinite(v)}

    @property
    def diverged(self) -> int:
        return len(self.values) - len(self.finite)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.finite.values()) if self.finite else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.finite.values()) if len(self.finite) > 1 else None


def gather(study: optuna.Study, runs: list[dict[str, Any]], steps: int | None = None) -> dict[str, list[Config]]:
    """The planned runs' results at one length (None: the sweep's own), the first complete trial
    of each, per optimizer and configuration."""
    configs: dict[tuple[str, int], Config] = {}
    runs = [run for run in runs if run.get("steps") == steps]
    for run in runs:
        configs.setdefault(
            (run["optimizer"], run["source_trial"]),
            Config(run["optimizer"], run["source_trial"], run["rank"], run["hparams"]),
        )
    wanted = {run_key(r) for r in runs}
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        run = t.user_attrs.get(COMPARE)
        if run is None or run_key(run) not in wanted or t.value is None:
            continue
        config = configs[(run["optimizer"], run["source_trial"])]
        if run["seed"] not in config.values:
            config.values[run["seed"]] = t.value
            config.curves[run["seed"]] = dict(t.intermediate_values)
    out: dict[str, list[Config]] = {}
    for config in configs.values():
        out.setdefault(config.optimizer, []).append(config)
    return out


def chosen(configs: list[Config]) -> Config | None:
    """The configuration with the lowest mean over the compare seeds (the top one if none has one)."""
    scored = [c for c in configs if c.mean is not None]
    return min(scored, key=lambda c: (c.mean, c.rank)) if scored else None


@dataclass(frozen=True)
class Paired:
    n: int  # seeds where both runs finished without diverging
    mean_diff: float
    ci_low: float
    ci_high: float
    win_rate: float  # share of seeds where the first is lower

    @property
    def within_noise(self) -> bool:
        return self.ci_low <= 0.0 <= self.ci_high


def paired(
    first: dict[int, float], second: dict[int, float], *, resamples: int = BOOTSTRAP, rng_seed: int = 0
) -> Paired | None:
    """Paired difference first - second over common seeds, with a percentile bootstrap 95% CI."""
    seeds = sorted(s for s in first.keys() & second.keys() if math.isfinite(first[s]) and math.isfinite(second[s]))
    if not seeds:
        return None
    d = np.array([first[s] - second[s] for s in seeds])
    rng = np.random.default_rng(rng_seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Paired(len(d), float(d.mean()), float(low), float(high), float((d < 0).mean()))


BOOTSTRAP_MIN_N = 10  # below this the bootstrap interval is not shown (too narrow at small n)


def paired_summary(first: dict[int, float], second: dict[int, float]) -> dict[str, Any] | None:
    """The paired difference first - second over the seeds both finished without diverging, as
    ``compare`` reports it: Student's t interval and p-values (and the bootstrap from n = 10),
    ``verdict`` only from MIN_PAIRS seeds, ``deterministic`` when no seed changed either result."""
    seeds = sorted(s for s in first.keys() & second.keys() if math.isfinite(first[s]) and math.isfinite(second[s]))
    if not seeds:
        return None
    d = [first[s] - second[s] for s in seeds]
    out: dict[str, Any] = {
        "n": len(d),
        "mean_diff": statistics.fmean(d),
        "win_rate": sum(x < 0 for x in d) / len(d),
        "ci95": None,
        "t_p": None,
        "wilcoxon_p": None,
        "bootstrap_ci95": None,
        "within_noise": None,
        "verdict": len(d) >= MIN_PAIRS,
        "deterministic": len(d) > 1 and len({first[s] for s in seeds}) == 1 and len({second[s] for s in seeds}) == 1,
    }
    if len(d) > 1:
        test = paired_test(d)
        out.update(ci95=list(test.ci95), t_p=test.t_p, wilcoxon_p=test.wilcoxon_p, within_noise=test.within_noise)
    if len(d) >= BOOTSTRAP_MIN_N:
        boot = paired(first, second)
        assert boot is not None
        out["bootstrap_ci95"] = [boot.ci_low, boot.ci_high]
    if out["deterministic"]:
        out["verdict"] = False  # n copies of one number: a difference, not a statistic
    return out


def mean_curve(curves: dict[int, dict[int, float]]) -> dict[int, float]:
    """Per evaluation step, the mean over the seeds that have it (diverged ones left out)."""
    good = [c for c in curves.values() if c and all(math.isfinite(v) for v in c.values())]
    steps = sorted(set.intersection(*(set(c) for c in good))) if good else []
    return {s: statistics.fmean(c[s] for c in good) for s in steps}


@dataclass(frozen=True)
class StepRatio:
    kind: str  # "estimate", "at_least" (reached by the first evaluation) or "not_reached"
    target: float  # AdamW's final loss
    step: float | None  # where AdEMAMix first reaches it
    total: int
    ratio: float | None  # total / step


def step_ratio(fast: dict[int, float], slow: dict[int, float]) -> StepRatio | None:
    """Where the ``fast`` curve first reaches the ``slow`` curve's final value."""
    if not fast or not slow:
        return None
    total, target = max(slow), slow[max(slow)]
    previous: tuple[int, float] | None = None
    for step in sorted(fast):
        value = fast[step]
        if value <= target:
            if previous is None:
                return StepRatio("at_least", target, float(step), total, total / step)
            s0, v0 = previous
            at = s0 + (v0 - target) / (v0 - value) * (step - s0)
            return StepRatio("estimate", target, at, total, total / at)
        previous = (step, value)
    return StepRatio("not_reached", target, None, total, None)


def summary(
    gathered: dict[str, list[Config]], seeds: list[int], same_seed: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Everything ``compare`` reports, as plain data (``--json`` prints it as it is)."""
    out: dict[str, Any] = {"seeds": seeds, "optimizers": {}, "paired": None, "steps_ratio": None}
    out["same_seed"] = same_seed or []  # command sweeps: does the command honour the seed?
    best: dict[str, Config] = {}
    for opt, configs in gathered.items():
        pick = chosen(configs)
        if pick is not None:
            best[opt] = pick
        out["optimizers"][opt] = {
            "chosen_trial": pick.source_trial if pick else None,
            "configs": [
                {
                    "source_trial": c.source_trial,
                    "rank": c.rank,
                    "params": c.params,
                    "values": {str(s): (v if math.isfinite(v) else None) for s, v in sorted(c.values.items())},
                    "runs": len(c.values),
                    "diverged": c.diverged,
                    "mean": c.mean,
                    "std": c.std,
                }
                for c in sorted(configs, key=lambda c: c.rank)
            ],
        }
    if "ademamix" in best and "adamw" in best:
        out["paired"] = paired_summary(best["ademamix"].values, best["adamw"].values)
        ratio = step_ratio(mean_curve(best["ademamix"].curves), mean_curve(best["adamw"].curves))
        if ratio is not None:
            out["steps_ratio"] = {
                "kind": ratio.kind,
                "target": ratio.target,
                "step": ratio.step,
                "total": ratio.total,
                "ratio": ratio.ratio,
            }
    return out
