"""CPU sweeps: one worker with every thread, or one worker per core with one thread each? Trials
per hour of the shipped lm_small sweep, both shapes side by side on this machine (what
``--workers auto`` chooses from).

Each shape runs the same small sweep (random sampler, no pruning, so every trial trains to the
end) from scratch: ``--trials`` finished trials per optimizer of ``--steps`` steps.

    python benchmarks/cpu_workers.py                      # 4 trials per optimizer, 500 steps
    python benchmarks/cpu_workers.py --trials 2 --steps 300
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = Path(__file__).resolve().parent.parent / "sweeps" / "lm_small.yaml"


def trials_per_hour(folder: Path, workers: int, trials: int, steps: int) -> tuple[float, float]:
    """(trials per hour, wall seconds) of a fresh sweep run with ``workers`` CPU workers."""
    name = f"shape{workers}"
    sets = [f"name={name}", f"budget.trials={trials}", "sampler.type=random", "pruner.type=none"]
    cmd = [sys.executable, "-m", "ademix_sweep", "run", str(SWEEP), "--workers", str(workers), "--steps", str(steps)]
    for override in sets:
        cmd += ["--set", override]
    started = time.perf_counter()
    subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    wall = time.perf_counter() - started
    return 2 * trials / wall * 3600, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4, help="finished trials per optimizer, each shape")
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        shapes = [(1, cores), (cores, 1)]
        results = {shape: trials_per_hour(Path(tmp), shape[0], args.trials, args.steps) for shape in shapes}
    print(f"lm_small, {args.steps} steps a trial, {2 * args.trials} trials a shape, {cores} cores")
    for (workers, threads), (rate, wall) in results.items():
        print(f"  {workers} worker(s) x {threads} thread(s): {rate:6.1f} trials/hour ({wall:.1f} s)")
    (one, _), (many, _) = results[shapes[0]], results[shapes[1]]
    print(f"  {cores} workers x 1 thread / 1 worker x {cores} threads: {many / one:.2f}x")


if __name__ == "__main__":
    main()
