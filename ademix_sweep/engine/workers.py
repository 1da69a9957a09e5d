"""The parent of the workers: start one per device slot, watch them, and stop them.

Each worker is a spawned process with its own ``CUDA_VISIBLE_DEVICES`` (one GPU, seen as
``cuda``) or its share of the CPU threads; what it does inside is in ``trial_loop``. A worker
that reports bad input while setting up (``setup_failed``) stops the sweep: ``run_sweep`` raises
BadSweep with its one-line message once every worker has ended.

The parent watches:

- a worker that dies has its running trial failed and re-queued at once and is replaced; a trial
  that kills its worker twice is failed for good (``retries``), and a slot whose workers die
  MAX_ABNORMAL_IN_A_ROW times in a row is not refilled;
- a trial running past ``train.timeout`` has its worker killed; it is failed as ``timeout`` (not
  re-queued: it would hang again) and the worker replaced;
- Ctrl-C or SIGTERM once: no new trials; running ones stop at their next evaluation, are failed
  as ``interrupted`` and re-queued. Those that reach none within ``--stop-grace``, and all of them
  at a second Ctrl-C, are stopped by killing their workers, then failed and re-queued here.
  Either way nothing stays RUNNING; the exit code is 130 (SIGINT) or 143 (SIGTERM);
- a storage that fails for good (a full disk) stops the sweep with its one-line reason.
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
from typing import Any

from ademix_sweep.engine.attrs import INTERRUPTED
from ademix_sweep.engine.contract import (
    EXIT_BAD_INPUT,
    EXIT_GAVE_UP,
    EXIT_INTERRUPTED,
    EXIT_STORAGE,
    EXIT_TERMINATED,
    Slot,
    Spec,
)
from ademix_sweep.engine.events import FINISHED, Event, OnEvent, decode
from ademix_sweep.engine.retries import fail_trials_of, how_it_ended
from ademix_sweep.engine.storage import (
    OUTAGE_S,
    StorageError,
    checkpoint_sqlite,
    failure_message,
    retrying,
    storage_failure,
)
from ademix_sweep.engine.trial_loop import worker_main
from ademix_sweep.tasks.groups import Ending, command_groups

MAX_ABNORMAL_IN_A_ROW = 3  # a slot whose trials end this many times in a row by death or timeout is given up
CHECKPOINT_S = 60.0  # how often a SQLite storage's write-ahead log is folded back
STOP_CODES = (EXIT_INTERRUPTED, EXIT_TERMINATED, -signal.SIGINT, -signal.SIGTERM)


class BadSweep(Exception):
    """A worker found bad input while setting up (the file, its data, the stored sweep)."""


@dataclass(frozen=True)
class Outcome:
    """How the workers ended: 0 (budgets finished), 1 (gave up; ``reason`` says why), 130 or 143."""

    code: int
    reason: str = ""


def run_sweep(
    spec: Spec,
    slots: list[Slot],
    on_event: OnEvent,
    on_tick: Callable[[], None],
    tick_s: float = 2.0,
    prepare: Callable[[], None] = lambda: None,
) -> Outcome:
    """Start the workers and watch them until the budgets are finished (or a stop).

    Raises BadSweep when a worker found bad input. ``prepare`` (the parent's own checks of the
    storage) runs while the workers start (they take seconds to import torch); if it raises, they
    are stopped and the exception passes.
    """
    pool = _Pool(spec, slots, on_event)
    previous = {sig: signal.signal(sig, pool.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for slot in slots:
            pool.start(slot)
        prepare()
        pool.watch(on_tick, tick_s)
    except BaseException as exc:  # the second Ctrl-C, or a failure here: stop the workers now
        pool.kill_all(wait=False)
        if isinstance(exc, KeyboardInterrupt):
            return Outcome(pool.signal_code())
        raise
    finally:
        # After a stop every trial is already failed and re-queued: another signal, while the summary
        # prints, ends the process at once rather than with a traceback or a death by signal.
        for sig, handler in previous.items():
            signal.signal(sig, _exit_now if pool.signals else handler)
        pool.handle_all()
        pool.ending.finish()
    if pool.bad_input:
        raise BadSweep(pool.bad_input[0])
    if pool.signals:
        return Outcome(pool.signal_code())
    return Outcome(1, pool.reasons[0]) if pool.reasons else Outcome(0)


class _Pool:
    """The parent's view of its workers: processes, pipes, and the trial each one runs."""

    def __init__(self, spec: Spec, slots: list[Slot], on_event: OnEvent) -> None:
        self.spec, self.on_event = spec, on_event
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.RawValue("b", 0)  # lock-free: a killed worker cannot hold it
        self.by_rank = {slot.rank: slot for slot in slots}
        self.procs: dict[int, Any] = {}
        self.pipes: dict[int, Any] = {}
        self.ready: set[int] = set()  # ranks whose current process got as far as its first trial
        self.running: dict[int, tuple[float, Event]] = {}  # rank -> (start, its start event)
        self.commands: dict[int, int] = {}  # rank -> the process group of its running command trial
        self.ending = Ending()  # command groups told to stop (SIGTERM), killed after their grace
        self.abnormal: dict[int, int] = {}  # rank -> trials ended by death or timeout in a row
        self.signals: list[int] = []
        self.stop_since: float | None = None
        self.bad_input: list[str] = []
        self.reasons: list[str] = []  # why workers gave up, one line each

    # --- signals and stopping ---

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)
        self.request_stop()
        self.on_event(Event("stopping", count=len(self.signals), signal=signal.Signals(signum).name))
        if len(self.signals) > 1:
            raise KeyboardInterrupt

    def signal_code(self) -> int:
        return EXIT_TERMINATED if self.signals and self.signals[0] == signal.SIGTERM else EXIT_INTERRUPTED

    def request_stop(self) -> None:
        self.stop.value = 1
        if self.stop_since is None:
            self.stop_since = time.monotonic()

    def kill_all(self, *, wait: bool = True) -> None:
        """Kill every worker now; fail and re-queue their trials (``wait``: through a database outage)."""
        self.handle_all()  # the process groups of commands started meanwhile
        for rank, proc in self.procs.items():
            self._note_commands(rank, proc.pid)
            proc.kill()
        for rank, proc in list(self.procs.items()):
            proc.join()
            self._kill_command(rank, now=True)
            self._fail(proc.pid, INTERRUPTED, wait=wait)
            self.running.pop(rank, None)
        self.procs.clear()

    # --- the watch loop ---

    def watch(self, on_tick: Callable[[], None], tick_s: float) -> None:
        last_tick = last_checkpoint = time.monotonic()
        while self.procs:
            self.handle_all()
            self.reap()
            self.enforce_timeout()
            grace = self.spec.stop_grace_s
            if self.stop_since is not None and time.monotonic() - self.stop_since > grace and self.procs:
                self.on_event(Event("stop_forced", after_s=grace))
                self.kill_all()
            if time.monotonic() - last_tick >= tick_s:
                with suppress(Exception):  # the figures shown can wait for a database that went away
                    on_tick()
                last_tick = time.monotonic()
            self.ending.step()
            if time.monotonic() - last_checkpoint >= CHECKPOINT_S:
                checkpoint_sqlite(self.spec.storage)
                last_checkpoint = time.monotonic()
            time.sleep(0.1)

    def handle_all(self) -> None:
        for event in drain(self.pipes):
            self.handle(event)

    def handle(self, event: Event) -> None:
        kind, rank = event.kind, event.rank
        if kind == "worker_ready":
            self.ready.add(rank)
        elif kind == "start":
            self.running[rank] = (time.monotonic(), event)
        elif kind == "command" and event.pid is not None:
            self.commands[rank] = event.pid
        elif event.ended:
            self.running.pop(rank, None)
            self.commands.pop(rank, None)
            if kind in FINISHED:
                self.abnormal[rank] = 0
        elif kind == "setup_failed":
            self.bad_input.append(event.message or "")
            self.request_stop()  # every worker would fail the same way
        elif kind == "storage_failed":
            self.reasons.append(event.message or "")
            self.request_stop()
        elif kind == "worker_exit" and event.reason not in ("done", INTERRUPTED):
            self.reasons.append(f"worker {rank}: {event.reason}")
        self.on_event(event)

    def reap(self) -> None:
        """Workers that ended: replaced after a death, unless a stop is under way or the slot gives up."""
        for rank, proc in list(self.procs.items()):
            if proc.is_alive():
                continue
            proc.join()
            del self.procs[rank]
            self.running.pop(rank, None)
            self._kill_command(rank)
            code = proc.exitcode
            if code in (0, EXIT_GAVE_UP, EXIT_STORAGE) or (code == EXIT_BAD_INPUT and rank not in self.ready):
                continue
            stopped = bool(self.signals) and code in STOP_CODES  # a worker that took the Ctrl-C itself
            requeued = self._fail(proc.pid, INTERRUPTED if stopped else "", exitcode=None if stopped else code)
            self.on_event(Event("worker_died", rank, exitcode=code, requeued=tuple(requeued)))
            if not stopped:
                self._replace(rank, f"worker {how_it_ended(code)}")

    def enforce_timeout(self) -> None:
        """Kill the worker of a trial past train.timeout; fail the trial for good; replace the worker."""
        limit = self.spec.timeout_s
        if limit is None:
            return
        for rank, (started, event) in list(self.running.items()):
            if time.monotonic() - started <= limit or rank not in self.procs:
                continue
            proc = self.procs.pop(rank)
            self._note_commands(rank, proc.pid)
            proc.kill()
            proc.join()
            self._kill_command(rank)
            del self.running[rank]
            self._fail(proc.pid, f"timeout: still running after train.timeout ({limit:g} s)", retry=False)
            self.on_event(event.but(kind="timeout", after_s=limit))
            self._replace(rank, f"a trial ran past train.timeout ({limit:g} s)")

    def _note_commands(self, rank: int, pid: int) -> None:
        """Before killing a worker: a command it started whose event is not here yet is found
        among its children (Linux), so that it is killed too."""
        for group in command_groups(pid):
            self.commands.setdefault(rank, group)

    def _kill_command(self, rank: int, *, now: bool = False) -> None:
        """A gone worker's command trial goes with it: its whole process group gets SIGTERM, and
        SIGKILL after KILL_GRACE_S (``now``: SIGKILL at once, as after a second Ctrl-C)."""
        pgid = self.commands.pop(rank, None)
        if pgid is not None:
            self.ending.add(pgid, now=now)

    def _replace(self, rank: int, why: str) -> None:
        """A new worker in the slot, unless a stop is under way or the slot keeps failing."""
        self.abnormal[rank] = self.abnormal.get(rank, 0) + 1
        if rank not in self.ready:  # it died setting up: a replacement would too
            self.reasons.append(f"worker {rank} ended while starting: {why}")
        elif self.abnormal[rank] >= MAX_ABNORMAL_IN_A_ROW:
            self.reasons.append(f"worker {rank}: {self.abnormal[rank]} trials in a row ended abnormally; last: {why}")
        elif not self.stop.value:
            self.ready.discard(rank)
            self.start(self.by_rank[rank])

    def _fail(
        self, pid: int, reason: str, *, exitcode: int | None = None, retry: bool = True, wait: bool = True
    ) -> list[Any]:
        """Fail (and re-queue) a gone worker's trials, waiting out a database outage (``wait``); a
        storage that cannot take it is reported, not raised (the next run's start-up re-queues them)."""
        names = self.spec.study_names()
        try:
            return retrying(
                lambda: fail_trials_of(self.spec.storage, names, pid, reason, exitcode=exitcode, retry=retry),
                wait_s=OUTAGE_S if wait else 0.0,
            )
        except StorageError as exc:  # a storage that failed the parent's checks
            self.reasons.append(str(exc))
        except Exception as exc:
            if storage_failure(exc) is None:
                raise
            self.reasons.append(failure_message(self.spec.storage, exc))
        return []

    def start(self, slot: Slot) -> None:
        """Spawn a worker with its device and thread count in its environment (before torch loads),
        and a fresh pipe for its events (``pipes[rank]`` is the parent's end)."""
        self.pipes[slot.rank], events = self.ctx.Pipe(duplex=False)
        env = {"OMP_NUM_THREADS": str(slot.threads)}
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            proc = self.ctx.Process(
                target=worker_main, args=(self.spec, slot, events, self.stop), name=f"ademix-worker-{slot.rank}"
            )
            proc.start()
            events.close()  # the child holds its own copy
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self.procs[slot.rank] = proc


def _exit_now(signum: int, frame: Any) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED)


def drain(pipes: dict[int, Any]) -> list[Event]:
    """Every event waiting in the workers' pipes; a pipe whose worker died is dropped."""
    out = []
    for rank, conn in list(pipes.items()):
        try:
            while conn.poll():
                out.append(decode(conn.recv()))
        except (EOFError, OSError, pickle.UnpicklingError):
            conn.close()
            del pipes[rank]
    return out
