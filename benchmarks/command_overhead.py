"""The engine's cost per command trial, against running the same script directly, side by side.

A training script (a fixed number of torch matrix products, reporting through the trial client
every tenth of its steps) is run ``--repeats`` times directly (``python script.py``, stand-alone)
and as ``--repeats`` trials of a one-worker sweep. Per trial: the trial's wall time in the
storage (start to complete: spawning the command, its reports and their answers, the storage
writes) against a direct run's wall time. Reported apart: the sweep's start-up and teardown (the
``run`` process, its worker starting, the studies), paid once per worker, not per trial.

    python benchmarks/command_overhead.py                 # about 20 s trials (the floor: <= 5 %)
    python benchmarks/command_overhead.py --seconds 5 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import optuna

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import torch
    from ademix_sweep import trial

    t = trial.current(fallback={"optimizer": "adamw", "steps": int(sys.argv[1]), "lr": 1e-3})
    torch.manual_seed(t.seed)
    torch.set_num_threads(1)
    model = torch.nn.Linear(256, 256)
    opt = t.optimizer(model)
    x = torch.randn(256, 256)
    every = max(1, t.steps // 10)
    for step in range(1, t.steps + 1):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            t.report(step, loss.item())
    """
)

SWEEP = """\
name: overhead
budget: {{trials: {repeats}}}
sampler: {{type: random}}
pruner: {{type: none}}
task:
  kind: command
  command: [{python}, script.py, "{{steps}}"]
  env: {{OMP_NUM_THREADS: "1"}}
train: {{steps: {steps}, eval_every: {every}}}
optimizers:
  adamw: {{lr: 1.0e-3}}
"""


def direct(folder: Path, steps: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "script.py", str(steps)], cwd=folder, check=True)
    return time.perf_counter() - started


def calibrate(folder: Path, seconds: float) -> int:
    """Steps for a direct run of about ``seconds``, start-up included (two runs: a line fit)."""
    small, large = 200, 1000
    t_small, t_large = direct(folder, small), direct(folder, large)
    per_step = max(1e-6, (t_large - t_small) / (large - small))
    start_up = max(0.0, t_small - small * per_step)
    return max(10, int((seconds - start_up) / per_step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one trial")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "script.py").write_text(SCRIPT)
        steps = calibrate(folder, args.seconds)
        (folder / "sweep.yaml").write_text(
            SWEEP.format(repeats=args.repeats, python=json.dumps(sys.executable), steps=steps, every=steps // 10)
        )
        direct_s = [direct(folder, steps) for _ in range(args.repeats)]
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ademix_sweep", "run", "sweep.yaml", "--workers", "1"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        total = time.perf_counter() - started
        study = optuna.load_study(storage=f"sqlite:///{folder / 'runs' / 'overhead.db'}", study_name="overhead.adamw")
        trial_s = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials]
    d, e = statistics.median(direct_s), statistics.median(trial_s)
    print(f"steps per trial           {steps} ({args.repeats} runs each way, medians)")
    print(f"direct run                {d:.2f} s  ({', '.join(f'{s:.2f}' for s in direct_s)})")
    print(f"as a trial                {e:.2f} s  ({', '.join(f'{s:.2f}' for s in trial_s)})")
    print(f"engine cost per trial     {e - d:+.2f} s = {100 * (e - d) / d:+.1f} % of a direct run (floor: <= 5 %)")
    print(f"sweep start-up+teardown   {total - sum(trial_s):.2f} s once per sweep (run, worker start, studies)")


if __name__ == "__main__":
    main()
