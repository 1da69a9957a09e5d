"""Rich output: every table and summary the CLI shows is rendered here, into a given Console."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .config import LmTask, RosenbrockTask, SweepConfig, VisionTask, free_dimensions, t_alpha_beta3_steps


def describe_task(task: object) -> str:
    if isinstance(task, LmTask):
        m = task.model
        return f"lm on {task.data}, seq_len {task.seq_len}, {m.layers} layers, d={m.dim}, {m.heads} heads"
    if isinstance(task, VisionTask):
        return f"vision on {task.data}, channels {task.model.channels}, hidden {task.model.hidden}"
    if isinstance(task, RosenbrockTask):
        return f"rosenbrock from {task.start}"
    return f"custom: {task.entrypoint}"  # type: ignore[attr-defined]


def sweep_summary(console: Console, source: str, cfg: SweepConfig) -> None:
    """What a valid sweep file asks for: task, training, budget, and each optimizer's space."""
    t = cfg.train
    console.print(f"[bold green]valid[/] {source}: sweep [bold]{cfg.name}[/]")
    console.print(f"  task      {describe_task(cfg.task)}")
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
