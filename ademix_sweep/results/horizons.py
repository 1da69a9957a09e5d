"""The verdict at several run lengths, measured as the paper measures it: each optimizer's chosen
configuration re-trained as a full run at each length (``compare --horizons``), on the same seeds.

- Tokens (steps) to match: at each length L, the length AdamW needs to reach AdEMAMix's mean final
  loss at L, interpolated linearly in log(length) on AdamW's own mean-final-loss-against-length
  curve; and the converse. A target beyond the lengths run is not extrapolated: it is reported as
  "more than the longest" (or "less than the shortest") length run. The ratio's 95% interval
  resamples the seeds (the same resample for every length and both optimizers: they are paired).
- The gap against length: the per-seed paired difference at every length, and the least-squares
  slope of the difference against log2(length) with its t interval (does the gap grow?).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from ademix_sweep.engine.attrs import COMPARE
from ademix_sweep.engine.contract import compare_study_name
from ademix_sweep.engine.storage import open_storage
from ademix_sweep.results.compare import paired_summary
from ademix_sweep.results.read import Sweep
from ademix_sweep.results.stats import t_quantile

RESAMPLES = 2000


@dataclass(frozen=True)
class Match:
    kind: str  # "interpolated", "beyond_longest" or "below_shortest"
    steps: float | None  # the matching length (interpolated only)
    ratio: float | None  # steps / the length it matches


def match_length(target: float, lengths: list[int], means: list[float], at: int) -> Match:
    """The length at which a curve of mean final losses (``means`` at increasing ``lengths``)
    reaches ``target``: the first crossing, linear in log(length); never extrapolated."""
    if means[0] <= target:
        return Match("below_shortest", None, None)
    for i in range(len(lengths) - 1):
        (l0, m0), (l1, m1) = (lengths[i], means[i]), (lengths[i + 1], means[i + 1])
        if m0 > target >= m1:
            share = (m0 - target) / (m0 - m1)
            steps = math.exp(math.log(l0) + share * (math.log(l1) - math.log(l0)))
            return Match("interpolated", steps, steps / at)
    return Match("beyond_longest", None, None)


def _means(values: dict[int, dict[int, float]], lengths: list[int], seeds: list[int]) -> list[float] | None:
    """Mean final loss per length over ``seeds`` (None when a length lacks one of them, or diverged)."""
    out = []
    for length in lengths:
        got = [values.get(length, {}).get(s) for s in seeds]
        if any(v is None or not math.isfinite(v) for v in got):
            return None
        out.append(statistics.fmean(got))  # type: ignore[arg-type]
    return out


def ratio_interval(
    fast: dict[int, dict[int, float]], slow: dict[int, dict[int, float]], lengths: list[int], at: int, seeds: list[int]
) -> tuple[float, float] | None:
    """95% percentile interval of the ``slow``-to-match-``fast`` ratio at ``at``, resampling seeds."""
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(RESAMPLES):
        pick = [seeds[i] for i in rng.integers(0, len(seeds), len(seeds))]
        fast_means, slow_means = _means(fast, lengths, pick), _means(slow, lengths, pick)
        if fast_means is None or slow_means is None:
            continue
        found = match_length(fast_means[lengths.index(at)], lengths, slow_means, at)
        beyond = math.inf if found.kind == "beyond_longest" else 0.0
        ratios.append(found.ratio if found.ratio is not None else beyond)
    if len(ratios) < RESAMPLES // 2:
        return None
    big = 1e300  # "never matched within the longest length", kept out of the interpolation's arithmetic
    low, high = np.percentile([min(r, big) for r in ratios], [2.5, 97.5], method="lower")
    return tuple(math.inf if v >= big else float(v) for v in (low, high))  # type: ignore[return-value]


def gap_slope(ademamix: dict[int, dict[int, float]], adamw: dict[int, dict[int, float]]) -> dict[str, Any] | None:
    """Least squares of d = AdEMAMix - AdamW (per seed and length) on log2(length), with the
    slope's 95% t interval (negative: the gap in AdEMAMix's favour grows with length)."""
    xs, ys = [], []
    for length in sorted(ademamix.keys() & adamw.keys()):
        for seed in sorted(ademamix[length].keys() & adamw[length].keys()):
            d = ademamix[length][seed] - adamw[length][seed]
            if math.isfinite(d):
                xs.append(math.log2(length))
                ys.append(d)
    if len(set(xs)) < 2 or len(xs) < 3:
        return None
    x, y = np.array(xs), np.array(ys)
    sxx = float(((x - x.mean()) ** 2).sum())
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / sxx)
    resid = y - (y.mean() + slope * (x - x.mean()))
    se = math.sqrt(float((resid**2).sum()) / (len(x) - 2) / sxx)
    half = t_quantile(0.975, len(x) - 2) * se
    return {"slope_per_doubling": slope, "ci95": [slope - half, slope + half], "points": len(x)}


def summary(values: dict[str, dict[int, dict[int, float]]], lengths: list[int], base: int) -> dict[str, Any]:
    """Per length: each optimizer's mean and spread, the paired difference, the lengths to match;
    and the gap's slope. ``values``: optimizer -> length -> seed -> final loss."""
    per_length = []
    ademamix, adamw = values.get("ademamix", {}), values.get("adamw", {})
    every = [set(by_seed) for opt in (ademamix, adamw) for by_seed in opt.values()]
    seeds = sorted(set.intersection(*every)) if ademamix and adamw else []
    full = (_means(ademamix, lengths, seeds), _means(adamw, lengths, seeds)) if seeds else (None, None)
    for length in lengths:
        row: dict[str, Any] = {"steps": length, "optimizers": {}}
        for opt, by_length in values.items():
            finite = [v for v in by_length.get(length, {}).values() if math.isfinite(v)]
            row["optimizers"][opt] = {
                "mean": statistics.fmean(finite) if finite else None,
                "std": statistics.stdev(finite) if len(finite) > 1 else None,
                "runs": len(by_length.get(length, {})),
            }
        row["paired"] = paired_summary(ademamix.get(length, {}), adamw.get(length, {}))
        if full[0] is not None and full[1] is not None and len(lengths) > 1:
            row["adamw_to_match"] = _match_row(full[0], full[1], ademamix, adamw, lengths, length, seeds)
            row["ademamix_to_match"] = _match_row(full[1], full[0], adamw, ademamix, lengths, length, seeds)
        per_length.append(row)
    return {"lengths": lengths, "base": base, "per_length": per_length, "gap_slope": gap_slope(ademamix, adamw)}


