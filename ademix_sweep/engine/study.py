"""Study naming and metadata, samplers and pruners, and the check that a resumed sweep is the same.

One Optuna study per optimizer, ``<name>.ademamix`` and ``<name>.adamw``, in one storage. Each
study's user attributes hold ``ademix_sweep``: the parts of the sweep file that change results
(its *identity*) and their hash, the data fingerprint, and the package and torch versions. A run
on a storage that already holds the sweep resumes it only if the identity and data match; the
budget (and the name and storage themselves) may change.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from importlib import metadata
from typing import Any

import optuna
from optuna.storages import RDBStorage

from ademix_sweep import __version__
from ademix_sweep.engine.contract import study_name
from ademix_sweep.engine.space import grid_space
from ademix_sweep.sweepfile.config import SweepConfig

ATTR = "ademix_sweep"
BUDGET_ATTR = "ademix_sweep_budget"  # the last run's budget.trials, for readers without the file


class SweepMismatch(Exception):
    """The storage holds a sweep of this name whose results-defining fields differ."""


OPERATIONAL = ("timeout",)  # train fields that change how trials are run, not their results


def identity(cfg: SweepConfig, optimizer: str) -> dict[str, Any]:
    """What a study's results depend on: seed, metric, search, task, training and the optimizer's
    space. Not the name, storage, budget or ``train.timeout``."""
    space = cfg.optimizers.spaces()[optimizer]
    return {
        "optimizer": optimizer,
        "seed": cfg.seed,
        "metric": cfg.metric,
        "sampler": cfg.sampler.model_dump(mode="json"),
        "pruner": cfg.pruner.model_dump(mode="json"),
        "task": cfg.task.model_dump(mode="json"),
        "train": cfg.train.model_dump(mode="json", exclude=set(OPERATIONAL)),
        "space": {field: [dist.kind, list(dist.values)] for field, dist in space},
    }


def identity_hash(ident: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def study_metadata(cfg: SweepConfig, optimizer: str, data_fingerprint: str | None) -> dict[str, Any]:
    ident = identity(cfg, optimizer)
    return {
        "identity": ident,
        "identity_hash": identity_hash(ident),
        "data_fingerprint": data_fingerprint,
        "package_version": __version__,
        "torch_version": _version("torch"),
        "optuna_version": optuna.__version__,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new), key=str)
            for d in differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        ]
    return [] if old == new else [path or "(root)"]


def create_or_resume(
    storage: RDBStorage, cfg: SweepConfig, optimizer: str, data_fingerprint: str | None, *, rank: int = 0
) -> optuna.Study:
    """Create the optimizer's study, or load it and check that it is the same sweep.

    ``data_fingerprint`` None defers the data check to whoever builds the task (``run``'s parent
    checks the file before its workers load the data); the first fingerprint given is recorded.
    ``rank`` offsets the sampler seed, so workers do not all start with the same trials.
    Raises SweepMismatch naming the fields (as sweep-file paths) that differ.
    """
    study = optuna.create_study(
        storage=storage,
        study_name=study_name(cfg.name, optimizer),
        direction="minimize",
        sampler=make_sampler(cfg, optimizer, cfg.seed + rank),
        pruner=make_pruner(cfg),
        load_if_exists=True,
    )
    if study.user_attrs.get(ATTR) is None:
        study.set_user_attr(ATTR, study_metadata(cfg, optimizer, data_fingerprint))
    if study.metric_names != [cfg.metric]:  # optuna-dashboard shows it instead of "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([cfg.metric])
    stored = check_same_sweep(study, cfg, optimizer)
    if data_fingerprint is not None and stored.get("data_fingerprint") is None:
        study.set_user_attr(ATTR, {**stored, "data_fingerprint": data_fingerprint})
        stored = study.user_attrs[ATTR]  # read back: two first writers agree on one
    if data_fingerprint is not None and stored.get("data_fingerprint") != data_fingerprint:
        raise SweepMismatch(
            f"sweep {cfg.name!r} in this storage was run on different data (fingerprint "
            f"{stored.get('data_fingerprint')}, here {data_fingerprint}): another Python version's builtin "
            "corpus, or changed data files (expected the same data; or give the sweep a new name)"
        )
    return study


def check_same_sweep(study: optuna.Study, cfg: SweepConfig, optimizer: str) -> dict[str, Any]:
    """The study's recorded metadata; SweepMismatch naming the fields if ``cfg`` differs from it."""
    stored = study.user_attrs.get(ATTR) or {}
    ident = identity(cfg, optimizer)
    if stored.get("identity_hash") != identity_hash(ident):
        changed = [_as_file_path(p, optimizer) for p in differences(stored.get("identity"), ident)]
        raise SweepMismatch(
            f"sweep {cfg.name!r} in this storage was run with different settings: {', '.join(changed)} "
            "(expected the same file; change only budget.trials, or give the sweep a new name)"
        )
    return stored


def _as_file_path(path: str, optimizer: str) -> str:
    """identity paths -> sweep-file paths: space.alpha -> optimizers.ademamix.alpha."""
    head, _, rest = path.partition(".")
    if head == "space":
        return f"optimizers.{optimizer}.{rest}"
    return path


def make_sampler(cfg: SweepConfig, optimizer: str, seed: int) -> optuna.samplers.BaseSampler:
    kind, startup = cfg.sampler.type, cfg.sampler.startup_trials
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_space(cfg.optimizers.spaces()[optimizer]), seed=seed)
    if kind == "cmaes":
        extra = {} if startup is None else {"n_startup_trials": startup}
        return optuna.samplers.CmaEsSampler(seed=seed, **extra)
    extra = {} if startup is None else {"n_startup_trials": startup}
    return optuna.samplers.TPESampler(seed=seed, **extra)


def make_pruner(cfg: SweepConfig) -> optuna.pruners.BasePruner:
    """Pruning compares evaluations by training step; none before ``pruner.min_steps``."""
    kind, min_steps = cfg.pruner.type, cfg.pruner.min_steps
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=min_steps)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(min_steps, cfg.train.eval_every), max_resource=cfg.train.steps
        )
    return optuna.pruners.NopPruner()
