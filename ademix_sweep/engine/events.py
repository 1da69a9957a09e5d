"""The events a worker (and the parent of the workers) reports while a sweep runs: one typed record,
sent through the worker's pipe as a plain dict (``encode``) and read back on the other side
(``decode``). The CLI renders them; the parent acts on some (a trial started or ended, a worker
ready, a setup or storage failure).

| kind           | when                                         | fields beyond rank and time          |
|----------------|----------------------------------------------|--------------------------------------|
| worker_ready   | a worker set up its studies and jobs         | pid, device                          |
| start          | a trial starts training                      | optimizer, trial, device, steps      |
| progress       | a few times a second while training          | ... step, steps, loss                |
| eval           | an evaluation (the trial's report)           | ... step, steps, value               |
| complete       | the trial finished                           | ... value                            |
| pruned         | the pruner stopped it                        | ... value (the last evaluation)      |
| diverged       | a non-finite or exploding loss               | ... step, reason                     |
| failed         | the task or the command raised / exited      | ... reason                           |
| interrupted    | Ctrl-C / SIGTERM: it stops and is re-queued  | optimizer, trial                     |
| surplus        | the budget was taken by other trials         | ...                                  |
| timeout        | past train.timeout: killed, failed (parent)  | ... after_s                          |
| command        | a command trial's process group started      | ... pid (its process group)          |
| warning        | a malformed report line (once per trial)     | ... reason                           |
| setup_failed   | the sweep cannot be set up (bad input)       | message                              |
| storage_failed | the storage failed for good                  | message                              |
| storage_wait   | the storage is unreachable for now           | reason                               |
| worker_exit    | a worker leaves its loop                     | reason                               |
| worker_died    | the parent saw a worker die                  | exitcode, requeued                   |
| stopping       | the parent got SIGINT / SIGTERM              | count, signal                        |
| stop_forced    | trials did not stop within the grace period  | after_s                              |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

Kind = Literal[
    "worker_ready",
    "start",
    "progress",
    "eval",
    "complete",
    "pruned",
    "diverged",
    "failed",
    "interrupted",
    "surplus",
    "timeout",
    "command",
    "warning",
    "setup_failed",
    "storage_failed",
    "storage_wait",
    "worker_exit",
    "worker_died",
    "stopping",
    "stop_forced",
]
FINISHED: tuple[Kind, ...] = ("complete", "pruned", "diverged")  # the trial counts toward the budget
ENDED: tuple[Kind, ...] = (*FINISHED, "failed", "interrupted", "surplus", "timeout")  # the trial is over


@dataclass(frozen=True)
class Event:
    """One thing that happened; fields that do not apply to ``kind`` stay None."""

    kind: Kind
    rank: int = -1
    time: float = field(default_factory=time.time)
    optimizer: str | None = None
    trial: int | None = None
    device: str | None = None
    pid: int | None = None
    step: int | None = None
    steps: int | None = None
    value: float | None = None
    loss: float | None = None
    reason: str | None = None
    message: str | None = None
    exitcode: int | None = None
    requeued: tuple[Any, ...] = ()
    after_s: float | None = None
    count: int | None = None
    signal: str | None = None

    def but(self, **changes: Any) -> Event:
        """This event with some fields changed (a trial's base event -> each of its events)."""
        return replace(self, time=time.time(), **changes)

    @property
    def ended(self) -> bool:
        return self.kind in ENDED


OnEvent = Callable[[Event], None]
_NAMES = frozenset(f.name for f in fields(Event))


def encode(event: Event) -> dict[str, Any]:
    """The event as a plain dict of its set fields (what travels through a worker's pipe)."""
    return {k: v for k, v in asdict(event).items() if v is not None and v != ()}


def decode(data: dict[str, Any]) -> Event:
    """The event ``encode`` gave; unknown keys are dropped (an older or newer worker)."""
    known = {k: v for k, v in data.items() if k in _NAMES}
    if "requeued" in known:
        known["requeued"] = tuple(known["requeued"])
    return Event(**known)
