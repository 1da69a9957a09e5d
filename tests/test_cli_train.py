"""`ademix-sweep train`: one configuration, its output, and its exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from data_fixtures import write_cifar
from typer.testing import CliRunner

from ademix_sweep.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
FAST = ["--set", "train.steps=200", "--set", "train.eval_every=100"]


def invoke(*args: str):
    return runner.invoke(app, ["train", *args])


def train_json(sweep: Path | str, optimizer: str, args: str = "") -> dict:
    """Run ``train --json`` with space-separated extra arguments; it must succeed."""
    result = invoke(str(sweep), "--optimizer", optimizer, *args.split(), "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_result_holds_the_metric_curves_and_throughput():
    args = "--param lr=0.02 --param beta3=0.999 --set train.steps=200 --set train.eval_every=100"
    data = train_json(ROOT / "sweeps/rosenbrock.yaml", "ademamix", args)
    assert data["final_val_loss"] == data["val_curve"][-1][1] < 1616
    assert [s for s, _ in data["val_curve"]] == [100, 200]
    assert data["hparams"]["lr"] == 0.02 and data["hparams"]["beta3"] == 0.999
    assert data["hparams"]["t_alpha_beta3"] == 200  # 1.0 of train.steps, resolved
    assert sorted(data["defaulted"]) == ["alpha"]  # a distribution in the file, no --param
    assert data["hparams"]["alpha"] == 5.0
    assert data["steps_per_s"] == data["items_per_s"] > 0 and data["unit"] == "steps"
    assert data["device"] == "cpu" and data["seed"] == 0 and len(data["data_fingerprint"]) == 16


def test_table_output_names_the_final_metric():
    result = invoke(str(ROOT / "sweeps/rosenbrock.yaml"), "--optimizer", "adamw", "--param", "lr=0.02", *FAST)
    assert result.exit_code == 0, result.stderr
    final = re.search(r"final val_loss\s*│\s*([0-9.]+)", result.stdout)
    assert final and 0 < float(final.group(1)) < 1616
    assert "lr=0.02" in result.stdout and "step 200/200" in result.stdout


def test_seed_option_changes_the_data_order():
    args = "--param lr=1e-3 --set train.steps=20 --set train.eval_every=20 --set train.warmup_steps=5 --seed"
    sweep = ROOT / "sweeps/vision_small.yaml"
    losses = [train_json(sweep, "adamw", f"{args} {seed}")["final_val_loss"] for seed in (1, 1, 2)]
    assert losses[0] == losses[1] != losses[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizer", "sgd"], "optimizers: 'sgd' is not in the file (expected one of ademamix, adamw)"),
        (["--optimizer", "adamw", "--param", "lrr=1"], "(--param lrr): optimizers.adamw.lrr: unknown key"),
        (["--optimizer", "adamw", "--param", "lr=-1"], "(--param lr): optimizers.adamw.lr: -1 is out of range"),
        (["--optimizer", "adamw", "--param", "lr"], "--param lr: expected path.to.field=value"),
        (["--optimizer", "adamw", "--device", "cuda:7"], "--device cuda:7: no such CUDA device"),
        (["--optimizer", "adamw", "--device", "tpu9"], "--device tpu9: not a device"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, message):
    result = invoke(str(ROOT / "sweeps/rosenbrock.yaml"), *args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_data_path_exits_2_with_the_path_and_line(tmp_path):
    sweep = tmp_path / "s.yaml"
    text = (ROOT / "sweeps/lm_small.yaml").read_text().replace('"builtin:python-stdlib"', "corpus/missing.txt")
    sweep.write_text(text)
    result = invoke(str(sweep), "--optimizer", "adamw")
    assert result.exit_code == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "corpus/missing.txt" in t)
    assert result.stderr.strip() == (
        f"{sweep}:{line}: task.data: {tmp_path / 'corpus/missing.txt'} does not exist "
        "(expected a text file, a folder, a .bin token file or builtin:python-stdlib / builtin:python-docs)"
    )


def test_missing_cifar_folder_exits_2(tmp_path):
    sweep = tmp_path / "v.yaml"
    sweep.write_text((ROOT / "sweeps/vision_small.yaml").read_text().replace('"builtin:digits"', "nowhere"))
    result = invoke(str(sweep), "--optimizer", "adamw")
    assert result.exit_code == 2 and f"task.data: {tmp_path / 'nowhere'} is not a folder" in result.stderr


def test_cifar_folder_trains(tmp_path):
    write_cifar(tmp_path / "cifar")
    sweep = tmp_path / "v.yaml"
    sweep.write_text((ROOT / "sweeps/vision_small.yaml").read_text().replace('"builtin:digits"', "cifar"))
    args = "--param lr=3e-3 --set train.steps=30 --set train.eval_every=30 --set train.warmup_steps=0"
    data = train_json(sweep, "ademamix", args)
    assert data["final_val_loss"] < data["train_curve"][0][1]


NAN_TASK = """
import torch
from torch import nn

