"""The value grammar of a searchable hyperparameter in a sweep file, and its range rules.

A hyperparameter is a constant (``0.9``) or a one-key mapping naming a distribution:

=================  ==============================  =============================================
``uniform``        ``[low, high]``                 float, uniform
``log_uniform``    ``[low, high]``                 float, uniform in log space (low > 0)
``int``            ``[low, high]``                 integer, uniform, both ends included
``choice``         ``[a, b, ...]``                 one of the listed values
``one_minus_log``  ``[low, high]`` (beta values)   1 - beta log-uniform in [1 - high, 1 - low]
``half_life``      ``[low, high]`` (steps)         half-life h log-uniform; beta = 0.5 ** (1 / h)
=================  ==============================  =============================================

``one_minus_log`` and ``half_life`` exist for EMA coefficients, whose useful values crowd
against 1: uniform sampling of beta in [0.99, 0.9999] would spend 90% of trials below 0.999.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError

KINDS = ("uniform", "log_uniform", "int", "choice", "one_minus_log", "half_life")
EMA_KINDS = ("one_minus_log", "half_life")


def fail(message: str) -> PydanticCustomError:
    """A validation error whose text is exactly ``message`` (no "Value error," prefix)."""
    return PydanticCustomError("sweep", "{message}", {"message": message})


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Dist:
    """A parsed hyperparameter: ``kind`` is "const" or one of :data:`KINDS`."""

    kind: str
    values: tuple[Any, ...]  # (value,) for const, the choices, or (low, high)

    @property
    def free(self) -> bool:
        """Whether sampling can give more than one value (a free dimension of the search)."""
        return self.kind != "const" and not (self.kind == "choice" and len(set(self.values)) == 1)

    @property
    def low(self) -> Any:
        return self.values[0]

    @property
    def high(self) -> Any:
        return self.values[-1]

    def beta_range(self) -> tuple[float, float] | None:
        """For the EMA kinds, the range of beta they sample."""
        if self.kind == "half_life":
            return 0.5 ** (1 / self.low), 0.5 ** (1 / self.high)
        if self.kind == "one_minus_log":
            return self.low, self.high
        return None

    def describe(self) -> str:
        if self.kind == "const":
            return f"{self.values[0]!r} (constant)"
        if self.kind == "choice":
            return "choice [" + ", ".join(repr(v) for v in self.values) + "]"
        text = f"{self.kind} [{self.low!r}, {self.high!r}]"
        if self.kind == "half_life":
            lo, hi = self.beta_range()
            text += f" steps (beta {lo:.5g} to {hi:.5g})"
        return text


@dataclass(frozen=True)
class Rule:
    """The allowed values of one hyperparameter, e.g. ``0 <= beta3 < 1``."""

    name: str
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    ema: bool = False  # allows one_minus_log and half_life

    def expected(self) -> str:
        lo = f"{self.low:g} {'<' if self.low_open else '<='} "
        hi = "" if self.high == math.inf else f" {'<' if self.high_open else '<='} {self.high:g}"
        return f"{lo}{self.name}{hi}"

    def ok(self, x: object) -> bool:
        if not is_number(x):
            return False
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def check(self, x: object) -> None:
        if isinstance(x, bool) or not is_number(x):
            raise fail(f"{x!r} is not a number (expected a number with {self.expected()})")
        if not self.ok(x):
            raise fail(f"{x!r} is out of range (expected {self.expected()})")

    def parse(self, raw: Any) -> Dist:
        """Parse and range-check a raw YAML value into a :class:`Dist`."""
        if isinstance(raw, Dist):
            return raw
        if not isinstance(raw, dict):
            self.check(raw)
            return Dist("const", (raw,))
        if len(raw) != 1:
            raise fail(f"a distribution has exactly one key, got {len(raw)} (expected one of {', '.join(KINDS)})")
        kind, args = next(iter(raw.items()))
        if kind not in KINDS:
            raise fail(f"unknown distribution {kind!r} (expected one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)})")
        if kind in EMA_KINDS and not self.ema:
            raise fail(f"{kind} is only for EMA coefficients beta1, beta2, beta3 (expected uniform, log_uniform, ...)")
        if not isinstance(args, list) or not args:
            raise fail(f"{kind} takes a list (expected {kind}: [{'a, b, ...' if kind == 'choice' else 'low, high'}])")
        if kind == "choice":
            for value in args:
                self.check(value)
            if len(set(args)) != len(args):
                raise fail("choice lists a value twice (expected distinct values)")
            return Dist("choice", tuple(args))
        return self._parse_range(kind, args)

    def _parse_range(self, kind: str, args: list[Any]) -> Dist:
        if len(args) != 2 or not all(is_number(a) for a in args):
            raise fail(f"{kind} takes two numbers (expected {kind}: [low, high])")
        low, high = args
        if low >= high:
            raise fail(f"low {low!r} >= high {high!r} (expected low < high)")
        if kind == "int" and not all(isinstance(a, int) for a in args):
            raise fail(f"int bounds must be integers, got [{low!r}, {high!r}] (expected int: [low, high])")
        if kind == "half_life":
            if low <= 0:
                raise fail(f"half-life {low!r} <= 0 (expected half-lives in steps > 0)")
            return Dist(kind, (low, high))
        if kind == "log_uniform" and low <= 0:
            raise fail(f"log bound {low!r} <= 0 (expected log_uniform bounds > 0)")
        for bound in (low, high):
            self.check(bound)
        return Dist(kind, (low, high))

    def json_schema(self) -> dict[str, Any]:
        pair = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
        choices = {"type": "array", "items": {"type": "number"}, "minItems": 1}
        kinds = [k for k in KINDS if self.ema or k not in EMA_KINDS]
        one_key = [
            {
                "type": "object",
                "properties": {k: choices if k == "choice" else pair},
                "required": [k],
                "additionalProperties": False,
            }
            for k in kinds
        ]
        return {
            "description": f"A constant or a distribution; allowed values: {self.expected()}",
            "anyOf": [{"type": "number"}, *one_key],
        }
