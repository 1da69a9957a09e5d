"""Figures of a sweep: PNG through matplotlib (no pyplot state; safe in any process), and
interactive HTML through Optuna's plotly views when plotly is installed.

- ``best_so_far.png``: best validation loss so far against cumulative compute (seconds of all
  trials, in the order they ended), both optimizers on one axis: the fair-tuning view, where a
  method that needs more tuning shows it.
- ``best_curves.png``: the validation curves of each optimizer's best trial.
- ``lr_sensitivity.png``: final loss against learning rate for both (diverged trials as x).
- ``alpha_beta3.png``: AdEMAMix's α against β3 (as 1 − β3, log scale), coloured by final loss;
  pruned trials as grey crosses (where the pruner stopped them).

A loss axis is logarithmic when the losses drawn span more than two decades (the Rosenbrock
sweep: 11 down to 2e-7), where a linear axis would put every good trial at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from optuna.trial import TrialState

from ademix_sweep.results.read import best_trial, duration_s, finite_trial, hyperparameters

COLORS = {"ademamix": "tab:blue", "adamw": "tab:orange"}
DECADES = 2  # a loss axis spanning more than this many decades is drawn on a log scale
Studies = dict[str, optuna.Study]


def log_scale(values: list[float]) -> bool:
    """Whether losses this far apart read better on a log axis (all positive, > DECADES decades)."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) > 10**DECADES


def _loss_axis(ax: Any, values: list[float]) -> None:
    if log_scale(values):
        ax.set_yscale("log")



def best_so_far(studies: Studies) -> Figure | None:
    fig, ax = _axes()
    drawn, every = False, []
    for opt, study in studies.items():
        ended = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete and t.datetime_start]
        ended.sort(key=lambda t: t.datetime_complete)
        xs, ys, spent, best = [], [], 0.0, math.inf
        for t in ended:
            spent += duration_s(t) or 0.0
            if finite_trial(t):
                best = min(best, t.value)  # type: ignore[type-var]
            if math.isfinite(best):
                xs.append(spent)
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", label=opt, color=COLORS.get(opt))
            drawn, every = True, every + ys
    _loss_axis(ax, every)
    ax.set(xlabel="cumulative compute (s)", ylabel="best validation loss so far", title="Tuning efficiency")
    return _done(fig, ax, drawn)


def best_curves(studies: Studies) -> Figure | None:
    fig, ax = _axes()
    drawn, every = False, []
    for opt, study in studies.items():
        best = best_trial(study)
        if best is not None and best.intermediate_values:
            steps = sorted(best.intermediate_values)
            values = [best.intermediate_values[s] for s in steps]
            ax.plot(steps, values, marker="o", ms=3, label=f"{opt} #{best.number}", color=COLORS.get(opt))
            drawn, every = True, every + values
    _loss_axis(ax, every)
    ax.set(xlabel="step", ylabel="validation loss", title="Best trials")
    return _done(fig, ax, drawn)


def lr_sensitivity(studies: Studies) -> Figure | None:
    fig, ax = _axes()
    drawn = False
    finite = [t.value for s in studies.values() for t in s.get_trials(deepcopy=False) if finite_trial(t)]
    ceiling = max(finite) if finite else 1.0
    for opt, study in studies.items():
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "lr" in t.params]
        good = [t for t in done if finite_trial(t)]
        bad = [t for t in done if not finite_trial(t)]
        if good:
            ax.scatter([t.params["lr"] for t in good], [t.value for t in good], label=opt, color=COLORS.get(opt), s=18)
            drawn = True
        if bad:
            lrs = [t.params["lr"] for t in bad]
            ax.scatter(lrs, [ceiling] * len(bad), marker="x", color=COLORS.get(opt), label=f"{opt} diverged")
            drawn = True
    ax.set_xscale("log")
    _loss_axis(ax, finite)
    ax.set(xlabel="learning rate", ylabel="final validation loss", title="Learning-rate sensitivity")
    return _done(fig, ax, drawn)


