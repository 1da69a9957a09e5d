"""The Typer app: thin commands that parse, call the layers below, and map errors to exit codes."""

from __future__ import annotations

import typer

from ademix_sweep import __version__

app = typer.Typer(
    name="ademix-sweep",
    help="Tune and compare the AdEMAMix optimizer against AdamW.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ademix-sweep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Tune and compare the AdEMAMix optimizer (arXiv 2409.03137) against AdamW."""
