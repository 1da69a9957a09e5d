"""The length-scaling rule, in one place: a sweep's run at another length is a *full* run at that
length. ``compare --horizons`` re-trains at several lengths with it.

Scaled with the length (rounded, at least 1 step where it must be positive):
- ``train.eval_every`` and ``train.warmup_steps`` (warm-up stays below the run, evaluations within it);
- ``pruner.min_steps`` (pruning starts at the same fraction of the run);
- ``t_alpha_beta3``: a fraction stays the same fraction; a value in steps scales as if it were the
  fraction it is of ``train.steps`` (so a warm-up over the whole run stays over the whole run).
The decay schedule (cosine, linear) always spans the run, so it scales by construction.
"""

from __future__ import annotations

from ademix_sweep.sweepfile.config import SweepConfig


def scaled(value: int, old: int, new: int, *, low: int = 0) -> int:
    """A step count ``value`` of an ``old``-step run, at ``new`` steps."""
    return max(low, round(value * new / old))


def scale_to(cfg: SweepConfig, steps: int) -> SweepConfig:
    """The sweep's configuration for runs of ``steps`` steps (see the module's rule)."""
    old = cfg.train.steps
    if steps == old:
        return cfg
    train = cfg.train.model_copy(
        update={
            "steps": steps,
            "eval_every": min(steps, scaled(cfg.train.eval_every, old, steps, low=1)),
            "warmup_steps": min(steps - 1, scaled(cfg.train.warmup_steps, old, steps)),
        }
    )
    pruner = cfg.pruner.model_copy(update={"min_steps": scaled(cfg.pruner.min_steps, old, steps)})
    return cfg.model_copy(update={"train": train, "pruner": pruner})
