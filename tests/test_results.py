"""status, best, export, plot and compare on real sweeps (rosenbrock), and their bad input."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from databases import ensure_mariadb
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from rich.console import Console

from ademix_sweep.cli import report_results
from ademix_sweep.results import read as results

SWEEP = """\
name: rb
seed: 0
budget: {trials: 4}
sampler: {type: random}
pruner: {type: none}
task: {kind: rosenbrock}
train: {steps: 200, eval_every: 50, schedule: constant, grad_clip: null}
optimizers:
  adamw: {lr: {log_uniform: [1.0e-3, 1.0e-1]}, weight_decay: 0.0}
  ademamix:
    lr: {log_uniform: [1.0e-3, 1.0e-1]}
    beta3: {half_life: [20, 200]}
    alpha: {uniform: [1, 8]}
    weight_decay: 0.0
"""


def cli(folder: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ademix_sweep", *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-worker sweep in runs/rb.db beside rb.yaml."""
    folder = tmp_path_factory.mktemp("results")
    (folder / "rb.yaml").write_text(SWEEP)
    out = cli(folder, "run", "rb.yaml", "--workers", "2")
    assert out.returncode == 0, out.stderr
    return folder


def test_status_shows_counts_budget_and_best(swept):
    out = cli(swept, "status", "rb.yaml")
    assert out.returncode == 0, out.stderr
    assert "sweep rb · sqlite:///runs/rb.db" in out.stdout
    assert "│ finished / budget   │    4 / 4 │   4 / 4 │" in out.stdout
    best = optuna.load_study(storage=f"sqlite:///{swept / 'runs/rb.db'}", study_name="rb.adamw").best_trial
    assert f"best adamw (#{best.number}): lr={best.params['lr']:.4g}" in out.stdout


def test_status_by_storage_and_name_and_plain_optuna_can_load_the_studies(swept):
    url = f"sqlite:///{swept / 'runs/rb.db'}"
    out = cli(swept, "status", "--storage", url, "--name", "rb")
    assert out.returncode == 0, out.stderr
    assert "4 / 4" in out.stdout  # the budget recorded by run
    for opt in ("ademamix", "adamw"):  # what optuna-dashboard does: nothing of ours needed
        assert len(optuna.load_study(storage=url, study_name=f"rb.{opt}").trials) >= 4


