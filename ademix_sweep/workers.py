"""Worker processes: one per device slot, the parent's watch over them, and Ctrl-C.

Each worker is a spawned process with its own ``CUDA_VISIBLE_DEVICES`` (one GPU, seen as
``cuda``) or its share of the CPU threads; what it does inside is in ``trial_loop``. A worker
that reports bad input while setting up (``setup_failed``) stops the sweep: ``run_sweep`` raises
BadSweep with its one-line message once every worker has ended.

The parent watches: a worker that dies has its running trial failed and re-queued at once and is
replaced. Ctrl-C once: no new trials; running ones stop at their next evaluation, are failed as
``interrupted`` and re-queued for the next run. Twice: workers are killed and their trials failed
and re-queued by the parent. Either way nothing stays RUNNING.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from typing import Any

from .objective import fail_trials_of
from .study import StorageError, compare_study_name, retrying, study_name
from .trial_loop import EXIT_BAD_INPUT, EXIT_GAVE_UP, worker_main


class BadSweep(Exception):
    """A worker found bad input while setting up (the file, its data, the stored sweep)."""


@dataclass(frozen=True)
class Slot:
    rank: int
    device: str  # what the worker trains on: "cpu" or "cuda"
    gpu: str | None  # CUDA_VISIBLE_DEVICES for the worker
    threads: int


@dataclass(frozen=True)
class Spec:
    """What every worker needs to rebuild the sweep on its own."""

    file: str
    name: str
    overrides: tuple[str, ...]
    storage: str
    budget: int
    optimizers: tuple[str, ...]
    heartbeat_s: int = 20
    grace_s: int = 60
    mode: str = "sweep"  # or "compare": run the compare study's waiting runs


def plan_slots(devices: str, workers: int | None, per_device: int, cuda_count: int, cpu_count: int) -> list[Slot]:
    """Device slots: one per GPU (times ``per_device``), or ``workers`` CPU workers sharing the
    cores. Raises ValueError with a one-line reason."""
    if devices == "auto":
        devices = ",".join(map(str, range(cuda_count))) if cuda_count else "cpu"
    if devices == "cpu":
        n = workers or 1
        return [Slot(rank, "cpu", None, max(1, cpu_count // n)) for rank in range(n)]
    try:
        gpus = [int(part) for part in devices.split(",")]
    except ValueError:
        raise ValueError(f"--devices {devices}: expected auto, cpu, or GPU numbers like 0,2") from None
    bad = [g for g in gpus if not 0 <= g < cuda_count] + ([g for g in gpus if gpus.count(g) > 1][:1])
    if bad:
        raise ValueError(
            f"--devices {devices}: GPU {bad[0]} is not available or repeated (this machine has "
            f"{cuda_count} CUDA device{'s' if cuda_count != 1 else ''})"
        )
    if workers is not None:
        raise ValueError("--workers is for CPU workers (expected --workers-per-device on GPUs)")
    n = len(gpus) * per_device
    return [
        Slot(i * per_device + k, "cuda", str(g), max(1, cpu_count // n))
        for i, g in enumerate(gpus)
        for k in range(per_device)
    ]


def visible_gpus() -> int:
    """CUDA devices torch would see; without importing torch (3 s) on a CPU-only build."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return 0
    if version.endswith("+cpu"):
        return 0
    import torch

    return torch.cuda.device_count()