class NanAt:
    unit = "samples"
    def __init__(self, step): self.step, self.n = step, 0
    def make_model(self): return nn.Linear(2, 1)
    def train_batch(self, generator, batch_size):
        self.n += 1
        return torch.full((batch_size, 2), float("nan") if self.n == self.step else 1.0)
    def val_batches(self, batch_size, count): return [torch.ones(batch_size, 2)]
    def loss(self, model, batch): return model(batch).pow(2).mean()

def make(options): return NanAt(options["step"])

def broken(options):
    class Broken(NanAt):
        def loss(self, model, batch): raise RuntimeError("the user's bug")
    return Broken(1)
"""


def _custom_sweep(tmp_path: Path, entrypoint: str) -> Path:
    (tmp_path / "nan_task.py").write_text(NAN_TASK)
    sweep = tmp_path / "c.yaml"
    sweep.write_text(
        f"name: c\nbudget: {{trials: 1}}\ntask: {{kind: custom, entrypoint: '{entrypoint}', options: {{step: 13}}}}\n"
        "train: {steps: 30, eval_every: 10}\noptimizers: {adamw: {lr: 0.01}}\n"
    )
    return sweep


def test_divergence_exits_1_with_its_step(tmp_path):
    sweep = _custom_sweep(tmp_path, "nan_task:make")
    result = invoke(str(sweep), "--optimizer", "adamw")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{sweep}: adamw diverged at step 13: loss is nan (non-finite)"
    result = invoke(str(sweep), "--optimizer", "adamw", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "diverged": True,
        "step": 13,
        "value": "nan",
        "reason": "loss is nan (non-finite)",
    }


def test_a_custom_task_that_raises_exits_1_with_one_line(tmp_path):
    sweep = _custom_sweep(tmp_path, "nan_task:broken")
    result = invoke(str(sweep), "--optimizer", "adamw")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{sweep}: adamw training failed: RuntimeError: the user's bug"


def test_custom_task_example_runs_and_matches_the_docs(tmp_path):
    example = ROOT / "examples/custom_task"
    docs = (ROOT / "docs/custom-tasks.md").read_text()
    for name in ("sine_task.py", "sweep.yaml"):
        assert (example / name).read_text().strip() in docs, f"docs/custom-tasks.md is out of date with {name}"
    copy = shutil.copytree(example, tmp_path / "example")
    data = train_json(copy / "sweep.yaml", "ademamix", "--param lr=1e-2")
    assert data["final_val_loss"] < 0.1 < data["train_curve"][0][1]  # noise variance is 0.01
    bad = invoke(str(copy / "sweep.yaml"), "--optimizer", "adamw", "--set", "task.options.colour=1")
    assert bad.exit_code == 2
    assert "task.options: sine_task:make_task raised ValueError: unknown option(s) ['colour']" in bad.stderr


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    """SIGINT during training: exit code 130 and a one-line message, no traceback."""
    import signal
    import subprocess
    import sys
    import time
    from contextlib import suppress

    sweep = tmp_path / "slow.yaml"
    sweep.write_text(
        "name: slow\nbudget: {trials: 1}\ntask: {kind: rosenbrock}\ntrain: {steps: 10000000, eval_every: 1000}\n"
        "optimizers: {adamw: {lr: 0.001}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "ademix_sweep", "train", str(sweep), "--optimizer", "adamw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal: a shell starting the tests in the background passes SIGINT on
        # ignored, and a Python started with SIGINT ignored keeps it so (train then never stops)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            # Repeat: a library being imported may swallow one KeyboardInterrupt (seen under load);
            # but give each one time to end the process, or the next lands in its shutdown.
            time.sleep(3)
            proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        if proc.poll() is None:  # still running: faulthandler prints every thread's stack
            proc.send_signal(signal.SIGABRT)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == f"{sweep}: interrupted" and "Traceback" not in err
