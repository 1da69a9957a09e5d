"""Training tasks: a model and its data behind one small protocol (:class:`Task`).

Built in: ``lm`` (a tiny GPT on byte-level text or token files), ``vision`` (a small CNN),
``rosenbrock`` (the paper's toy); ``custom`` imports a user's own; ``command`` runs any training
command as a trial (it trains itself: the loop in ``train.py`` hands it the run). Knows nothing of optuna,
rich or typer.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TaskError

if TYPE_CHECKING:
    from .base import Batch, Task, to_device
    from .command import Command

MODULES = {kind: f"{__name__}.{kind}" for kind in ("lm", "vision", "rosenbrock", "custom", "command")}


def build_task(options: Any, base_dir: str | Path = ".") -> Task | Command:
    """The task a validated sweep file's ``task`` section describes; paths are relative to ``base_dir``.

    Raises TaskError for data or options the task cannot use. A command task imports no torch
    (the parent of the workers checks it before they start); the others do.
    """
    return importlib.import_module(MODULES[options.kind]).build(options, Path(base_dir))


def __getattr__(name: str) -> Any:
    """``Task``, ``Batch`` and ``to_device`` load torch: imported when first asked for."""
    if name in ("Batch", "Task", "to_device"):
        return getattr(importlib.import_module(f"{__name__}.base"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "Task", "TaskError", "build_task", "to_device"]
