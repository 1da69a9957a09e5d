r"""AdEMAMix: Adam with a mixture of a fast and a slow EMA of gradients.

Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer: Better, Faster, Older" (ICLR 2025,
arXiv 2409.03137), Algorithm 1. At step :math:`t = 1, 2, \dots`:

.. math::
    m_1 &\leftarrow \beta_1 m_1 + (1 - \beta_1) g \\
    m_2 &\leftarrow \beta_3(t) m_2 + (1 - \beta_3(t)) g \\
    v &\leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
    \theta &\leftarrow \theta - \eta \left( \frac{m_1 / (1 - \beta_1^t) + \alpha(t) m_2}
        {\sqrt{v / (1 - \beta_2^t)} + \epsilon} + \lambda \theta \right)

:math:`m_2` is not bias-corrected; weight decay is decoupled (scaled by :math:`\eta`, applied to
the old :math:`\theta`); :math:`\epsilon` sits outside the root. :math:`\alpha(t)` and
:math:`\beta_3(t)` warm up over ``t_alpha_beta3`` steps (see :mod:`.schedules`). With
:math:`\beta_1 = 0` no :math:`m_1` buffer is kept: the gradient takes its place.

When to use it: long runs, where the slow EMA keeps gradients from thousands of steps ago
useful (the paper's 1.3B model matched AdamW trained on ~2x the tokens). It does not help in
short or data-limited, overfitting runs. Start from alpha in [4, 10], beta3 = 0.9999 (0.999
for runs under ~64k steps) and ``t_alpha_beta3`` = the total number of steps; a large alpha
without the warm-up diverges early.

Two implementations compute the same update: ``"reference"``, a plain loop over tensors with
in-place ops, and ``"compiled"``, one ``torch.compile`` of the update over the whole list of
tensors (per-step scalars passed as a tensor so it compiles once, not per step). ``"auto"``
takes the compiled one on CUDA and for large models on CPU, and falls back to the reference
loop if compiling fails. Low-precision (bf16/fp16) parameters keep fp32 state and fp32 math.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, Literal, NamedTuple

import torch
from torch.optim import Optimizer

from .schedules import alpha_schedule, beta3_schedule

Impl = Literal["auto", "compiled", "reference"]
IMPLS = ("auto", "compiled", "reference")
STATE_KEYS = ("exp_avg", "exp_avg_slow", "exp_avg_sq")  # m1, m2, v
# Below this many parameters on CPU, compiling costs more time than it saves over a run.
AUTO_COMPILE_MIN_NUMEL_CPU = 2_000_000


def _in_range(x: object, low: float, high: float, *, low_open: bool = False) -> bool:
    """True for a real number (not a bool) in [low, high), or (low, high) with ``low_open``."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        return False
    return (low < x if low_open else low <= x) and x < high


def _check_hparams(group: dict[str, Any]) -> None:
    """Raise ValueError naming the first invalid hyperparameter of a param group."""

    def bad(name: str, value: object, expected: str) -> ValueError:
        return ValueError(f"Invalid {name}: {value!r} (expected {expected})")

    if not _in_range(group["lr"], 0.0, math.inf):
        raise bad("lr", group["lr"], "a finite number >= 0")
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 3:
        raise bad("betas", betas, "a tuple (beta1, beta2, beta3)")
    for i, beta in enumerate(betas):
        if not _in_range(beta, 0.0, 1.0):
            raise bad(f"betas[{i}] (beta{(1, 2, 3)[i]})", beta, "0 <= beta < 1")
    if not _in_range(group["alpha"], 0.0, math.inf):
        raise bad("alpha", group["alpha"], "a finite number >= 0")
    t = group["t_alpha_beta3"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0):
        raise bad("t_alpha_beta3", t, "None or an integer number of steps >= 0")
    if not _in_range(group["eps"], 0.0, math.inf, low_open=True):
        raise bad("eps", group["eps"], "a finite number > 0")
    if not _in_range(group["weight_decay"], 0.0, math.inf):
        raise bad("weight_decay", group["weight_decay"], "a finite number >= 0")


def _state_dtype(p: torch.Tensor) -> torch.dtype:
    """Optimizer state is fp32 for bf16/fp16 parameters, else the parameter's own dtype."""
    return torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype


class StepScalars(NamedTuple):
    """One tensor's scalars for one step, computed in float64. The "one minus" forms are computed
    here in double precision so that rounding them to float32 keeps them accurate (1 - 0.9999
    would not be). The compiled path passes them as one row of a tensor, in this order."""

    lr: float  # eta at this step
    w1: float  # 1 - beta1: m1's update weight
    beta2: float
    w2: float  # 1 - beta2
    w3: float  # 1 - beta3(t): m2's update weight
    alpha_t: float  # alpha(t)
    inv_bc1: float  # 1 / (1 - beta1^t)
    inv_bc2_sqrt: float  # 1 / sqrt(1 - beta2^t)
    eps: float
    decay: float  # 1 - eta * lambda