def alpha_beta3(studies: Studies) -> Figure | None:
    study = studies.get("ademamix")
    if study is None:
        return None
    points, pruned = [], []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        hp = hyperparameters(t)
        if not (isinstance(hp.get("alpha"), float | int) and isinstance(hp.get("beta3"), float)):
            continue
        if finite_trial(t):
            points.append((hp["alpha"], 1.0 - hp["beta3"], t.value))
        elif t.state == TrialState.PRUNED:
            pruned.append((hp["alpha"], 1.0 - hp["beta3"]))
    if len({(a, b) for a, b, _ in points} | set(pruned)) < 2:
        return None  # alpha and beta3 were not both searched
    fig, ax = _axes()
    values = [p[2] for p in points]
    norm = LogNorm() if log_scale(values) else None
    dots = ax.scatter([p[0] for p in points], [p[1] for p in points], c=values, cmap="viridis_r", s=28, norm=norm)
    if points:
        fig.colorbar(dots, ax=ax, label="final validation loss")
    if pruned:
        ax.scatter([a for a, _ in pruned], [b for _, b in pruned], marker="x", color="0.55", s=22, label="pruned")
        ax.legend()
    ax.set_yscale("log")
    ax.set(xlabel="α", ylabel="1 − β3", title="AdEMAMix: α against β3")
    fig.tight_layout()
    return fig


def _axes() -> tuple[Figure, Any]:
    fig = Figure(figsize=(7, 4.5))
    return fig, fig.add_subplot()


def _done(fig: Figure, ax: Any, drawn: bool) -> Figure | None:
    if not drawn:
        return None
    ax.legend()
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[[Studies], Figure | None]] = {
    "best_so_far": best_so_far,
    "best_curves": best_curves,
    "lr_sensitivity": lr_sensitivity,
    "alpha_beta3": alpha_beta3,
}


def loss_vs_length(h: dict[str, Any]) -> Figure:
    """Final validation loss against run length (full runs), mean and spread over seeds, the points
    where AdamW matches AdEMAMix marked (the paper's Figure 3b); and the ratio against length."""
    fig = Figure(figsize=(11, 4.5))
    ax, ratio_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lengths = [row["steps"] for row in h["per_length"]]
    for opt, color in (("ademamix", "C0"), ("adamw", "C1")):
        stats = [row["optimizers"].get(opt) or {} for row in h["per_length"]]
        means = [s.get("mean") or math.nan for s in stats]
        spread = [s.get("std") or 0.0 for s in stats]
        ax.plot(lengths, means, "o-", color=color, label=opt)
        ax.fill_between(lengths, [m - d for m, d in zip(means, spread, strict=True)],
                        [m + d for m, d in zip(means, spread, strict=True)], color=color, alpha=0.2)  # fmt: skip
    ratios = []
    for row in h["per_length"]:
        m = row.get("adamw_to_match") or {}
        if m.get("kind") == "interpolated":
            target = row["optimizers"]["ademamix"]["mean"]
            ax.plot([row["steps"], m["steps"]], [target, target], ":", color="gray")
            ax.plot([m["steps"]], [target], "x", color="C1")
            ratios.append((row["steps"], m["ratio"]))
    ax.set_xscale("log")
    ax.set(xlabel="training steps (separate full runs)", ylabel="final validation loss", title="loss by run length")
    ax.legend()
    if ratios:
        ratio_ax.plot(*zip(*ratios, strict=True), "o-", color="C2")
    ratio_ax.axhline(1.0, color="gray", lw=0.8)
    ratio_ax.set_xscale("log")
    ratio_ax.set(xlabel="AdEMAMix's run length (steps)", ylabel="AdamW steps to match / steps", title="steps ratio")
    fig.tight_layout()
    return fig


def write_all(studies: Studies, out: Path, lengths: dict[str, Any] | None = None) -> list[Path]:
    """Every figure that has data, as PNG; and Optuna's HTML views when plotly is installed.
    ``lengths``: a compare's summary over several run lengths (``horizons.stored``), drawn too."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if lengths is not None:
        path = out / "loss_vs_length.png"
        loss_vs_length(lengths).savefig(path, dpi=120)
        written.append(path)
    for name, make in FIGURES.items():
        fig = make(studies)
        if fig is not None:
            path = out / f"{name}.png"
            fig.savefig(path, dpi=120)
            written.append(path)
    return written + _html(studies, out)


def _html(studies: Studies, out: Path) -> list[Path]:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return []
    from optuna import visualization as vis

    written = []
    for opt, study in studies.items():
        if not any(finite_trial(t) for t in study.get_trials(deepcopy=False)):
            continue
        for kind, make in (("history", vis.plot_optimization_history), ("slice", vis.plot_slice)):
            path = out / f"{opt}_{kind}.html"
            make(study).write_html(path, include_plotlyjs="directory")  # one local plotly.min.js: works offline
            written.append(path)
    return written