def run_sweep(
    spec: Spec,
    slots: list[Slot],
    on_event: Callable[[dict[str, Any]], None],
    on_tick: Callable[[], None],
    tick_s: float = 2.0,
    prepare: Callable[[], None] = lambda: None,
) -> int:
    """Start the workers and watch them until the budgets are finished.

    Returns 0 (budgets finished), 130 (Ctrl-C) or 1 (workers gave up on failing trials); raises
    BadSweep when a worker found bad input. ``prepare`` (the parent's own checks of the storage)
    runs while the workers start (they take seconds to import torch); if it raises, they are
    stopped and the exception passes.
    """
    ctx = mp.get_context("spawn")
    stop = ctx.RawValue("b", 0)  # lock-free: a killed worker cannot hold it
    pipes: dict[int, Any] = {}
    names = (
        [compare_study_name(spec.name)]
        if spec.mode == "compare"
        else [study_name(spec.name, opt) for opt in spec.optimizers]
    )
    procs: dict[int, Any] = {}
    interrupts = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        stop.value = 1
        on_event({"event": "stopping", "count": interrupts[0]})
        if interrupts[0] > 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    gave_up: list[int] = []
    ready: set[int] = set()  # ranks whose current process got as far as its first trial
    bad_input: list[str] = []
    by_rank = {slot.rank: slot for slot in slots}

    def handle(event: dict[str, Any]) -> None:
        if event.get("event") == "worker_ready":
            ready.add(event["rank"])
        elif event.get("event") == "setup_failed":
            bad_input.append(event["message"])
            stop.value = 1  # every worker would fail the same way
        on_event(event)

    try:
        for slot in slots:
            procs[slot.rank] = _start(ctx, spec, slot, pipes, stop)
        prepare()
        last_tick = 0.0
        while procs:
            for event in drain(pipes):
                handle(event)
            for rank, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                proc.join()
                del procs[rank]
                if proc.exitcode == EXIT_GAVE_UP or (proc.exitcode == EXIT_BAD_INPUT and rank not in ready):
                    gave_up.append(rank)
                elif proc.exitcode != 0:
                    reason = f"worker died (exit code {proc.exitcode})"
                    requeued = retrying(partial(fail_trials_of, spec.storage, names, proc.pid, reason))
                    on_event({"event": "worker_died", "rank": rank, "exitcode": proc.exitcode, "requeued": requeued})
                    if rank not in ready:  # it died setting up: a replacement would too
                        gave_up.append(rank)
                    elif not stop.value:
                        ready.discard(rank)
                        procs[rank] = _start(ctx, spec, by_rank[rank], pipes, stop)
            if time.monotonic() - last_tick >= tick_s:
                with suppress(Exception):  # the figures shown can wait for a database that went away
                    on_tick()
                last_tick = time.monotonic()
            time.sleep(0.1)
    except BaseException as exc:  # the second Ctrl-C, or a failure here: stop the workers now
        for proc in procs.values():
            proc.kill()
        for proc in procs.values():
            proc.join()
            with suppress(StorageError):  # a storage that failed the parent's checks
                fail_trials_of(spec.storage, names, proc.pid, "interrupted")
        if isinstance(exc, KeyboardInterrupt):
            return 130
        raise
    finally:
        # After a Ctrl-C every trial is already failed and re-queued: another one, while the summary
        # prints, ends the process at once with 130 rather than a traceback or a death by SIGINT.
        signal.signal(signal.SIGINT, _exit_130 if interrupts[0] else previous)
        for event in drain(pipes):
            handle(event)
    if bad_input:
        raise BadSweep(bad_input[0])
    if interrupts[0]:
        return 130
    return 1 if gave_up else 0


def _exit_130(signum: int, frame: Any) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _start(ctx: Any, spec: Spec, slot: Slot, pipes: dict[int, Any], stop: Any) -> Any:
    """Spawn a worker with its device and thread count in its environment (before torch loads),
    and a fresh pipe for its events (``pipes[rank]`` is the parent's end)."""
    pipes[slot.rank], events = ctx.Pipe(duplex=False)
    env = {"OMP_NUM_THREADS": str(slot.threads)}
    if slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        proc = ctx.Process(target=worker_main, args=(spec, slot, events, stop), name=f"ademix-worker-{slot.rank}")
        proc.start()
        events.close()  # the child holds its own copy
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return proc


def drain(pipes: dict[int, Any]) -> list[dict[str, Any]]:
    """Every event waiting in the workers' pipes; a pipe whose worker died is dropped."""
    out = []
    for rank, conn in list(pipes.items()):
        try:
            while conn.poll():
                out.append(conn.recv())
        except (EOFError, OSError, pickle.UnpicklingError):
            conn.close()
            del pipes[rank]
    return out
