"""Re-queued trials: one that holds a study's last budget slot is run on resume (it used to
deadlock every worker), and a trial that kills its worker is retried once, then failed for good.

Each resume runs under a timeout: a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState
from sweeprun import (
    assert_requeued_once,
    assert_sound,
    fault_sweep,
    run,
    start,
    states,
    studies,
    sweep_file,
    wait_for_running,
)

from ademix_sweep.engine.trial_loop import choose

SLOW = ("--set", "task.step_pause_s=0.001")  # rosenbrock, 1000 steps: about 1.3 s a trial


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"


def _stuck(url: str) -> list[str]:
    """Studies whose one budget slot holds a re-queued copy of a failed trial."""
    return [opt for opt, s in studies(url).items() if states(s) == {"FAIL": 1, "WAITING": 1}]


def study(*trial_states: TrialState) -> optuna.Study:
    s = optuna.create_study()
    for state in trial_states:
        value = 1.0 if state == TrialState.COMPLETE else None
        s.add_trial(optuna.create_trial(state=state, value=value, params={}, distributions={}))
    return s


def test_choose_runs_a_waiting_trial_in_the_last_free_slot():
    fail, wait, done, running = TrialState.FAIL, TrialState.WAITING, TrialState.COMPLETE, TrialState.RUNNING
    assert choose({"a": study(fail, wait), "b": study(done)}, 1, 0) == "a"
    assert choose({"a": study(done, fail, wait), "b": study(done, done)}, 2, 1) == "a"
    assert choose({"a": study(running), "b": study(done)}, 1, 0) == "wait"  # the slot is being filled
    assert choose({"a": study(done), "b": study(done)}, 1, 0) is None


def test_ctrl_c_on_the_last_trials_then_resume_runs_the_requeued_ones(tmp_path):
    sweep, url = sweep_file(tmp_path, trials=1, steps=1000, eval_every=100), _url(tmp_path)
    with start(sweep, "--workers", "2", *SLOW) as proc:
        wait_for_running(url, proc)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; run the same command again to resume" in err
    for study in studies(url).values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
        assert all(t.user_attrs["failure"] == "interrupted" for t in study.trials if t.state == TrialState.FAIL)
    assert _stuck(url)  # the case that deadlocked
    out = run(sweep, "--workers", "2", *SLOW, timeout=120)
    assert out.returncode == 0, out.stderr
    assert_sound(url, 1)


@pytest.mark.load  # the same cause as the Ctrl-C case (choose), here through a worker's death
def test_worker_sigkilled_on_the_last_trial_is_replaced_and_runs_it(tmp_path):
    sweep, url = sweep_file(tmp_path, trials=1, steps=1000, eval_every=100), _url(tmp_path)
    with start(sweep, "--workers", "1", *SLOW) as proc:
        victim = wait_for_running(url, proc)
        os.kill(victim.user_attrs["worker_pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "died (exit code -9); re-queued 1 trial(s)" in out
    assert_sound(url, 1)


@pytest.mark.parametrize("ctrl_c", ["twice", pytest.param("once", marks=pytest.mark.load)])
def test_hung_trial_stopped_by_ctrl_c_is_run_on_resume(tmp_path, ctrl_c):
    # Once: the trial never reaches its next evaluation, so the stop grace (2 s here) ends it.
    sweep, url = fault_sweep(tmp_path, "hang", first=1, trials=1, steps=200, eval_every=100), _url(tmp_path)
    with start(sweep, "--stop-grace", "2") as proc:
        wait_for_running(url, proc, reported=False)
        time.sleep(1.0)  # in the hang: no evaluation will come
        os.killpg(proc.pid, signal.SIGINT)
        if ctrl_c == "twice":
            time.sleep(0.5)
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert _stuck(url)
    out = run(sweep, "--stop-grace", "2", timeout=120)  # the task hangs on its first trial only
    assert out.returncode == 0, out.stderr
    assert_sound(url, 1)


def test_a_trial_that_kills_its_worker_twice_is_failed_for_good_and_the_sweep_goes_on(tmp_path):
    sweep, url = fault_sweep(tmp_path, "kill", first=2, trials=2, steps=200, eval_every=100), _url(tmp_path)
    out = run(sweep, "--workers", "1", timeout=180)
    assert out.returncode == 0, out.stderr
    assert_sound(url, 2)
    trials = [t for s in studies(url).values() for t in s.trials]
    failed = sorted((t.number, t.user_attrs["failure"]) for t in trials if t.state == TrialState.FAIL)
    assert [reason for _, reason in failed] == [
        "worker died (exit code -9)",
        "worker killed by SIGKILL while running this trial 2 times: out of memory?",
    ]
    second = next(t for t in trials if t.number == failed[1][0])
    assert second.system_attrs["retry_history"] == [failed[0][0]]  # the copy of the first
    assert out.stdout.count("died (exit code -9)") == 2


def test_a_sweep_whose_workers_keep_dying_stops_with_one_line(tmp_path):
    sweep, url = fault_sweep(tmp_path, "kill", first=-1, trials=2, steps=200, eval_every=100), _url(tmp_path)
    out = run(sweep, "--workers", "1", timeout=180)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "workers stopped: worker 0: 3 trials in a row ended abnormally" in lines[0]
    assert "out of memory?" in lines[0]
    reasons = []
    for study in studies(url).values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]
        assert_requeued_once(study)
        reasons += [t.user_attrs.get("failure") for t in study.trials if t.state == TrialState.FAIL]
    assert "worker killed by SIGKILL while running this trial 2 times: out of memory?" in reasons
