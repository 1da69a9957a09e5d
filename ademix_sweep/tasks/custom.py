"""Custom tasks: ``task: {kind: custom, entrypoint: "pkg.module:make_task", options: {...}}``.

``make_task(options: dict)`` returns an object with ``make_model()``, ``train_batch(generator,
batch_size)``, ``val_batches(batch_size, count)`` and ``loss(model, batch)``; ``unit``,
``fingerprint`` and ``batch_items(batch)`` are optional. ``docs/custom-tasks.md`` has a complete
example. The sweep file's folder is put first on ``sys.path`` (as Python does for a script), so a
module beside the file imports. A sweep file with an entrypoint runs that code, as a script would.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .base import Batch
from .errors import TaskError, fingerprint

if TYPE_CHECKING:
    from ademix_sweep.sweepfile.sections import CustomTask

REQUIRED = ("make_model", "train_batch", "val_batches", "loss")


class UserTask:
    """A user's task object with the optional parts filled in."""

    def __init__(self, task: Any, entrypoint: str, options: dict[str, Any]) -> None:
        self.task = task
        self.unit = str(getattr(task, "unit", "samples"))
        fp = getattr(task, "fingerprint", None)
        self.fingerprint = str(fp) if fp else fingerprint("custom", entrypoint, json.dumps(options, sort_keys=True))

    def make_model(self) -> nn.Module:
        return self.task.make_model()

    def train_batch(self, generator: torch.Generator, batch_size: int) -> Batch:
        return self.task.train_batch(generator, batch_size)

    def val_batches(self, batch_size: int, count: int) -> list[Batch]:
        return list(self.task.val_batches(batch_size, count))

    def loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.task.loss(model, batch)

    def batch_items(self, batch: Batch) -> int:
        if hasattr(self.task, "batch_items"):
            return int(self.task.batch_items(batch))
        return _leading_dim(batch)


def _leading_dim(batch: Batch) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim else 1
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    return next((_leading_dim(b) for b in items), 1)


def load_entrypoint(entrypoint: str, base_dir: Path) -> Any:
    """Import ``module:function``, with ``base_dir`` first on sys.path."""
    module_name, _, func_name = entrypoint.partition(":")
    folder = str(base_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise TaskError("entrypoint", f"cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TaskError("entrypoint", f"{module_name} has no function {func_name} (expected {entrypoint})")
    return func


def build(options: CustomTask, base_dir: Path) -> UserTask:
    """Call the entrypoint with the options and check what it returns."""
    make_task = load_entrypoint(options.entrypoint, base_dir)
    try:
        task = make_task(dict(options.options))
    except Exception as exc:
        raise TaskError("options", f"{options.entrypoint} raised {type(exc).__name__}: {exc}") from None
    missing = [name for name in REQUIRED if not callable(getattr(task, name, None))]
    if missing:
        raise TaskError(
            "entrypoint",
            f"{options.entrypoint} returned a {type(task).__name__} without {', '.join(missing)} "
            f"(expected an object with {', '.join(REQUIRED)})",
        )
    return UserTask(task, options.entrypoint, dict(options.options))
