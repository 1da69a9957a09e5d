"""What a command trial receives (its words, its environment, its GPUs) and how GPUs are split
into slots of several, checked without GPUs: fake device counts and a fake CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import json
import sys

import pytest

from ademix_sweep.engine.contract import Slot
from ademix_sweep.engine.slots import plan_slots
from ademix_sweep.sweepfile.config import Train
from ademix_sweep.sweepfile.sections import CommandTask
from ademix_sweep.tasks.command import ENV_TRIAL, Command
from ademix_sweep.tasks.outcome import TrialInfo

SHOW = (
    "import json, os, sys; "
    "keep = ('CUDA_VISIBLE_DEVICES', 'PYTHONUNBUFFERED', 'MY_SETTING', 'ADEMIX_SWEEP_TRIAL'); "
    "open(sys.argv[1], 'w').write(json.dumps({'argv': sys.argv[2:], 'env': {k: os.environ.get(k) for k in keep}})); "
    "print(json.dumps({'ademix_sweep': {'step': 5, 'val_loss': 1.25}}))"
)


def test_gpus_are_split_into_slots_of_gpus_per_trial():
    assert plan_slots("auto", None, 1, 4, 16, gpus_per_trial=2) == [
        Slot(0, "cuda", "0,1", 8),
        Slot(1, "cuda", "2,3", 8),
    ]
    assert plan_slots("4,5,6,7", None, 1, 8, 16, gpus_per_trial=4) == [Slot(0, "cuda", "4,5,6,7", 16)]
    assert [s.gpu for s in plan_slots("auto", None, 1, 3, 6)] == ["0", "1", "2"]  # one GPU a trial, as before
    assert plan_slots("auto", 2, 1, 4, 16, gpus_per_trial=0) == [Slot(0, "cpu", None, 8), Slot(1, "cpu", None, 8)]
    with pytest.raises(ValueError, match=r"--devices 0,1,2: 3 GPUs do not split into trials of 2"):
        plan_slots("0,1,2", None, 1, 4, 16, gpus_per_trial=2)
    with pytest.raises(ValueError, match=r"do not split into trials of 3"):
        plan_slots("auto", None, 1, 8, 16, gpus_per_trial=3)
    with pytest.raises(ValueError, match=r"--workers-per-device is for one GPU per trial"):
        plan_slots("auto", None, 2, 4, 16, gpus_per_trial=2)


def test_a_command_gets_its_configuration_in_words_and_in_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # what a worker of a two-GPU slot has
    words = [
        sys.executable, "-c", SHOW.replace("{", "{{").replace("}", "}}"), str(tmp_path / "seen.json"),
        "--nproc_per_node={gpus}", "{optimizer}", "{seed}", "{steps}", "{eval_every}", "{trial}",
        "lr={lr}", "{beta3}", "{t_alpha_beta3}", "{{literal}}",
    ]  # fmt: skip
    task = CommandTask.model_validate({"kind": "command", "command": words, "env": {"MY_SETTING": 4}})
    hparams = {"lr": 0.003, "beta3": 0.999, "t_alpha_beta3": None}
    result = Command(task, tmp_path).run(
        "ademamix", hparams, Train(steps=10, eval_every=5), seed=11, trial=TrialInfo(number=7, study="s.ademamix")
    )
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"] == [
        "--nproc_per_node=2", "ademamix", "11", "10", "5", "7", "lr=0.003", "0.999", "0", "{literal}",
    ]  # fmt: skip
    env = seen["env"]
    assert (env["CUDA_VISIBLE_DEVICES"], env["PYTHONUNBUFFERED"], env["MY_SETTING"]) == ("2,3", "1", "4")
    payload = json.loads(env[ENV_TRIAL])
    assert payload["hparams"] == hparams and (payload["trial"], payload["study"], payload["gpus"]) == (
        7, "s.ademamix", 2,
    )  # fmt: skip
    assert payload["train"]["steps"] == 10 and payload["report_file"].endswith("reports.jsonl")
    assert result.final_val_loss == 1.25 and result.val_curve == [(5, 1.25)]
    assert result.device == "command (CUDA_VISIBLE_DEVICES=2,3)"


def test_workers_auto_on_a_cpu_is_one_worker_per_core_as_memory_allows():
    from ademix_sweep.cli.base import WorkerOptions, _worker_count, slots_for
    from ademix_sweep.engine.slots import WORKER_MEMORY_BYTES, auto_cpu_workers, usable_cores

    assert auto_cpu_workers(2, None) == 2 and auto_cpu_workers(8, 3 * WORKER_MEMORY_BYTES + 1) == 3
    assert auto_cpu_workers(4, 0) == 1  # at least one
    assert _worker_count("auto") is None and _worker_count("3") == 3 and _worker_count(2) == 2
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match=rf"--workers {bad}: expected a number of workers \(1 or more\) or auto"):
            _worker_count(bad)
    slots = slots_for(WorkerOptions("auto", "cpu"), 1)  # this machine: no GPU
    assert [s.threads for s in slots] == [max(1, usable_cores() // len(slots))] * len(slots)
    assert len(slots) == min(usable_cores(), len(slots)) and all(s.device == "cpu" for s in slots)
