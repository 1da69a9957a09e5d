"""The Typer app, its shared options, and the mapping of errors to exit codes and one line."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup, TyperOption

from ademix_sweep import __version__
from ademix_sweep.cli import report
from ademix_sweep.engine.contract import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED, STOP_GRACE_S
from ademix_sweep.engine.events import OnEvent

if TYPE_CHECKING:
    from ademix_sweep.engine.contract import Slot
    from ademix_sweep.engine.sweep import SweepPlan
    from ademix_sweep.engine.workers import Outcome
    from ademix_sweep.results.read import Figures
    from ademix_sweep.results.rerun import ComparePlan
    from ademix_sweep.sweepfile.config import SweepConfig

F = TypeVar("F", bound="Figures")  # the figures the live view shows: a sweep's status or a compare's progress

WORKFLOW = ("init", "validate", "run", "status", "compare", "best", "plot", "dashboard", "export", "train", "schema")


class _InWorkflowOrder(TyperGroup):
    """``--help`` lists the commands in the order a user meets them, not the order they are defined."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: (WORKFLOW.index(name) if name in WORKFLOW else len(WORKFLOW), name))


def _flag_type(self: TyperOption, ctx: Any) -> str | None:
    """No type beside a flag that takes no value (``--json``, not ``--json <bool>``)."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

app = typer.Typer(
    name="ademix-sweep",
    help="Tune and compare the AdEMAMix optimizer against AdamW.",
    no_args_is_help=True,
    add_completion=False,
    cls=_InWorkflowOrder,
)

Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set", metavar="PATH=VALUE", help="Override a field, e.g. --set train.steps=500 (repeatable; YAML value)."
    ),
]
Storage = Annotated[str | None, typer.Option("--storage", help="Optuna storage URL (wins over the file's).")]
Workers = Annotated[
    str,
    typer.Option(
        "--workers", help="CPU worker processes: a number, or auto (one per core, one thread each; GPUs: one per GPU)."
    ),
]
Devices = Annotated[str, typer.Option("--devices", help="auto, cpu, or GPU numbers like 0,2.")]
PerDevice = Annotated[int, typer.Option("--workers-per-device", min=1, help="Workers per GPU.")]
Steps = Annotated[
    int | None,
    typer.Option(
        "--steps", min=1, help="Train for N steps, scaling eval_every, warm-up and pruning start to match (a full run)."
    ),
]
GpusPerTrial = Annotated[
    int | None,
    typer.Option("--gpus-per-trial", min=0, help="GPUs per trial of a command task (default: its gpus_per_trial, 1)."),
]
Force = Annotated[
    bool, typer.Option("--force", help="Start more workers than this machine's cores or memory seem to hold.")
]


StopGrace = Annotated[
    float,
    typer.Option(
        "--stop-grace",
        min=0,
        metavar="SECONDS",
        help="After Ctrl-C or SIGTERM: how long running trials may take to reach their next evaluation "
        "before they are stopped and re-queued (Slurm and Kubernetes kill 30 s after SIGTERM).",
    ),
]


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, Kubernetes) before the workers took over: handled like Ctrl-C, exit 143."""


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


@dataclass(frozen=True)
class WorkerOptions:
    """The options every command that starts workers takes."""

    workers: str | int | None = None  # a count, or "auto"/None
    devices: str = "auto"
    per_device: int = 1
    force: bool = False
    stop_grace_s: float = STOP_GRACE_S


def with_steps(file: str, overrides: list[str], steps: int | None) -> list[str]:
    """``overrides`` plus the ``--set`` ones that make the file's runs ``steps`` long (scaling rule)."""
    if steps is None:
        return overrides
    from ademix_sweep.sweepfile.scaling import steps_overrides

    return [*overrides, *steps_overrides(_read(file, overrides), steps)]


