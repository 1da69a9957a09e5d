"""Failing and re-queuing trials (retries.py): the death bound, the claim, and processes racing to
fail the same trials on PostgreSQL (two parents that saw one worker die, and the heartbeat's stale
check on a third process): exactly one re-queued copy per failed trial, and no exception."""

from __future__ import annotations

import multiprocessing as mp
import socket
import subprocess
import time
import traceback
from collections import Counter

import optuna
from databases import fresh_postgres_database
from optuna.trial import TrialState

from ademix_sweep.engine.retries import claim, death_reason, fail_trials_of, requeue, requeue_stale
from ademix_sweep.engine.storage import open_storage

ROUNDS, TRIALS = 3, 15


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_death_reasons_name_the_likely_cause():
    assert death_reason(-9, 1) == "worker died (exit code -9)"
    assert death_reason(-9, 2) == "worker killed by SIGKILL while running this trial 2 times: out of memory?"
    assert death_reason(-11, 2) == "worker killed by SIGSEGV while running this trial 2 times"
    assert death_reason(1, 2) == "worker died (exit code 1) while running this trial 2 times"


def test_a_failed_trial_is_claimed_and_requeued_once(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = optuna.create_study(storage=storage, study_name="s.adamw")
    study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)})
    tid = study.trials[0]._trial_id
    storage.set_trial_state_values(tid, TrialState.FAIL)
    failed = storage.get_trial(tid)
    assert requeue(study, failed) and not requeue(study, failed)
    assert not claim(storage, failed, study.study_name)
    copies = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(copies) == 1 and copies[0].params == failed.params
    assert copies[0].system_attrs["retry_history"] == [0] and copies[0].system_attrs["worker_deaths"] == 0


def _racer(url: str, role: str, pid: int, barrier, errors) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(url, heartbeat_s=1, grace_s=1, on_stale=requeue_stale)
    for r in range(ROUNDS):
        barrier.wait()
        try:
            if role == "stale":
                optuna.storages.fail_stale_trials(optuna.load_study(storage=storage, study_name=f"race{r}.adamw"))
            else:
                fail_trials_of(url, [f"race{r}.adamw"], pid, "worker died (exit code -9)", exitcode=-9)
        except Exception:
            errors.put(f"{role}: {traceback.format_exc()}")
        barrier.wait()


def test_processes_racing_to_fail_the_same_trials_requeue_each_once():
    ctx = mp.get_context("spawn")
    with fresh_postgres_database() as url:
        pid = _dead_pid()
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        racers = [ctx.Process(target=_racer, args=(url, role, pid, barrier, errors)) for role in ("a", "b", "stale")]
        for proc in racers:
            proc.start()
        storage = open_storage(url, heartbeat_s=1, grace_s=1)
        dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
        try:
            for r in range(ROUNDS):
                study = optuna.create_study(storage=storage, study_name=f"race{r}.adamw")
                for _ in range(TRIALS):  # RUNNING trials of a dead worker, and stale
                    trial = study.ask(dist)
                    trial.set_user_attr("worker_pid", pid)
                    trial.set_user_attr("worker_host", socket.gethostname())
                    storage.record_heartbeat(trial._trial_id)
                time.sleep(1.5)
                barrier.wait(timeout=120)  # go
                barrier.wait(timeout=120)  # all three have run
                trials = study.get_trials(deepcopy=False)
                failed = [t.number for t in trials if t.state == TrialState.FAIL]
                copies = Counter(t.system_attrs["retry_history"][-1] for t in trials if t.state == TrialState.WAITING)
                assert len(failed) == TRIALS and sorted(copies) == failed, (r, failed, copies)
                assert set(copies.values()) == {1}, (r, copies)
        finally:
            for proc in racers:
                proc.join(timeout=60)
                proc.kill()
            storage.engine.dispose()
        assert errors.empty(), errors.get()
        assert [proc.exitcode for proc in racers] == [0, 0, 0]
