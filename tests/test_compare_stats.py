"""compare's statistics on fixed inputs, against values worked out by hand."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from ademix_sweep.cli import report_results
from ademix_sweep.results.compare import Config, chosen, mean_curve, paired, paired_summary, step_ratio, summary


def test_mean_and_sample_std_leave_diverged_runs_out():
    c = Config("adamw", 3, 0, {"lr": 0.01}, values={1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: math.inf})
    assert c.mean == 2.5
    assert c.std == pytest.approx(math.sqrt(5 / 3))  # sum of squares 5, n - 1 = 3
    assert c.diverged == 1


def test_paired_bootstrap_interval_on_two_seeds_is_the_range_of_resampled_means():
    # d = [-1, +1]: resampled means are -1, 0, +1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    # 97.5% percentiles of 10,000 resamples are -1 and +1, and the mean difference is 0.
    p = paired({1: 2.0, 2: 4.0}, {1: 3.0, 2: 3.0})
    assert (p.n, p.mean_diff, p.ci_low, p.ci_high, p.win_rate) == (2, 0.0, -1.0, 1.0, 0.5)
    assert p.within_noise


def test_paired_difference_that_excludes_zero():
    # d = [-3, -1]: resampled means -3, -2, -1; the interval is [-3, -1].
    p = paired({7: 1.0, 8: 2.0, 9: math.inf}, {7: 4.0, 8: 3.0, 9: 1.0})  # seed 9 diverged: left out
    assert (p.n, p.mean_diff, p.ci_low, p.ci_high, p.win_rate) == (2, -2.0, -3.0, -1.0, 1.0)
    assert not p.within_noise


def test_paired_with_no_common_seed_is_none():
    assert paired({1: 1.0}, {2: 1.0}) is None


def test_step_ratio_interpolates_between_evaluations():
    fast = {100: 3.0, 200: 2.0, 300: 1.0, 400: 0.5}
    slow = {100: 3.5, 200: 2.5, 300: 2.0, 400: 1.5}
    r = step_ratio(fast, slow)  # 1.5 lies halfway between 2.0 (step 200) and 1.0 (step 300)
    assert (r.kind, r.target, r.step, r.total, r.ratio) == ("estimate", 1.5, 250.0, 400, 1.6)


def test_step_ratio_lower_bound_and_not_reached():
    assert step_ratio({100: 1.0, 200: 0.9}, {100: 2.0, 200: 1.2}).kind == "at_least"
    assert step_ratio({100: 1.0, 200: 0.9}, {100: 2.0, 200: 1.2}).ratio == 2.0
    r = step_ratio({100: 3.0, 200: 2.0}, {100: 2.0, 200: 1.0})
    assert (r.kind, r.step, r.ratio) == ("not_reached", None, None)


def test_mean_curve_averages_the_steps_all_finite_curves_share():
    curves = {1: {10: 2.0, 20: 1.0}, 2: {10: 4.0, 20: 3.0}, 3: {10: math.nan, 20: 9.0}}
    assert mean_curve(curves) == {10: 3.0, 20: 2.0}


def test_chosen_is_the_lowest_mean_over_the_compare_seeds():
    top = Config("adamw", 5, 0, {}, values={1: 2.0, 2: 2.2})
    second = Config("adamw", 9, 1, {}, values={1: 1.9, 2: 2.0})
    assert chosen([top, second]) is second


def _result() -> dict:
    curves = {100: 3.0, 200: 2.0, 300: 1.0, 400: 0.5}
    slow = {100: 3.5, 200: 2.5, 300: 2.0, 400: 1.5}
    ademamix = Config("ademamix", 4, 0, {"alpha": 8.0}, values={1: 0.5, 2: 0.7}, curves={1: curves, 2: curves})
    adamw = Config("adamw", 2, 0, {"lr": 0.01}, values={1: 1.5, 2: 1.5}, curves={1: slow, 2: slow})
    return summary({"ademamix": [ademamix], "adamw": [adamw]}, [1, 2])


def test_summary_and_its_report():
    from scipy import stats

    result = _result()
    p = result["paired"]
    assert p["n"] == 2 and p["mean_diff"] == pytest.approx(-0.9)  # d = [-1.0, -0.8]
    assert p["ci95"] == pytest.approx(list(stats.t.interval(0.95, 1, loc=-0.9, scale=stats.sem([-1.0, -0.8]))))
    assert p["t_p"] == pytest.approx(stats.ttest_1samp([-1.0, -0.8], 0.0).pvalue)
    assert not p["verdict"] and p["bootstrap_ci95"] is None and not p["deterministic"]
    assert result["steps_ratio"]["ratio"] == 1.6
    assert result["optimizers"]["ademamix"]["configs"][0]["mean"] == pytest.approx(0.6)
    console = Console(file=io.StringIO(), width=120)
    report_results.compare(console, "demo", result)
    text = " ".join(console.file.getvalue().split())
    assert "0.6000 ± 0.1414" in text and "1.5000 ± 0.0000" in text
    assert "paired over 2 seed(s): -0.9000, 95% t interval [-2.1706, +0.3706]; paired t-test p = 0.0704" in text
    assert "Fewer than 3 paired seeds: no verdict (use --seeds 3 or more)." in text
    assert "at about step 250 of 400: AdamW needs about 1.60× the steps" in text


def test_a_verdict_from_three_seeds_with_the_t_interval():
    from scipy import stats

    d = [-0.30, -0.25, -0.20, -0.28]
    p = paired_summary({i: 1.0 + x for i, x in enumerate(d)}, dict.fromkeys(range(4), 1.0))
    assert p["verdict"] and not p["within_noise"]
    assert p["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)  # 0.125: n = 4 is coarse
    lines = report_results._paired_lines(p)
    assert lines[-1] == "AdEMAMix is better here: the 95% t interval excludes 0."
    many = paired_summary({i: 1.0 + 0.01 * (i % 3) for i in range(12)}, {i: 1.0 + 0.01 * (i % 2) for i in range(12)})
    assert many["bootstrap_ci95"] is not None
    assert any("bootstrap" in line for line in report_results._paired_lines(many))


def test_a_deterministic_task_gets_its_single_difference_not_a_statistic():
    p = paired_summary(dict.fromkeys((1, 2, 3), 0.5), dict.fromkeys((1, 2, 3), 0.75))  # every seed, one value
    assert p["deterministic"] and not p["verdict"]
    (line,) = report_results._paired_lines(p)
    assert "-0.2500 on every one of 3 seeds. The task is deterministic" in line and "interval" in line


def test_verdict_says_within_noise_and_one_seed_plainly():
    result = _result()
    result["paired"].update(ci95=[-0.1, 0.2], within_noise=True, verdict=True)
    assert "The difference is within noise: the 95% t interval includes 0." in report_results.verdict(result)
    result["paired"].update(n=1, ci95=None)
    assert any("One seed gives no interval" in line for line in report_results.verdict(result))
    result["paired"] = None
    assert report_results.verdict(result)[0].startswith("No paired comparison")
