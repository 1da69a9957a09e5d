"""Small-sample statistics for paired seeds, written out (no scipy at run time; the tests check
every figure against scipy): Student's t interval and test, and the exact Wilcoxon signed-rank test.

At n = 3-10 paired seeds the t interval on the per-seed differences is what a reader expects; a
percentile bootstrap of so few numbers is too narrow (it cannot see past the values it has).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

MIN_PAIRS = 3  # fewer paired seeds: no verdict is stated


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    t2 = t * t
    if t2 < df:  # near 0: the argument that keeps its precision (I_x(a, b) = 1 - I_{1-x}(b, a))
        tail = 0.5 * (1.0 - betainc(0.5, df / 2.0, t2 / (df + t2)))
    else:
        tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t2))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF, to 1e-12)."""
    low, high = -1e3, 1e3
    while high - low > 1e-12 * max(1.0, abs(high)):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean: float
    sd: float
    ci95: tuple[float, float]  # Student's t on the differences
    t_p: float | None  # two-sided paired t-test p-value (None when sd is 0)
    wilcoxon_p: float | None  # two-sided exact signed-rank p-value (None: n too small or all ties)
    win_rate: float  # share of pairs with a negative difference

    @property
    def within_noise(self) -> bool:
        return self.ci95[0] <= 0.0 <= self.ci95[1]


def paired_test(d: list[float]) -> PairedTest:
    """Mean difference, its 95% t interval, the t-test and Wilcoxon p-values; needs n >= 2."""
    n = len(d)
    mean, sd = statistics.fmean(d), statistics.stdev(d)
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    t_p = None
    if sd > 0:
        t = mean / (sd / math.sqrt(n))
        t_p = min(1.0, 2.0 * (1.0 - t_cdf(abs(t), n - 1)))
    return PairedTest(n, mean, sd, (mean - half, mean + half), t_p, wilcoxon_exact(d), sum(x < 0 for x in d) / n)


def wilcoxon_exact(d: list[float]) -> float | None:
    """Two-sided exact p-value of the Wilcoxon signed-rank test: zero differences dropped, tied
    absolute values given their mean rank, every sign pattern enumerated (n <= 20). None when
    fewer than 2 nonzero differences remain (no test is possible)."""
    nonzero = [x for x in d if x != 0.0]
    n = len(nonzero)
    if n < 2 or n > 20:
        return None
    ranks = _mean_ranks([abs(x) for x in nonzero])
    w_plus = sum(r for r, x in zip(ranks, nonzero, strict=True) if x > 0)
    expected = sum(ranks) / 2.0
    observed = abs(w_plus - expected)
    extreme = 0
    for signs in itertools.product((0, 1), repeat=n):
        w = sum(r for r, s in zip(ranks, signs, strict=True) if s)
        extreme += abs(w - expected) >= observed - 1e-12
    return extreme / 2**n


def _mean_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks
