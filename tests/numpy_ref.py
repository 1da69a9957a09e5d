"""An independent float64 NumPy implementation of AdEMAMix (arXiv 2409.03137, Algorithm 1).

Written from the paper's formulas, sharing no code with ademix_sweep.optim: beta3(t) uses the
paper's closed form rather than the half-life functions.
"""

from __future__ import annotations

import numpy as np


def alpha_t(t: int, alpha: float, T: int | None) -> float:
    return alpha if T is None else min(t * alpha / T, alpha)


def beta3_t(t: int, beta1: float, beta3: float, T: int | None) -> float:
    if T is None or t >= T:
        return beta3
    if beta1 == 0.0:  # the closed form's limit as beta1 -> 0
        return beta3 ** (T / t)
    lb1, lb3 = np.log(beta1), np.log(beta3)
    return min(np.exp(lb1 * lb3 / ((1 - t / T) * lb3 + (t / T) * lb1)), beta3)


class NumpyAdEMAMix:
    def __init__(self, params, lr, betas, alpha, T, eps, weight_decay):
        self.params = [np.array(p, dtype=np.float64) for p in params]
        self.lr, self.betas, self.alpha, self.T = lr, betas, alpha, T
        self.eps, self.wd = eps, weight_decay
        self.m1 = [np.zeros_like(p) for p in self.params]
        self.m2 = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self, grads) -> None:
        self.t += 1
        t, (b1, b2, b3) = self.t, self.betas
        a, b3t = alpha_t(t, self.alpha, self.T), beta3_t(t, b1, b3, self.T)
        for i, g in enumerate(grads):
            g = np.asarray(g, dtype=np.float64)
            self.m1[i] = b1 * self.m1[i] + (1 - b1) * g
            self.m2[i] = b3t * self.m2[i] + (1 - b3t) * g
            self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
            m1_hat = self.m1[i] / (1 - b1**t)
            v_hat = self.v[i] / (1 - b2**t)
            theta = self.params[i]
            self.params[i] = theta - self.lr * (
                (m1_hat + a * self.m2[i]) / (np.sqrt(v_hat) + self.eps) + self.wd * theta
            )
