"""Load: many local workers on short trials (about 0.1 s, mostly waiting as a GPU-bound trial
would) until hundreds of trials: no "database is locked" on SQLite, exact budgets everywhere."""

from __future__ import annotations

import time

import pytest
from databases import fresh_postgres_database
from optuna.trial import TrialState
from sweeprun import assert_sound, run, studies, sweep_file

pytestmark = pytest.mark.load
PADDED = "task: {kind: rosenbrock, step_pause_s: 0.005}"


def _sweep(folder, trials: int):
    """20 Rosenbrock steps padded to 5 ms each: a trial of about 0.1 s, mostly waiting."""
    path = sweep_file(folder, trials=trials, steps=20, eval_every=10)
    path.write_text(path.read_text().replace("task: {kind: rosenbrock}", PADDED))
    return path


def _no_lock_failures(url: str) -> None:
    for study in studies(url).values():
        failed = [t for t in study.trials if t.state == TrialState.FAIL and t.user_attrs.get("failure") != "surplus"]
        assert not failed, [t.user_attrs.get("failure") for t in failed]


def test_8_workers_on_sqlite_400_trials(tmp_path, record_property):
    sweep, url = _sweep(tmp_path, 200), f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"
    began = time.monotonic()
    out = run(sweep, "--workers", "8", "--force", timeout=420)  # mostly waiting: more workers than cores
    assert out.returncode == 0, out.stderr
    assert "database is locked" not in out.stdout + out.stderr
    assert_sound(url, 200)
    _no_lock_failures(url)
    record_property("sqlite_8_workers_400_trials_s", round(time.monotonic() - began, 1))


def test_16_workers_on_postgresql_800_trials(tmp_path, record_property):
    with fresh_postgres_database() as url:
        sweep = _sweep(tmp_path, 400)
        began = time.monotonic()
        out = run(sweep, "--workers", "16", "--force", "--storage", url, timeout=560)
        assert out.returncode == 0, out.stderr
        assert_sound(url, 400)
        _no_lock_failures(url)
        record_property("postgresql_16_workers_800_trials_s", round(time.monotonic() - began, 1))
