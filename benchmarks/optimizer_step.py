"""One optimizer step: AdEMAMix (compiled and reference paths) against torch AdamW (fused, foreach).

All optimizers step the same ~5.5M parameters in the shapes of a 3-layer, d=384 byte-level GPT,
interleaved in one process (each round times every optimizer once), so the ratios compare like
with like on whatever else the machine is doing. Runs on CPU, and on CUDA too when present.

    python benchmarks/optimizer_step.py [--rounds 30] [--threads N] [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ademix_sweep.optim import AdEMAMix


def gpt_shapes(d: int = 384, layers: int = 3, vocab: int = 256, ctx: int = 256) -> list[tuple[int, ...]]:
    """Parameter shapes of a nanoGPT-style model (pre-LN blocks with biases, learned positions)."""
    block = [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return [(vocab, d), (ctx, d), *block * layers, (d,), (d,)]


def make_params(shapes, device: str, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).mul_(0.02).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=gen).mul_(0.01).to(device)
        params.append(p)
    return params


def candidates(shapes, device: str) -> dict[str, torch.optim.Optimizer]:
    def fresh() -> list[torch.Tensor]:
        return make_params(shapes, device)

    hp = dict(lr=1e-3, weight_decay=0.1)
    return {
        "AdamW fused": torch.optim.AdamW(fresh(), **hp, fused=True),
        "AdamW foreach": torch.optim.AdamW(fresh(), **hp, foreach=True),
        "AdEMAMix compiled": AdEMAMix(fresh(), **hp, alpha=8.0, t_alpha_beta3=10_000, impl="compiled"),
        "AdEMAMix compiled b1=0": AdEMAMix(
            fresh(), **hp, betas=(0.0, 0.999, 0.9999), alpha=8.0, t_alpha_beta3=10_000, impl="compiled"
        ),
        "AdEMAMix reference": AdEMAMix(fresh(), **hp, alpha=8.0, t_alpha_beta3=10_000, impl="reference"),
    }


def timed_step(opt: torch.optim.Optimizer, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def state_bytes_per_param(opt: torch.optim.Optimizer) -> float:
    n_params = sum(p.numel() for g in opt.param_groups for p in g["params"])
    n_bytes = sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
    return n_bytes / n_params


def bench(device: str, rounds: int) -> None:
    shapes = gpt_shapes()
    opts = candidates(shapes, device)
    n = sum(torch.Size(s).numel() for s in shapes)
    print(f"\n== {device}: {n / 1e6:.2f}M parameters in {len(shapes)} tensors, {rounds} interleaved rounds")
    for name, opt in opts.items():  # warm up: lazy state, compilation
        first = timed_step(opt, device)
        timed_step(opt, device)
        if isinstance(opt, AdEMAMix) and opt.compile_time_s is not None:
            print(f"  {name}: first step (compile) {first:.1f} s")
        if isinstance(opt, AdEMAMix) and opt.compile_error:
            print(f"  {name}: compile failed, fell back: {opt.compile_error}")
    times: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(rounds):
        for name, opt in opts.items():
            times[name].append(timed_step(opt, device))
    base = statistics.median(times["AdamW fused"])
    print(f"  {'optimizer':<24} {'median ms':>10} {'min ms':>8} {'x fused AdamW':>14} {'state B/param':>14}")
    for name, opt in opts.items():
        med = statistics.median(times[name])
        print(
            f"  {name:<24} {med * 1e3:>10.2f} {min(times[name]) * 1e3:>8.2f} "
            f"{med / base:>14.2f} {state_bytes_per_param(opt):>14.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", default=None, help="comma-separated: cpu,cuda (default: all present)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for device in devices:
        bench(device, args.rounds)


if __name__ == "__main__":
    main()
