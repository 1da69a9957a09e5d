"""Commands that read a sweep back: status, best, compare, export, plot.

Each takes the sweep FILE (storage as ``run`` resolves it) or ``--storage URL --name NAME``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ademix_sweep.cli import report_results
from ademix_sweep.cli.base import (
    Devices,
    Force,
    Overrides,
    PerDevice,
    StopGrace,
    Storage,
    WorkerOptions,
    Workers,
    app,
    bad_input,
    ctrl_c_exits_130,
    finish,
    run_live,
    slots_for,
)
from ademix_sweep.engine.contract import STOP_GRACE_S
from ademix_sweep.sweepfile.yamlio import SweepFileError

if TYPE_CHECKING:
    from ademix_sweep.results.read import Sweep

File = Annotated[str | None, typer.Argument(metavar="[FILE]", help="Sweep file (or --storage and --name).")]
Name = Annotated[str | None, typer.Option("--name", help="Sweep name, with --storage and no FILE.")]


@contextmanager
def _reading(file: str | None, sweep: Sweep) -> Iterator[None]:
    """A storage that fails while being read (a corrupt file): exit 2 with one line."""
    from ademix_sweep.engine.storage import StorageError, storage_errors

    try:
        with storage_errors(sweep.url):
            yield
    except StorageError as exc:
        raise bad_input(f"{file or sweep.name}: {exc}") from None


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def opened(file: str | None, storage: str | None, name: str | None, overrides: list[str] | None = None) -> Sweep:
    """The sweep (its file read with the same ``--set`` overrides it was run with), or exit 2 with one line."""
    from ademix_sweep.engine.storage import StorageError
    from ademix_sweep.results import read as results

    _quiet_optuna()
    if overrides and file is None:
        raise bad_input("--set: needs the sweep FILE it overrides")
    try:
        return results.open_sweep(file, storage, name, overrides)
    except SweepFileError as exc:
        raise bad_input(str(exc)) from None
    except (results.NoSweep, StorageError) as exc:
        raise bad_input(f"{file or name}: {exc}") from None


@app.command()
def status(file: File = None, storage: Storage = None, name: Name = None, overrides: Overrides = None) -> None:
    """Trials by state, budget used, best value and parameters, divergence rate, running trials."""
    from ademix_sweep.engine.urls import mask_url
    from ademix_sweep.results import read as results
    from ademix_sweep.results.checks import fairness_checks
    from ademix_sweep.results.eta import sweep_eta

    sweep = opened(file, storage, name, overrides)
    with _reading(file, sweep):
        stats = {opt: results.optimizer_status(study, sweep.budget) for opt, study in sweep.studies.items()}
        running = results.running_trials(sweep)
        found = fairness_checks(sweep.studies, sweep.cfg)
        left = report_results.eta_line(sweep_eta(sweep.studies, sweep.budget))
    console = Console()
    report_results.status(console, sweep.name, mask_url(sweep.url), stats, running)
    if left:
        console.print(left, highlight=False)
    report_results.checks(console, found)


@app.command()
def best(
    file: File = None,
    storage: Storage = None,
    name: Name = None,
    overrides: Overrides = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="Only this optimizer.")] = None,
) -> None:
    """The best configuration of each optimizer as YAML (for train --param, or your own script)."""
    from ademix_sweep.results import read as results
    from ademix_sweep.results.checks import fairness_checks

    sweep = opened(file, storage, name, overrides)
    if optimizer is not None and optimizer not in sweep.studies:
        raise bad_input(f"--optimizer {optimizer}: not in sweep {sweep.name!r} (expected {', '.join(sweep.studies)})")
    out = {}
    with _reading(file, sweep):
        for opt, study in sweep.studies.items():
            trial = results.best_trial(study)
            if (optimizer is None or opt == optimizer) and trial is not None:
                out[opt] = {"trial": trial.number, "value": trial.value, "params": results.hyperparameters(trial)}
        found = fairness_checks(sweep.studies, sweep.cfg)
    if not out:
        raise bad_input(f"{file or sweep.name}: no complete trial yet in sweep {sweep.name!r}")
    typer.echo(report_results.best_yaml(file, out, found), nl=False)


@app.command()
def export(
    file: File = None,
    storage: Storage = None,
    name: Name = None,
    overrides: Overrides = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[str | None, typer.Option("-o", "--output", help="File to write (default: print it).")] = None,
) -> None:
    """Every trial of every optimizer: number, state, parameters, value, duration, device, failure."""
    from ademix_sweep.results import read as results

    if fmt not in ("csv", "json"):
        raise bad_input(f"--format {fmt}: expected csv or json")
    sweep = opened(file, storage, name, overrides)
    with _reading(file, sweep):
        columns, rows = results.all_rows(sweep)
    if fmt == "json":
        text = json.dumps(rows, indent=1, allow_nan=False) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    _write(output, text)


def _write(output: str | None, text: str) -> None:
    if output is None or output == "-":
        typer.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise bad_input(f"{output}: cannot write it ({exc.strerror})") from None
    typer.echo(f"wrote {output}", err=True)


@app.command()
def plot(
    file: File = None,
    storage: Storage = None,
    name: Name = None,
    overrides: Overrides = None,
    output: Annotated[str, typer.Option("-o", "--output", help="Folder for the figures.")] = "plots",
) -> None:
    """PNG figures: best so far, best curves, lr sensitivity, α against β3, loss against run length."""
    from ademix_sweep.results import horizons, plots

    sweep = opened(file, storage, name, overrides)
    try:
        with _reading(file, sweep):
            written = plots.write_all(sweep.studies, Path(output), horizons.of_sweep(sweep))
    except OSError as exc:
        raise bad_input(f"{output}: cannot write figures there ({exc.strerror})") from None
    if not written:
        raise bad_input(f"{file or sweep.name}: nothing to plot yet (no complete trial)")
    for path in written:
        typer.echo(str(path))


@app.command()
def compare(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Sweep file (compare re-trains its task).")],
    storage: Storage = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per configuration.")] = 5,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Best configurations per optimizer.")] = 1,
    workers: Workers = "auto",
    devices: Devices = "auto",
    per_device: PerDevice = 1,
    horizons: Annotated[
        str | None,
        typer.Option(
            "--horizons", help="Run lengths as multiples of train.steps, e.g. 0.5,1,2,4: each a full run, same seeds."
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=1, help="One more run length, in steps (with the sweep's own).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    overrides: Overrides = None,
    force: Force = False,
    stop_grace: StopGrace = STOP_GRACE_S,
) -> None:
    """Re-train each optimizer's best configuration(s) on the same seeds, at one or several run lengths.

    Paired statistics, the steps AdamW needs to match AdEMAMix, fair-tuning checks (docs/comparing.md).
    """
    opts = WorkerOptions(workers, devices, per_device, force, stop_grace)
    lengths = CompareLengths(_horizons(horizons), steps)
    with ctrl_c_exits_130(file):
        _compare(file, storage, (seeds, top_k, lengths), opts, as_json, list(overrides or []))


@dataclass(frozen=True)
class CompareLengths:
    horizons: tuple[float, ...]  # multiples of train.steps
    steps: int | None  # one more length, in steps


def _horizons(raw: str | None) -> tuple[float, ...]:
    if raw is None:
        return ()
    try:
        return tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise bad_input(f"--horizons {raw}: expected multiples of train.steps such as 0.5,1,2,4") from None


def _compare(
    file: str,
    storage: str | None,
    counts: tuple[int, int, CompareLengths],
    opts: WorkerOptions,
    as_json: bool,
    overrides: list[str],
) -> None:
    """``counts``: seeds per configuration, configurations per optimizer, run lengths."""
    from ademix_sweep.engine.storage import StorageError
    from ademix_sweep.engine.study import SweepMismatch
    from ademix_sweep.results import rerun
    from ademix_sweep.results.read import NoSweep

    _quiet_optuna()
    try:
        slots = partial(slots_for, opts)
        count, top_k, lengths = counts
        plan = rerun.plan_compare(
            file,
            slots=slots,
            storage=storage,
            seeds=count,
            top_k=top_k,
            stop_grace_s=opts.stop_grace_s,
            overrides=overrides,
            horizons=lengths.horizons,
            steps=lengths.steps,
        )
    except SweepFileError as exc:
        raise bad_input(str(exc)) from None
    except (NoSweep, StorageError, SweepMismatch, ValueError) as exc:
        raise bad_input(f"{file}: {exc}") from None
    console = Console(stderr=as_json)
    per_optimizer = plan.spec.budget
    outcome = None
    if rerun.pending(plan):
        console.print(
            f"compare [bold]{plan.sweep.name}[/]: {per_optimizer} run(s) per optimizer ({top_k} configuration(s) × "
            f"{count} seed(s)) at {len(plan.lengths)} length(s), {plan.added} new; {len(plan.slots)} worker(s)",
            highlight=False,
        )
        outcome, _ = run_live(
            console,
            file,
            plan,
            per_optimizer,
            lambda on_event, on_tick: rerun.run_compare(plan, on_event=on_event, on_tick=on_tick),
            lambda: rerun.figures(plan),
        )
    result = rerun.compare_summary(plan)
    if as_json:
        typer.echo(json.dumps(_json_safe({"sweep": plan.sweep.name, **result})))
    else:
        report_results.compare(console, plan.sweep.name, result)
    if outcome is not None and outcome.code:
        finish(file, outcome)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
