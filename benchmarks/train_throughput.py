"""Throughput of train() against a bare hand-written loop: same model, data, optimizer and work.

Both train lm_small's model (a 2-layer, d=64 byte-level GPT on builtin:python-stdlib) with the
same optimizer, warm-up + cosine learning rate and gradient clipping, on the same seeded batches.
The bare loop has nothing else: no divergence guard, no loss readings, no callbacks, no timing
breakdown. Rounds are interleaved (each round runs every variant once) and the median per variant
is reported, so the ratio compares like with like on whatever else the machine is doing. train()'s
figure is its own training throughput (evaluation excluded; it evaluates once, at the end).
Floor: train() at >= 0.95x the bare loop.

    python benchmarks/train_throughput.py [--steps 150] [--rounds 5] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ademix_sweep.optim import build_optimizer, lr_multiplier
from ademix_sweep.sweepfile.config import load_sweep
from ademix_sweep.tasks import build_task, to_device
from ademix_sweep.train import resolve_device, train

HPARAMS = {
    "adamw": {"lr": 3e-3},
    "ademamix": {"lr": 3e-3, "beta3": 0.999, "alpha": 5.0, "t_alpha_beta3": 100},
}


def bare_loop(task, name: str, cfg, device: torch.device, seed: int) -> float:
    """Tokens per second of the plainest loop doing the same work."""
    torch.manual_seed(seed)
    model = task.make_model().to(device)
    opt = build_optimizer(name, model, HPARAMS[name])
    gen = torch.Generator().manual_seed(seed)
    base = opt.param_groups[0]["lr"]
    params = list(model.parameters())
    tokens, start = 0, time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = base * lr_multiplier(step, cfg.steps, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
        x, y = to_device(task.train_batch(gen, cfg.batch_size), device)
        loss = task.loss(model, (x, y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += x.numel()
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = load_sweep(
        "sweeps/lm_small.yaml",
        [f"train.steps={args.steps}", f"train.eval_every={args.steps}", "train.warmup_steps=20"],
    )
    task = build_task(cfg.task, "sweeps")
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for name in HPARAMS:
            order = ["train()", "bare loop"] if round_ % 2 == 0 else ["bare loop", "train()"]  # alternate
            for variant in order:
                if variant == "train()":
                    speed = train(task, name, HPARAMS[name], cfg.train, device=device, seed=0).items_per_s
                else:
                    speed = bare_loop(task, name, cfg.train, device, seed=0)
                results.setdefault((name, variant), []).append(speed)
    print(
        f"device {device}, {args.threads} thread(s), {args.steps} steps x {cfg.train.batch_size}x"
        f"{cfg.task.seq_len} tokens, {args.rounds} interleaved rounds; medians, and the median of per-round ratios"
    )
    for name in HPARAMS:
        ours, bare = results[(name, "train()")], results[(name, "bare loop")]
        ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
        print(
            f"  {name:9s} train() {statistics.median(ours):9,.0f} tokens/s   bare loop {statistics.median(bare):9,.0f}"
            f"   ratio {ratio:.3f}  (floor 0.95)"
        )


if __name__ == "__main__":
    main()
