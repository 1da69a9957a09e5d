"""Figures read at a glance: a log loss axis when losses span decades, pruned trials shown."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from ademix_sweep.results.plots import alpha_beta3, best_curves, best_so_far, log_scale

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(values: list[float], pruned: int = 0) -> optuna.Study:
    study = optuna.create_study()
    dists = {"lr": FloatDistribution(1e-4, 1.0, log=True), "alpha": FloatDistribution(1, 10),
             "beta3_half_life": FloatDistribution(10, 1000, log=True)}  # fmt: skip
    for i, value in enumerate([*values, *[None] * pruned]):
        study.enqueue_trial({"lr": 1e-3 * (i + 1), "alpha": 1.0 + i, "beta3_half_life": 20.0 * (i + 1)})
        trial = study.ask(dists)
        trial.set_user_attr("beta3", 0.5 ** (1 / trial.params["beta3_half_life"]))
        for step in (10, 20):
            trial.report(value if value is not None else 5.0, step)
        if value is None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def test_a_loss_axis_is_logarithmic_when_losses_span_more_than_two_decades():
    assert log_scale([11.0, 0.5, 2e-7]) and not log_scale([2.3, 1.55, 1.6]) and not log_scale([1.0, -0.5, 300.0])
    wide = {"ademamix": _study([11.0, 0.3, 2e-7]), "adamw": _study([9.0, 2.1])}
    narrow = {"ademamix": _study([2.3, 1.6]), "adamw": _study([2.2, 1.7])}
    for make in (best_so_far, best_curves):
        assert make(wide).axes[0].get_yscale() == "log"
        assert make(narrow).axes[0].get_yscale() == "linear"


def test_the_alpha_beta3_figure_shows_pruned_trials_marked():
    fig = alpha_beta3({"ademamix": _study([2.0, 1.8, 1.7], pruned=2)})
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["pruned"]
    assert [len(c.get_offsets()) for c in ax.collections] == [3, 2]  # 3 complete dots, 2 pruned crosses