def stored(study: optuna.Study, base: int) -> dict[str, Any] | None:
    """The summary of the lengths a compare study holds (its top configurations' runs), read back
    for ``plot``; None when it holds only one length."""
    values: dict[str, dict[int, dict[int, float]]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        run = t.user_attrs.get(COMPARE)
        if not run or run.get("rank") != 0 or run.get("check") or t.value is None:
            continue
        by_seed = values.setdefault(run["optimizer"], {}).setdefault(run.get("steps") or base, {})
        by_seed.setdefault(run["seed"], t.value)
    lengths = sorted({n for by_length in values.values() for n in by_length})
    return summary(values, lengths, base) if len(lengths) > 1 else None


def of_sweep(sweep: Sweep) -> dict[str, Any] | None:
    """``stored`` for a sweep's compare study, if it has one with several lengths."""
    if sweep.steps is None:
        return None
    try:
        study = optuna.load_study(storage=open_storage(sweep.url), study_name=compare_study_name(sweep.name))
    except KeyError:  # no compare yet
        return None
    return stored(study, sweep.steps)


def _match_row(
    fast_means: list[float],
    slow_means: list[float],
    fast: dict[int, dict[int, float]],
    slow: dict[int, dict[int, float]],
    lengths: list[int],
    at: int,
    seeds: list[int],
) -> dict[str, Any]:
    found = match_length(fast_means[lengths.index(at)], lengths, slow_means, at)
    interval = ratio_interval(fast, slow, lengths, at, seeds) if found.kind == "interpolated" else None
    shown = None if interval is None else [v if math.isfinite(v) else None for v in interval]  # None: unbounded
    return {"kind": found.kind, "steps": found.steps, "ratio": found.ratio, "ratio_ci95": shown}
