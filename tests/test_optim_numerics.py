"""AdEMAMix against an independent float64 NumPy implementation, against torch AdamW, and the
scheduler values at the points the paper defines them."""

import math

import numpy as np
import pytest
import torch
from helpers import SHAPES, random_tensors, run_steps
from numpy_ref import NumpyAdEMAMix

from ademix_sweep.optim import AdEMAMix, alpha_schedule, beta3_schedule, beta_from_half_life, half_life

CASES = {
    "no warmup": dict(betas=(0.9, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=None, weight_decay=0.0),
    "warmup": dict(betas=(0.9, 0.999, 0.999), alpha=8.0, t_alpha_beta3=120, weight_decay=0.0),
    "beta1 = 0": dict(betas=(0.0, 0.999, 0.9999), alpha=5.0, t_alpha_beta3=150, weight_decay=0.0),
    "weight decay": dict(betas=(0.9, 0.99, 0.9999), alpha=4.0, t_alpha_beta3=80, weight_decay=0.1),
}


def against_numpy(case: str, dtype: torch.dtype, impl: str, steps: int) -> tuple[AdEMAMix, float, float]:
    """AdEMAMix (``impl``) and the NumPy reference on the same gradients: the optimizer, the largest
    parameter difference, and how far the reference moved the parameters."""
    hp = CASES[case]
    init = random_tensors(SHAPES, seed=1, scale=0.1, dtype=torch.float64)
    params = [p.to(dtype).clone().requires_grad_() for p in init]
    opt = AdEMAMix(params, lr=3e-3, eps=1e-8, impl=impl, **hp)
    ref = NumpyAdEMAMix(
        [p.detach().double().numpy() for p in params],
        lr=3e-3,
        betas=hp["betas"],
        alpha=hp["alpha"],
        T=hp["t_alpha_beta3"],
        eps=1e-8,
        weight_decay=hp["weight_decay"],
    )
    for k in range(steps):
        grads = random_tensors(SHAPES, seed=10_000 + k, dtype=dtype)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()
        ref.step([g.double().numpy() for g in grads])
    diff = max(np.abs(p.detach().double().numpy() - r).max() for p, r in zip(params, ref.params, strict=True))
    moved = max(np.abs(p.double().numpy() - r).max() for p, r in zip(init, ref.params, strict=True))
    return opt, diff, moved


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_numpy_reference_over_200_steps(case: str, dtype: torch.dtype) -> None:
    # float64 checks the algorithm to rounding; float32 (what models train in) to 1e-6, with
    # weights of a typical network's scale (float32 storage of weights near 1 alone drifts ~1e-6).
    opt, diff, moved = against_numpy(case, dtype, "reference", 200)
    assert moved > 0.1  # the comparison is over a real trajectory
    assert diff < (1e-12 if dtype == torch.float64 else 1e-6), diff
    if CASES[case]["betas"][0] == 0.0:
        assert all("exp_avg" not in s for s in opt.state.values())


def test_compiled_path_keeps_float64_exact() -> None:
    # The compiled path's per-step scalars are a tensor: float32 ones cost float64 parameters 1e-5.
    opt, diff, moved = against_numpy("weight decay", torch.float64, "compiled", 300)
    assert opt.impl_used == "compiled" and moved > 0.1
    assert diff < 1e-12, diff


@pytest.mark.parametrize("t_alpha_beta3", [None, 50])
def test_alpha_zero_equals_torch_adamw(t_alpha_beta3: int | None) -> None:
    init = random_tensors(SHAPES, seed=2)
    ours = [p.clone().requires_grad_() for p in init]
    theirs = [p.clone().requires_grad_() for p in init]
    hp = dict(lr=1e-2, eps=1e-6, weight_decay=0.05)
    opt = AdEMAMix(ours, betas=(0.8, 0.99, 0.9999), alpha=0.0, t_alpha_beta3=t_alpha_beta3, impl="reference", **hp)
    adamw = torch.optim.AdamW(theirs, betas=(0.8, 0.99), foreach=False, **hp)
    run_steps(opt, ours, 100, seed=3)
    run_steps(adamw, theirs, 100, seed=3)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert max((a - p).abs().max().item() for a, p in zip(ours, init, strict=True)) > 0.1


def test_schedules_at_defining_points() -> None:
    T, alpha, b1, b3 = 1000, 8.0, 0.9, 0.9999
    assert [alpha_schedule(t, alpha, T) for t in (1, T // 2, T, 2 * T)] == [0.008, 4.0, 8.0, 8.0]
    assert alpha_schedule(7, alpha, None) == alpha
    # Half-lives (paper): 0.9 -> 5.6 steps, 0.9999 -> 6930; at T/2 the half-life is their mean.
    assert half_life(0.9) + 1 == pytest.approx(6.579, abs=1e-3)
    assert half_life(0.9999) + 1 == pytest.approx(6931.1, abs=0.1)
    mid = beta3_schedule(T // 2, b1, b3, T)
    assert half_life(mid) == pytest.approx((half_life(b1) + half_life(b3)) / 2, rel=1e-12)
    assert mid == pytest.approx(0.5 ** (1 / ((6.5788 + 6931.47) / 2)), rel=1e-6)
    assert beta3_schedule(1, b1, b3, T) == pytest.approx(0.5 ** (1 / (0.999 * 6.5788 + 0.001 * 6931.47)), rel=1e-5)
    assert beta3_schedule(T, b1, b3, T) == b3
    assert beta3_schedule(2 * T, b1, b3, T) == b3
    assert beta3_schedule(5, b1, b3, None) == b3


def test_beta3_half_life_is_linear_in_t() -> None:
    T, b1, b3 = 400, 0.9, 0.9999
    h = np.array([half_life(beta3_schedule(t, b1, b3, T)) for t in range(1, T)])
    np.testing.assert_allclose(np.diff(h), (half_life(b3) - half_life(b1)) / T, rtol=1e-6)


def test_beta1_zero_uses_the_limit_of_f() -> None:
    assert half_life(0.0) == -1.0 and beta_from_half_life(-1.0) == 0.0
    T, b3 = 100, 0.999
    # f(0) = -1 makes beta3(t) = beta3 ** (T / t): essentially 0 at t = 1, beta3 at t = T.
    for t in (1, 10, 50, 99):
        assert beta3_schedule(t, 0.0, b3, T) == pytest.approx(b3 ** (T / t), rel=1e-9)
    assert beta3_schedule(1, 0.0, b3, T) < 0.91


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.999, 0.99999])
def test_half_life_round_trips(beta: float) -> None:
    assert beta_from_half_life(half_life(beta)) == pytest.approx(beta, abs=1e-15)
    assert 0.5 ** (1 / (half_life(beta) + 1)) == pytest.approx(beta, abs=1e-15)
    assert beta ** (half_life(beta) + 1) == pytest.approx(0.5)
    assert math.isclose(half_life(beta), math.log(0.5) / math.log(beta) - 1)
