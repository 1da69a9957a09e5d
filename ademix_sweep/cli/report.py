"""Rich output: every table and summary the CLI shows is rendered here, into a given Console."""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ademix_sweep.cli.report_results import number, params_line
from ademix_sweep.sweepfile.config import SweepConfig, free_dimensions, t_alpha_beta3_steps
from ademix_sweep.sweepfile.sections import CommandTask, LmTask, RosenbrockTask, VisionTask

if TYPE_CHECKING:
    from ademix_sweep.engine.events import Event
    from ademix_sweep.results.read import Figures, OptimizerStatus
    from ademix_sweep.train import Progress as TrainStatus
    from ademix_sweep.train import TrainResult


def describe_task(task: object) -> str:
    if isinstance(task, LmTask):
        m = task.model
        return f"lm on {task.data}, seq_len {task.seq_len}, {m.layers} layers, d={m.dim}, {m.heads} heads"
    if isinstance(task, VisionTask):
        return f"vision on {task.data}, channels {task.model.channels}, hidden {task.model.hidden}"
    if isinstance(task, RosenbrockTask):
        return f"rosenbrock from {task.start}"
    if isinstance(task, CommandTask):
        return f"command: {shlex.join(task.command)} (in {task.cwd})"
    return f"custom: {task.entrypoint}"  # type: ignore[attr-defined]


def sweep_summary(console: Console, source: str, cfg: SweepConfig) -> None:
    """What a valid sweep file asks for: task, training, budget, and each optimizer's space."""
    t = cfg.train
    console.print(f"[bold green]valid[/] {source}: sweep [bold]{cfg.name}[/]")
    console.print(f"  task      {describe_task(cfg.task)}")
    if isinstance(cfg.task, CommandTask):  # the command owns batch size, schedule and precision
        console.print(f"  train     {t.steps} steps, eval every {t.eval_every} (passed to the command)")
    else:
        console.print(
            f"  train     {t.steps} steps, batch {t.batch_size}, {t.schedule} lr after {t.warmup_steps} warm-up steps, "
            f"eval every {t.eval_every}"
        )
    console.print(
        f"  budget    {cfg.budget.trials} finished trials per optimizer; sampler {cfg.sampler.type}, "
        f"pruner {cfg.pruner.type}; metric {cfg.metric} (minimized); seed {cfg.seed}"
    )
    for name, space in cfg.optimizers.spaces().items():
        dims = free_dimensions(space)
        table = Table(title=f"{name}: {dims} free dimension{'' if dims == 1 else 's'}", title_justify="left")
        table.add_column("parameter")
        table.add_column("value or distribution")
        for field, dist in space:
            text = dist.describe()
            if field == "t_alpha_beta3" and dist.kind == "const":
                steps = t_alpha_beta3_steps(dist.values[0], t.steps)
                text += f" = {steps} step{'' if steps == 1 else 's'}" if steps else " = no warm-up"
            table.add_row(field, text)
        console.print(table)


