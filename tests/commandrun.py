"""Command-trial sweeps for the tests: tests/commands/toy_train.py as the training command."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

TOY = Path(__file__).parent / "commands" / "toy_train.py"

SWEEP = """\
name: cmd
seed: 0
budget: {{trials: {trials}}}
sampler: {{type: random}}
pruner: {{type: {pruner}}}
task:
  kind: command
  command: {command}
  env: {{TOY_ENV: from-the-sweep-file}}
{task_extra}train: {{steps: {steps}, eval_every: {eval_every}}}
optimizers:
{optimizers}"""
BOTH = """  adamw: {lr: {log_uniform: [1.0e-4, 1.0]}}
  ademamix: {lr: {log_uniform: [1.0e-4, 1.0]}, beta3: 0.999}
"""
ADAMW = """  adamw: {lr: {log_uniform: [1.0e-4, 1.0]}}
"""


def command_sweep(
    tmp_path: Path,
    *args: str,
    trials: int = 3,
    steps: int = 40,
    eval_every: int = 10,
    pruner: str = "none",
    both: bool = True,
    task_extra: str = "",
) -> Path:
    """A sweep file in ``tmp_path`` whose task runs toy_train.py with ``args`` (and --lr {lr})."""
    shutil.copy(TOY, tmp_path / "toy_train.py")
    command = json.dumps([sys.executable, "toy_train.py", "--lr", "{lr}", *args])
    path = tmp_path / "cmd.yaml"
    path.write_text(
        SWEEP.format(
            trials=trials,
            pruner=pruner,
            command=command,
            task_extra=task_extra,
            steps=steps,
            eval_every=eval_every,
            optimizers=BOTH if both else ADAMW,
        )
    )
    return path


def toy_loss(lr: float, step: int) -> float:
    """What toy_train.py reports at ``step``."""
    import math

    return 1.0 + (math.log10(lr) + 2.0) ** 2 + 3.0 / step


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def wait_all_gone(pids_file: Path, timeout: float = 15.0) -> list[int]:
    """The pids listed in ``pids_file`` still alive after ``timeout`` (an empty list: none)."""
    lines = pids_file.read_text().splitlines() if pids_file.exists() else []
    pids = [int(line.split()[0]) for line in lines if line.strip()]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if alive(pid)]
