"""Sweep files: YAML -> a validated :class:`SweepConfig` (pydantic 2). The one place that knows
the schema; ``docs/sweep-file.md`` documents it field by field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ademix_sweep.sweepfile.dists import Dist, Rule, did_you_mean, fail
from ademix_sweep.sweepfile.schema_errors import to_file_error
from ademix_sweep.sweepfile.sections import (
    COMMAND_VALUES,
    TASK_KINDS,
    CommandTask,
    Duration,
    Strict,
    Task,
    const,
    placeholders,
)
from ademix_sweep.sweepfile.yamlio import Document, SweepFileError, apply_override, dotted, read_document

OPTIMIZERS = ("ademamix", "adamw")  # the optimizers a sweep compares, in the order they are shown


def param(rule: Rule) -> Any:
    """A hyperparameter field: constant or distribution, range-checked by ``rule``."""
    return Annotated[Dist, BeforeValidator(rule.parse), WithJsonSchema(rule.json_schema())]


LR = param(Rule("lr", 0.0, low_open=True))
BETA1 = param(Rule("beta1", 0.0, 1.0, ema=True))
BETA2 = param(Rule("beta2", 0.0, 1.0, ema=True))
BETA3 = param(Rule("beta3", 0.0, 1.0, ema=True))
ALPHA = param(Rule("alpha", 0.0))
DECAY = param(Rule("weight_decay", 0.0))
EPS = param(Rule("eps", 0.0, low_open=True))
T_WARM = param(Rule("t_alpha_beta3", 0.0))


class Train(Strict):
    steps: int = Field(ge=1)
    batch_size: int = Field(32, ge=1)
    eval_every: int = Field(200, ge=1, description="Default: 200, or steps if the run is shorter.")
    eval_batches: int = Field(8, ge=1)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    divergence_factor: float | None = Field(
        4.0, gt=1.0, description="Divergence: a loss above this many times the first step's (null: only NaN/inf)."
    )
    timeout: Duration = Field(
        None, gt=0, description="Per trial: one running longer is stopped and failed as timeout (e.g. 2h; null: none)."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_eval_every(cls, data: Any) -> Any:
        if isinstance(data, dict) and "eval_every" not in data and isinstance(data.get("steps"), int):
            data = {**data, "eval_every": max(1, min(200, data["steps"]))}
        return data

    @model_validator(mode="after")
    def _fits_in_run(self) -> Train:
        if self.warmup_steps >= self.steps:
            raise fail(f"warmup_steps {self.warmup_steps} >= steps {self.steps} (expected warmup_steps < steps)")
        if self.eval_every > self.steps:
            raise fail(f"eval_every {self.eval_every} > steps {self.steps} (expected eval_every <= steps)")
        return self


class Budget(Strict):
    trials: int = Field(ge=1, description="Finished (complete or pruned) trials per optimizer.")


class Sampler(Strict):
    type: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    startup_trials: int | None = Field(None, ge=0, description="Random trials before TPE/CMA-ES models.")


class Pruner(Strict):
    type: Literal["none", "median", "hyperband"] = "median"
    min_steps: int = Field(0, ge=0, description="Training steps before a trial may be pruned.")


class AdamWSpace(Strict):
    lr: LR
    beta1: BETA1 = const(0.9)
    beta2: BETA2 = const(0.999)
    weight_decay: DECAY = const(0.1)
    eps: EPS = const(1e-8)


class AdEMAMixSpace(AdamWSpace):
    beta3: BETA3 = const(0.9999)
    alpha: ALPHA = const(5.0)
    t_alpha_beta3: T_WARM = Field(
        default_factory=lambda: Dist("const", (1.0,)),
        description="Warm-up of alpha and beta3: an integer is steps, a float in [0, 1] a fraction of train.steps.",
    )


class Optimizers(Strict):
    adamw: AdamWSpace | None = None
    ademamix: AdEMAMixSpace | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Optimizers:
        if not self.spaces():
            raise fail("no optimizer (expected at least one of adamw, ademamix)")
        return self

    def spaces(self) -> dict[str, AdamWSpace]:
        return {name: space for name in OPTIMIZERS if (space := getattr(self, name)) is not None}


class SweepConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Study name prefix.")
    storage: str | None = Field(
        None,
        description="Optuna storage URL; else ADEMIX_SWEEP_STORAGE, else sqlite:///runs/<name>.db; --storage wins.",
    )
    seed: int = Field(0, ge=0)
    metric: Literal["val_loss"] = "val_loss"
    budget: Budget
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    task: Task
    train: Train
    optimizers: Optimizers

    @model_validator(mode="after")
    def _cross_checks(self) -> SweepConfig:
        if isinstance(self.task, CommandTask):
            check_placeholders(self.task, self.optimizers)
        for name, space in self.optimizers.spaces().items():
            if isinstance(space, AdEMAMixSpace):
                check_t_alpha_beta3(space.t_alpha_beta3, self.train.steps, name)
            if self.sampler.type == "grid":
                for field, dist in space:
                    if dist.kind not in ("const", "choice"):
                        raise _FieldError(
                            ("optimizers", name, field),
                            f"{dist.kind} cannot be searched by sampler.type grid (expected a choice or a constant)",
                        )
        return self


class _FieldError(Exception):
    """A cross-field error with the path it belongs to."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


