"""The AdEMAMix warm-up schedulers for alpha and beta3 (arXiv 2409.03137, Section 3).

Both run over ``T = t_alpha_beta3`` steps, with ``t`` counted from 1 as in Algorithm 1.
``T = None`` means no warm-up: alpha and beta3 are constant from the first step.
"""

from __future__ import annotations

import math

_LN_HALF = math.log(0.5)


def half_life(beta: float) -> float:
    """f(beta) = ln(0.5) / ln(beta) - 1: the EMA half-life in steps, minus one.

    Exact (no epsilon inside the log); f(0) = -1 is the limit as beta -> 0.
    """
    if beta == 0.0:
        return -1.0
    return _LN_HALF / math.log(beta) - 1.0


def beta_from_half_life(h: float) -> float:
    """f^-1(h) = 0.5 ** (1 / (h + 1)), the inverse of :func:`half_life`."""
    if h <= -1.0:
        return 0.0
    return 0.5 ** (1.0 / (h + 1.0))


def alpha_schedule(step: int, alpha: float, t_alpha_beta3: int | None) -> float:
    """alpha(t) = alpha * min(1, t / T): linear warm-up from 0; constant alpha when T is None."""
    if not t_alpha_beta3:
        return alpha
    return alpha * min(1.0, step / t_alpha_beta3)


def beta3_schedule(step: int, beta_start: float, beta3: float, t_alpha_beta3: int | None) -> float:
    """beta3(t) = f^-1((1 - t/T) f(beta_start) + (t/T) f(beta3)) for t < T, else beta3.

    The half-life grows linearly in t from beta_start's (beta1 in the paper) to beta3's.
    Constant beta3 when T is None.
    """
    if not t_alpha_beta3 or step >= t_alpha_beta3:
        return beta3
    frac = step / t_alpha_beta3
    h = (1.0 - frac) * half_life(beta_start) + frac * half_life(beta3)
    return min(beta_from_half_life(h), beta3)


def lr_multiplier(step: int, steps: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """The learning rate at ``step`` (1..steps) as a fraction of its peak.

    Linear warm-up ``step / warmup`` over the first ``warmup`` steps, then ``schedule`` from 1 down
    to ``min_ratio`` at the last step: "cosine" (half a cosine), "linear", or "constant" (stays 1).
    """
    if step <= warmup:
        return step / warmup
    if schedule == "constant" or steps <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (steps - warmup))
    if schedule == "linear":
        return 1.0 - (1.0 - min_ratio) * progress
    if schedule == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"Invalid schedule: {schedule!r} (expected cosine, linear or constant)")
