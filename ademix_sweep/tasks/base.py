"""The task protocol: what the trainer needs from a model and its data.

Built-in tasks and users' custom tasks (``docs/custom-tasks.md``) provide the same five things.
Batches are tensors, or tuples, lists or dicts of tensors, made on the CPU; the trainer moves
them to the training device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

Batch = Any


@runtime_checkable
class Task(Protocol):
    """A model and its data. ``make_model`` is called under ``torch.manual_seed(seed)``."""

    unit: str  # what a batch is counted in: "tokens", "samples" or "steps"
    fingerprint: str  # a hash of the prepared data (train and validation)

    def make_model(self) -> nn.Module: ...

    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch: ...

    def val_batches(self, batch_size: int, count: int) -> list[Batch]: ...

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...

    def batch_items(self, batch: Batch) -> int: ...


def data_path(data: str, base_dir: Path) -> Path:
    """A task's data path: relative paths are relative to the sweep file's folder."""
    return (base_dir / data).resolve()  # an absolute ``data`` replaces base_dir


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor in a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
