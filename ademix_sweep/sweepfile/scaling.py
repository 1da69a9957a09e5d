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


QUICK_TRIALS = 4  # trials per optimizer of a quick try
QUICK_SHARE = 10  # a quick try's runs are this many times shorter (at least QUICK_MIN_STEPS)
QUICK_MIN_STEPS = 20


def quick_overrides(cfg: SweepConfig) -> list[str]:
    """A smoke test of a sweep file: its own sweep name + ``_quick`` (its own studies), at most
    QUICK_TRIALS trials per optimizer, runs QUICK_SHARE times shorter by the scaling rule."""
    steps = min(cfg.train.steps, max(QUICK_MIN_STEPS, cfg.train.steps // QUICK_SHARE))
    return [
        f"name={cfg.name}_quick",
        f"budget.trials={min(QUICK_TRIALS, cfg.budget.trials)}",
        *(steps_overrides(cfg, steps) if steps != cfg.train.steps else []),
    ]


def steps_overrides(cfg: SweepConfig, steps: int) -> list[str]:
    """The ``--set`` overrides that make ``cfg`` a full run of ``steps`` steps by the rule above
    (what ``run --steps`` and ``train --steps`` add): the train and pruner fields, and an
    AdEMAMix ``t_alpha_beta3`` written in steps."""
    new = scale_to(cfg, steps)
    out = [
        f"train.steps={steps}",
        f"train.eval_every={new.train.eval_every}",
        f"train.warmup_steps={new.train.warmup_steps}",
        f"pruner.min_steps={new.pruner.min_steps}",
    ]
    for name, space in cfg.optimizers.spaces().items():
        dist = dict(space).get("t_alpha_beta3")
        if dist is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in dist.values):
            continue  # a fraction: it scales by itself
        values = [scaled(v, cfg.train.steps, steps) for v in dist.values]
        written = str(values[0]) if dist.kind == "const" else f"{{{dist.kind}: [{', '.join(map(str, values))}]}}"
        out.append(f"optimizers.{name}.t_alpha_beta3={written}")
    return out
