"""The trial client (ademix_sweep.trial) on its own: the environment it reads, the optimizer and
schedule it builds, and its report/answer exchange with the engine."""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
import torch

from ademix_sweep import trial
from ademix_sweep.optim import AdEMAMix, lr_multiplier
from ademix_sweep.tasks.command import ENV_TRIAL


def _env(tmp_path, **changes) -> dict:
    payload = {
        "optimizer": "ademamix",
        "hparams": {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "beta3": 0.995, "alpha": 3.0, "t_alpha_beta3": 50},
        "seed": 7,
        "steps": 100,
        "eval_every": 10,
        "trial": 4,
        "study": "s.ademamix",
        "train": {"warmup_steps": 10, "schedule": "linear", "min_lr_ratio": 0.2},
        "report_file": str(tmp_path / "reports.jsonl"),
        "reply_file": str(tmp_path / "replies.jsonl"),
        **changes,
    }
    (tmp_path / "reports.jsonl").touch()
    (tmp_path / "replies.jsonl").touch()
    return payload


def test_outside_a_sweep_current_says_how_to_run_the_script(monkeypatch):
    monkeypatch.delenv(ENV_TRIAL, raising=False)
    with pytest.raises(trial.NotInSweep, match=r"ademix-sweep train SWEEP.yaml --optimizer ademamix --param lr="):
        trial.current()
    t = trial.current(fallback={"optimizer": "adamw", "steps": 30, "lr": 0.002})
    assert (t.optimizer_name, t.steps, t.eval_every, t.seed, t.hparams, t.in_sweep) == (
        "adamw", 30, 30, 0, {"lr": 0.002}, False
    )
    t.report(10, 1.0)  # nobody to tell: nothing happens


def test_the_optimizer_and_schedule_are_the_sweeps(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TRIAL, json.dumps(_env(tmp_path)))
    t = trial.current()
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = t.optimizer(model)
    assert isinstance(opt, AdEMAMix)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.0]  # no weight_decay given
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["alpha"], group["t_alpha_beta3"]) == (0.01, (0.8, 0.99, 0.995), 3.0, 50)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3]  # the matrix apart from biases and norms
    expected = [lr_multiplier(s, 100, 10, "linear", 0.2) for s in (1, 10, 55, 100)]
    assert [t.lr_multiplier(s) for s in (1, 10, 55, 100)] == expected and expected[0] == 0.1


def test_a_report_waits_for_the_answer_and_a_stop_raises_pruned(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TRIAL, json.dumps(_env(tmp_path)))
    t = trial.current()

    def engine() -> None:  # answers step 10 with continue, step 20 with stop
        answered = 0
        while answered < 2:
            lines = (tmp_path / "reports.jsonl").read_text().splitlines()
            for line in lines[answered:]:
                step = json.loads(line)["ademix_sweep"]["step"]
                action = "stop" if step == 20 else "continue"
                with open(tmp_path / "replies.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, "action": action}) + "\n")
                answered += 1
            time.sleep(0.01)

    thread = threading.Thread(target=engine)
    thread.start()
    t.report(10, 2.5, train_loss=2.7)
    with pytest.raises(trial.Pruned) as stopped:
        t.report(20, 2.0)
    thread.join(5)
    assert stopped.value.code == 0 and stopped.value.step == 20 and isinstance(stopped.value, SystemExit)
    reports = [json.loads(line)["ademix_sweep"] for line in (tmp_path / "reports.jsonl").read_text().splitlines()]
    assert reports == [
        {"step": 10, "val_loss": 2.5, "final": False, "train_loss": 2.7},
        {"step": 20, "val_loss": 2.0, "final": False},
    ]


def test_in_a_distributed_job_only_rank_zero_reports(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TRIAL, json.dumps(_env(tmp_path)))
    monkeypatch.setenv("RANK", "1")
    t = trial.current()
    t.report(10, math.nan)  # returns at once: no answer is awaited
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("LOCAL_RANK", "3")  # a launcher that sets only the local rank
    t.report(10, math.nan)
    assert (tmp_path / "reports.jsonl").read_text() == ""
    assert not t.reports
    monkeypatch.setenv("RANK", "0")  # the global rank wins over the local one
    assert t.reports
