"""What a training run gives back, whoever trains (the built-in loop or a user's command):
progress readings, the result with its curves, and divergence. No torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Progress:
    """A training-loss reading, every LOG_EVERY steps."""

    step: int
    steps: int
    loss: float  # mean training loss since the last reading
    lr: float  # the first group's learning rate at this step
    items_per_s: float  # tokens, samples or steps per second of training so far
    elapsed_s: float


@dataclass
class TrainResult:
    final_val_loss: float
    best_val_loss: float
    val_curve: list[tuple[int, float]]  # (step, validation loss) at each evaluation
    train_curve: list[tuple[int, float]]  # (step, mean training loss over the last LOG_EVERY steps)
    steps: int
    unit: str  # what items are: tokens, samples or steps
    items: int
    items_per_s: float  # over training steps only (evaluation excluded)
    wall_time_s: float  # everything: model and optimizer set-up, compilation, training, evaluation
    eval_time_s: float
    device: str
    precision: str
    peak_memory_bytes: int | None  # CUDA only
    optimizer_impl: str | None  # AdEMAMix's update path ("compiled" or "reference")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["val_curve"] = [list(p) for p in self.val_curve]
        data["train_curve"] = [list(p) for p in self.train_curve]
        return data


class Diverged(RuntimeError):
    """Training diverged: a non-finite loss, or a loss far above its starting value."""

    def __init__(self, step: int, value: float, reason: str, curves: dict[str, list[tuple[int, float]]]) -> None:
        super().__init__(f"diverged at step {step}: {reason}")
        self.step, self.value, self.reason, self.curves = step, value, reason, curves


@dataclass
class TrialInfo:
    """What a run inside a sweep knows of its trial; a command task uses it (the built-in loop
    needs none of it)."""

    number: int | None = None
    study: str | None = None
    log: str | None = None  # where a command's output goes; None: passed through
    on_process: Callable[[int], None] | None = None  # a command's process group, once started
    on_warning: Callable[[str], None] | None = None  # something the user should see, once