def step_scalars(group: dict[str, Any], step: int) -> StepScalars:
    """The scalars of ``group``'s update at ``step`` (from 1)."""
    beta1, beta2, beta3 = group["betas"]
    t_warm = group["t_alpha_beta3"]
    lr = float(group["lr"])
    return StepScalars(
        lr=lr,
        w1=1.0 - beta1,
        beta2=beta2,
        w2=1.0 - beta2,
        w3=1.0 - beta3_schedule(step, beta1, beta3, t_warm),
        alpha_t=alpha_schedule(step, group["alpha"], t_warm),
        inv_bc1=1.0 / (1.0 - beta1**step),
        inv_bc2_sqrt=1.0 / math.sqrt(1.0 - beta2**step),
        eps=float(group["eps"]),
        decay=1.0 - lr * group["weight_decay"],
    )


class AdEMAMix(Optimizer):
    """AdEMAMix (arXiv 2409.03137, Algorithm 1); see the module docstring for the update.

    Args:
        params: parameters or param groups; groups may set their own lr, betas, alpha,
            t_alpha_beta3, eps and weight_decay.
        lr: learning rate eta (default 1e-3).
        betas: (beta1, beta2, beta3): fast EMA, second moment and slow EMA coefficients.
        alpha: weight of the slow EMA m2 in the numerator (paper: 4 to 10 works).
        t_alpha_beta3: warm-up length T of alpha and beta3 in steps; None (or 0) for none.
        eps: added to the square root of the bias-corrected second moment.
        weight_decay: decoupled weight decay lambda (multiplied by lr).
        impl: "auto", "compiled" (multi-tensor, torch.compile) or "reference" (per tensor).

    Attributes:
        impl_used: the implementation of the last step ("compiled" or "reference").
        compile_time_s: seconds taken by the first compiled step (compilation included).
        compile_error: why compiling failed, if it did (the reference path is used instead).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha_beta3: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        impl: Impl = "auto",
    ) -> None:
        if impl not in IMPLS:
            raise ValueError(f"Invalid impl: {impl!r} (expected one of {', '.join(IMPLS)})")
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            alpha=alpha,
            t_alpha_beta3=t_alpha_beta3,
            eps=eps,
            weight_decay=weight_decay,
        )
        self.impl = impl
        self.impl_used: str | None = None
        self.compile_time_s: float | None = None
        self.compile_error: str | None = None
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _check_hparams(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        tensors = self._gather()
        if not tensors[0]:
            return loss
        if self._choose_impl(tensors[0]) == "compiled":
            self._compiled_step(*tensors)
        else:
            _reference_update(*tensors)
            self.impl_used = "reference"
        return loss

    def _gather(self) -> tuple[list, list, list, list, list, list]:
        """Lazily initialise state, advance each step count, and collect the tensors to update."""
        params, grads, m1s, m2s, vs, scalars = [], [], [], [], [], []
        for group in self.param_groups:
            by_step: dict[int, StepScalars] = {}  # the scalars depend only on (group, step)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdEMAMix does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    dtype = _state_dtype(p)
                    if group["betas"][0] > 0:
                        state["exp_avg"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                    state["exp_avg_slow"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                m1s.append(state.get("exp_avg"))
                m2s.append(state["exp_avg_slow"])
                vs.append(state["exp_avg_sq"])
                if state["step"] not in by_step:
                    by_step[state["step"]] = step_scalars(group, state["step"])
                scalars.append(by_step[state["step"]])
        return params, grads, m1s, m2s, vs, scalars

    def _choose_impl(self, params: list[torch.Tensor]) -> str:
        if self.impl != "auto":
            return "reference" if self.impl == "reference" or self.compile_error else "compiled"
        if self.compile_error is not None:
            return "reference"
        if any(p.device.type == "cuda" for p in params):
            return "compiled"
        return "compiled" if sum(p.numel() for p in params) >= AUTO_COMPILE_MIN_NUMEL_CPU else "reference"

    def _compiled_step(self, params, grads, m1s, m2s, vs, scalars) -> None:
        """Run the compiled multi-tensor update, one call per bucket.

        If compiling fails, the failure is recorded and warned about once, and the buckets not
        yet updated go through the reference loop (compiling fails before any tensor changes).
        """
        first = self.compile_time_s is None and self.compile_error is None
        start = time.perf_counter()
        buckets = _buckets(params, m1s, m2s)
        for n, idx in enumerate(buckets):
            lists = [None if xs[idx[0]] is None else [xs[i] for i in idx] for xs in (params, grads, m1s, m2s, vs)]
            # float64 states get float64 scalars (float32 ones would cost float64 parameters ~1e-5 in 300 steps)
            dtype = torch.float64 if m2s[idx[0]].dtype == torch.float64 else torch.float32
            table = torch.tensor([scalars[i] for i in idx], dtype=dtype).to(params[idx[0]].device)
            try:
                _compiled_update()(*lists, table)
            except Exception as exc:  # compiling is optional: any failure falls back, loudly
                if not first:
                    raise
                self.compile_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                warnings.warn(
                    f"AdEMAMix: torch.compile failed ({self.compile_error}); using the reference path", stacklevel=3
                )
                rest = [i for later in buckets[n:] for i in later]
                _reference_update(*([xs[i] for i in rest] for xs in (params, grads, m1s, m2s, vs, scalars)))
                self.impl_used = "reference"
                return
        if first:
            self.compile_time_s = time.perf_counter() - start
        self.impl_used = "compiled"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load state; fp32 moments of low-precision parameters stay fp32 (torch would cast them)."""
        saved_ids = list(chain.from_iterable(g["params"] for g in state_dict["param_groups"]))
        super().load_state_dict(state_dict)
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(saved_ids, params, strict=True):
            saved = state_dict["state"].get(saved_id, {})
            for key in STATE_KEYS:
                if key in saved:
                    self.state[p][key] = saved[key].to(device=p.device, dtype=_state_dtype(p), copy=True)


