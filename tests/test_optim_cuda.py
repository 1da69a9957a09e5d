"""CUDA paths (skipped without a GPU): bf16 parameters on the compiled path, fused AdamW."""

import torch
from helpers import SHAPES, cuda_only, random_tensors
from torch import nn

from ademix_sweep.optim import AdEMAMix, build_optimizer

HP = dict(lr=3e-3, betas=(0.9, 0.999, 0.999), alpha=8.0, t_alpha_beta3=30, weight_decay=0.1)


@cuda_only
def test_bf16_params_on_cuda_keep_fp32_state_on_the_compiled_path() -> None:
    low = [p.cuda().requires_grad_() for p in random_tensors(SHAPES, 3, scale=0.3, dtype=torch.bfloat16)]
    master = [p.detach().float().requires_grad_() for p in low]
    opt = AdEMAMix(low, **HP)  # auto: compiled on CUDA
    opt32 = AdEMAMix(master, **HP, impl="reference")
    for k in range(40):
        grads = random_tensors(SHAPES, seed=700 + k, dtype=torch.bfloat16)
        for p, m, g in zip(low, master, grads, strict=True):
            p.grad, m.grad = g.cuda(), g.float().cuda()
        opt.step()
        opt32.step()
        with torch.no_grad():
            for m in master:
                m.copy_(m.bfloat16().float())
    assert opt.impl_used == "compiled" and opt.compile_error is None
    for p, m in zip(low, master, strict=True):
        assert p.dtype == torch.bfloat16
        assert opt.state[p]["exp_avg_slow"].dtype == torch.float32
        # fp32 math with one rounding per step: equal to the rounded fp32 run up to rare 1-ulp flips
        torch.testing.assert_close(p.float(), m, rtol=0, atol=1e-2)
        assert (p.float() == m).float().mean().item() > 0.9


@cuda_only
def test_build_optimizer_uses_fused_adamw_on_cuda() -> None:
    model = nn.Linear(4, 4).cuda()
    opt = build_optimizer("adamw", model, {"lr": 1e-3})
    assert opt.defaults["fused"] is True