def test_best_yaml_retrains_to_the_same_value(swept):
    out = cli(swept, "best", "rb.yaml", "--optimizer", "ademamix")
    assert out.returncode == 0, out.stderr
    best = yaml.safe_load(out.stdout)["ademamix"]
    assert set(best["params"]) == {"lr", "alpha", "beta3", "t_alpha_beta3"}
    params = [arg for k, v in best["params"].items() for arg in ("--param", f"{k}={v!r}")]
    again = cli(swept, "train", "rb.yaml", "--optimizer", "ademamix", *params, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["final_val_loss"] == best["value"]  # same seed, same numbers
    assert "# ademix-sweep train rb.yaml --optimizer ademamix --param alpha=" in out.stdout


def test_export_csv_and_json_hold_the_same_rows(swept):
    as_json = cli(swept, "export", "rb.yaml", "--format", "json")
    as_csv = cli(swept, "export", "rb.yaml", "--format", "csv", "-o", "trials.csv")
    assert as_json.returncode == 0 and as_csv.returncode == 0, as_json.stderr + as_csv.stderr
    rows = json.loads(as_json.stdout)
    with open(swept / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:5] == ["optimizer", "number", "state", "value", "duration_s"]
    assert len(rows) == len(table) >= 8
    for row, line in zip(rows, table, strict=True):
        for key, value in row.items():
            text = line[key]
            if value is None:
                assert text == ""
            elif isinstance(value, float):
                assert float(text) == value
            else:
                assert text == str(value)
    finished = [r for r in rows if r["state"] in ("complete", "pruned")]
    assert {r["optimizer"] for r in finished} == {"adamw", "ademamix"} and len(finished) == 8
    assert all(r["param_lr"] > 0 and r["device"] == "cpu" for r in finished)


def test_plot_writes_non_empty_figures(swept):
    out = cli(swept, "plot", "rb.yaml", "-o", "figs")
    assert out.returncode == 0, out.stderr
    for name in ("best_so_far", "best_curves", "lr_sensitivity", "alpha_beta3"):
        png = swept / "figs" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    try:
        import plotly  # noqa: F401
    except ImportError:
        return
    assert (swept / "figs" / "ademamix_history.html").stat().st_size > 1000


def test_compare_pairs_seeds_and_resumes_without_rerunning(swept):
    first = cli(swept, "compare", "rb.yaml", "--seeds", "2", "--workers", "2", "--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["seeds"] == [1000, 1001]
    for opt in ("ademamix", "adamw"):
        config = result["optimizers"][opt]["configs"][0]
        assert config["runs"] == 2 and config["diverged"] == 0
        best = optuna.load_study(storage=f"sqlite:///{swept / 'runs/rb.db'}", study_name=f"rb.{opt}").best_trial
        assert config["source_trial"] == best.number
        assert config["values"]["1000"] == pytest.approx(best.value)  # rosenbrock: no randomness in a seed
    assert result["paired"]["n"] == 2 and result["steps_ratio"]["total"] == 200
    more = cli(swept, "compare", "rb.yaml", "--seeds", "3")
    assert more.returncode == 0, more.stderr
    text = " ".join(more.stdout.split())
    assert "2 new" in text and "on every one of 3 seeds. The task is deterministic" in text  # rosenbrock
    runs = optuna.load_study(storage=f"sqlite:///{swept / 'runs/rb.db'}", study_name="rb.compare")
    assert len(runs.get_trials(states=(TrialState.COMPLETE,))) == 6  # 2 optimizers x 3 seeds, none twice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "rb.yaml"], "no such SQLite file"),
        (["status"], "expected a sweep FILE, or --storage URL and --name NAME"),
        (["best", "--storage", "sqlite:///other.db", "--name", "rb"], "no such SQLite file"),
        (["export", "rb.yaml", "--format", "xml"], "--format xml: expected csv or json"),
        (["plot", "--storage", "postgresql+psycopg://u:pw@127.0.0.1:1/x", "--name", "rb"], "u:***@127.0.0.1:1"),
        (["compare", "rb.yaml"], "no such SQLite file"),
    ],
)
def test_missing_sweeps_and_bad_options_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "rb.yaml").write_text(SWEEP)
    out = cli(tmp_path, *args, timeout=60)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "pw@" not in out.stderr
    assert not (tmp_path / "runs").exists()  # reading never creates a database


