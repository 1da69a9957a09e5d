"""The sweep engine: `ademix-sweep run` with real worker processes on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from databases import fresh_postgres_database
from sweeprun import assert_exact, run, start, studies, sweep_file

from ademix_sweep.engine.objective import FINISHED


def test_two_workers_end_with_exact_budgets_and_a_resume_runs_only_the_difference(tmp_path):
    sweep = sweep_file(tmp_path, trials=5)
    url = f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"  # the default storage, relative to the working directory
    out = run(sweep, "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert_exact(url, 5)
    assert "sweep summary" in out.stdout and "5/5" in out.stdout
    ranks = {t.user_attrs["worker_rank"] for s in studies(url).values() for t in s.trials if t.state.is_finished()}
    assert ranks == {0, 1}
    first = {opt: {t.number for t in s.trials} for opt, s in studies(url).items()}
    out = run(sweep, "--workers", "2", "--trials", "8")
    assert out.returncode == 0, out.stderr
    assert_exact(url, 8)
    for opt, study in studies(url).items():
        new = [
            t
            for t in study.trials
            if t.number not in first[opt] and t.state.is_finished() and t.user_attrs.get("failure") != "surplus"
        ]
        assert len(new) == 3, opt  # only the difference ran
    again = run(sweep, "--trials", "8")  # nothing left to do
    assert again.returncode == 0 and "8/8" in again.stdout and "started" not in again.stdout


def test_trial_records_curves_throughput_and_worker(tmp_path):
    sweep = sweep_file(tmp_path, trials=2)
    assert run(sweep).returncode == 0
    trial = studies(f"sqlite:///{tmp_path / 'runs' / 'rb.db'}")["ademamix"].best_trial
    assert set(trial.intermediate_values) == {100, 200}
    assert trial.value == trial.intermediate_values[200]
    attrs = trial.user_attrs
    assert attrs["device"] == "cpu" and attrs["worker_rank"] == 0 and attrs["items_per_s"] > 0
    assert len(attrs["train_curve"]) == 20 and attrs["wall_time_s"] > 0 and attrs["failure"] is None
    assert 0.9 < attrs["beta3"] < 1 and set(trial.params) == {"lr", "beta3_half_life", "alpha"}


def test_changed_search_space_is_refused_on_resume(tmp_path):
    sweep = sweep_file(tmp_path, trials=1)
    assert run(sweep).returncode == 0
    out = run(sweep, "--set", "optimizers.ademamix.alpha=3", "--set", "train.steps=300")
    assert out.returncode == 2
    assert "different settings: optimizers.ademamix.alpha, train.steps" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_always_diverging_sweep_ends_cleanly_with_its_divergence_rate(tmp_path):
    sweep = sweep_file(tmp_path, trials=3, lo=5.0, hi=20.0)
    out = run(sweep, "--set", "train.divergence_factor=2")
    assert out.returncode == 0, out.stderr
    url = f"sqlite:///{tmp_path / 'runs' / 'rb.db'}"
    assert_exact(url, 3)
    for study in studies(url).values():
        for t in study.trials:
            assert t.value == math.inf and t.user_attrs["failure"].startswith("diverged: loss")
            assert t.user_attrs["diverged_step"] >= 1
    assert "3 (100%)" in out.stdout and "diverged at step" in out.stdout






def test_two_run_processes_on_postgresql_share_the_budget():
    with fresh_postgres_database() as url:
        folder = Path(os.environ.get("TMPDIR", "/tmp"))
        sweep = sweep_file(folder, trials=6, steps=1000, eval_every=500, name=f"pg_{os.getpid()}.yaml")
        one = ("--storage", url, "--workers", "1")  # two machines, one worker each
        with start(sweep, *one) as first, start(sweep, *one) as second:
            outs = [p.communicate(timeout=400) for p in (first, second)]
        assert [first.returncode, second.returncode] == [0, 0], [e for _, e in outs]
        assert_exact(url, 6)
        trials = [t for s in studies(url).values() for t in s.trials]
        assert all("worker_pid" in t.user_attrs for t in trials if t.state.is_finished())  # surplus ones too
        assert len({t.user_attrs["worker_pid"] for t in trials if t.state in FINISHED}) == 2  # both ran trials
        sweep.unlink()


def test_device_slots():
    from ademix_sweep.engine.slots import plan_slots

    cpu = plan_slots("auto", 2, 1, cuda_count=0, cpu_count=8)
    assert [(s.rank, s.device, s.gpu, s.threads) for s in cpu] == [(0, "cpu", None, 4), (1, "cpu", None, 4)]
    assert [(s.rank, s.gpu) for s in plan_slots("auto", None, 1, 2, 16)] == [(0, "0"), (1, "1")]
    two_each = plan_slots("0,2", None, 2, 4, 16)
    assert [(s.rank, s.device, s.gpu, s.threads) for s in two_each] == [
        (0, "cuda", "0", 4),
        (1, "cuda", "0", 4),
        (2, "cuda", "2", 4),
        (3, "cuda", "2", 4),
    ]
    assert plan_slots("cpu", None, 1, 4, 3)[0].threads == 3
    for devices, workers, message in [
        ("5", None, "GPU 5 is not available"),
        ("0,0", None, "GPU 0 is not available or"),
        ("x", None, "expected auto, cpu, or GPU numbers"),
        ("0", 2, "--workers is for CPU workers"),
    ]:
        with pytest.raises(ValueError, match=message):
            plan_slots(devices, workers, 1, 2, 8)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--storage", "postgresql+psycopg://ana:s3cret@127.0.0.1:1/x"],
            "storage postgresql+psycopg://ana:***@127.0.0.1:1/x: cannot connect",
        ),
        (["--storage", "nonsense"], "storage nonsense: not a database URL"),
        (["--devices", "7"], "--devices 7: GPU 7 is not available"),
        (["--set", "budget.trials=0"], "budget.trials: 0 is out of range"),
        (["--set", 'task={kind: custom, entrypoint: "no_such_module:make_task"}'], "task.entrypoint: "),
    ],
)
def test_bad_run_input_exits_2_with_one_masked_line(tmp_path, args, message):
    out = run(sweep_file(tmp_path), *args, timeout=120)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "s3cret" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1
