"""The Typer app: thin commands that parse, call the layers below, and map errors to exit codes."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ademix_sweep import __version__, report
from ademix_sweep.config import json_schema, load_sweep
from ademix_sweep.yamlio import SweepFileError

EXIT_BAD_INPUT = 2
TEMPLATES = ("lm", "vision", "rosenbrock")

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ademix-sweep {__version__}")
        raise typer.Exit()


def _bad_input(message: str) -> typer.Exit:
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
            cfg = load_sweep(file, overrides or ())
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
        raise _bad_input(f"--task: unknown task {task!r} (expected one of {', '.join(TEMPLATES)})")
    text = resources.files("ademix_sweep.templates").joinpath(f"{task}.yaml").read_text(encoding="utf-8")
    if output is None or output == "-":
        typer.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise _bad_input(f"{output}: already exists (use --force to overwrite it)")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _bad_input(f"{output}: cannot write it ({exc.strerror})") from None
    typer.echo(f"wrote {output}; check it with: ademix-sweep validate {output}")


@app.command()
def schema() -> None:
    """Print the sweep file's JSON Schema (for editors: see docs/sweep-file.md)."""
    typer.echo(json.dumps(json_schema(), indent=2))
