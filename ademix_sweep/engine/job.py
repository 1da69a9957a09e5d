"""A job: one configuration of one optimizer, built from a sweep file (its task, data paths
relative to the file, the hyperparameters given and the documented defaults for the rest) and
ready to train. What ``ademix-sweep train`` runs, and what each worker builds once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from ademix_sweep.engine.space import default_config, sample_hparams
from ademix_sweep.sweepfile.config import SweepConfig, read_sweep
from ademix_sweep.sweepfile.yamlio import SweepFileError, dotted
from ademix_sweep.tasks import Task, TaskError, build_task
from ademix_sweep.train import Diverged, Progress, TrainResult, resolve_device, train


class BadDevice(ValueError):
    """A --device the machine cannot train on."""


class TrainingFailed(RuntimeError):
    """The task's own code (or the device) failed during training."""


@dataclass
class Job:
    """One configuration of one optimizer, ready to train: what ``ademix-sweep train`` runs."""

    cfg: SweepConfig
    task: Task
    optimizer: str
    hparams: dict[str, Any]  # build_optimizer's names; t_alpha_beta3 in steps
    defaulted: list[str]  # the hyperparameters that took their documented default
    device: torch.device


def check_device(name: str) -> torch.device:
    """Parse ``--device``; raise BadDevice for a malformed or absent device."""
    try:
        dev = resolve_device(name)
    except RuntimeError:
        raise BadDevice(f"--device {name}: not a device (expected auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise BadDevice(f"--device {name}: no such CUDA device here (expected auto or cpu)")
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise BadDevice(f"--device {name}: unsupported device type (expected auto, cpu, cuda or cuda:N)")
    return dev


def prepare_job(
    file: str,
    optimizer: str | None,
    params: tuple[str, ...] | list[str],
    overrides: tuple[str, ...] | list[str],
    device: str,
) -> Job:
    """Read the sweep file, build its task (data paths relative to the file) and resolve one
    configuration (``optimizer`` None: the file's first). Raises SweepFileError (with the file,
    line and field) or BadDevice."""
    cfg, doc = read_sweep(file, overrides, optimizer=optimizer, params=params)
    optimizer = optimizer or next(iter(cfg.optimizers.spaces()))
    dev = check_device(device)
    try:
        task = build_task(cfg.task, Path(file).parent)
    except TaskError as exc:
        raise SweepFileError(doc.source, doc.line_of(exc.loc), dotted(exc.loc), exc.message) from None
    space, defaulted = default_config(cfg.optimizers.spaces()[optimizer])
    values = sample_hparams(optuna.trial.FixedTrial({}), space, cfg.train.steps)
    return Job(cfg, task, optimizer, values, defaulted, dev)


def run_job(job: Job, *, seed: int | None = None, on_log: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train a job; the task's own exceptions become TrainingFailed (Diverged and Ctrl-C pass)."""
    try:
        return train(
            job.task,
            job.optimizer,
            job.hparams,
            job.cfg.train,
            device=job.device,
            seed=job.cfg.seed if seed is None else seed,
            on_log=on_log,
        )
    except (Diverged, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise TrainingFailed(f"{job.optimizer} training failed: {type(exc).__name__}: {exc}") from exc


def result_json(job: Job, result: TrainResult, seed: int | None) -> dict[str, Any]:
    """The result as ``ademix-sweep train --json`` prints it."""
    return {
        "optimizer": job.optimizer,
        "hparams": job.hparams,
        "defaulted": job.defaulted,
        "seed": job.cfg.seed if seed is None else seed,
        "task": job.cfg.task.kind,
        "data_fingerprint": job.task.fingerprint,
        **result.to_dict(),
        f"{result.unit}_per_s": result.items_per_s,
    }
