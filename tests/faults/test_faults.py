"""Breaking sweeps on purpose. After every fault, a resume (or the same run) ends with the exact
budget, every finished trial kept, nothing RUNNING or WAITING, and no trial run to the end twice.

Trials are Rosenbrock runs of a few thousand steps (about a second each), so that faults land
mid-trial; every test is bounded by the timeouts of the processes it starts.
"""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import time

import pytest
from databases import fresh_postgres_database
from optuna.trial import TrialState
from sweeprun import assert_sound, finished_trials, run, start, studies, sweep_file, wait_for_running, wait_gone

LONG = {"trials": 4, "steps": 3000, "eval_every": 200}


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"




def test_workers_sigkilled_at_random_points_three_times(tmp_path):
    sweep, url, rng = sweep_file(tmp_path, **LONG), _url(tmp_path), random.Random(7)
    killed = set()
    with start(sweep, "--workers", "2") as proc:
        for _ in range(3):
            victim = wait_for_running(url, proc, exclude=killed)
            time.sleep(rng.uniform(0.0, 0.6))  # somewhere in the trial: training, reporting, or between
            pid = victim.user_attrs["worker_pid"]
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert out.count("died (exit code -9)") == 3
    assert_sound(url, LONG["trials"])
    for study in studies(url).values():  # each killed trial failed, with one copy (same parameters) run again,
        for t in study.trials:  # or none if it was a copy killed a second time
            if t.state == TrialState.FAIL and t.user_attrs["worker_pid"] in killed:
                copies = [r for r in study.trials if r.system_attrs.get("retry_history", [None])[-1] == t.number]
                if t.user_attrs["failure"] == "worker died (exit code -9)":
                    if t.params:
                        assert [(r.params, r.state.is_finished()) for r in copies] == [(t.params, True)]
                    else:  # killed before it sampled: its one copy samples its own
                        assert len(copies) == 1 and copies[0].state.is_finished()
                else:
                    assert t.user_attrs["failure"].startswith("worker killed by SIGKILL while running this trial 2")
                    assert not copies and t.system_attrs["retry_history"]


