"""Training tasks: a model and its data behind one small protocol (:class:`Task`).

Built in: ``lm`` (a tiny GPT on byte-level text or token files), ``vision`` (a small CNN),
``rosenbrock`` (the paper's toy); ``custom`` imports a user's own. Knows nothing of optuna,
rich or typer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import custom, lm, rosenbrock, vision
from .base import Batch, Task, TaskError, to_device

REGISTRY: dict[str, Callable[[Any, Path], Task]] = {
    "lm": lm.build,
    "vision": vision.build,
    "rosenbrock": rosenbrock.build,
    "custom": custom.build,
}


def build_task(options: Any, base_dir: str | Path = ".") -> Task:
    """The task a validated sweep file's ``task`` section describes; paths are relative to ``base_dir``.

    Raises TaskError for data or options the task cannot use.
    """
    return REGISTRY[options.kind](options, Path(base_dir))


__all__ = ["REGISTRY", "Batch", "Task", "TaskError", "build_task", "to_device"]
