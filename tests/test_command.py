"""Command trials: a user's own training command as a trial, end to end through `ademix-sweep`
in real processes, with the storage's rows, exit codes and messages checked."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
from commandrun import TOY, command_sweep, toy_loss, wait_all_gone
from optuna.trial import TrialState
from sweeprun import assert_exact, run, studies

CLI = [sys.executable, "-m", "ademix_sweep"]


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs' / 'cmd.db'}"


def _cli(tmp_path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def test_a_command_sweep_keeps_exact_budgets_with_two_workers_and_compare_and_plot_read_it(tmp_path):
    sweep, url = command_sweep(tmp_path, trials=3), _url(tmp_path)
    out = run(sweep, "--workers", "2", timeout=120)
    assert out.returncode == 0, out.stderr
    assert_exact(url, 3, "cmd")
    for opt, study in studies(url, "cmd").items():
        for t in study.get_trials(states=(TrialState.COMPLETE,)):
            lr = t.params["lr"]
            assert t.value == toy_loss(lr, 40)  # the last report is the value
            assert t.intermediate_values == {step: toy_loss(lr, step) for step in (10, 20, 30, 40)}
            log = t.user_attrs["log"].split(":", 1)[1]
            text = open(log).read()
            assert f"toy_train: trial {t.number} lr={lr!r}" in text and "ademix_sweep" not in text, opt
    compared = _cli(tmp_path, "compare", "cmd.yaml", "--seeds", "2", "--json", timeout=120)
    assert compared.returncode == 0, compared.stderr
    summary = json.loads(compared.stdout)
    assert set(summary["optimizers"]) == {"ademamix", "adamw"}
    checks = summary["same_seed"]  # each best configuration again on the sweep's seed: the toy honours it
    assert sorted(c["optimizer"] for c in checks) == ["adamw", "ademamix"] and all(c["agree"] for c in checks)
    assert all(c["values"][0] == c["values"][1] for c in checks)
    plotted = _cli(tmp_path, "plot", "cmd.yaml", "-o", "figs")
    assert plotted.returncode == 0, plotted.stderr
    assert any(line.endswith(".png") for line in plotted.stdout.splitlines())


def test_the_client_is_pruned_cleanly_and_the_pruner_acts_on_command_reports(tmp_path):
    sweep, url = command_sweep(tmp_path, "--client", trials=8, pruner="median", both=False), _url(tmp_path)
    out = run(sweep, "--workers", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    assert_exact(url, 8, "cmd", ("adamw",))
    trials = studies(url, "cmd", ("adamw",))["adamw"].trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, [t.state for t in trials]
    for t in pruned:
        step = max(t.intermediate_values)
        assert f"pruned cleanly at step {step}" in open(t.user_attrs["log"].split(":", 1)[1]).read()
        assert step < 40


def test_failures_of_a_command_are_recorded_with_their_reason(tmp_path):
    modes = "fail,malformed,silent,nan,selfkill"
    sweep, url = command_sweep(tmp_path, "--modes", modes, trials=3, both=False), _url(tmp_path)
    out = run(sweep, "--workers", "1", timeout=120)
    assert out.returncode == 0, out.stderr
    assert_exact(url, 3, "cmd", ("adamw",))
    t = {trial.number: trial for trial in studies(url, "cmd", ("adamw",))["adamw"].trials}
    assert t[0].state == TrialState.FAIL
    failure = t[0].user_attrs["failure"]
    assert "exited with code 3; its last output: RuntimeError: CUDA out of memory (pretend)" in failure
    assert t[1].state == TrialState.COMPLETE and t[1].value == toy_loss(t[1].params["lr"], 40)
    assert t[1].user_attrs["warning"].startswith("ignored a malformed report line (no step")
    assert t[2].state == TrialState.FAIL and "reported no val_loss" in t[2].user_attrs["failure"]
    assert t[3].state == TrialState.COMPLETE and t[3].value == math.inf  # diverged
    assert t[3].user_attrs["diverged_step"] == 20 and "non-finite" in t[3].user_attrs["failure"]
    assert t[4].state == TrialState.FAIL and "was killed by SIGKILL" in t[4].user_attrs["failure"]
    assert "ignored a malformed report line" in out.stdout


def test_train_runs_the_command_once_and_prints_only_its_json_on_stdout(tmp_path):
    command_sweep(tmp_path)
    out = _cli(tmp_path, "train", "cmd.yaml", "--optimizer", "adamw", "--param", "lr=0.01", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["final_val_loss"] == toy_loss(0.01, 40) and result["task"] == "command"
    assert [step for step, _ in result["val_curve"]] == [10, 20, 30, 40]
    assert "toy_train: trial  lr=0.01" in out.stderr  # the command's own output, outside a sweep


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('"--lr", "{lr}"', 'task.command: unknown placeholder {stepz} (expected one of optimizer, seed, steps'),
        ('"toy_train.py"', "task.command: 'no-such-program-x' is not found (expected a program on PATH"),
        ("env:", "task.cwd: "),
        ('"--lr", "{lr}"', "task.command: {beta3} is a hyperparameter of ademamix only"),
    ],
    ids=["placeholder", "program", "cwd", "one-optimizer-placeholder"],
)
def test_bad_command_tasks_are_one_line_naming_the_field(tmp_path, change, message):
    sweep = command_sweep(tmp_path)
    text = sweep.read_text()
    if message.startswith("task.command: unknown"):
        text = text.replace(change, '"--lr", "{stepz}"')
    elif "is not found" in message:
        text = text.replace(f'"{sys.executable}", "toy_train.py"', '"no-such-program-x"')
    elif message.startswith("task.cwd"):
        text = text.replace("  env:", "  cwd: no/such/folder\n  env:")
    else:
        text = text.replace(change, '"--lr", "{lr}", "--beta3", "{beta3}"')
    sweep.write_text(text)
    for command in (["validate", "cmd.yaml"], ["run", "cmd.yaml"]):
        out = _cli(tmp_path, *command)
        assert out.returncode == 2, (command, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith("cmd.yaml:") and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()


DDP = """\
name: ddp
seed: 0
budget: {{trials: 1}}
sampler: {{type: random}}
pruner: {{type: none}}
task:
  kind: command
  command: [{python}, -m, torch.distributed.run, --standalone, --nproc_per_node=2, ddp_train.py, --pids, {pids}]
  env: {{OMP_NUM_THREADS: "1"}}
  gpus_per_trial: 0
