"""build_optimizer(): AdEMAMix or AdamW over one shared parameter grouping, for fair comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .ademamix import AdEMAMix, Impl

# Hyperparameter names as sweep files spell them, with the defaults both optimizers share.
_SHARED = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
DEFAULTS: dict[str, dict[str, Any]] = {
    "adamw": dict(_SHARED),
    "ademamix": {**_SHARED, "beta3": 0.9999, "alpha": 5.0, "t_alpha_beta3": None},
}
OPTIMIZERS = tuple(DEFAULTS)


Params = nn.Module | Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def param_groups(model: Params, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: matrices (and higher) decay; biases, norms and other 1-D tensors do not.

    Both optimizers use this grouping, so a comparison differs only in the update rule.
    Frozen parameters (requires_grad=False) are left out; empty groups are dropped.
    ``model`` may also be an iterable of parameters (grouped the same way) or of parameter
    groups (dicts, kept as given; a group without ``weight_decay`` gets ``weight_decay``).
    """
    items = list(model.parameters() if isinstance(model, nn.Module) else model)
    if items and all(isinstance(item, dict) for item in items):
        return [{"weight_decay": weight_decay, **group} for group in items]  # type: ignore[dict-item]
    params = [p for p in items if isinstance(p, torch.Tensor) and p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _resolve(name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    if name not in DEFAULTS:
        raise ValueError(f"Unknown optimizer: {name!r} (expected one of {', '.join(OPTIMIZERS)})")
    unknown = sorted(set(hparams) - set(DEFAULTS[name]))
    if unknown:
        raise ValueError(
            f"Unknown {name} hyperparameter(s): {', '.join(unknown)} (expected some of {', '.join(DEFAULTS[name])})"
        )
    return {**DEFAULTS[name], **hparams}


def _fused_adamw_ok(groups: list[dict[str, Any]]) -> bool:
    devices = {"cpu", "cuda", "xpu", "mps"}
    return all(p.is_floating_point() and p.device.type in devices for g in groups for p in g["params"])


def build_optimizer(
    name: str, model: Params, hparams: Mapping[str, Any], *, impl: Impl = "auto"
) -> torch.optim.Optimizer:
    """Build 'ademamix' (:class:`AdEMAMix`) or 'adamw' (``torch.optim.AdamW``, fused where
    available) for ``model``'s trainable parameters (or parameters, or groups: ``param_groups``).

    ``hparams`` uses the sweep-file names: lr, beta1, beta2, eps, weight_decay, and for
    ademamix also beta3, alpha and t_alpha_beta3 (in steps). Missing ones take
    :data:`DEFAULTS` (weight_decay 0.0, no warm-up: torch's and the paper's plain-call values);
    unknown ones raise ValueError. ``impl`` selects AdEMAMix's update path.

    A sweep never relies on these defaults: it passes every hyperparameter, taking the sweep
    file's documented defaults (weight_decay 0.1, t_alpha_beta3 the whole run) for those the file
    leaves out (docs/sweep-file.md).
    """
    hp = _resolve(name, hparams)
    groups = param_groups(model, float(hp["weight_decay"]))
    if not groups:
        raise ValueError("The model has no trainable parameters")
    if name == "adamw":
        kwargs = dict(lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
        if _fused_adamw_ok(groups):
            try:
                return torch.optim.AdamW(groups, **kwargs, fused=True)
            except (RuntimeError, ValueError):  # fused kernels missing for this device/dtype
                pass
        return torch.optim.AdamW(groups, **kwargs)
    t_warm = hp["t_alpha_beta3"]
    if isinstance(t_warm, float) and t_warm.is_integer():
        t_warm = int(t_warm)
    return AdEMAMix(
        groups,
        lr=hp["lr"],
        betas=(hp["beta1"], hp["beta2"], hp["beta3"]),
        alpha=hp["alpha"],
        t_alpha_beta3=t_warm,
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        impl=impl,
    )
