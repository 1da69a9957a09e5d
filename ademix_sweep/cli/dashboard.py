"""``ademix-sweep dashboard``: the sweep's storage in optuna-dashboard, when it is installed."""

from __future__ import annotations

import os
import shutil
from typing import Annotated

import typer

from ademix_sweep.cli.base import Overrides, Storage, app, bad_input
from ademix_sweep.cli.results import File, Name, opened


@app.command()
def dashboard(
    file: File = None,
    storage: Storage = None,
    name: Name = None,
    overrides: Overrides = None,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8080,
) -> None:
    """Open the sweep's storage in optuna-dashboard (pip install -e ".[dashboard]")."""
    program = shutil.which("optuna-dashboard")
    if program is None:
        raise bad_input(
            'optuna-dashboard is not installed (pip install -e ".[dashboard]", or pip install optuna-dashboard)'
        )
    sweep = opened(file, storage, name, overrides)
    typer.echo(f"optuna-dashboard on http://{host}:{port} for sweep {sweep.name} (Ctrl-C to stop)", err=True)
    os.execv(program, [program, sweep.url, "--host", host, "--port", str(port)])
