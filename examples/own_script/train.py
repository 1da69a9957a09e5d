"""A user's own training script, nanoGPT-style, made a trial of an ademix-sweep sweep with four
lines (marked "ademix-sweep"). A tiny character-level GPT on the Python standard library's
sources (on every machine), small enough for a CPU.

    ademix-sweep run examples/own_script/sweep.yaml --workers 2   # a sweep of this script
    python examples/own_script/train.py                          # stand-alone, with FALLBACK

Everything else is an ordinary training loop: the script owns its model, data, batch size and
evaluation; the sweep gives it an optimizer configuration, a seed and a number of steps.
"""

from __future__ import annotations

import math
import sysconfig
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ademix_sweep import trial  # ademix-sweep

# Outside a sweep: this configuration (a sweep passes its own in the environment).
FALLBACK = {"optimizer": "ademamix", "steps": 300, "eval_every": 50, "lr": 3e-3, "beta3": 0.999, "alpha": 5.0}
BLOCK, BATCH, DIM, LAYERS, HEADS = 64, 16, 64, 2, 4


def load_text(limit: int = 400_000) -> bytes:
    """Python's own sources, a fixed selection and order: the same text on every run."""
    root = Path(sysconfig.get_paths()["stdlib"])
    text = b"".join(path.read_bytes() for path in sorted(root.glob("[a-m]*.py")))
    return text[:limit]


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]  # (B, T, DIM)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = 256) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, DIM), nn.Embedding(BLOCK, DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln, self.head = nn.LayerNorm(DIM), nn.Linear(DIM, vocab, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(BLOCK, BLOCK, dtype=torch.bool), 1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))  # (B, T, DIM)
        for block in self.blocks:
            x = block(x, self.mask[:t, :t])
        return self.head(self.ln(x))  # (B, T, vocab)


def batch(data: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(len(data) - BLOCK - 1, (BATCH,), generator=gen)
    x = torch.stack([data[s : s + BLOCK] for s in starts])
    y = torch.stack([data[s + 1 : s + BLOCK + 1] for s in starts])
    return x.long(), y.long()


@torch.no_grad()
def evaluate(model: nn.Module, val: torch.Tensor) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(1234)  # the same validation batches every time
    losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()) for x, y in (batch(val, gen) for _ in range(8))]
    model.train()
    return torch.stack(losses).mean().item()


def main() -> None:
    t = trial.current(fallback=FALLBACK)  # ademix-sweep: this run's optimizer, hyperparameters, seed, steps
    torch.manual_seed(t.seed)  # the seed fixes the model and the data order: compare needs that
    data = torch.frombuffer(bytearray(load_text()), dtype=torch.uint8)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    model = TinyGPT()
    opt = t.optimizer(model)  # ademix-sweep: AdEMAMix or AdamW, the sweep's hyperparameters
    gen = torch.Generator().manual_seed(t.seed)
    for step in range(1, t.steps + 1):
        for group in opt.param_groups:
            group["lr"] = t.hparams["lr"] * t.lr_multiplier(step)  # the sweep file's schedule
        x, y = batch(train_data, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if not math.isfinite(loss.item()):
            t.report(step, loss.item())  # a diverged run: the sweep records it and stops it
        if step % t.eval_every == 0 or step == t.steps:
            val_loss = evaluate(model, val_data)
            print(f"step {step}: train {loss.item():.4f} val {val_loss:.4f}", flush=True)
            t.report(step, val_loss, train_loss=loss.item())  # ademix-sweep: raises trial.Pruned if pruned


if __name__ == "__main__":
    main()
