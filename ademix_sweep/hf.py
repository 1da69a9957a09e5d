"""Hugging Face Transformers: a ``Trainer`` run as a trial of a sweep (the ``hf`` extra).

    from ademix_sweep import trial
    from ademix_sweep.hf import AdemixSweepCallback

    t = trial.current()
    args = TrainingArguments(..., max_steps=t.steps, eval_strategy="steps", eval_steps=t.eval_every,
                             seed=t.seed, learning_rate=t.hparams["lr"])
    trainer = Trainer(model=model, args=args, ..., optimizers=(t.optimizer(model), None),
                      callbacks=[AdemixSweepCallback(t)])
    trainer.train()

``optimizers=(t.optimizer(model), None)`` gives the Trainer the trial's AdEMAMix or AdamW (the
built-in tasks' parameter grouping); the Trainer adds its own schedule (``lr_scheduler_type``)
on top. The callback reports each evaluation's ``eval_loss`` at the global step; when the sweep
prunes the trial (or stops), it asks the Trainer to stop, and ``pruned`` says so afterwards.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ademix_sweep.trial import Pruned, Trial, current


class AdemixSweepCallback(TrainerCallback):
    """Reports ``eval_loss`` to the sweep after each evaluation; stops training when pruned."""

    def __init__(self, t: Trial | None = None, metric: str = "eval_loss") -> None:
        self.trial = t if t is not None else current()
        self.metric = metric
        self.pruned: Pruned | None = None

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        metrics = kwargs.get("metrics") or {}
        value = metrics.get(self.metric)
        if value is None or self.pruned is not None:
            return control
        try:
            self.trial.report(state.global_step, float(value))
        except Pruned as stop:
            self.pruned = stop
            control.should_training_stop = True
        return control
