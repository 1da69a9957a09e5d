"""How long a sweep has left: the mean duration of its finished trials times the trials still to
run, plus what its running trials likely have left, shared among the workers. "Estimating"
until MIN_FINISHED trials have finished (pruned trials are shorter, and are counted as they come:
the estimate follows the sweep's own mix)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime

import optuna
from optuna.trial import TrialState

from ademix_sweep.results.read import duration_s

MIN_FINISHED = 3
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Eta:
    seconds: float | None  # None: still estimating, nothing left, or no worker running
    trial_s: float | None  # a finished trial's mean duration (None: still estimating)
    finished: int  # the finished trials the estimate rests on
    remaining: int  # trials not started yet (re-queued ones included)
    running: int
    workers: int
    needed: int = MIN_FINISHED  # finished trials before an estimate is given


def estimate(durations: list[float], remaining: int, running_elapsed: list[float], workers: int) -> float | None:
    """Seconds left: ``remaining`` trials of the mean finished duration, and each running trial's
    mean minus its elapsed time (at least 0), over ``workers``; None under MIN_FINISHED durations."""
    if len(durations) < MIN_FINISHED:
        return None
    mean = statistics.fmean(durations)
    work = remaining * mean + sum(max(0.0, mean - elapsed) for elapsed in running_elapsed)
    return work / max(1, workers)


def sweep_eta(
    studies: dict[str, optuna.Study], budget: int | None, workers: int | None = None, now: datetime | None = None
) -> Eta:
    """The sweep's time left; ``workers`` defaults to the trials running now (``status``)."""
    durations, elapsed, remaining = [], [], 0
    for study in studies.values():
        done = study.get_trials(deepcopy=False, states=FINISHED)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        durations += [d for t in done if (d := duration_s(t)) is not None]
        elapsed += [d for t in running if (d := duration_s(t, now)) is not None]
        if budget is not None:
            remaining += max(0, budget - len(done) - len(running))
    count = workers if workers is not None else len(elapsed)
    seconds = estimate(durations, remaining, elapsed, count) if (remaining or elapsed) and count else None
    trial_s = statistics.fmean(durations) if len(durations) >= MIN_FINISHED else None
    return Eta(seconds, trial_s, len(durations), remaining, len(elapsed), count)
