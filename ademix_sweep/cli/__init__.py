"""The Typer app: thin commands that parse, call the layers below, and map errors to exit codes.

``sweep`` holds validate, init, schema, train and run; ``results`` holds status, best, compare,
export and plot; ``dashboard`` opens optuna-dashboard.
"""

from ademix_sweep.cli import dashboard, results, sweep  # noqa: F401  (each registers its commands)
from ademix_sweep.cli.base import app

__all__ = ["app"]
