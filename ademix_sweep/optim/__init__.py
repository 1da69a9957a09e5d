"""Optimizers: AdEMAMix, its schedulers, and build_optimizer(). Depends on torch only."""

from .ademamix import AdEMAMix
from .build import OPTIMIZERS, build_optimizer, param_groups
from .schedules import alpha_schedule, beta3_schedule, beta_from_half_life, half_life, lr_multiplier

__all__ = [
    "OPTIMIZERS",
    "AdEMAMix",
    "alpha_schedule",
    "beta3_schedule",
    "beta_from_half_life",
    "build_optimizer",
    "half_life",
    "lr_multiplier",
    "param_groups",
]