def test_a_refused_password_exits_2_masked(tmp_path):
    ensure_mariadb()
    (tmp_path / "rb.yaml").write_text(SWEEP)
    for command in ("status", "run"):
        out = cli(tmp_path, command, "rb.yaml", "--storage", "mysql+pymysql://root:s3cret@127.0.0.1:3306/test")
        assert out.returncode == 2, out.stderr
        assert "root:***@127.0.0.1:3306/test: cannot connect" in out.stderr and "Access denied" in out.stderr
        assert "s3cret" not in out.stdout + out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_storage_without_the_sweep_or_its_trials_exits_2(tmp_path):
    (tmp_path / "rb.yaml").write_text(SWEEP)
    url = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(storage=url, study_name="other.adamw")
    out = cli(tmp_path, "status", "rb.yaml", "--storage", url)
    assert out.returncode == 2 and "no sweep 'rb' in storage" in out.stderr and "sweeps there: other" in out.stderr
    optuna.create_study(storage=url, study_name="rb.adamw")
    for command in ("best", "compare", "plot"):
        out = cli(tmp_path, command, "rb.yaml", "--storage", url)
        assert out.returncode == 2, (command, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "no complete trial" in out.stderr or "nothing to plot" in out.stderr


def _study_with_every_state(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="demo.ademamix")
    dist = {"lr": FloatDistribution(1e-4, 1e-1, log=True)}
    for state, value, lr, attrs in (
        (TrialState.COMPLETE, 1.5, 0.01, {}),
        (TrialState.COMPLETE, 1.2, 0.003, {}),
        (TrialState.COMPLETE, math.inf, 0.09, {"failure": "diverged: loss is nan", "diverged_step": 40}),
        (TrialState.PRUNED, None, 0.05, {}),
        (TrialState.FAIL, None, 0.02, {"failure": "worker died (exit code -9)"}),
        (TrialState.FAIL, None, 0.02, {"failure": "surplus"}),
    ):
        study.add_trial(
            optuna.create_trial(state=state, value=value, params={"lr": lr}, distributions=dist, user_attrs=attrs)
        )
    trial = study.ask()  # a running one, at step 50 of 200
    trial.report(2.25, 50)
    trial.set_user_attr("worker_host", "node7")
    trial.set_user_attr("device", "cuda:1")
    return study


def test_status_table_numbers(tmp_path):
    study = _study_with_every_state(tmp_path)
    stats = results.optimizer_status(study, 6)
    assert (stats["finished"], stats["complete"], stats["pruned"], stats["diverged"]) == (4, 2, 1, 1)
    assert (stats["failed"], stats["surplus"], stats["running"], stats["divergence_rate"]) == (1, 1, 1, 0.25)
    assert (stats["best_value"], stats["best_number"], stats["best_params"]) == (1.2, 1, {"lr": 0.003})
    sweep = results.Sweep("demo", "sqlite:///s.db", {"ademamix": study}, 6, 200)
    console = Console(file=io.StringIO(), width=120)
    report_results.status(console, "demo", "sqlite:///s.db", {"ademamix": stats}, results.running_trials(sweep))
    text = console.file.getvalue()
    assert "│ finished / budget   │    4 / 6 │" in text
    assert "│ diverged            │  1 (25%) │" in text
    assert "│ best val_loss       │   1.2000 │" in text
    assert "best ademamix (#1): lr=0.003" in text
    assert "│ ademamix  │    #6 │ node7  │ cuda:1 │ 50/200 │   2.2500 │" in text
    rows = {r["number"]: r for r in results.all_rows(sweep)[1]}
    assert rows[2]["state"] == "diverged" and rows[2]["value"] is None and rows[2]["diverged_step"] == 40
    assert rows[4]["failure"] == "worker died (exit code -9)" and rows[6]["state"] == "running"


def test_every_command_that_reads_a_sweep_file_takes_the_same_set(tmp_path):
    (tmp_path / "rb.yaml").write_text(SWEEP)
    wide = "optimizers.adamw.lr.log_uniform=[1.0e-4, 1.0]"
    sets = ["--set", "name=rb_wide", "--set", wide, "--set", "budget.trials=2"]
    ran = cli(tmp_path, "run", "rb.yaml", *sets, "--workers", "2")
    assert ran.returncode == 0, ran.stderr
    for command in (["status"], ["best"], ["export", "--format", "json"], ["plot", "-o", "figs"]):
        out = cli(tmp_path, *command, "rb.yaml", *sets)
        assert out.returncode == 0, (command, out.stderr)
    assert "rb_wide" in cli(tmp_path, "status", "rb.yaml", *sets).stdout
    compared = cli(tmp_path, "compare", "rb.yaml", *sets, "--seeds", "1", "--json")
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["optimizers"]["adamw"]["configs"][0]["runs"] == 1
    unchanged = cli(tmp_path, "compare", "rb.yaml", "--set", "name=rb_wide", "--seeds", "1")
    assert unchanged.returncode == 2 and "was run with different settings: optimizers.adamw.lr" in unchanged.stderr
    alone = cli(tmp_path, "status", "--storage", f"sqlite:///{tmp_path / 'runs' / 'rb_wide.db'}", "--name", "rb_wide",
                "--set", "budget.trials=3")  # fmt: skip
    assert alone.returncode == 2 and alone.stderr.strip() == "--set: needs the sweep FILE it overrides"
