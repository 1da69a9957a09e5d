"""The training loop: one configuration of one optimizer on one task.

Learning-rate warm-up and decay, gradient clipping, bf16 autocast on CUDA (parameters and
optimizer state stay fp32), optional ``torch.compile`` of the model, evaluation on a fixed
held-out set, an ``on_eval`` hook (pruning raises from it), and a divergence guard. The seed
fixes the initialisation and the data order, identically for every optimizer (common random
numbers), so two optimizers compared on one seed see the same model and the same batches.
No optuna, no printing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from ademix_sweep.optim import AdEMAMix, build_optimizer, lr_multiplier
from ademix_sweep.sweepfile.config import Train
from ademix_sweep.tasks import Task, to_device
from ademix_sweep.tasks.command import Command
from ademix_sweep.tasks.outcome import Diverged, Progress, TrainResult, TrialInfo

LOG_EVERY = 10  # steps between training-loss readings (one device sync each)


@dataclass
class _Guard:
    """Non-finite losses always diverge; so does a loss above ``factor`` times the first one."""

    factor: float | None
    start: float | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: {"val": [], "train": []})

    def check(self, step: int, value: float, what: str = "loss") -> None:
        if not math.isfinite(value):
            raise Diverged(step, value, f"{what} is {value} (non-finite)", self.curves)
        if self.start is None:
            self.start = value
        elif self.factor and self.start > 0 and value > self.factor * self.start:
            reason = f"{what} {value:.4g} is above {self.factor:g}× its start ({self.start:.4g})"
            raise Diverged(step, value, reason, self.curves)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is bf16 on a CUDA device that supports it, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def train(
    task: Task | Command,
    optimizer_name: str,
    hparams: Mapping[str, Any],
    train_cfg: Train,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    on_log: Callable[[Progress], None] | None = None,
    impl: str = "auto",
    trial: TrialInfo | None = None,
) -> TrainResult:
    """Train ``task``'s model with one optimizer configuration and return its curves and metrics.
    A command task trains itself (its reports are the evaluations); ``trial`` tells it its trial.

    ``hparams`` uses the sweep-file names (lr, beta1, ..., t_alpha_beta3 in steps). ``on_eval(step,
    value)`` runs after each evaluation and may raise to stop training (the exception propagates).
    Raises :class:`Diverged` with the step and value when the loss goes non-finite or far up.
    """
    if isinstance(task, Command):
        return task.run(optimizer_name, hparams, train_cfg, seed=seed, on_eval=on_eval, on_log=on_log, trial=trial)
    started = time.perf_counter()
    dev = resolve_device(device) if isinstance(device, str) else device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(seed)  # the initialisation (and dropout) depend on the seed alone
    model = task.make_model().to(dev)
    opt = build_optimizer(optimizer_name, model, hparams, impl=impl)  # type: ignore[arg-type]
    loop = _Loop(task, model, opt, train_cfg, dev, seed, started)
    steps = train_cfg.steps
    for step in range(1, steps + 1):
        loop.step(step)
        evaluate = step % train_cfg.eval_every == 0 or step == steps
        if step % LOG_EVERY == 0 or evaluate:
            progress = loop.read_losses(step)
            if on_log is not None:
                on_log(progress)
            loop.mark = time.perf_counter()
        if evaluate:
            value = loop.evaluate(step)
            if on_eval is not None:
                on_eval(step, value)
            loop.eval_time += time.perf_counter() - loop.mark
            loop.mark = time.perf_counter()
    return loop.result()


class _Loop:
    """One training run's state: the model and optimizer, the schedule, the validation batches,
    the divergence guard with its curves, and the clocks (training and evaluation apart)."""

    def __init__(
        self,
        task: Task,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        cfg: Train,
        dev: torch.device,
        seed: int,
        started: float,
    ) -> None:
        self.task, self.model, self.opt, self.cfg, self.dev = task, model, opt, cfg, dev
        self.started = started  # the run's start: the wall time counts building the model too
        self.precision = resolve_precision(cfg.precision, dev)
        self.forward = torch.compile(model) if cfg.compile else model
        self.data_gen = torch.Generator().manual_seed(seed)  # the data order depends on the seed alone
        self.val = [to_device(b, dev) for b in task.val_batches(cfg.batch_size, cfg.eval_batches)]
        bf16 = self.precision == "bf16"
        self.autocast: Any = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.base_lrs = [group["lr"] for group in opt.param_groups]
        self.guard = _Guard(cfg.divergence_factor)
        self.pending: list[torch.Tensor] = []  # losses not read back yet (one device sync per reading)
        self.items, self.train_time, self.eval_time, self.mark = 0, 0.0, 0.0, time.perf_counter()
        self.mult = 1.0
        model.train()

    def step(self, step: int) -> None:
        cfg = self.cfg
        self.mult = lr_multiplier(step, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
        for group, base in zip(self.opt.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * self.mult
        batch = to_device(self.task.train_batch(self.data_gen, cfg.batch_size), self.dev)
        with self.autocast:
            loss = self.task.loss(self.forward, batch)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.pending.append(loss.detach())
        self.items += self.task.batch_items(batch)

    def read_losses(self, step: int) -> Progress:
        """Check the losses since the last reading (raises Diverged) and add their mean to the curve."""
        values = torch.stack(self.pending).float().tolist()
        for offset, value in enumerate(values):
            self.guard.check(step - len(values) + 1 + offset, value)
        train_curve = self.guard.curves["train"]
        train_curve.append((step, sum(values) / len(values)))
        self.pending.clear()
        now = time.perf_counter()
        self.train_time += now - self.mark
        lr = self.base_lrs[0] * self.mult
        return Progress(step, self.cfg.steps, train_curve[-1][1], lr, self.items / self.train_time, now - self.started)

    def evaluate(self, step: int) -> float:
        value = _evaluate(self.task, self.model, self.forward, self.val, self.autocast)
        self.guard.check(step, value, "validation loss")
        self.guard.curves["val"].append((step, value))
        return value

    def result(self) -> TrainResult:
        dev, val_curve = self.dev, self.guard.curves["val"]
        peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
        return TrainResult(
            final_val_loss=val_curve[-1][1],
            best_val_loss=min(v for _, v in val_curve),
            val_curve=val_curve,
            train_curve=self.guard.curves["train"],
            steps=self.cfg.steps,
            unit=self.task.unit,
            items=self.items,
            items_per_s=self.items / self.train_time if self.train_time > 0 else float("nan"),
            wall_time_s=time.perf_counter() - self.started,
            eval_time_s=self.eval_time,
            device=_device_name(dev),
            precision=self.precision,
            peak_memory_bytes=peak,
            optimizer_impl=self.opt.impl_used if isinstance(self.opt, AdEMAMix) else None,
        )


def _evaluate(task: Task, model: torch.nn.Module, forward: Any, batches: list[Any], autocast: Any) -> float:
    """Mean loss over the fixed validation batches."""
    model.eval()
    with torch.no_grad(), autocast:
        total = torch.stack([task.loss(forward, b).float() for b in batches]).mean()
    model.train()
    return float(total.item())


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)
