"""A Hugging Face Trainer script as a trial of an ademix-sweep sweep: a tiny GPT-2 built from a
config (no download) on bytes of the Python standard library's sources.

    pip install -e ".[hf]"
    ademix-sweep run examples/hf_trainer/sweep.yaml --workers 2

Three lines make the script a trial (marked "ademix-sweep"): read the trial, give the Trainer
its optimizer, add the callback that reports eval_loss and stops the Trainer when pruned.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from ademix_sweep import trial
from ademix_sweep.hf import AdemixSweepCallback

FALLBACK = {"optimizer": "ademamix", "steps": 60, "eval_every": 20, "lr": 3e-3}
BLOCK = 64


class Bytes(torch.utils.data.Dataset):
    """Fixed windows of bytes: input_ids and labels (the model shifts them itself)."""

    def __init__(self, data: bytes) -> None:
        self.data = torch.tensor(list(data), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.data) // BLOCK

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        window = self.data[i * BLOCK : (i + 1) * BLOCK]
        return {"input_ids": window, "labels": window}


def main() -> None:
    t = trial.current(fallback=FALLBACK)  # ademix-sweep
    root = Path(sysconfig.get_paths()["stdlib"])
    text = b"".join(path.read_bytes() for path in sorted(root.glob("[a-c]*.py")))[:200_000]
    split = int(0.9 * len(text))
    torch.manual_seed(t.seed)
    config = GPT2Config(vocab_size=256, n_positions=BLOCK, n_embd=64, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(config)
    args = TrainingArguments(
        output_dir="hf_out",
        max_steps=t.steps,
        eval_strategy="steps",
        eval_steps=t.eval_every,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=t.hparams["lr"],
        lr_scheduler_type="cosine",
        seed=t.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=t.eval_every,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Bytes(text[:split]),
        eval_dataset=Bytes(text[split:]),
        optimizers=(t.optimizer(model), None),  # ademix-sweep: the trial's AdEMAMix or AdamW
        callbacks=[AdemixSweepCallback(t)],  # ademix-sweep: reports eval_loss, stops when pruned
    )
    trainer.train()


if __name__ == "__main__":
    main()
