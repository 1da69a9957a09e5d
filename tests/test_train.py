"""train(): learning, the lr schedule, seeds and common random numbers, evaluation, divergence."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import cuda_only
from torch import nn

from ademix_sweep.optim import lr_multiplier
from ademix_sweep.sweepfile.config import Train
from ademix_sweep.sweepfile.sections import LmTask, RosenbrockTask, VisionTask
from ademix_sweep.tasks import build_task
from ademix_sweep.train import Diverged, train

ADEMAMIX = {"lr": 3e-3, "beta3": 0.999, "alpha": 5.0, "t_alpha_beta3": 40}


@pytest.fixture(scope="module")
def lm_task():
    return build_task(
        LmTask(kind="lm", data="builtin:python-docs", seq_len=32, model={"layers": 1, "heads": 2, "dim": 32}), "."
    )


def cfg(steps: int = 60, **kw) -> Train:
    return Train(steps=steps, eval_every=kw.pop("eval_every", steps // 2), batch_size=kw.pop("batch_size", 8), **kw)


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("cosine", 5, 0.5),  # warm-up: 5 of 10
        ("cosine", 10, 1.0),
        ("cosine", 60, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))),  # halfway through the decay
        ("cosine", 110, 0.1),
        ("linear", 35, 1 - 0.9 * 0.25),
        ("linear", 110, 0.1),
        ("constant", 110, 1.0),
    ],
)
def test_lr_multiplier(schedule, step, expected):
    assert lr_multiplier(step, 110, 10, schedule, 0.1) == pytest.approx(expected)


def test_lr_follows_the_schedule_in_training():
    seen: list[float] = []
    task = build_task(RosenbrockTask(kind="rosenbrock"), ".")
    train(
        task,
        "adamw",
        {"lr": 0.02},
        cfg(100, warmup_steps=20, schedule="linear", min_lr_ratio=0.0),
        device="cpu",
        on_log=lambda p: seen.append(p.lr),
    )
    assert seen[0] == pytest.approx(0.02 * 10 / 20)
    assert seen[1] == pytest.approx(0.02)
    assert seen[-1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("optimizer", ["adamw", "ademamix"])
def test_lm_loss_falls(lm_task, optimizer):
    hp = {"lr": 3e-3} if optimizer == "adamw" else ADEMAMIX
    r = train(lm_task, optimizer, hp, cfg(80, eval_every=40), device="cpu", seed=0)
    assert r.final_val_loss < r.train_curve[0][1] - 1.0
    assert [s for s, _ in r.val_curve] == [40, 80]
    assert r.unit == "tokens" and r.items == 80 * 8 * 32 and r.items_per_s > 0
    assert r.optimizer_impl == ("reference" if optimizer == "ademamix" else None)


def test_vision_and_rosenbrock_losses_fall():
    digits = build_task(VisionTask(kind="vision"), ".")
    r = train(digits, "ademamix", {**ADEMAMIX, "lr": 1e-2}, cfg(40, batch_size=32), device="cpu")
    assert r.final_val_loss < 1.0 < math.log(10) < r.train_curve[0][1] + 0.3
    rosen = build_task(RosenbrockTask(kind="rosenbrock"), ".")
    r = train(rosen, "adamw", {"lr": 0.05}, cfg(500, grad_clip=None, schedule="constant"), device="cpu")
    assert r.final_val_loss < 20 < 1616


def test_same_seed_same_result_and_different_seed_different(lm_task):
    runs = [train(lm_task, "ademamix", ADEMAMIX, cfg(30, eval_every=30), device="cpu", seed=s) for s in (3, 3, 4)]
    assert runs[0].final_val_loss == runs[1].final_val_loss
    assert runs[0].train_curve == runs[1].train_curve
    assert runs[0].final_val_loss != runs[2].final_val_loss


class Recorder:
    """A custom-style task that records the model's initial weights and every batch it hands out."""

    unit = "samples"
    fingerprint = "recorder"

    def __init__(self) -> None:
        self.batches: list[list[float]] = []
        self.inits: list[list[float]] = []

    def make_model(self) -> nn.Module:
        model = nn.Linear(3, 1)
        self.inits.append(model.weight.flatten().tolist())
        return model

    def train_batch(self, generator, batch_size):
        x = torch.randn(batch_size, 3, generator=generator)
        self.batches.append(x.flatten().tolist())
        return x

    def val_batches(self, batch_size, count):
        return [torch.ones(batch_size, 3)]

    def loss(self, model, batch):
        return model(batch).pow(2).mean()

    def batch_items(self, batch):
        return len(batch)