class TrainProgress:
    """A Rich progress bar for one training run: step, loss, lr, throughput and ETA.

    Use as a context manager and pass :meth:`update` as ``train(on_log=...)``.
    """

    def __init__(self, console: Console, steps: int, unit: str, description: str) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("step {task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("lr {task.fields[lr]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.unit = unit
        self.task_id = self.progress.add_task(description, total=steps, loss="-", lr="-", speed="-")

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: TrainStatus) -> None:
        speed = f"{p.items_per_s:,.0f} {self.unit}/s"
        self.progress.update(self.task_id, completed=p.step, loss=f"{p.loss:.4f}", lr=f"{p.lr:.3g}", speed=speed)


def train_summary(
    console: Console,
    result: TrainResult,
    optimizer: str,
    hparams: dict[str, Any],
    defaulted: list[str],
    fingerprint: str,
) -> None:
    """The final metrics of one training run, and the configuration that produced them."""
    table = Table(
        title=f"{optimizer}: {result.steps} steps on {result.device} ({result.precision})",
        title_justify="left",
        show_header=False,
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("final val_loss", f"{result.final_val_loss:.4f}")
    table.add_row("best val_loss", f"{result.best_val_loss:.4f} at step {_best_step(result)}")
    table.add_row("final train loss", f"{result.train_curve[-1][1]:.4f}")
    table.add_row(f"{result.unit}/s", f"{result.items_per_s:,.0f}")
    table.add_row("wall time", f"{result.wall_time_s:.1f} s (evaluation {result.eval_time_s:.1f} s)")
    if result.peak_memory_bytes is not None:
        table.add_row("peak memory", f"{result.peak_memory_bytes / 2**20:,.0f} MiB")
    table.add_row("data fingerprint", fingerprint)
    console.print(table)
    shown = ", ".join(f"{k}={number(v)}{' (default)' if k in defaulted else ''}" for k, v in hparams.items())
    console.print(f"  hyperparameters: {shown}")


def _best_step(result: TrainResult) -> int:
    return min(result.val_curve, key=lambda point: point[1])[0]


@dataclass
class _Running:
    """A running trial as the live view shows it."""

    start: Event
    t0: float
    step: int = 0
    loss: float | None = None


class SweepView:
    """What ``run`` shows: a live view in a terminal, else one plain line per event.

    Live: per optimizer a progress bar (finished/budget), the best value and the divergences;
    below, the running trials (worker, device, trial, step/steps, loss, elapsed).
    """

    PLAIN = frozenset(
        {
            "start",
            "complete",
            "pruned",
            "diverged",
            "failed",
            "interrupted",
            "timeout",
            "worker_died",
            "warning",
            "stopping",
            "stop_forced",
            "storage_failed",
        }
    )

    def __init__(self, console: Console, budget: int, optimizers: tuple[str, ...], live: bool | None = None) -> None:
        self.console, self.budget, self.optimizers = console, budget, optimizers
        self.live_mode = console.is_terminal if live is None else live
        self.running: dict[tuple[int, str, int], _Running] = {}
        self.stats: Mapping[str, Figures] = {}
        self.eta = ""  # time left, in words (results.eta), under the bars
        self.bars = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            console=console,
        )
        self.ids = {opt: self.bars.add_task(opt, total=budget, extra="") for opt in optimizers}
        self.live = Live(self._render(), console=console, refresh_per_second=4) if self.live_mode else None

    def __enter__(self) -> SweepView:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.update(self._render())
            self.live.stop()

    def event(self, e: Event) -> None:
        key = (e.rank, e.optimizer or "", -1 if e.trial is None else e.trial)
        if e.kind == "start":
            self.running[key] = _Running(e, t0=e.time)
        elif e.kind in ("progress", "eval") and key in self.running:
            self.running[key].step = e.step or 0
            self.running[key].loss = e.loss if e.kind == "progress" else e.value
        elif e.ended:
            self.running.pop(key, None)
        if self.live:
            self.live.update(self._render())
        elif e.kind in self.PLAIN:
            self.console.print(plain_line(e), highlight=False, markup=False, soft_wrap=True)  # a log line: unwrapped

    def update(self, stats: Mapping[str, Figures], eta: str = "") -> None:
        self.stats, self.eta = stats, eta
        for opt, s in stats.items():
            best = "-" if s["best_value"] is None else f"{s['best_value']:.4f} (#{s['best_number']})"
            self.bars.update(self.ids[opt], completed=s["finished"], extra=f"best {best}  diverged {s['diverged']}")
        if self.live:
            self.live.update(self._render())

    def _render(self) -> Group:
        table = Table(title="running trials", title_justify="left", expand=False)
        for column in ("worker", "device", "trial", "step", "loss", "elapsed"):
            table.add_column(column, justify="right" if column in ("step", "loss", "elapsed") else "left")
        for (rank, opt, trial), r in sorted(self.running.items(), key=lambda item: item[0]):
            loss = "-" if r.loss is None else f"{r.loss:.4f}"
            elapsed = f"{time.time() - r.t0:.0f} s"
            progress = f"{r.step}/{r.start.steps}"
            table.add_row(str(rank), r.start.device or "", f"{opt} #{trial}", progress, loss, elapsed)
        return Group(self.bars, Text(self.eta, style="dim"), table) if self.eta else Group(self.bars, table)


def plain_line(e: Event) -> str:
    """One line per event, for logs (CI, nohup, Slurm)."""
    stamp = time.strftime("%H:%M:%S", time.localtime(e.time))
    if e.kind in ("stopping", "stop_forced"):
        return f"{stamp} {_detail(e)}"
    who = f"worker {e.rank}" + (f" {e.optimizer} #{e.trial}" if e.trial is not None else "")
    return f"{stamp} {who}: {_detail(e)}"


def _detail(e: Event) -> str:
    signal_name = "SIGTERM" if e.signal == "SIGTERM" else "Ctrl-C"
    detail = {
        "start": lambda: f"started on {e.device}",
        "complete": lambda: f"complete: {e.value:.4f}",
        "pruned": lambda: "pruned" + (f" at {e.value:.4f}" if e.value is not None else ""),
        "diverged": lambda: f"diverged at step {e.step}: {e.reason}",
        "failed": lambda: f"failed: {e.reason}",
        "warning": lambda: f"warning: {e.reason}",
        "interrupted": lambda: "interrupted; re-queued for the next run",
        "timeout": lambda: f"stopped after train.timeout ({e.after_s:g} s): failed, not re-queued",
        "stop_forced": lambda: f"trials that reached no evaluation within {e.after_s:g} s: stopped and re-queued",
        "storage_failed": lambda: e.message or "",
        "worker_died": lambda: f"died (exit code {e.exitcode}); re-queued {len(e.requeued)} trial(s)",
        "stopping": lambda: (
            f"{signal_name}: finishing at the next evaluation (again to stop now)"
            if e.count == 1
            else f"{signal_name} again: stopping now"
        ),
    }.get(e.kind, lambda: str(e.kind))
    return detail()


def sweep_result(console: Console, stats: Mapping[str, OptimizerStatus], budget: int) -> None:
    """The end-of-run summary: both optimizers' counts, then each best trial's parameters."""
    table = Table(title="sweep summary", title_justify="left")
    for column in ("optimizer", "finished", "pruned", "diverged", "failed", "best val_loss", "trial"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for opt, s in stats.items():
        rate = f"{s['diverged']} ({s['diverged'] / s['finished']:.0%})" if s["finished"] else "0"
        best = "-" if s["best_value"] is None else f"{s['best_value']:.4f}"
        number = "-" if s["best_number"] is None else f"#{s['best_number']}"
        table.add_row(opt, f"{s['finished']}/{budget}", str(s["pruned"]), rate, str(s["failed"]), best, number)
    console.print(table)
    for opt, s in stats.items():
        if s["best_params"]:
            params = params_line(s["best_params"])
            console.print(f"  best {opt}: {params}", highlight=False)