def test_parent_sigkilled_then_resumed(tmp_path):
    sweep, url = sweep_file(tmp_path, **LONG), _url(tmp_path)
    with start(sweep, "--workers", "2") as proc:
        victim = wait_for_running(url, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone: its workers finish their trial and stop
        proc.wait(timeout=30)
        wait_gone(victim.user_attrs["worker_pid"])
    before = finished_trials(url)
    out = run(sweep, "--workers", "2", timeout=400)
    assert out.returncode == 0, out.stderr
    assert_sound(url, LONG["trials"], before)


def test_whole_run_sigkilled_then_resumed_without_waiting_for_the_heartbeat(tmp_path):
    sweep, url = sweep_file(tmp_path, **LONG), _url(tmp_path)
    with start(sweep, "--workers", "2") as proc:
        victim = wait_for_running(url, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # parent and workers at once, as a machine crash would
        proc.wait(timeout=30)
    wait_gone(victim.user_attrs["worker_pid"])
    assert any(t.state == TrialState.RUNNING for s in studies(url).values() for t in s.trials)
    before = finished_trials(url)
    started = time.monotonic()
    out = run(sweep, "--workers", "2", timeout=400)
    assert out.returncode == 0, out.stderr
    assert_sound(url, LONG["trials"], before)
    assert time.monotonic() - started < 60  # the dead workers' trials were failed at once (grace: 60 s)


def test_ctrl_c_twice_stops_at_once_and_resume_completes(tmp_path):
    # Evaluations 1000 steps apart (about 0.4 s): the second Ctrl-C lands while the first still waits
    # for them. A second Ctrl-C that lands as the process exits kills it by SIGINT, which a shell
    # reports as 130 too: both are accepted.
    sweep, url = sweep_file(tmp_path, trials=4, steps=4000, eval_every=1000), _url(tmp_path)
    with start(sweep, "--workers", "2") as proc:
        wait_for_running(url, proc)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "interrupted; run the same command again to resume" in err
    for study in studies(url).values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    before = finished_trials(url)
    out = run(sweep, "--workers", "2", timeout=400)
    assert out.returncode == 0, out.stderr
    assert_sound(url, LONG["trials"], before)


def _restart_postgres() -> None:
    version = glob.glob("/etc/postgresql/*")[0].rsplit("/", 1)[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=60)


def test_postgresql_restarted_mid_sweep(tmp_path):
    if not glob.glob("/etc/postgresql/*"):
        pytest.skip("no local PostgreSQL cluster to restart")
    with fresh_postgres_database() as url:
        sweep = sweep_file(tmp_path, **LONG)
        with start(sweep, "--workers", "2", "--storage", url) as proc:
            wait_for_running(url, proc)
            before = finished_trials(url)
            _restart_postgres()  # every connection drops; workers wait for the database and go on
            _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
        assert_sound(url, LONG["trials"], before)


RAISING_TASK = '''
import torch
from torch import nn


class Flaky:
    """Rosenbrock whose every third trial in a worker raises a KeyError at step 50: a user's bug."""

    unit = "steps"
    fingerprint = "flaky"

    def __init__(self):
        self.trials = self.batches = 0

    def make_model(self):
        self.trials, self.batches = self.trials + 1, 0
        model = nn.Module()
        model.xy = nn.Parameter(torch.tensor([-3.0, 5.0]))
        return model

    def train_batch(self, generator, batch_size):
        self.batches += 1
        if self.trials % 3 == 0 and self.batches == 50:
            raise KeyError("no such column")
        return None

    def val_batches(self, batch_size, count):
        return [None]

    def loss(self, model, batch):
        x, y = model.xy
        return (1 - x) ** 2 + 100 * (y - x**2) ** 2

    def batch_items(self, batch):
        return 1


def make_task(options):
    return Flaky()
'''


def test_custom_task_raising_fails_its_trials_and_the_sweep_goes_on(tmp_path):
    (tmp_path / "flaky_task.py").write_text(RAISING_TASK)
    sweep = sweep_file(tmp_path, trials=5, steps=300, eval_every=100)
    custom = 'task: {kind: custom, entrypoint: "flaky_task:make_task"}'
    sweep.write_text(sweep.read_text().replace("task: {kind: rosenbrock}", custom))
    out = run(sweep, "--workers", "2")
    assert out.returncode == 0, out.stderr
    url = _url(tmp_path)
    assert_sound(url, 5)
    failed = [t for s in studies(url).values() for t in s.trials if t.state == TrialState.FAIL]
    failed = [t for t in failed if t.user_attrs["failure"] != "surplus"]  # two workers raced for the last slot
    assert failed and all(t.user_attrs["failure"] == "KeyError: 'no such column'" for t in failed)
    assert "failed: KeyError: 'no such column'" in out.stdout


def test_a_second_run_with_a_changed_file_is_refused_while_the_first_goes_on(tmp_path):
    sweep, url = sweep_file(tmp_path, **LONG), _url(tmp_path)
    changed = sweep_file(tmp_path, **LONG, hi=0.5, name="changed.yaml")
    with start(sweep, "--workers", "2") as proc:
        wait_for_running(url, proc)
        other = run(changed, "--storage", url, timeout=120)
        _, err = proc.communicate(timeout=400)
    assert other.returncode == 2 and "different settings: optimizers.ademamix.lr" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1
    assert proc.returncode == 0, err
    assert_sound(url, LONG["trials"])


def test_a_replacement_worker_that_reads_a_changed_file_stops_the_sweep_cleanly(tmp_path):
    sweep, url = sweep_file(tmp_path, **LONG), _url(tmp_path)
    original = sweep.read_text()
    with start(sweep, "--workers", "2") as proc:
        victim = wait_for_running(url, proc)
        sweep.write_text(original.replace("uniform: [1, 8]", "uniform: [1, 9]"))  # edited mid-sweep
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)  # its replacement reads the new file
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "different settings: optimizers.ademamix.alpha" in err and len(err.strip().splitlines()) == 1
    for study in studies(url).values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    before = finished_trials(url)
    sweep.write_text(original)
    out = run(sweep, "--workers", "2", timeout=400)
    assert out.returncode == 0, out.stderr
    assert_sound(url, LONG["trials"], before)
