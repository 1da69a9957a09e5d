"""Command trials under faults: no command (nor a child it started) outlives its trial, whatever
ends it; the trial is re-queued or failed as a built-in task's would be."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from commandrun import alive, command_sweep, wait_all_gone
from optuna.trial import TrialState
from sweeprun import assert_sound, run, start, states, studies, wait_for_running

ONE = ("adamw",)


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'cmd.db'}"


def _wait_for_command(url, proc, pids, optimizers=("ademamix", "adamw")):
    trial = wait_for_running(url, proc, name="cmd", optimizers=optimizers)
    assert pids.exists()
    return trial


def test_a_worker_killed_while_its_command_runs_takes_the_command_and_its_child_along(tmp_path):
    pids = tmp_path / "pids"
    sweep = command_sweep(tmp_path, "--mode", "spawn", "--pause", "0.3", "--pids", str(pids), trials=2, both=False)
    url = _url(tmp_path)
    with start(sweep, "--workers", "1") as proc:
        trial = _wait_for_command(url, proc, pids, ONE)
        first = [int(pid) for pid in pids.read_text().split()]
        os.kill(trial.user_attrs["worker_pid"], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert [pid for pid in first if alive(pid)] == []  # the command and its sleeping child are gone
    assert wait_all_gone(pids, timeout=5) == []
    assert_sound(url, 2, name="cmd", optimizers=ONE)
    failed = [t for t in studies(url, "cmd", ONE)["adamw"].trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [trial.number] and "died (exit code -9)" in out


def test_ctrl_c_once_stops_the_command_at_its_next_report_and_requeues_the_trial(tmp_path):
    pids = tmp_path / "pids"
    sweep = command_sweep(tmp_path, "--client", "--mode", "spawn", "--pause", "0.5", "--pids", str(pids), trials=1)
    url = _url(tmp_path)
    with start(sweep, "--workers", "1") as proc:
        trial = _wait_for_command(url, proc, pids)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the parent and its workers
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert wait_all_gone(pids, timeout=5) == []
    study = next(s for s in studies(url, "cmd").values() if trial.number in [t.number for t in s.trials])
    assert states(study) == {"FAIL": 1, "WAITING": 1}
    stopped = study.trials[trial.number]
    assert stopped.user_attrs["failure"] == "interrupted"
    assert "pruned cleanly at step" in open(stopped.user_attrs["log"].split(":", 1)[1]).read()  # the client exited


def test_ctrl_c_twice_kills_the_commands_at_once_and_leaves_nothing_running(tmp_path):
    pids = tmp_path / "pids"
    sweep = command_sweep(tmp_path, "--mode", "hang", "--pids", str(pids), trials=2)
    url = _url(tmp_path)
    with start(sweep, "--workers", "2") as proc:
        _wait_for_command(url, proc, pids)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)  # two signals sent at once may arrive as one
        os.killpg(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("a second Ctrl-C did not stop the run") from None
    assert proc.returncode == 130, err
    assert wait_all_gone(pids, timeout=5) == []
    for study in studies(url, "cmd").values():
        assert not [t for t in study.trials if t.state == TrialState.RUNNING]


def test_a_hanging_command_is_killed_by_its_timeout_and_failed_for_good(tmp_path):
    pids = tmp_path / "pids"
    sweep = command_sweep(
        tmp_path, "--modes", "hang", "--pids", str(pids), trials=2, both=False, task_extra="  timeout: 3s\n"
    )
    url = _url(tmp_path)
    out = run(sweep, "--workers", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    assert wait_all_gone(pids, timeout=5) == []
    assert_sound(url, 2, name="cmd", optimizers=ONE)
    failed = [t for t in studies(url, "cmd", ONE)["adamw"].trials if t.state == TrialState.FAIL]
    assert [t.user_attrs["failure"] for t in failed] == ["timeout: still running after train.timeout (3 s)"]
