"""Stopping trials and sweeps from outside: train.timeout, SIGTERM as Slurm and Kubernetes send
it, a parent that dies, and a worker count the machine cannot hold."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from optuna.trial import TrialState
from sweeprun import assert_sound, fault_sweep, run, start, states, studies, sweep_file, wait_for_running, wait_gone

from ademix_sweep.engine.contract import STOP_GRACE_S, Slot
from ademix_sweep.engine.slots import WORKER_MEMORY_BYTES, check_capacity


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"




def test_a_trial_past_train_timeout_is_failed_and_not_requeued(tmp_path):
    sweep, url = fault_sweep(tmp_path, "hang", first=1, trials=2, steps=200, eval_every=100), _url(tmp_path)
    out = run(sweep, "--set", "train.timeout=3s", timeout=180)
    assert out.returncode == 0, out.stderr
    assert_sound(url, 2)
    trials = [t for s in studies(url).values() for t in s.trials]
    timed_out = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["failure"] for t in timed_out] == ["timeout: still running after train.timeout (3 s)"]
    assert not [t for t in trials if t.system_attrs.get("failed_trial") == timed_out[0].number]  # not re-queued
    assert "stopped after train.timeout (3 s): failed, not re-queued" in out.stdout


def test_sigterm_as_slurm_sends_it_leaves_nothing_running_when_evaluations_are_60_s_apart(tmp_path):
    # Slurm: SIGTERM to every process of the job, SIGKILL 30 s later. Steps of 10 s, the first
    # evaluation at step 6 (60 s): the trial cannot reach it, so the stop grace ends it (5 s here
    # to keep the suite short; the default, 20 s, also ends it before Slurm's SIGKILL).
    sweep, url = sweep_file(tmp_path, trials=1, steps=6, eval_every=6), _url(tmp_path)
    assert STOP_GRACE_S < 30
    with start(sweep, "--set", "task.step_pause_s=10", "--stop-grace", "5") as proc:
        trial = wait_for_running(url, proc, reported=False)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # what Slurm does next
            _, err = proc.communicate()
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM); run the same command again to resume" in err
    wait_gone(trial.user_attrs["worker_pid"], timeout=5)
    study = next(s for s in studies(url).values() if any(t.number == trial.number for t in s.trials))
    assert states(study) == {"FAIL": 1, "WAITING": 1}
    assert study.trials[0].user_attrs["failure"] == "interrupted"


def test_no_worker_outlives_a_parent_killed_while_its_trial_hangs(tmp_path):
    sweep, url = fault_sweep(tmp_path, "hang", first=-1, trials=1, steps=200, eval_every=100), _url(tmp_path)
    with start(sweep, "--stop-grace", "2", "--workers", "1") as proc:
        trial = wait_for_running(url, proc, reported=False)
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as an out-of-memory kill would
        proc.wait(timeout=10)
        wait_gone(trial.user_attrs["worker_pid"], timeout=30)
    for study in studies(url).values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    failed = [t for s in studies(url).values() for t in s.trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["failure"] for t in failed] == ["interrupted"]  # and re-queued for the next run
    assert sum(states(s).get("WAITING", 0) for s in studies(url).values()) == 1


def test_a_worker_count_the_machine_cannot_hold_is_refused(tmp_path):
    out = run(sweep_file(tmp_path), "--workers", "1000", timeout=60)
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "1000 workers need 1000 cores" in out.stderr and "or --force" in out.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything started


def test_capacity_counts_cores_and_memory():
    slots = [Slot(rank, "cpu", None, 1) for rank in range(4)]
    check_capacity(slots, cores=4, available_bytes=4 * WORKER_MEMORY_BYTES)
    with pytest.raises(ValueError, match=r"4 workers need 4 cores, this machine has 2 \(expected at most 2 workers"):
        check_capacity(slots, cores=2, available_bytes=None)
    with pytest.raises(ValueError, match=r"memory .* \(expected at most 3 workers here, or --force\)"):
        check_capacity(slots, cores=8, available_bytes=3 * WORKER_MEMORY_BYTES + 1)
