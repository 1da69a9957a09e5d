"""The paper's toy problem (Fig. 2): minimise f(x, y) = (1 − x)² + 100 (y − x²)², from (−3, 5).

No data: every step's "batch" is the function itself, and the metric is f at the current point
(minimum 0 at (1, 1)). A 2000-step trial takes well under a second; ``step_pause_s`` sleeps in each
step, to stand in for a slow (say GPU-bound) trial in demos, benchmarks and engine tests.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch import nn

from .errors import fingerprint

if TYPE_CHECKING:
    from pathlib import Path

    from ademix_sweep.sweepfile.sections import RosenbrockTask


class Point(nn.Module):
    def __init__(self, start: tuple[float, float]) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(start, dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        x, y = self.xy
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2


class Rosenbrock:
    unit = "steps"

    def __init__(self, start: tuple[float, float], pause_s: float = 0.0) -> None:
        self.start, self.pause_s = start, pause_s
        self.fingerprint = fingerprint(f"rosenbrock{start}")

    def make_model(self) -> nn.Module:
        return Point(self.start)

    def train_batch(self, generator: torch.Generator, batch_size: int) -> None:
        if self.pause_s:
            time.sleep(self.pause_s)
        return None

    def val_batches(self, batch_size: int, count: int) -> list[None]:
        return [None]

    def loss(self, model: nn.Module, batch: None) -> torch.Tensor:
        return model()

    def batch_items(self, batch: None) -> int:
        return 1


def build(options: RosenbrockTask, base_dir: Path) -> Rosenbrock:
    """The task a sweep file's ``task: {kind: rosenbrock, start: [x, y]}`` describes."""
    x, y = options.start
    return Rosenbrock((float(x), float(y)), options.step_pause_s)