train: {{steps: 30, eval_every: 10}}
optimizers:
  ademamix: {{lr: 0.01, beta3: 0.99}}
"""


def test_a_torchrun_job_on_the_cpu_is_one_trial_reported_by_rank_zero(tmp_path):
    shutil.copy(TOY.parent / "ddp_train.py", tmp_path / "ddp_train.py")
    pids = tmp_path / "pids"
    sweep = tmp_path / "ddp.yaml"
    sweep.write_text(DDP.format(python=json.dumps(sys.executable), pids=json.dumps(str(pids))))
    out = run(sweep, "--workers", "1", timeout=180)
    assert out.returncode == 0, out.stderr
    trials = studies(f"sqlite:///{tmp_path / 'runs' / 'ddp.db'}", "ddp", ("ademamix",))["ademamix"].trials
    assert len(trials) == 1, [t.user_attrs.get("failure") for t in trials]
    (t,) = trials
    assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [10, 20, 30]  # one report per step
    assert t.value == t.intermediate_values[30] and math.isfinite(t.value)
    ranks = sorted(line.split()[1:] for line in pids.read_text().splitlines())
    assert ranks == [["0", "2", "-"], ["1", "2", "-"]]  # two ranks; a CPU slot sets no CUDA_VISIBLE_DEVICES
    assert wait_all_gone(pids) == []


OWN = TOY.parent.parent.parent / "examples" / "own_script"


def test_the_own_script_examples_run_as_sweeps(tmp_path):
    for name in ("train.py", "sweep.yaml", "train.sh", "sweep_shell.yaml"):
        shutil.copy(OWN / name, tmp_path / name)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(sweep.read_text().replace("command: python train.py", f'command: ["{sys.executable}", train.py]'))
    fast = ["--set", "budget.trials=1", "--set", "train.steps=40", "--set", "train.eval_every=20"]
    out = run(sweep, "--workers", "2", *fast, "--set", "train.warmup_steps=5", timeout=180)
    assert out.returncode == 0, out.stderr
    for opt, study in studies(f"sqlite:///{tmp_path / 'runs' / 'own_script.db'}", "own_script").items():
        (t,) = study.trials
        assert t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [20, 40], opt
        assert 1.0 < t.value < 6.0  # bytes: log(256) = 5.5 at the start
    shell = run(tmp_path / "sweep_shell.yaml", "--workers", "2", timeout=120)
    assert shell.returncode == 0, shell.stderr
    url = f"sqlite:///{tmp_path / 'runs' / 'own_shell.db'}"
    assert_exact(url, 8, "own_shell")
    pruned = [t for s in studies(url, "own_shell").values() for t in s.trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.intermediate_values for t in pruned)  # printed reports prune too


def test_compare_warns_when_a_command_does_not_honour_its_seed(tmp_path):
    sweep = command_sweep(tmp_path, "--unseeded", trials=1)
    assert run(sweep, "--workers", "2", timeout=120).returncode == 0
    out = _cli(tmp_path, "compare", "cmd.yaml", "--seeds", "2", "--workers", "2", timeout=120)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "warning: adamw #0 gave" in text and "re-run on the same seed (0): the training command does not" in text
