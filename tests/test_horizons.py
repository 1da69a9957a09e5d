"""Several run lengths: the scaling rule, the interpolation of the steps to match (hand-computed),
the gap's slope (against scipy), and compare --horizons with plot on a real sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy import stats
from test_results import SWEEP, cli

from ademix_sweep.engine.space import hparams_at_length
from ademix_sweep.results.horizons import gap_slope, match_length, summary
from ademix_sweep.sweepfile.config import AdEMAMixSpace, SweepConfig
from ademix_sweep.sweepfile.scaling import scale_to


def _cfg(**train) -> SweepConfig:
    return SweepConfig.model_validate(
        {
            "name": "s",
            "budget": {"trials": 2},
            "pruner": {"type": "median", "min_steps": 100},
            "task": {"kind": "rosenbrock"},
            "train": {"steps": 1000, "eval_every": 200, "warmup_steps": 50, **train},
            "optimizers": {"adamw": {"lr": 1e-3}},
        }
    )


def test_a_run_at_another_length_is_a_full_run_at_that_length():
    short = scale_to(_cfg(), 150)
    assert (short.train.steps, short.train.eval_every, short.train.warmup_steps) == (150, 30, 8)
    assert short.pruner.min_steps == 15 and short.train.schedule == "cosine"
    long = scale_to(_cfg(), 4000)
    assert (long.train.eval_every, long.train.warmup_steps, long.pruner.min_steps) == (800, 200, 400)
    tiny = scale_to(_cfg(), 3)
    assert (tiny.train.eval_every, tiny.train.warmup_steps) == (1, 0)  # at least one step apart, below the run
    assert scale_to(_cfg(), 1000) == _cfg()


def test_t_alpha_beta3_as_a_fraction_stays_one_and_in_steps_scales():
    fraction = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": 0.5})
    assert hparams_at_length({}, fraction, 1000, 4000)["t_alpha_beta3"] == 2000
    steps = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": 1000})  # the whole 1000-step run
    assert hparams_at_length({}, steps, 1000, 250)["t_alpha_beta3"] == 250
    searched = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": {"uniform": [100, 1000]}})
    assert hparams_at_length({"t_alpha_beta3": 400}, searched, 1000, 2000)["t_alpha_beta3"] == 800


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (1.5, ("interpolated", 2000 * math.sqrt(2))),  # halfway between 2000 (1.6) and 4000 (1.4), in log steps
        (1.6, ("interpolated", 2000.0)),  # exactly a length run
        (1.9, ("interpolated", 1000 * 2 ** (0.1 / 0.4))),  # a quarter of the way from 1000 (2.0) to 2000 (1.6)
        (1.3, ("beyond_longest", None)),  # not reached within the longest length: not extrapolated
        (2.5, ("below_shortest", None)),  # reached before the shortest: not extrapolated either
    ],
)
def test_the_length_to_match_is_interpolated_in_log_steps_and_never_extrapolated(target, expected):
    found = match_length(target, [1000, 2000, 4000], [2.0, 1.6, 1.4], 2000)
    assert found.kind == expected[0]
    if expected[1] is None:
        assert found.steps is None and found.ratio is None
    else:
        assert found.steps == pytest.approx(expected[1]) and found.ratio == pytest.approx(expected[1] / 2000)


def test_the_gap_slope_is_least_squares_on_log2_length_with_a_t_interval():
    ademamix = {100: {1: 3.0, 2: 3.1}, 200: {1: 2.6, 2: 2.65}, 400: {1: 2.2, 2: 2.3}}
    adamw = {100: {1: 3.05, 2: 3.1}, 200: {1: 2.7, 2: 2.8}, 400: {1: 2.45, 2: 2.5}}
    x = [math.log2(n) for n in (100, 100, 200, 200, 400, 400)]
    d = [ademamix[n][s] - adamw[n][s] for n in (100, 200, 400) for s in (1, 2)]
    fit = stats.linregress(x, d)
    half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
    slope = gap_slope(ademamix, adamw)
    assert slope["slope_per_doubling"] == pytest.approx(fit.slope)
    assert slope["ci95"] == pytest.approx([fit.slope - half, fit.slope + half])
    result = summary({"ademamix": ademamix, "adamw": adamw}, [100, 200, 400], 200)
    match = result["per_length"][1]["adamw_to_match"]  # AdEMAMix's 2.625 at 200: AdamW between 200 and 400
    assert match["kind"] == "interpolated" and 1.0 < match["ratio"] < 2.0
    assert match["ratio_ci95"][0] <= match["ratio"] <= match["ratio_ci95"][1]


def test_compare_at_several_lengths_and_its_figure(tmp_path):
    (tmp_path / "rb.yaml").write_text(SWEEP.replace("budget: {trials: 4}", "budget: {trials: 2}"))
    assert cli(tmp_path, "run", "rb.yaml", "--workers", "2").returncode == 0
    out = cli(tmp_path, "compare", "rb.yaml", "--horizons", "0.5,1,2", "--seeds", "1", "--workers", "2", "--json")
    assert out.returncode == 0, out.stderr
    h = json.loads(out.stdout)["horizons"]
    assert h["lengths"] == [100, 200, 400] and h["base"] == 200
    assert [row["optimizers"]["adamw"]["runs"] for row in h["per_length"]] == [1, 1, 1]
    again = cli(tmp_path, "compare", "rb.yaml", "--horizons", "0.5,1,2", "--seeds", "1")
    assert again.returncode == 0 and "at each run length (full runs, same seeds)" in again.stdout
    assert "0 new" not in again.stdout  # nothing left to run: no header at all
    bad = cli(tmp_path, "compare", "rb.yaml", "--horizons", "0.5,x")
    assert bad.returncode == 2 and "--horizons 0.5,x: expected multiples of train.steps" in bad.stderr
    plotted = cli(tmp_path, "plot", "rb.yaml", "-o", "figs")
    assert plotted.returncode == 0 and "figs/loss_vs_length.png" in plotted.stdout


def test_steps_on_run_and_train_scales_the_file_by_the_same_rule(tmp_path):
    from ademix_sweep.sweepfile.config import load_sweep
    from ademix_sweep.sweepfile.scaling import steps_overrides

    text = SWEEP.replace("beta3: {half_life: [20, 200]}", "beta3: {half_life: [20, 200]}\n    t_alpha_beta3: 200")
    (tmp_path / "rb.yaml").write_text(text.replace("eval_every: 50,", "eval_every: 50, warmup_steps: 20,"))
    cfg = load_sweep(tmp_path / "rb.yaml")
    sets = steps_overrides(cfg, 60)
    assert sets == [
        "train.steps=60",
        "train.eval_every=15",
        "train.warmup_steps=6",
        "pruner.min_steps=0",
        "optimizers.ademamix.t_alpha_beta3=60",
    ]
    scaled = load_sweep(tmp_path / "rb.yaml", sets)
    assert scaled.train == scale_to(cfg, 60).train  # the file reads as the rule's run
    trained = cli(tmp_path, "train", "rb.yaml", "--optimizer", "ademamix", "--steps", "60", "--json")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert [step for step, _ in result["val_curve"]] == [15, 30, 45, 60] and result["hparams"]["t_alpha_beta3"] == 60
    ran = cli(tmp_path, "run", "rb.yaml", "--steps", "60", "--trials", "1", "--set", "name=rb60")
    assert ran.returncode == 0, ran.stderr


def test_quick_shrinks_a_sweep_into_its_own_smoke_test(tmp_path):
    from ademix_sweep.sweepfile.config import load_sweep
    from ademix_sweep.sweepfile.scaling import quick_overrides

    lm = load_sweep(Path(__file__).resolve().parent.parent / "sweeps" / "lm_small.yaml")
    sets = quick_overrides(lm)
    assert sets[:2] == ["name=lm_small_quick", "budget.trials=4"] and "train.steps=200" in sets
    quick = load_sweep(Path(__file__).resolve().parent.parent / "sweeps" / "lm_small.yaml", sets)
    assert quick.train == scale_to(lm, 200).train
    (tmp_path / "rb.yaml").write_text(SWEEP)
    out = cli(tmp_path, "run", "rb.yaml", "--quick")
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("--quick: --set name=rb_quick --set budget.trials=4 --set train.steps=20")
    assert (tmp_path / "runs" / "rb_quick.db").exists() and not (tmp_path / "runs" / "rb.db").exists()


def test_run_lengths_from_horizons_and_steps_shortest_first_with_the_sweeps_own():
    from ademix_sweep.results.rerun import run_lengths

    assert run_lengths(200, (2, 0.5)) == [100, None, 400]
    assert run_lengths(200, (), 300) == [None, 300] and run_lengths(200, (1.0,), 200) == [None]
    with pytest.raises(ValueError, match=r"--horizons 0: expected multiples of train\.steps"):
        run_lengths(200, (0,))
