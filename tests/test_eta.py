"""Time left: the arithmetic, and what status and the live view say."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from ademix_sweep.cli.report_results import eta_line
from ademix_sweep.results.eta import Eta, estimate, sweep_eta

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_estimate_is_the_mean_trial_times_the_work_left_over_the_workers():
    # mean 60 s; 5 trials to start (300 s) + running ones with 20 s and 0 s of their mean left (elapsed 40, 90)
    assert estimate([30.0, 60.0, 90.0], remaining=5, running_elapsed=[40.0, 90.0], workers=2) == pytest.approx(160.0)
    assert estimate([30.0, 60.0], remaining=5, running_elapsed=[], workers=2) is None  # too few finished trials
    assert estimate([10.0] * 4, remaining=3, running_elapsed=[], workers=0) == pytest.approx(30.0)  # at least one


def test_what_the_user_reads():
    assert eta_line(Eta(160.0, 60.0, 3, 5, 2, 2)) == (
        "time left: about 2m40s (5 to start, 2 running on 2 worker(s); 1m00s a trial over 3 finished)"
    )
    assert eta_line(Eta(None, None, 1, 7, 1, 1)) == "time left: estimating (after 3 finished trials; 1 so far)"
    idle = "time left: not running; 6 trial(s) to go, about 3m00s of trial time"
    assert eta_line(Eta(None, 30.0, 4, 6, 0, 0)) == idle
    assert eta_line(Eta(None, 30.0, 16, 0, 0, 0)) == ""  # done


def test_a_sweeps_time_left_counts_its_budget_running_and_requeued_trials():
    study = optuna.create_study()
    for value in (1.0, 2.0, 3.0):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.ask()  # running
    study.enqueue_trial({})  # re-queued: still to run
    eta = sweep_eta({"adamw": study}, budget=10, workers=2)
    assert (eta.finished, eta.running, eta.remaining, eta.workers) == (4, 1, 5, 2)
    assert eta.seconds is not None and eta.trial_s is not None
    assert sweep_eta({"adamw": study}, budget=10).workers == 1  # status: the workers running now