def quick(file: str, overrides: list[str]) -> list[str]:
    """``run --quick``: the overrides that shrink the file to a smoke test, said on stderr."""
    from ademix_sweep.sweepfile.scaling import quick_overrides

    extra = quick_overrides(_read(file, overrides))
    typer.echo(f"--quick: {' '.join('--set ' + o for o in extra)}", err=True)
    return [*overrides, *extra]


def _read(file: str, overrides: list[str]) -> SweepConfig:
    """The sweep file with its overrides, or exit 2 with its one line."""
    from ademix_sweep.sweepfile.config import load_sweep
    from ademix_sweep.sweepfile.yamlio import SweepFileError

    try:
        return load_sweep(file, overrides)
    except SweepFileError as exc:
        raise bad_input(str(exc)) from None


def slots_for(opts: WorkerOptions, gpus_per_trial: int = 1) -> list[Slot]:
    """The device slots; ValueError with a one-line reason, also for more workers than the
    machine holds (unless ``--force``)."""
    from ademix_sweep.engine import slots as planner

    cores, memory = planner.usable_cores(), planner.available_memory()
    gpus = planner.visible_gpus()
    workers = _worker_count(opts.workers)
    slots = planner.plan_slots(opts.devices, workers, opts.per_device, gpus, cores, gpus_per_trial)
    if workers is None and all(slot.device == "cpu" for slot in slots):  # auto, on the CPU
        slots = planner.plan_slots("cpu", planner.auto_cpu_workers(cores, memory), 1, gpus, cores)
    if not opts.force:
        planner.check_capacity(slots, cores, memory)
    return slots


def _worker_count(raw: str | int | None) -> int | None:
    """``--workers``: a count, or None for auto; ValueError (one line) otherwise."""
    if raw is None or raw == "auto":
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--workers {raw}: expected a number of workers (1 or more) or auto")
    return count


def run_live(
    console: Console,
    file: str,
    plan: SweepPlan | ComparePlan,
    total: int,
    start: Callable[[OnEvent, Callable[[], None]], Outcome],
    figures: Callable[[], Mapping[str, F]],
    eta: Callable[[], str] = lambda: "",
) -> tuple[Outcome, Mapping[str, F]]:
    """``start(on_event, on_tick)`` runs the workers under the live view, which shows
    ``figures()`` and ``eta()`` (time left, in words); bad input found on the way exits 2 with one
    line. Returns how the workers ended and the final figures."""
    import optuna

    from ademix_sweep.engine import storage
    from ademix_sweep.engine.study import SweepMismatch
    from ademix_sweep.engine.workers import BadSweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bad = ""
    with report.SweepView(console, total, plan.spec.optimizers) as view:
        try:
            outcome = start(view.event, lambda: view.update(figures(), eta()))
            with storage.storage_errors(plan.spec.storage):
                final = storage.retrying(figures)  # the database may be coming back from a restart
            view.update(final)
        except (BadSweep, storage.StorageError, SweepMismatch) as exc:
            bad = str(exc) if isinstance(exc, BadSweep) else f"{file}: {exc}"
    if bad:  # after the live view has stopped: the line goes to stderr
        raise bad_input(bad)
    return outcome, final


def finish(file: str, outcome: Outcome) -> None:
    """Exit with the workers' code, saying why when it is not 0."""
    if outcome.code == EXIT_INTERRUPTED:
        typer.echo(f"{file}: interrupted; run the same command again to resume", err=True)
    elif outcome.code == EXIT_TERMINATED:
        typer.echo(f"{file}: interrupted (SIGTERM); run the same command again to resume", err=True)
    elif outcome.code:
        typer.echo(f"{file}: workers stopped: {outcome.reason}", err=True)
    raise typer.Exit(outcome.code)


@contextmanager
def ctrl_c_exits_130(file: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM before the workers take over (imports, storage checks): exit 130 or 143
    with one line."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except KeyboardInterrupt as exc:
        code = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        typer.echo(f"{file}: interrupted before the workers started", err=True)
        raise typer.Exit(code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
