"""Commands that set up and run: validate, init, schema, train, run."""

from __future__ import annotations

import json
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ademix_sweep.cli import report, report_results
from ademix_sweep.cli.base import (
    EXIT_BAD_INPUT,
    Devices,
    Force,
    GpusPerTrial,
    Overrides,
    PerDevice,
    Steps,
    StopGrace,
    Storage,
    WorkerOptions,
    Workers,
    app,
    bad_input,
    ctrl_c_exits_130,
    finish,
    quick,
    run_live,
    slots_for,
    with_steps,
)
from ademix_sweep.engine.contract import STOP_GRACE_S
from ademix_sweep.engine.sweep import check_file
from ademix_sweep.sweepfile.config import json_schema
from ademix_sweep.sweepfile.yamlio import SweepFileError

TEMPLATES = ("lm", "vision", "rosenbrock")


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(metavar="FILE", help="Sweep files to check.")],
    overrides: Overrides = None,
) -> None:
    """Check sweep files; print a summary of each valid one, one line per invalid one (exit 2)."""
    console = Console()
    failed = False
    for file in files:
        try:
            cfg = check_file(file, overrides or ())
        except SweepFileError as exc:
            typer.echo(str(exc), err=True)
            failed = True
            continue
        report.sweep_summary(console, file, cfg)
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def init(
    task: Annotated[str, typer.Option("--task", help="lm, vision or rosenbrock.")] = "lm",
    output: Annotated[str | None, typer.Option("-o", "--output", help="File to write (default: print it).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starting sweep file for a task."""
    if task not in TEMPLATES:
        raise bad_input(f"--task: unknown task {task!r} (expected one of {', '.join(TEMPLATES)})")
    text = resources.files("ademix_sweep.templates").joinpath(f"{task}.yaml").read_text(encoding="utf-8")
    if output is None or output == "-":
        typer.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise bad_input(f"{output}: already exists (use --force to overwrite it)")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise bad_input(f"{output}: cannot write it ({exc.strerror})") from None
    typer.echo(f"wrote {output}; check it with: ademix-sweep validate {output}")


@app.command()
def schema() -> None:
    """Print the sweep file's JSON Schema (for editors: see docs/sweep-file.md)."""
    typer.echo(json.dumps(json_schema(), indent=2))


@app.command("train")
def train_command(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Sweep file.")],
    optimizer: Annotated[str, typer.Option("--optimizer", help="ademamix or adamw (must be in the file).")],
    params: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="NAME=VALUE", help="Set a hyperparameter, e.g. --param lr=3e-3 (repeatable)."),
    ] = None,
    overrides: Overrides = None,
    steps: Steps = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Default: the file's seed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
) -> None:
    """Train one configuration: the file's constants, --param values, defaults for the rest."""
    try:
        _train(file, optimizer, params or [], with_steps(file, overrides or [], steps), device, seed, as_json)
    except KeyboardInterrupt:  # at any point, imports and data loading included
        typer.echo(f"{file}: interrupted", err=True)
        raise typer.Exit(130) from None


def _train(
    file: str, optimizer: str, params: list[str], overrides: list[str], device: str, seed: int | None, as_json: bool
) -> None:
    from ademix_sweep.engine import job as jobs  # torch is imported only by commands that train
    from ademix_sweep.train import Diverged

    try:
        job = jobs.prepare_job(file, optimizer, params, overrides, device)
    except (SweepFileError, jobs.BadDevice) as exc:
        raise bad_input(str(exc)) from None
    console = Console(stderr=as_json)
    try:
        with report.TrainProgress(console, job.cfg.train.steps, job.task.unit, optimizer) as bar:
            result = jobs.run_job(job, seed=seed, on_log=bar.update)
    except Diverged as exc:
        if as_json:
            typer.echo(
                json.dumps({"diverged": True, "step": exc.step, "value": _json_float(exc.value), "reason": exc.reason})
            )
        typer.echo(f"{file}: {optimizer} {exc}", err=True)
        raise typer.Exit(1) from None
    except jobs.TrainingFailed as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(jobs.result_json(job, result, seed)))
    else:
        report.train_summary(console, result, optimizer, job.hparams, job.defaulted, job.task.fingerprint)


def _json_float(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)


@app.command()
def run(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Sweep file.")],
    storage: Storage = None,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Finished trials per optimizer.")] = None,
    workers: Workers = "auto",
    devices: Devices = "auto",
    per_device: PerDevice = 1,
    gpus_per_trial: GpusPerTrial = None,
    steps: Steps = None,
    quick_try: Annotated[
        bool, typer.Option("--quick", help="A smoke test: 4 trials per optimizer, runs 10x shorter, its own name.")
    ] = False,
    overrides: Overrides = None,
    force: Force = False,
    stop_grace: StopGrace = STOP_GRACE_S,
) -> None:
    """Run a sweep (or resume it): both optimizers, equal budgets, one worker per GPU or CPU slot."""
    opts = WorkerOptions(workers, devices, per_device, force, stop_grace)
    overrides = with_steps(file, list(overrides or []), steps)
    if quick_try:
        overrides = quick(file, overrides)
    if gpus_per_trial is not None:
        overrides.append(f"task.gpus_per_trial={gpus_per_trial}")
    with ctrl_c_exits_130(file):
        _run(file, storage, trials, opts, overrides)


def _run(file: str, storage: str | None, trials: int | None, opts: WorkerOptions, overrides: list[str]) -> None:
    from ademix_sweep.engine.sweep import plan_sweep, run_planned
    from ademix_sweep.engine.urls import mask_url
    from ademix_sweep.results.eta import sweep_eta
    from ademix_sweep.results.read import optimizer_status

    if trials is not None:
        overrides = [*overrides, f"budget.trials={trials}"]
    try:  # the file here; the stored sweep while the workers start; they build the task
        slots = partial(slots_for, opts)
        plan = plan_sweep(file, slots=slots, storage=storage, overrides=overrides, stop_grace_s=opts.stop_grace_s)
    except (SweepFileError, ValueError) as exc:
        raise bad_input(f"{file}: {exc}" if not isinstance(exc, SweepFileError) else str(exc)) from None
    spec = plan.spec
    console = Console()
    console.print(
        f"sweep [bold]{spec.name}[/]: {', '.join(spec.optimizers)}, {spec.budget} finished trials each, "
        f"{len(plan.slots)} worker(s) on {', '.join(sorted({s.device for s in plan.slots}))}; "
        f"storage {mask_url(spec.storage)}",
        highlight=False,
        soft_wrap=True,
    )
    outcome, stats = run_live(
        console,
        file,
        plan,
        spec.budget,
        lambda on_event, on_tick: run_planned(plan, on_event=on_event, on_tick=on_tick),
        lambda: {opt: optimizer_status(study, spec.budget) for opt, study in plan.studies.items()},
        lambda: report_results.eta_line(sweep_eta(plan.studies, spec.budget, workers=len(plan.slots))),
    )
    report.sweep_result(console, stats, spec.budget)
    finish(file, outcome)
