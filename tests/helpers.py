"""Shared test helpers."""

import pytest
import torch

# Mixed parameter shapes: matrices, vectors, a 3-D tensor and a one-element tensor.
SHAPES = [(16, 8), (8,), (3, 4, 5), (1,), (33, 7)]


def random_tensors(shapes, seed: int, scale: float = 1.0, dtype=torch.float32) -> list[torch.Tensor]:
    """Seeded normal tensors, drawn in float64 and then cast, so every dtype sees the same values."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=gen, dtype=torch.float64) * scale).to(dtype) for s in shapes]


cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def run_steps(opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, seed: int, start: int = 0) -> None:
    """Step ``opt`` with seeded random gradients; step k's gradients depend only on (seed, k)."""
    for k in range(start, start + steps):
        for p, g in zip(params, random_tensors([p.shape for p in params], seed * 100_003 + k), strict=True):
            p.grad = g.to(p.dtype)
        opt.step()
