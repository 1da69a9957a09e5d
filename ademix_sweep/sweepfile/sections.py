"""The sweep file's sections that are not the search space: the shared strict base model, durations,
and the task section (one model per task kind, told apart by ``kind``)."""

from __future__ import annotations

import re
import shlex
import string
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from ademix_sweep.sweepfile.dists import Dist, did_you_mean, fail

BUILTIN_DATA = {
    "lm": ("builtin:python-stdlib", "builtin:python-docs"),
    "vision": ("builtin:digits",),
}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: Any) -> Any:
    """Seconds from a number or a duration such as "90s", "30m", "2h", "1h30m"."""
    if raw is None or (isinstance(raw, int | float) and not isinstance(raw, bool)):
        return raw
    text = raw.strip().replace(" ", "") if isinstance(raw, str) else ""
    if text and _DURATION.sub("", text) == "":
        return float(sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(text)))
    raise fail(f"{raw!r} is not a duration (expected seconds, or a duration like 90s, 30m, 2h or 1h30m)")


Duration = Annotated[
    float | None,
    BeforeValidator(parse_duration),
    WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}, {"type": "null"}]}),
]


def const(value: Any) -> Any:
    return Field(default_factory=lambda: Dist("const", (value,)))


class Strict(BaseModel):
    """Strict types, and unknown keys rejected with a "did you mean" hint."""

    model_config = ConfigDict(strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            names = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    hint = did_you_mean(str(key), names)
                    message = f"unknown key (expected one of {', '.join(names)}{hint})"
                    raise PydanticCustomError("unknown_key", "{message}", {"message": message, "key": key})
        return data


class LmModel(Strict):
    layers: int = Field(2, ge=1, le=96)
    heads: int = Field(4, ge=1, le=128)
    dim: int = Field(64, ge=8, le=16384)
    tied: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> LmModel:
        if self.dim % self.heads:
            raise fail(f"dim {self.dim} is not a multiple of heads {self.heads} (expected dim % heads == 0)")
        return self


def check_builtin(kind: str, data: str) -> str:
    if data.startswith("builtin:") and data not in BUILTIN_DATA[kind]:
        raise fail(f"unknown data {data!r} (expected one of {', '.join(BUILTIN_DATA[kind])}, or a path)")
    return data


class LmTask(Strict):
    kind: Literal["lm"]
    data: Annotated[str, AfterValidator(lambda d: check_builtin("lm", d))] = "builtin:python-stdlib"
    seq_len: int = Field(64, ge=2, le=65536)
    vocab_size: int | None = Field(
        None, ge=2, le=1 << 24, description="Default: 256 for text, the largest token + 1 for a .bin token file."
    )
    model: LmModel = Field(default_factory=LmModel)


class VisionModel(Strict):
    channels: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=lambda: [16, 32], min_length=1)
    hidden: int = Field(64, ge=1)


class VisionTask(Strict):
    kind: Literal["vision"]
    data: Annotated[str, AfterValidator(lambda d: check_builtin("vision", d))] = "builtin:digits"
    model: VisionModel = Field(default_factory=VisionModel)


class RosenbrockTask(Strict):
    kind: Literal["rosenbrock"]
    start: list[float] = Field(default_factory=lambda: [-3.0, 5.0], min_length=2, max_length=2)
    step_pause_s: float = Field(default=0.0, ge=0.0, le=10.0)  # a sleep per step: a slow trial, for demos and tests


class CustomTask(Strict):
    kind: Literal["custom"]
    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)


COMMAND_VALUES = ("optimizer", "seed", "steps", "eval_every", "trial", "gpus")  # placeholders beside hyperparameters


def split_command(raw: Any) -> Any:
    """A command as a list of words: a string is split as a shell would (quotes kept together)."""
    if isinstance(raw, str):
        try:
            raw = shlex.split(raw)
        except ValueError as exc:
            raise fail(f"{exc} (expected a command line with balanced quotes, or a list of words)") from None
    if isinstance(raw, list) and not raw:
        raise fail("the command is empty (expected a program and its arguments)")
    return raw


def placeholders(words: list[str]) -> set[str]:
    """The ``{name}`` placeholders in a command's words (``{{`` and ``}}`` are literal braces)."""
    found = set()
    for word in words:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(word) if name is not None]
        except ValueError as exc:
            expected = "expected {name} placeholders, and {{ or }} for a literal brace"
            raise fail(f"{word!r}: {exc} ({expected})") from None
        for name in fields:
            if not name.isidentifier():
                raise fail(f"{word!r}: {{{name}}} is not a placeholder name (expected a name such as {{lr}})")
            found.add(name)
    return found


class CommandTask(Strict):
    """Any training command as a trial (docs/own-training.md)."""

    kind: Literal["command"]
    command: Annotated[list[str], BeforeValidator(split_command)] = Field(
        description="The command: a list of words, or one string split as a shell would; {placeholders} expand."
    )
    cwd: str = Field(".", description="The command's working directory, relative to the sweep file.")
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)
    timeout: Duration = Field(
        None, gt=0, description="Per trial: one running longer is killed and failed as timeout (e.g. 2h; null: none)."
    )
    gpus_per_trial: int = Field(
        1, ge=0, le=64, description="GPUs a trial gets (its CUDA_VISIBLE_DEVICES; {gpus} expands to it); 0: CPU."
    )

    @model_validator(mode="after")
    def _placeholders_parse(self) -> CommandTask:
        placeholders(self.command)
        return self


TASK_KINDS = ("lm", "vision", "rosenbrock", "custom", "command")
Task = Annotated[LmTask | VisionTask | RosenbrockTask | CustomTask | CommandTask, Field(discriminator="kind")]
