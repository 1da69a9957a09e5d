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
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ademix_sweep.optim import AdEMAMix, build_optimizer, lr_multiplier
from ademix_sweep.sweepfile.config import Train
from ademix_sweep.tasks import Task, to_device

LOG_EVERY = 10  # steps between training-loss readings (one device sync each)


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
    task: Task,
    optimizer_name: str,
    hparams: Mapping[str, Any],
    train_cfg: Train,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    on_log: Callable[[Progress], None] | None = None,
    impl: str = "auto",
) -> TrainResult:
    """Train ``task``'s model with one optimizer configuration and return its curves and metrics.

    ``hparams`` uses the sweep-file names (lr, beta1, ..., t_alpha_beta3 in steps). ``on_eval(step,
    value)`` runs after each evaluation and may raise to stop training (the exception propagates).
    Raises :class:`Diverged` with the step and value when the loss goes non-finite or far up.
    """
    cfg, started = train_cfg, time.perf_counter()
    dev = resolve_device(device) if isinstance(device, str) else device
    precision = resolve_precision(cfg.precision, dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(seed)  # the initialisation (and dropout) depend on the seed alone
    model = task.make_model().to(dev)
    opt = build_optimizer(optimizer_name, model, hparams, impl=impl)  # type: ignore[arg-type]
    forward = torch.compile(model) if cfg.compile else model
    data_gen = torch.Generator().manual_seed(seed)  # the data order depends on the seed alone
    val = [to_device(b, dev) for b in task.val_batches(cfg.batch_size, cfg.eval_batches)]
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    params = [p for p in model.parameters() if p.requires_grad]
    base_lrs = [group["lr"] for group in opt.param_groups]
    guard = _Guard(cfg.divergence_factor)
    val_curve, train_curve = guard.curves["val"], guard.curves["train"]
    pending: list[torch.Tensor] = []
    items, train_time, eval_time, mark = 0, 0.0, 0.0, time.perf_counter()
    model.train()
    for step in range(1, cfg.steps + 1):
        mult = lr_multiplier(step, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
        for group, base in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = base * mult
        batch = to_device(task.train_batch(data_gen, cfg.batch_size), dev)
        with autocast:
            loss = task.loss(forward, batch)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        pending.append(loss.detach())
        items += task.batch_items(batch)
        evaluate = step % cfg.eval_every == 0 or step == cfg.steps
        if step % LOG_EVERY == 0 or evaluate:
            values = torch.stack(pending).float().tolist()  # one sync per reading
            for offset, value in enumerate(values):
                guard.check(step - len(values) + 1 + offset, value)
            train_curve.append((step, sum(values) / len(values)))
            pending.clear()
            now = time.perf_counter()
            train_time += now - mark
            if on_log is not None:
                on_log(
                    Progress(step, cfg.steps, train_curve[-1][1], base_lrs[0] * mult, items / train_time, now - started)
                )
            mark = time.perf_counter()
        if evaluate:
            value = _evaluate(task, model, forward, val, autocast)
            guard.check(step, value, "validation loss")
            val_curve.append((step, value))
            if on_eval is not None:
                on_eval(step, value)
            eval_time += time.perf_counter() - mark
            mark = time.perf_counter()
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return TrainResult(
        final_val_loss=val_curve[-1][1],
        best_val_loss=min(v for _, v in val_curve),
        val_curve=val_curve,
        train_curve=train_curve,
        steps=cfg.steps,
        unit=task.unit,
        items=items,
        items_per_s=items / train_time if train_time > 0 else float("nan"),
        wall_time_s=time.perf_counter() - started,
        eval_time_s=eval_time,
        device=_device_name(dev),
        precision=precision,
        peak_memory_bytes=peak,
        optimizer_impl=opt.impl_used if isinstance(opt, AdEMAMix) else None,
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
