"""A Rosenbrock task whose first trials misbehave, for the engine's fault tests (copied beside a
sweep file and named as its custom entrypoint ``fault_task:make_task``).

Options: ``fault`` is "kill" (the trial SIGKILLs its own worker in make_model, as the kernel's
out-of-memory killer would) or "hang" (the trial stops making progress at step 5 while its
heartbeat goes on); ``first`` is how many trials misbehave (-1: all), counted in the file
``counter`` across workers and runs; ``pause_s`` sleeps in every step.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
from torch import nn


class Faulty:
    unit = "steps"
    fingerprint = "faulty"

    def __init__(self, fault: str, first: int, counter: str, pause_s: float = 0.0) -> None:
        self.fault, self.first, self.counter, self.pause_s = fault, first, Path(counter), pause_s
        self.faulty, self.steps = False, 0

    def make_model(self) -> nn.Module:
        n = int(self.counter.read_text()) if self.counter.exists() else 0
        self.counter.write_text(str(n + 1))
        self.faulty, self.steps = self.first < 0 or n < self.first, 0
        if self.faulty and self.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        model = nn.Module()
        model.xy = nn.Parameter(torch.tensor([-3.0, 5.0]))
        return model

    def train_batch(self, generator: torch.Generator, batch_size: int) -> None:
        self.steps += 1
        if self.faulty and self.fault == "hang" and self.steps == 5:
            time.sleep(3600)
        if self.pause_s:
            time.sleep(self.pause_s)

    def val_batches(self, batch_size: int, count: int) -> list[None]:
        return [None]

    def loss(self, model: nn.Module, batch: None) -> torch.Tensor:
        x, y = model.xy
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    def batch_items(self, batch: None) -> int:
        return 1


def make_task(options: dict) -> Faulty:
    return Faulty(**options)
