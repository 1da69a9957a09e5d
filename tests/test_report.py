"""Rich summaries rendered into a string console, asserted on their text."""

import io
import re
from pathlib import Path

from rich.console import Console

from ademix_sweep.cli import report
from ademix_sweep.cli.report import sweep_summary
from ademix_sweep.engine.events import decode
from ademix_sweep.sweepfile.config import load_sweep

ROOT = Path(__file__).resolve().parents[1]


def render(cfg, source: str = "s.yaml") -> str:
    console = Console(file=io.StringIO(), width=100)
    sweep_summary(console, source, cfg)
    return console.file.getvalue()


def test_summary_of_lm_small_shows_task_budget_and_spaces() -> None:
    text = render(load_sweep(ROOT / "sweeps" / "lm_small.yaml"), "sweeps/lm_small.yaml")
    assert "valid sweeps/lm_small.yaml: sweep lm_small" in text
    assert "lm on builtin:python-stdlib, seq_len 64, 2 layers, d=64, 4 heads" in text
    assert "2000 steps, batch 16, cosine lr after 100 warm-up steps, eval every 250" in text
    assert "16 finished trials per optimizer; sampler tpe, pruner median" in text
    assert "ademamix: 4 free dimensions" in text and "adamw: 2 free dimensions" in text
    assert "half_life [100, 10000] steps (beta 0.99309 to 0.99993)" in text
    assert "choice [0.5, 1.0]" in text and "choice [0.95, 0.99, 0.999]" in text


def test_summary_resolves_a_constant_warmup_to_steps() -> None:
    cfg = load_sweep(ROOT / "sweeps" / "rosenbrock.yaml", ["optimizers.ademamix.t_alpha_beta3=0.25"])
    text = render(cfg)
    assert "0.25 (constant) = 500 steps" in text
    assert re.search(r"adamw: 1 free dimension *\n", text)
    text = render(load_sweep(ROOT / "sweeps" / "rosenbrock.yaml", ["optimizers.ademamix.t_alpha_beta3=0"]))
    assert "0 (constant) = no warm-up" in text


def _result(**kw):
    from ademix_sweep.train import TrainResult

    base = dict(
        final_val_loss=1.61234,
        best_val_loss=1.59876,
        val_curve=[(250, 2.1), (500, 1.59876), (750, 1.61234)],
        train_curve=[(10, 5.2), (750, 1.55555)],
        steps=750,
        unit="tokens",
        items=768_000,
        items_per_s=41234.6,
        wall_time_s=19.04,
        eval_time_s=0.52,
        device="cpu",
        precision="fp32",
        peak_memory_bytes=None,
        optimizer_impl="reference",
    )
    return TrainResult(**{**base, **kw})


def test_train_summary_shows_the_metrics_and_hyperparameters():
    out = io.StringIO()
    console = Console(file=out, width=100)
    hparams = {"lr": 0.003, "beta3": 0.999, "alpha": 5.0, "t_alpha_beta3": 750}
    report.train_summary(console, _result(), "ademamix", hparams, ["alpha"], "d0ee25b76e243d78")
    text = out.getvalue()
    assert "ademamix: 750 steps on cpu (fp32)" in text
    assert re.search(r"final val_loss\s+│\s+1\.6123 ", text)
    assert re.search(r"best val_loss\s+│\s+1\.5988 at step 500", text)
    assert re.search(r"tokens/s\s+│\s+41,235", text)
    assert "19.0 s (evaluation 0.5 s)" in text and "d0ee25b76e243d78" in text
    assert "lr=0.003, beta3=0.999, alpha=5 (default), t_alpha_beta3=750" in text
    assert "peak memory" not in text
    out = io.StringIO()
    report.train_summary(Console(file=out, width=100), _result(peak_memory_bytes=3 * 2**30), "adamw", {}, [], "x")
    assert re.search(r"peak memory\s+│\s+3,072 MiB", out.getvalue())


def test_train_progress_shows_step_loss_lr_and_speed():
    from ademix_sweep.train import Progress

    out = io.StringIO()
    console = Console(file=out, width=120)
    with report.TrainProgress(console, 200, "tokens", "adamw") as bar:
        bar.update(Progress(step=120, steps=200, loss=2.345678, lr=0.00123, items_per_s=40123.0, elapsed_s=3.0))
    text = out.getvalue()
    assert "step 120/200" in text and "loss 2.3457" in text and "lr 0.00123" in text
    assert "40,123 tokens/s" in text


def _stats(**kw):
    base = {
        "finished": 4,
        "complete": 2,
        "pruned": 1,
        "diverged": 1,
        "running": 0,
        "waiting": 0,
        "failed": 2,
        "best_value": 1.23456,
        "best_number": 3,
        "best_params": {"lr": 0.0031, "beta3": 0.999},
    }
    return {**base, **kw}


def test_sweep_result_shows_counts_divergence_rate_and_best_parameters():
    out = io.StringIO()
    report.sweep_result(
        Console(file=out, width=120),
        {
            "ademamix": _stats(),
            "adamw": _stats(finished=4, diverged=0, best_value=None, best_number=None, best_params={}),
        },
        4,
    )
    text = out.getvalue()
    assert re.search(r"ademamix\s+│\s+4/4\s+│\s+1\s+│\s+1 \(25%\)\s+│\s+2\s+│\s+1\.2346\s+│\s+#3", text)
    assert re.search(r"adamw\s+│\s+4/4\s+│\s+1\s+│\s+0 \(0%\)\s+│\s+2\s+│\s+-\s+│\s+-", text)
    assert "best ademamix: beta3=0.999, lr=0.0031" in text and "best adamw" not in text


def test_sweep_view_prints_one_plain_line_per_event_outside_a_terminal():
    out = io.StringIO()
    console = Console(file=out, width=120)
    base = {"rank": 1, "optimizer": "adamw", "trial": 7, "time": 0.0}
    with report.SweepView(console, 4, ("ademamix", "adamw")) as view:
        assert not view.live_mode
        view.event(decode({**base, "kind": "start", "device": "cpu", "steps": 100}))
        view.event(decode({**base, "kind": "progress", "step": 50, "steps": 100, "loss": 2.0}))  # not a line
        view.event(decode({**base, "kind": "diverged", "step": 13, "reason": "loss is nan (non-finite)"}))
        view.event(decode({"rank": 0, "kind": "worker_died", "exitcode": -9, "requeued": [("x", 1)], "time": 0.0}))
        view.update({"ademamix": _stats(), "adamw": _stats()})
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "worker 1 adamw #7: started on cpu",
        "worker 1 adamw #7: diverged at step 13: loss is nan (non-finite)",
        "worker 0: died (exit code -9); re-queued 1 trial(s)",
    ]


def test_sweep_view_live_table_lists_running_trials():
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=True)
    view = report.SweepView(console, 4, ("ademamix", "adamw"), live=True)
    base = {"rank": 0, "optimizer": "ademamix", "trial": 2, "time": 0.0}
    view.event(decode({**base, "kind": "start", "device": "cuda:1", "steps": 2000}))
    view.event(decode({**base, "kind": "eval", "step": 500, "steps": 2000, "value": 2.3456}))
    view.update({"ademamix": _stats(finished=3), "adamw": _stats(finished=1)}, "time left: about 4m10s (...)")
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(view._render())
    text = rendered.getvalue()
    assert "time left: about 4m10s (...)" in text
    assert re.search(r"0\s+│\s+cuda:1\s+│\s+ademamix #2\s+│\s+500/2000\s+│\s+2\.3456", text)
    assert "3/4" in text and "best 1.2346 (#3)  diverged 1" in text