def test_both_optimizers_see_the_same_initialisation_and_batches():
    """Common random numbers: the seed alone fixes the model's start and the data order."""
    task = Recorder()
    train(task, "adamw", {"lr": 1e-2}, cfg(20), device="cpu", seed=7)
    torch.manual_seed(123)  # unrelated global RNG use between runs must not matter
    train(task, "ademamix", ADEMAMIX, cfg(20), device="cpu", seed=7)
    train(task, "ademamix", ADEMAMIX, cfg(20), device="cpu", seed=8)
    assert task.inits[0] == task.inits[1] != task.inits[2]
    assert task.batches[:20] == task.batches[20:40] != task.batches[40:]


class Exploding(Recorder):
    """The loss is finite until step ``bad``, then ``value``; or it grows with the step."""

    def __init__(self, bad: int = 0, value: float = float("nan"), growing: bool = False) -> None:
        super().__init__()
        self.bad, self.value, self.growing, self.step = bad, value, growing, 0

    def train_batch(self, generator, batch_size):
        self.step += 1
        return torch.tensor(float(self.step))

    def loss(self, model, batch):
        base = model.weight.sum() * 0 + 1.0
        if self.growing:
            return base * batch
        return base * (self.value if batch.item() == self.bad else 1.0)

    def batch_items(self, batch):
        return 1


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_diverges_at_its_step(value):
    with pytest.raises(Diverged) as info:
        train(Exploding(bad=17, value=value), "ademamix", ADEMAMIX, cfg(40), device="cpu")
    assert info.value.step == 17
    assert "non-finite" in info.value.reason and str(value) in str(info.value)
    assert [s for s, _ in info.value.curves["train"]] == [10]  # what was recorded before


def test_loss_far_above_its_start_diverges():
    with pytest.raises(Diverged) as info:
        train(Exploding(growing=True), "adamw", {"lr": 1e-3}, cfg(40), device="cpu")
    assert info.value.step == 5 and info.value.value == 5.0  # first loss above 4 x 1.0
    assert "above 4× its start (1)" in info.value.reason
    r = train(Exploding(growing=True), "adamw", {"lr": 1e-3}, cfg(40, divergence_factor=None), device="cpu")
    assert r.train_curve[-1][1] == pytest.approx(35.5)  # mean of steps 31..40: the guard was off


def test_on_eval_sees_each_evaluation_and_may_stop_training(lm_task):
    calls: list[tuple[int, float]] = []
    r = train(
        lm_task, "adamw", {"lr": 1e-3}, cfg(30, eval_every=10), device="cpu", on_eval=lambda s, v: calls.append((s, v))
    )
    assert calls == r.val_curve and [s for s, _ in calls] == [10, 20, 30]

    class Stop(Exception):
        pass

    def stop_at_20(step: int, value: float) -> None:
        if step == 20:
            raise Stop

    with pytest.raises(Stop):
        train(lm_task, "adamw", {"lr": 1e-3}, cfg(30, eval_every=10), device="cpu", on_eval=stop_at_20)


def test_final_step_is_evaluated_when_not_a_multiple_of_eval_every(lm_task):
    r = train(lm_task, "adamw", {"lr": 1e-3}, cfg(25, eval_every=10), device="cpu")
    assert [s for s, _ in r.val_curve] == [10, 20, 25]
    assert r.final_val_loss == r.val_curve[-1][1] and r.best_val_loss == min(v for _, v in r.val_curve)


def test_compiled_model_trains_like_the_eager_one():
    task = build_task(RosenbrockTask(kind="rosenbrock"), ".")
    eager = train(task, "adamw", {"lr": 0.01}, cfg(20), device="cpu")
    compiled = train(task, "adamw", {"lr": 0.01}, cfg(20, compile=True), device="cpu")
    assert compiled.final_val_loss == pytest.approx(eager.final_val_loss, rel=1e-5)


@cuda_only
def test_cuda_bf16_autocast_keeps_fp32_weights_and_state(lm_task):
    r = train(lm_task, "ademamix", ADEMAMIX, cfg(40, eval_every=20), device="cuda", seed=0)
    assert r.precision == "bf16" and r.device.startswith("cuda")
    assert r.peak_memory_bytes and r.peak_memory_bytes > 0
    assert r.optimizer_impl == "compiled"  # auto picks the compiled update on CUDA
    assert r.final_val_loss < r.train_curve[0][1]
    fp32 = train(lm_task, "ademamix", ADEMAMIX, cfg(40, eval_every=20, precision="fp32"), device="cuda", seed=0)
    assert abs(fp32.final_val_loss - r.final_val_loss) < 0.1  # bf16 autocast tracks the fp32 run


@cuda_only
def test_cuda_same_seed_gives_the_same_data_order_as_cpu():
    task = Recorder()
    train(task, "adamw", {"lr": 1e-2}, cfg(20), device="cpu", seed=5)
    train(task, "adamw", {"lr": 1e-2}, cfg(20), device="cuda", seed=5)
    assert task.batches[:20] == task.batches[20:]
