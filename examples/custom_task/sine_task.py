"""A custom ademix-sweep task: an MLP fitting y = sin(3x) + noise (see docs/custom-tasks.md)."""

import hashlib

import torch
import torch.nn.functional as F
from torch import nn


class SineTask:
    unit = "samples"  # what batch_items counts; shown as samples/s

    def __init__(self, n_train: int, n_val: int, hidden: int, noise: float) -> None:
        gen = torch.Generator().manual_seed(1234)  # the data is fixed; only the trial seed varies
        x = torch.rand(n_train + n_val, 1, generator=gen) * 4 - 2
        y = torch.sin(3 * x) + noise * torch.randn(x.shape, generator=gen)
        self.x_train, self.y_train = x[:n_train], y[:n_train]
        self.x_val, self.y_val = x[n_train:], y[n_train:]
        self.hidden = hidden
        self.fingerprint = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()[:16]

    def make_model(self) -> nn.Module:
        # Called under torch.manual_seed(trial seed): same initialisation for every optimizer.
        return nn.Sequential(nn.Linear(1, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))

    def train_batch(self, generator: torch.Generator, batch_size: int):
        # Draw with the generator given: the data order then depends on the trial seed alone.
        i = torch.randint(len(self.x_train), (batch_size,), generator=generator)
        return self.x_train[i], self.y_train[i]

    def val_batches(self, batch_size: int, count: int):
        # The same held-out batches every time.
        n = min(len(self.x_val), batch_size * count)
        return list(zip(self.x_val[:n].split(batch_size), self.y_val[:n].split(batch_size), strict=False))

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(model(x), y)

    def batch_items(self, batch) -> int:
        return len(batch[0])


def make_task(options: dict) -> SineTask:
    unknown = set(options) - {"n_train", "n_val", "hidden", "noise"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} (expected n_train, n_val, hidden, noise)")
    return SineTask(
        n_train=int(options.get("n_train", 512)),
        n_val=int(options.get("n_val", 256)),
        hidden=int(options.get("hidden", 32)),
        noise=float(options.get("noise", 0.1)),
    )
