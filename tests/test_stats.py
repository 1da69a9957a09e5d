"""Small-sample statistics (results/stats.py) against scipy, computed independently here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from ademix_sweep.results.stats import betainc, paired_test, t_cdf, t_quantile, wilcoxon_exact


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 9, 29, 200])
def test_t_distribution_matches_scipy(df):
    for t in (-12.0, -2.5, -0.3, 0.0, 0.7, 1.96, 4.0, 30.0):
        assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-12)
    for p in (0.005, 0.025, 0.5, 0.9, 0.975, 0.995):
        assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-9)


def test_incomplete_beta_matches_scipy():
    for a, b in ((0.5, 0.5), (1.5, 0.5), (10.0, 0.5), (2.0, 7.0)):
        for x in (1e-6, 0.1, 0.5, 0.9, 0.999999):
            assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), abs=1e-13)


@pytest.mark.parametrize(
    "d",
    [
        [-0.012, -0.020, 0.004],
        [-0.05, -0.04, -0.06, -0.01, 0.02],
        [0.3, -0.1, 0.25, 0.4, 0.05, 0.2, -0.02],
        list(np.random.default_rng(3).normal(-0.01, 0.02, 10)),
    ],
)
def test_paired_interval_and_p_values_match_scipy(d):
    result = paired_test(d)
    n = len(d)
    low, high = stats.t.interval(0.95, n - 1, loc=np.mean(d), scale=stats.sem(d))
    assert result.ci95 == pytest.approx((low, high), rel=1e-9)
    assert result.t_p == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-9)
    assert result.wilcoxon_p == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, rel=1e-12)
    assert result.win_rate == sum(x < 0 for x in d) / n
    assert result.within_noise == (low <= 0 <= high)


def test_wilcoxon_with_ties_and_zeros_enumerates_every_sign_pattern():
    d = [0.0, 0.1, -0.1, 0.2, 0.2, -0.3]  # a zero (dropped) and tied magnitudes (mean ranks)
    # by hand: |d| ranks 1.5, 1.5, 3.5, 3.5, 5; W+ = 1.5 + 3.5 + 3.5 = 8.5, E = 7.5, |W - E| = 1
    extreme = sum(
        abs(sum(r for r, s in zip([1.5, 1.5, 3.5, 3.5, 5.0], signs, strict=True) if s) - 7.5) >= 1 - 1e-12
        for signs in __import__("itertools").product((0, 1), repeat=5)
    )
    assert wilcoxon_exact(d) == extreme / 32
    assert wilcoxon_exact([0.0, 0.0, 0.1]) is None and wilcoxon_exact([0.1]) is None


def test_identical_differences_have_a_zero_width_interval_and_no_t_test():
    result = paired_test([-0.25, -0.25, -0.25])
    assert result.sd == 0 and result.ci95 == (-0.25, -0.25) and result.t_p is None
    assert math.isclose(result.mean, -0.25)