def check_placeholders(task: CommandTask, optimizers: Optimizers) -> None:
    """Each {placeholder} names a value every trial of the sweep has."""
    spaces = optimizers.spaces()
    shared = set.intersection(*(set(type(space).model_fields) for space in spaces.values()))
    known = [*COMMAND_VALUES, *sorted(shared)]
    for name in sorted(placeholders(task.command)):
        if name in known:
            continue
        owners = [opt for opt, space in spaces.items() if name in type(space).model_fields]
        if owners:
            message = (
                f"{{{name}}} is a hyperparameter of {', '.join(owners)} only (expected one every trial has: "
                f"{', '.join(known)}; the other optimizer's trials have no {name}: read it from the "
                "ADEMIX_SWEEP_TRIAL environment variable or ademix_sweep.trial instead)"
            )
        else:
            message = f"unknown placeholder {{{name}}} (expected one of {', '.join(known)}{did_you_mean(name, known)})"
        raise _FieldError(("task", "command"), message)


def check_t_alpha_beta3(dist: Dist, steps: int, optimizer: str) -> None:
    """Integers are steps (0..steps); floats are fractions of train.steps (0..1).

    A uniform or log_uniform range is in steps when both bounds are integers (samples are then
    rounded to whole steps), else a range of fractions.
    """
    loc = ("optimizers", optimizer, "t_alpha_beta3")
    if dist.kind in ("uniform", "log_uniform") and len({type(v) for v in dist.values}) > 1:
        raise _FieldError(
            loc, f"bounds {list(dist.values)} mix steps and fractions (expected two integers or two floats)"
        )
    for value in dist.values:
        if isinstance(value, float) and value > 1.0:
            raise _FieldError(
                loc, f"{value!r} is a float above 1 (expected a fraction in [0, 1], or an integer of steps)"
            )
        if isinstance(value, int) and value > steps:
            raise _FieldError(loc, f"{value} steps is beyond the run (expected at most train.steps = {steps})")


def t_alpha_beta3_steps(value: float | int, steps: int) -> int | None:
    """Resolve a t_alpha_beta3 value to steps: None (no warm-up) for 0."""
    n = round(value * steps) if isinstance(value, float) else int(value)
    return n or None


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepConfig:
    """Read, override (``path.to.field=value``) and validate a sweep file.

    Raises SweepFileError (one line: ``FILE:LINE: path: what (expected)``) for any problem.
    """
    return read_sweep(path, overrides)[0]


def read_sweep(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    optimizer: str | None = None,
    params: list[str] | tuple[str, ...] = (),
) -> tuple[SweepConfig, Document]:
    """:func:`load_sweep`, plus the document (for error lines), and ``--param name=value``
    overrides of one optimizer's hyperparameters, which must be in the file."""
    doc = read_document(path)
    for override in overrides:
        apply_override(doc, override)
    cfg = validate_document(doc)
    if optimizer is None:
        return cfg, doc
    spaces = cfg.optimizers.spaces()
    if optimizer not in spaces:
        message = f"{optimizer!r} is not in the file (expected one of {', '.join(spaces)})"
        raise SweepFileError(doc.source, doc.line_of(("optimizers",)), "optimizers", message)
    for param in params:
        apply_override(doc, param, flag="--param", under=("optimizers", optimizer))
    return (validate_document(doc) if params else cfg), doc


DEFAULT_LR = 1e-3  # the documented default when lr is a distribution and no --param gives it


def validate_document(doc: Document) -> SweepConfig:
    if doc.data is None:
        raise SweepFileError(doc.source, None, "", "the file is empty (expected a mapping with name, task, train, ...)")
    if not isinstance(doc.data, dict):
        kind = {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(
            type(doc.data).__name__, type(doc.data).__name__
        )
        raise SweepFileError(doc.source, 1, "", f"the top level is a {kind} (expected a mapping of sweep settings)")
    try:
        return SweepConfig.model_validate(doc.data)
    except _FieldError as exc:
        raise SweepFileError(doc.source, doc.line_of(exc.loc), dotted(exc.loc), exc.message) from None
    except ValidationError as exc:
        raise to_file_error(doc, exc.errors()[0], TASK_KINDS) from None


def json_schema() -> dict[str, Any]:
    """The sweep file's JSON Schema, for editors (yaml-language-server) and checks."""
    schema = SweepConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ademix-sweep sweep file"
    return schema


def free_dimensions(space: AdamWSpace) -> int:
    return sum(dist.free for _, dist in space)
