"""Search space -> Optuna ``suggest_*`` calls, and sampled values -> optimizer hyperparameters:
the one route from a space to hyperparameters (``sample_hparams``), for a sweep's trials, for
``compare``'s re-runs (a FixedTrial of stored params) and for ``train`` (``default_config``).

Trial params are stored under the sweep file's names, so optuna-dashboard shows them plainly:
``lr``, ``alpha``, ``t_alpha_beta3`` (as written: steps or a fraction)... The two EMA kinds are
sampled in their own units and named for them (``beta3_half_life``, ``one_minus_beta2``); the
resulting beta is stored as a user attribute under its plain name, as is ``t_alpha_beta3_steps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from optuna.trial import FixedTrial

from ademix_sweep.sweepfile.config import DEFAULT_LR, AdamWSpace, t_alpha_beta3_steps
from ademix_sweep.sweepfile.dists import Dist
from ademix_sweep.sweepfile.scaling import scaled

PLAIN_ATTRS = ("beta1", "beta2", "beta3")  # sampled in their own units, stored under their plain names too
STEPS_ATTR = "t_alpha_beta3_steps"


class TrialLike(Protocol):
    """The part of ``optuna.trial.Trial`` used here (FixedTrial fits too)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def set_user_attr(self, key: str, value: Any) -> None: ...


def param_name(name: str, dist: Dist) -> str:
    """The name a hyperparameter is stored under in the trial's params."""
    if dist.kind == "half_life":
        return f"{name}_half_life"
    if dist.kind == "one_minus_log":
        return f"one_minus_{name}"
    return name


def from_param(dist: Dist, sampled: Any) -> Any:
    """The hyperparameter value for a value sampled (or stored) in the dist's own units."""
    if dist.kind == "half_life":
        return 0.5 ** (1.0 / sampled)
    if dist.kind == "one_minus_log":
        return 1.0 - sampled
    return sampled


def suggest(trial: TrialLike, name: str, dist: Dist) -> Any:
    """Sample one hyperparameter; constants are returned as they are, without a suggest call."""
    key = param_name(name, dist)
    if dist.kind == "const":
        return dist.values[0]
    if dist.kind == "choice":
        return trial.suggest_categorical(key, list(dist.values))
    if dist.kind == "int":
        return trial.suggest_int(key, dist.low, dist.high)
    if dist.kind == "one_minus_log":
        return from_param(dist, trial.suggest_float(key, 1.0 - dist.high, 1.0 - dist.low, log=True))
    log = dist.kind in ("log_uniform", "half_life")
    return from_param(dist, trial.suggest_float(key, float(dist.low), float(dist.high), log=log))


def sample_hparams(trial: TrialLike, space: AdamWSpace, train_steps: int) -> dict[str, Any]:
    """Sample a whole optimizer space into ``build_optimizer`` hyperparameters."""
    hparams: dict[str, Any] = {}
    for name, dist in space:
        value = suggest(trial, name, dist)
        if param_name(name, dist) != name:
            trial.set_user_attr(name, value)
        if name == "t_alpha_beta3":
            if dist.kind in ("uniform", "log_uniform") and isinstance(dist.low, int):
                value = round(value)  # a range given in steps
            value = t_alpha_beta3_steps(value, train_steps)
            trial.set_user_attr(STEPS_ATTR, value)
        hparams[name] = value
    return hparams


def hparams_at_length(params: Mapping[str, Any], space: AdamWSpace, steps: int, new_steps: int) -> dict[str, Any]:
    """The hyperparameters of a trial of a ``steps``-step sweep (its stored ``params``) for a run
    of ``new_steps`` steps: a ``t_alpha_beta3`` fraction is resolved against the new length, one
    written in steps scales with it (sweepfile.scaling's rule)."""
    hparams = sample_hparams(FixedTrial(dict(params)), space, new_steps)
    written = params.get("t_alpha_beta3")
    dist = dict(space).get("t_alpha_beta3")
    if written is None and dist is not None and dist.kind == "const":
        written = dist.values[0]
    if isinstance(written, int) and not isinstance(written, bool) and new_steps != steps:
        hparams["t_alpha_beta3"] = scaled(written, steps, new_steps) or None
    return hparams


def default_config(space: AdamWSpace) -> tuple[AdamWSpace, list[str]]:
    """One configuration of a space: each distribution replaced by its field's documented default
    (lr: DEFAULT_LR), constants as written. Returns that space of constants (``sample_hparams``
    of any trial gives its hyperparameters) and the names that took a default."""
    changes: dict[str, Dist] = {}
    for name, dist in space:
        if dist.kind != "const":
            field = type(space).model_fields[name]
            changes[name] = field.default_factory() if field.default_factory else Dist("const", (DEFAULT_LR,))  # type: ignore[call-arg]
    return space.model_copy(update=changes), list(changes)


def plain_hyperparameters(params: Mapping[str, Any], user_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's stored params under the sweep file's field names, in plain units (a half-life
    sampled for beta3 appears as beta3; t_alpha_beta3 in steps): ``sample_hparams`` read back."""
    plain = dict(params)
    for name in PLAIN_ATTRS:
        if name in user_attrs:
            plain.pop(f"{name}_half_life", None)
            plain.pop(f"one_minus_{name}", None)
            plain[name] = user_attrs[name]
    if STEPS_ATTR in user_attrs:
        plain["t_alpha_beta3"] = user_attrs[STEPS_ATTR]
    return plain


def grid_space(space: AdamWSpace) -> dict[str, list[Any]]:
    """The search space for Optuna's GridSampler (config validation allows only choices there)."""
    return {param_name(name, dist): list(dist.values) for name, dist in space if dist.kind == "choice"}
