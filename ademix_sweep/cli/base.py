"""The Typer app, its shared options, and the mapping of errors to exit codes and one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ademix_sweep import __version__, report

if TYPE_CHECKING:
    from ademix_sweep.workers import Slot, Spec

EXIT_BAD_INPUT = 2

app = typer.Typer(
    name="ademix-sweep",
    help="Tune and compare the AdEMAMix optimizer against AdamW.",
    no_args_is_help=True,
    add_completion=False,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="PATH=VALUE", help="Override a field, e.g. --set train.steps=500 (repeatable; YAML value)."
    ),
]
Storage = Annotated[str | None, typer.Option("--storage", help="Optuna storage URL (wins over the file's).")]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="CPU worker processes (default 1).")]
Devices = Annotated[str, typer.Option("--devices", help="auto, cpu, or GPU numbers like 0,2.")]
PerDevice = Annotated[int, typer.Option("--workers-per-device", min=1, help="Workers per GPU.")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ademix-sweep {__version__}")
        raise typer.Exit()


def bad_input(message: str) -> typer.Exit:
    """Print one line to stderr; the caller raises the returned Exit (code 2)."""
    typer.echo(message, err=True)
    return typer.Exit(EXIT_BAD_INPUT)


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Tune and compare the AdEMAMix optimizer (arXiv 2409.03137) against AdamW."""


def plan(devices: str, workers: int | None, per_device: int) -> list[Slot]:
    """The device slots; ValueError with a one-line reason."""
    import os

    from ademix_sweep import workers as pool

    return pool.plan_slots(devices, workers, per_device, pool.visible_gpus(), os.cpu_count() or 1)


def run_workers(
    console: Console,
    file: str,
    spec: Spec,
    slots: list[Slot],
    stats: Callable[[], dict[str, dict[str, Any]]],
    prepare: Callable[[], None] = lambda: None,
    total: int | None = None,
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run the workers under the live view; bad input found on the way exits 2 with one line.
    Returns the workers' exit code (0, 1 or 130) and the final figures."""
    import optuna

    from ademix_sweep import study as studies
    from ademix_sweep import workers as pool

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bad = ""
    with report.SweepView(console, total or spec.budget, spec.optimizers) as view:
        try:
            code = pool.run_sweep(spec, slots, view.event, lambda: view.update(stats()), prepare=prepare)
        except (pool.BadSweep, studies.StorageError, studies.SweepMismatch) as exc:
            bad = str(exc) if isinstance(exc, pool.BadSweep) else f"{file}: {exc}"
        else:
            final = studies.retrying(stats)  # the database may be coming back from a restart
            view.update(final)
    if bad:  # after the live view has stopped: the line goes to stderr
        raise bad_input(bad)
    return code, final


def finish(file: str, code: int) -> None:
    """Exit with the workers' code, saying why when it is not 0."""
    if code == 130:
        typer.echo(f"{file}: interrupted; run the same command again to resume", err=True)
    elif code == 1:
        typer.echo(f"{file}: workers stopped: repeated trial failures, or a worker that could not start", err=True)
    raise typer.Exit(code)


@contextmanager
def ctrl_c_exits_130(file: str) -> Iterator[None]:
    """Ctrl-C before the workers take over (imports, storage checks): exit 130 with one line."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(f"{file}: interrupted before the workers started", err=True)
        raise typer.Exit(130) from None
