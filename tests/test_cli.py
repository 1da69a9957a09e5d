"""The command line: --help, --version, and python -m."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
from typer.testing import CliRunner

from ademix_sweep import __version__
from ademix_sweep.cli import app


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ademix-sweep {__version__}"


def test_help_names_the_tool() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "AdEMAMix" in result.output and "--version" in result.output


def test_python_dash_m_and_console_script() -> None:
    out = subprocess.run([sys.executable, "-m", "ademix_sweep", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"ademix-sweep {__version__}"
    out = subprocess.run(["ademix-sweep", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_help_lists_commands_in_workflow_order_and_flags_without_a_type():
    import re

    runner = CliRunner()
    text = runner.invoke(app, ["--help"], env={"COLUMNS": "100"}).output
    listed = re.findall(r"^│ (\w+)\s{2,}", text.split("Commands")[1], flags=re.M)
    assert listed == [
        "init", "validate", "run", "status", "compare", "best", "plot", "dashboard", "export", "train", "schema",
    ]  # fmt: skip
    assert "<bool>" not in text
    compare = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "100"}).output
    assert re.search(r"--json\s+Print the result", compare) and "<bool>" not in compare
    assert re.search(r"--seeds\s+<int", compare)  # options that take a value still show their type


def test_dashboard_starts_optuna_dashboard_on_the_sweeps_storage_or_says_how_to_get_it(tmp_path):
    rosen = str(Path(__file__).resolve().parent.parent / "sweeps" / "rosenbrock.yaml")
    env = {**os.environ, "PATH": str(tmp_path)}  # no optuna-dashboard on this PATH
    missing = subprocess.run([sys.executable, "-m", "ademix_sweep", "dashboard", rosen], capture_output=True,
                             text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.strip() == (
        'optuna-dashboard is not installed (pip install -e ".[dashboard]", or pip install optuna-dashboard)'
    )
    fake = tmp_path / "optuna-dashboard"  # stands in for the real one: prints what it was given
    fake.write_text('#!/bin/sh\necho "dashboard $*"\n')
    fake.chmod(0o755)
    runs = tmp_path / "runs"
    runs.mkdir()
    optuna.create_study(storage=f"sqlite:///{runs / 'rosenbrock.db'}", study_name="rosenbrock.adamw")
    started = subprocess.run([sys.executable, "-m", "ademix_sweep", "dashboard", rosen, "--port", "8123"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "dashboard sqlite:///runs/rosenbrock.db --host 127.0.0.1 --port 8123"
