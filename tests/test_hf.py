"""The Hugging Face Trainer example inside a real sweep, and its callback's pruning."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from optuna.trial import TrialState
from sweeprun import assert_exact, run, studies
from transformers import TrainerControl, TrainerState

from ademix_sweep import trial
from ademix_sweep.hf import AdemixSweepCallback

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hf_trainer"


def test_the_trainer_example_runs_inside_a_sweep(tmp_path):
    for name in ("train.py", "sweep.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(sweep.read_text().replace("command: python train.py", f'command: ["{sys.executable}", train.py]'))
    out = run(sweep, "--workers", "2", "--set", "budget.trials=1", "--set", "train.steps=40", timeout=300)
    assert out.returncode == 0, out.stderr
    url = f"sqlite:///{tmp_path / 'runs' / 'hf_trainer.db'}"
    assert_exact(url, 1, "hf_trainer")
    for opt, study in studies(url, "hf_trainer").items():
        (t,) = study.get_trials(states=(TrialState.COMPLETE,))
        assert sorted(t.intermediate_values) == [20, 40], opt  # eval_loss at each evaluation's global step
        assert t.value == t.intermediate_values[40] and 1.0 < t.value < 6.0
        assert "eval_loss" in open(t.user_attrs["log"].split(":", 1)[1]).read()  # the Trainer's own logs


def test_the_callback_stops_the_trainer_when_the_sweep_prunes(tmp_path):
    (tmp_path / "reports.jsonl").touch()
    (tmp_path / "replies.jsonl").write_text(json.dumps({"step": 20, "action": "stop"}) + "\n")
    files = (str(tmp_path / "reports.jsonl"), str(tmp_path / "replies.jsonl"))
    t = trial.Trial("adamw", {"lr": 1e-3}, 0, 100, 20, 3, "s.adamw", {}, *files)
    callback, control = AdemixSweepCallback(t), TrainerControl()
    callback.on_evaluate(None, TrainerState(global_step=20), control, metrics={"eval_loss": 2.25})
    assert control.should_training_stop and callback.pruned is not None and callback.pruned.step == 20
    callback.on_evaluate(None, TrainerState(global_step=40), control, metrics={"eval_loss": 2.0})  # no more reports
    lines = (tmp_path / "reports.jsonl").read_text().splitlines()
    assert [json.loads(line)["ademix_sweep"] for line in lines] == [{"step": 20, "val_loss": 2.25, "final": False}]
