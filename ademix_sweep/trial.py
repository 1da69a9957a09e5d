"""The trial client: what your own training script imports to be a trial of a sweep.

    from ademix_sweep import trial

    t = trial.current()                       # this run's configuration (from the sweep)
    opt = t.optimizer(model)                  # its AdEMAMix or AdamW, the built-in tasks' grouping
    for step in range(1, t.steps + 1):
        for group in opt.param_groups:        # optional: the sweep file's schedule
            group["lr"] = t.hparams["lr"] * t.lr_multiplier(step)
        ...
        if step % t.eval_every == 0:
            t.report(step, val_loss)          # raises trial.Pruned when the sweep prunes or stops

``trial.Pruned`` is a ``SystemExit`` with code 0: not caught by ``except Exception``, it ends the
script cleanly unless the script catches it itself (to save a checkpoint, say). In a distributed
job only global rank 0 (``RANK``, else ``LOCAL_RANK``) reports; the other ranks' calls do nothing, and the engine
stops the whole job when the trial ends. Outside a sweep, ``current()`` raises ``NotInSweep``
unless it is given a ``fallback`` configuration; ``ademix-sweep train SWEEP.yaml --optimizer ...
--param lr=...`` runs the script once inside the engine, with the hyperparameters ``best`` prints.
Importing this module does not import torch; ``optimizer()`` does.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ademix_sweep.tasks.command import ENV_TRIAL

if TYPE_CHECKING:
    import torch

    from ademix_sweep.optim.build import Params

REPLY_POLL_S = 0.005
REPLY_WAIT_S = 600.0  # a report's answer can wait on a database outage; past this the script goes on
TRAIN_DEFAULTS = {"warmup_steps": 0, "schedule": "cosine", "min_lr_ratio": 0.1}


class NotInSweep(RuntimeError):
    """The script runs outside a sweep and was given no fallback configuration."""


class Pruned(SystemExit):
    """The sweep pruned this trial, or is stopping: finish up and exit (code 0)."""

    def __init__(self, step: int) -> None:
        super().__init__(0)
        self.step = step

    def __str__(self) -> str:
        return f"trial stopped by the sweep at step {self.step}"


@dataclass
class Trial:
    """One run's configuration, and its channel back to the sweep."""

    optimizer_name: str
    hparams: dict[str, Any]  # the sweep file's names; t_alpha_beta3 in steps
    seed: int
    steps: int
    eval_every: int
    number: int | None = None  # the trial's number in its study; None outside a sweep
    study: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # the sweep file's train section
    report_file: str | None = None
    reply_file: str | None = None
    _replies_read: int = 0

    @property
    def in_sweep(self) -> bool:
        return self.report_file is not None

    @property
    def reports(self) -> bool:
        """Whether this process reports: global rank 0 (``RANK``; a launcher that sets only
        ``LOCAL_RANK`` runs on one machine, where local rank 0 is rank 0), or not a distributed job."""
        return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0

    def optimizer(self, model: Params, *, impl: str = "auto") -> torch.optim.Optimizer:
        """The trial's AdEMAMix or AdamW for a model (or parameters, or parameter groups), with
        the grouping the built-in tasks use: weight decay on matrices only."""
        from ademix_sweep.optim import build_optimizer

        return build_optimizer(self.optimizer_name, model, self.hparams, impl=impl)  # type: ignore[arg-type]

    def lr_multiplier(self, step: int) -> float:
        """The sweep file's schedule (train.warmup_steps, schedule, min_lr_ratio) at ``step``, as
        a fraction of the peak learning rate ``hparams["lr"]``."""
        from ademix_sweep.optim import lr_multiplier

        cfg = {**TRAIN_DEFAULTS, **self.train}
        return lr_multiplier(step, self.steps, cfg["warmup_steps"], cfg["schedule"], cfg["min_lr_ratio"])

    def report(self, step: int, val_loss: float, *, final: bool = False, train_loss: float | None = None) -> None:
        """Report a validation loss at ``step`` (the trial's value is the last one, or the one
        marked ``final``). Raises :class:`Pruned` when the sweep prunes the trial or stops."""
        if not self.reports:
            return
        line = {"step": int(step), "val_loss": float(val_loss), "final": final}
        if train_loss is not None:
            line["train_loss"] = float(train_loss)
        if not self.in_sweep:  # stand-alone (a fallback configuration): nobody to tell
            return
        with open(self.report_file, "a", encoding="utf-8") as f:  # type: ignore[arg-type]
            f.write(json.dumps({"ademix_sweep": line}) + "\n")
        if self._answer(int(step)) == "stop":
            raise Pruned(int(step))

    def _answer(self, step: int) -> str:
        """Wait for the engine's answer to the report at ``step``: "continue" or "stop"."""
        deadline = time.monotonic() + REPLY_WAIT_S
        path = Path(self.reply_file)  # type: ignore[arg-type]
        while time.monotonic() < deadline:
            lines = path.read_text(encoding="utf-8").splitlines()
            for text in lines[self._replies_read :]:
                self._replies_read += 1
                reply = json.loads(text)
                if reply.get("step") == step:
                    return str(reply.get("action", "continue"))
            time.sleep(REPLY_POLL_S)
        print(f"ademix_sweep.trial: no answer to the report at step {step}; going on", file=sys.stderr)
        return "continue"


def current(fallback: Mapping[str, Any] | None = None) -> Trial:
    """This run's trial, from the ``ADEMIX_SWEEP_TRIAL`` environment variable the engine sets.

    Outside a sweep, ``fallback`` gives the configuration: ``{"optimizer": "ademamix", "steps":
    1000, "lr": 3e-3, ...}`` (hyperparameters by their sweep-file names; ``seed`` and
    ``eval_every`` optional); without it, NotInSweep says how to run the script.
    """
    raw = os.environ.get(ENV_TRIAL)
    if raw is not None:
        data = json.loads(raw)
        return Trial(
            data["optimizer"],
            dict(data["hparams"]),
            int(data["seed"]),
            int(data["steps"]),
            int(data["eval_every"]),
            data.get("trial") if isinstance(data.get("trial"), int) else None,
            data.get("study"),
            dict(data.get("train") or {}),
            data.get("report_file"),
            data.get("reply_file"),
        )
    if fallback is None:
        raise NotInSweep(
            f"{ENV_TRIAL} is not set: this script runs as a trial of an ademix-sweep sweep. To run it once "
            "with given hyperparameters: ademix-sweep train SWEEP.yaml --optimizer ademamix --param lr=3e-3 "
            "(as `ademix-sweep best` prints them), or pass trial.current(fallback={...})"
        )
    values = dict(fallback)
    optimizer, steps = values.pop("optimizer", "ademamix"), int(values.pop("steps"))
    seed, eval_every = int(values.pop("seed", 0)), int(values.pop("eval_every", max(1, min(200, steps))))
    return Trial(optimizer, values, seed, steps, eval_every)
