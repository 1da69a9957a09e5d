"""Running `ademix-sweep run` in real processes, and checking what it left in the storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import optuna
from optuna.trial import TrialState

BOTH = ("ademamix", "adamw")
SWEEP = """\
name: rb
seed: 0
budget: {{trials: {trials}}}
sampler: {{type: random}}
pruner: {{type: none}}
task: {{kind: rosenbrock}}
train: {{steps: {steps}, eval_every: {eval_every}, schedule: constant, grad_clip: null}}
optimizers:
  adamw: {{lr: {{log_uniform: [{lo}, {hi}]}}, weight_decay: 0.0}}
  ademamix:
    lr: {{log_uniform: [{lo}, {hi}]}}
    beta3: {{half_life: [20, 200]}}
    alpha: {{uniform: [1, 8]}}
    weight_decay: 0.0
"""


def sweep_file(
    tmp_path: Path,
    trials: int = 4,
    steps: int = 200,
    eval_every: int = 100,
    lo: float = 1e-3,
    hi: float = 1e-1,
    name: str = "rb.yaml",
) -> Path:
    path = tmp_path / name
    path.write_text(SWEEP.format(trials=trials, steps=steps, eval_every=eval_every, lo=lo, hi=hi))
    return path


def fault_sweep(tmp_path: Path, fault: str, first: int, pause_s: float = 0.0, **kw: float) -> Path:
    """A sweep of ``tests/fault_task.py``: its first ``first`` trials (-1: all) SIGKILL their
    worker ("kill") or stop making progress ("hang")."""
    (tmp_path / "fault_task.py").write_text((Path(__file__).parent / "fault_task.py").read_text())
    sweep = sweep_file(tmp_path, **kw)
    options = f'{{fault: {fault}, first: {first}, counter: "{tmp_path / "trials.count"}", pause_s: {pause_s}}}'
    task = f'task: {{kind: custom, entrypoint: "fault_task:make_task", options: {options}}}'
    sweep.write_text(sweep.read_text().replace("task: {kind: rosenbrock}", task))
    return sweep


def run(sweep: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ademix_sweep", "run", str(sweep), *args],
        cwd=sweep.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def start(sweep: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`run` in its own process group; whatever happens in the test, nothing of it outlives the test."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ademix_sweep", "run", str(sweep), *args],
        cwd=sweep.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def studies(url: str, name: str = "rb", optimizers: tuple[str, ...] = BOTH) -> dict[str, optuna.Study]:
    return {opt: optuna.load_study(storage=url, study_name=f"{name}.{opt}") for opt in optimizers}


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def assert_exact(url: str, budget: int, name: str = "rb", optimizers: tuple[str, ...] = BOTH) -> None:
    for opt, study in studies(url, name, optimizers).items():
        s = states(study)
        assert s.get("COMPLETE", 0) + s.get("PRUNED", 0) == budget, (opt, s)
        assert not s.get("RUNNING") and not s.get("WAITING"), (opt, s)


def wait_for_running(
    url: str,
    proc: subprocess.Popen[str],
    timeout: float = 90,
    exclude: set[int] | frozenset[int] = frozenset(),
    reported: bool = True,
    name: str = "rb",
    optimizers: tuple[str, ...] = BOTH,
) -> optuna.trial.FrozenTrial:
    """A RUNNING trial that already records its worker's pid (the worker is in train()), of a
    worker not in ``exclude``; with ``reported``, one that has reported an evaluation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early ({proc.returncode}): {proc.communicate()}")
        if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
            time.sleep(0.3)  # let the run create it: do not race it to make Optuna's tables
            continue
        try:
            for study in studies(url, name, optimizers).values():
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    pid = t.user_attrs.get("worker_pid")
                    if pid is not None and pid not in exclude and (t.intermediate_values or not reported):
                        return t
        except Exception:  # the database or the studies do not exist yet
            pass
        time.sleep(0.3)
    raise AssertionError("no trial started running")


def finished_trials(
    url: str, name: str = "rb", optimizers: tuple[str, ...] = BOTH
) -> set[tuple[str, int, float | None]]:
    """(study, number, value) of every COMPLETE or PRUNED trial."""
    return {
        (opt, t.number, t.value)
        for opt, study in studies(url, name, optimizers).items()
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    }


def assert_sound(
    url: str, budget: int, before: set | frozenset = frozenset(), name: str = "rb", optimizers: tuple[str, ...] = BOTH
) -> None:
    """The guarantees after any fault and a resume: the exact budget, nothing RUNNING or WAITING,
    every trial finished before the fault still there, no failed trial re-queued more than once,
    and none run to the end twice."""
    assert_exact(url, budget, name, optimizers)
    after = finished_trials(url, name, optimizers)
    assert before <= after, before - after
    for opt, study in studies(url, name, optimizers).items():
        trials = study.get_trials(deepcopy=False)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], opt
        assert_requeued_once(study)
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        retried = Counter(t.system_attrs["failed_trial"] for t in done if "failed_trial" in t.system_attrs)
        assert all(n == 1 for n in retried.values()), (opt, retried)


def assert_requeued_once(study: optuna.Study) -> None:
    """At most one re-queued copy of any failed trial (a copy names its parent last in retry_history)."""
    parents = Counter(t.system_attrs["retry_history"][-1] for t in study.trials if t.system_attrs.get("retry_history"))
    assert all(n == 1 for n in parents.values()), (study.study_name, parents)


def wait_gone(pid: int, timeout: float = 90) -> None:
    """Wait for process ``pid`` to end; AssertionError if it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} still alive after {timeout} s")
