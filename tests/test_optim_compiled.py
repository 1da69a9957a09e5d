"""The compiled multi-tensor path: equal to the reference path, compiled once, and falling back."""

import pytest
import torch
from helpers import SHAPES, cuda_only, random_tensors

from ademix_sweep.optim import AdEMAMix
from ademix_sweep.optim import ademamix as ademamix_module

GROUP_A = dict(betas=(0.9, 0.999, 0.999), alpha=8.0, t_alpha_beta3=20, weight_decay=0.1)
GROUP_B = dict(betas=(0.0, 0.99, 0.9999), alpha=4.0, t_alpha_beta3=None, weight_decay=0.0, lr=1e-3)


def make(impl: str, device: str = "cpu", seed: int = 11) -> tuple[AdEMAMix, list[torch.Tensor]]:
    """Two groups (one with beta1 = 0) over mixed shapes, float32 plus one bf16 tensor in group A."""
    params = [p.to(device).requires_grad_() for p in random_tensors(SHAPES, seed, scale=0.3)]
    params.append(random_tensors([(6, 5)], seed + 1, scale=0.3, dtype=torch.bfloat16)[0].to(device).requires_grad_())
    groups = [{"params": [*params[:3], params[-1]], **GROUP_A}, {"params": params[3:-1], **GROUP_B}]
    return AdEMAMix(groups, lr=3e-3, impl=impl), params


def step_all(opts_params, steps: int, start: int = 0) -> None:
    """Same gradients for every optimizer; the lr changes every step as a scheduler would."""
    for k in range(start, start + steps):
        for opt, params in opts_params:
            for p, g in zip(params, random_tensors([p.shape for p in params], 500 + k), strict=True):
                p.grad = g.to(device=p.device, dtype=p.dtype)
            opt.param_groups[0]["lr"] = 3e-3 * (1 - k / 100)
            opt.step()


def check_close(fast: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    for a, b in zip(fast[:-1], ref[:-1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast[-1].float(), ref[-1].float(), rtol=0, atol=2e-2)  # bf16: a few ulps


def run_fast_vs_reference(device: str) -> AdEMAMix:
    fast, fast_params = make("compiled", device)
    ref, ref_params = make("reference", device)
    step_all([(fast, fast_params), (ref, ref_params)], 1)
    assert fast.impl_used == "compiled" and fast.compile_error is None
    assert fast.compile_time_s is not None and fast.compile_time_s > 0
    first_compile = fast.compile_time_s
    # Compiled once: 49 more steps with a new lr, alpha(t) and beta3(t) every step and the
    # warm-up ending at step 20 must not trigger a single recompile.
    with torch._dynamo.config.patch(error_on_recompile=True):
        step_all([(fast, fast_params), (ref, ref_params)], 49, start=1)
    assert fast.compile_time_s == first_compile
    check_close(fast_params, ref_params)
    moved = (fast_params[0] - random_tensors(SHAPES, 11, scale=0.3)[0].to(device)).abs().max().item()
    assert moved > 0.05
    state = fast.state[fast_params[-1]]
    assert state["exp_avg_slow"].dtype == torch.float32 and fast_params[-1].dtype == torch.bfloat16
    assert "exp_avg" not in fast.state[fast_params[3]]  # group B has beta1 = 0
    return fast


def test_compiled_equals_reference_on_cpu() -> None:
    run_fast_vs_reference("cpu")


@cuda_only
def test_compiled_equals_reference_on_cuda() -> None:
    opt = run_fast_vs_reference("cuda")
    assert opt.impl_used == "compiled"


def failing_compile(*_args, **_kwargs):
    def compiled(*_a, **_k):
        raise RuntimeError("simulated: no C++ compiler\nsecond line")

    return compiled


def test_compile_failure_falls_back_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ademamix_module, "_compiled_update", failing_compile)
    fast, fast_params = make("compiled")
    ref, ref_params = make("reference")
    with pytest.warns(UserWarning, match="torch.compile failed .RuntimeError: simulated: no C\\+\\+ compiler.; using"):
        step_all([(fast, fast_params), (ref, ref_params)], 1)
    assert fast.compile_error == "RuntimeError: simulated: no C++ compiler"
    assert fast.impl_used == "reference" and fast.compile_time_s is None
    step_all([(fast, fast_params), (ref, ref_params)], 5, start=1)  # no second warning, no retry
    for a, b in zip(fast_params, ref_params, strict=True):
        assert torch.equal(a, b)


def test_auto_compiles_only_large_cpu_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ademamix_module, "_compiled_update", failing_compile)
    small, params = make("auto")
    step_all([(small, params)], 1)
    assert small.impl_used == "reference" and small.compile_error is None  # never tried
    monkeypatch.setattr(ademamix_module, "AUTO_COMPILE_MIN_NUMEL_CPU", 100)
    large, params = make("auto")
    with pytest.warns(UserWarning):
        step_all([(large, params)], 1)
    assert large.compile_error is not None  # it tried the compiled path, then fell back
