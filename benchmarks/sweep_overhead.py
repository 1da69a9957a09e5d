"""Engine overhead: the share of worker wall time not spent inside train().

Runs `ademix-sweep run` as a user would, on a task padded to a fixed trial duration (the paper's
Rosenbrock toy with `step_pause_s`, sleeping in each step so a trial takes --trial-seconds), for SQLite and the local
PostgreSQL, with 1 and 2 workers, each worker running --trials-per-worker trials. Three figures:

- steady: per trial, everything between one train() and the next (sampling, the budget checks,
  storage round trips, recording results) as a share of the trial's whole time, from the trials'
  own start and end times in the database;
- start-up: seconds from the command's start to the first trial (Python and torch imports in the
  parent and in each spawned worker, task and study set-up), plus the seconds after the last trial;
- whole run: 1 - sum(train() wall time) / (workers x wall time of the command), everything counted.

Floor: at most 5% for 10 s trials (steady; the whole-run figure approaches it as trials per worker
grow, since start-up is paid once per run).

    python benchmarks/sweep_overhead.py [--trial-seconds 10] [--trials-per-worker 6] [--no-postgres]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import optuna

SWEEP = """\
name: overhead
budget: {{trials: {trials}}}
sampler: {{type: random}}
pruner: {{type: none}}
task: {{kind: rosenbrock, step_pause_s: {pause}}}
train: {{steps: {steps}, eval_every: {eval_every}, schedule: constant, grad_clip: null}}
optimizers:
  adamw: {{lr: {{log_uniform: [1.0e-3, 1.0e-1]}}}}
  ademamix: {{lr: {{log_uniform: [1.0e-3, 1.0e-1]}}}}
"""


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"ademix_bench_{uuid.uuid4().hex[:8]}"
    admin = "host=127.0.0.1 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(folder: Path, storage: str, workers: int, sweep_text: str) -> dict[str, float]:
    sweep = folder / "overhead.yaml"
    sweep.write_text(sweep_text)
    began = datetime.now()
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ademix_sweep", "run", str(sweep), "--storage", storage, "--workers", str(workers)],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    trials = []
    for optimizer in ("adamw", "ademamix"):
        study = optuna.load_study(storage=storage, study_name=f"overhead.{optimizer}")
        trials += [t for t in study.get_trials(deepcopy=False) if "wall_time_s" in t.user_attrs]
    inside = sum(t.user_attrs["wall_time_s"] for t in trials)
    spans = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    gaps = 0.0
    for pid in {t.user_attrs["worker_pid"] for t in trials}:
        mine = sorted((t for t in trials if t.user_attrs["worker_pid"] == pid), key=lambda t: t.datetime_start)
        gaps += sum((b.datetime_start - a.datetime_complete).total_seconds() for a, b in itertools.pairwise(mine))
    first = min(t.datetime_start for t in trials)
    last = max(t.datetime_complete for t in trials)
    return {
        "trials": len(trials),
        "wall": wall,
        "steady": 1 - inside / (spans + gaps),
        "startup": (first - began).total_seconds(),
        "after": wall - (last - began).total_seconds(),
        "whole": 1 - inside / (workers * wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trial-seconds", type=float, default=10.0)
    parser.add_argument("--trials-per-worker", type=int, default=6)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    steps = 50
    print(
        f"{args.trial_seconds:g} s trials, {args.trials_per_worker} trials per worker; overhead = share of "
        "worker wall time outside train()"
    )
    for backend in ("sqlite", "postgresql"):
        if backend == "postgresql" and args.no_postgres:
            continue
        for workers in (1, 2):
            trials = args.trials_per_worker * workers // 2  # per optimizer
            text = SWEEP.format(trials=trials, pause=args.trial_seconds / steps, steps=steps, eval_every=25)
            with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
                folder = Path(tmp)
                storage = (
                    f"sqlite:///{folder / 'o.db'}" if backend == "sqlite" else stack.enter_context(postgres_database())
                )
                m = measure(folder, storage, workers, text)
            print(
                f"  {backend:10s} {workers} worker(s): {m['trials']} trials in {m['wall']:5.1f} s; steady "
                f"{m['steady']:6.2%} (floor 5%); start-up {m['startup']:4.1f} s + {m['after']:3.1f} s after; "
                f"whole run {m['whole']:6.2%}"
            )


if __name__ == "__main__":
    main()
