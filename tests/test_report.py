"""Rich summaries rendered into a string console, asserted on their text."""

import io
import re
from pathlib import Path

from rich.console import Console

from ademix_sweep.config import load_sweep
from ademix_sweep.report import sweep_summary

ROOT = Path(__file__).resolve().parents[1]


def render(cfg, source: str = "s.yaml") -> str:
    console = Console(file=io.StringIO(), width=100)
    sweep_summary(console, source, cfg)
    return console.file.getvalue()


def test_summary_of_lm_small_shows_task_budget_and_spaces() -> None:
    text = render(load_sweep(ROOT / "sweeps" / "lm_small.yaml"), "sweeps/lm_small.yaml")
    assert "valid sweeps/lm_small.yaml: sweep lm_small" in text
    assert "lm on builtin:python-stdlib, seq_len 64, 2 layers, d=64, 4 heads" in text
    assert "1500 steps, batch 32, cosine lr after 100 warm-up steps, eval every 250" in text
    assert "16 finished trials per optimizer; sampler tpe, pruner median" in text
    assert "ademamix: 4 free dimensions" in text and "adamw: 2 free dimensions" in text
    assert "half_life [100, 5000] steps (beta 0.99309 to 0.99986)" in text
    assert "choice [0.5, 1.0]" in text and "choice [0.95, 0.99, 0.999]" in text


def test_summary_resolves_a_constant_warmup_to_steps() -> None:
    cfg = load_sweep(ROOT / "sweeps" / "rosenbrock.yaml", ["optimizers.ademamix.t_alpha_beta3=0.25"])
    text = render(cfg)
    assert "0.25 (constant) = 500 steps" in text
    assert re.search(r"adamw: 1 free dimension *\n", text)
    text = render(load_sweep(ROOT / "sweeps" / "rosenbrock.yaml", ["optimizers.ademamix.t_alpha_beta3=0"]))
    assert "0 (constant) = no warm-up" in text