def _buckets(params: list[torch.Tensor], m1s: list, m2s: list) -> list[list[int]]:
    """Indices grouped by device, by whether an m1 buffer exists and by the state's dtype (float64
    gets float64 scalars): one compiled call each."""
    out: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        out.setdefault((p.device, m1s[i] is None, m2s[i].dtype == torch.float64), []).append(i)
    return list(out.values())


Tensors = list[torch.Tensor]
MaybeTensors = list[torch.Tensor | None]  # m1 per tensor: None where beta1 = 0


def _reference_update(
    params: Tensors, grads: Tensors, m1s: MaybeTensors, m2s: Tensors, vs: Tensors, scalars: list[StepScalars]
) -> None:
    """The plain per-tensor update with in-place ops; the path the tests check against."""
    for p, grad, m1, m2, v, s in zip(params, grads, m1s, m2s, vs, scalars, strict=True):
        lr, w1, beta2, w2, w3, alpha_t, inv_bc1, inv_bc2_sqrt, eps, decay = s
        g = grad.to(m2.dtype)
        m2.lerp_(g, w3)
        v.mul_(beta2).addcmul_(g, g, value=w2)
        denom = v.sqrt().mul_(inv_bc2_sqrt).add_(eps)
        if m1 is None:  # beta1 = 0: the gradient is m1, and its bias correction is 1
            num = m2.mul(alpha_t).add_(g)
        else:
            m1.lerp_(g, w1)
            num = m2.mul(alpha_t).add_(m1, alpha=inv_bc1)
        theta = p if p.dtype == m2.dtype else p.to(m2.dtype)  # low precision: fp32 math
        if decay != 1.0:
            theta.mul_(decay)
        theta.addcdiv_(num, denom, value=-lr)
        if theta is not p:
            p.copy_(theta)  # one rounding per step


def _multi_tensor_update(
    params: Tensors, grads: Tensors, m1s: Tensors | None, m2s: Tensors, vs: Tensors, table: torch.Tensor
) -> None:
    """The same update over a list of tensors, written for torch.compile to fuse per tensor.

    ``table[i]`` holds tensor i's :class:`StepScalars`, in their order; ``m1s`` is None for a
    bucket without m1 (beta1 = 0).
    """
    for i, (p, grad, m2, v) in enumerate(zip(params, grads, m2s, vs, strict=False)):
        lr, w1, beta2, w2, w3 = table[i, 0], table[i, 1], table[i, 2], table[i, 3], table[i, 4]
        alpha_t, inv_bc1, inv_bc2_sqrt, eps, decay = table[i, 5], table[i, 6], table[i, 7], table[i, 8], table[i, 9]
        g = grad.to(m2.dtype)
        m2_new = m2 + w3 * (g - m2)
        v_new = v * beta2 + w2 * g * g
        if m1s is None:
            num = g + alpha_t * m2_new
        else:
            m1_new = m1s[i] + w1 * (g - m1s[i])
            m1s[i].copy_(m1_new)
            num = m1_new * inv_bc1 + alpha_t * m2_new
        denom = v_new.sqrt() * inv_bc2_sqrt + eps
        p_new = p.to(m2.dtype) * decay - lr * num / denom
        m2.copy_(m2_new)
        v.copy_(v_new)
        p.copy_(p_new.to(p.dtype))


_COMPILED: Callable[..., None] | None = None


def _compiled_update() -> Callable[..., None]:
    """The compiled multi-tensor update, created once per process (compiled per parameter set)."""
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(_multi_tensor_update, dynamic=False, fullgraph=True)
    return _COMPILED
