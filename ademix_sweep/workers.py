"""Worker processes: one per device slot, the parent's watch over them, and Ctrl-C.

Each worker is a spawned process with its own ``CUDA_VISIBLE_DEVICES`` (one GPU, seen as
``cuda``) or its share of the CPU threads. It builds the task once, joins both studies (sampler
seed = sweep seed + rank, so workers do not repeat each other's first trials) and runs one trial
at a time, always on the optimizer furthest from its budget, until both budgets are finished.

The parent watches: a worker that dies has its running trial failed and re-queued at once and is
replaced. Ctrl-C once: no new trials; running ones stop at their next evaluation, are failed as
``interrupted`` and re-queued for the next run. Twice: workers are killed and their trials failed
and re-queued by the parent. Either way nothing stays RUNNING.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from .objective import Interrupted, Surplus, Worker, counted, finished, make_objective, requeue
from .study import create_or_resume, open_storage, study_name
from .train import prepare_job

MAX_CONSECUTIVE_FAILURES = 3  # a worker whose trials keep failing (not diverging) gives up
WAIT_S = 2.0


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


def worker_main(spec: Spec, slot: Slot, events: Any, shared_stop: Any) -> None:
    """A worker process: trials until both budgets are finished or a stop is asked for.

    ``events`` is this worker's own pipe to the parent and ``shared_stop`` a lock-free shared
    flag: a worker killed at any moment cannot leave a lock held that the others need.
    """
    import torch

    torch.set_num_threads(slot.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial events are reported by the parent
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat APIs
    interrupts = [0]
    stop = _Stop(shared_stop)

    def on_sigint(signum: int, frame: Any) -> None:
        interrupts[0] += 1
        stop.set()
        if interrupts[0] > 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    emit = _emitter(events, slot.rank)
    try:
        _work(spec, slot, emit, stop)
    except KeyboardInterrupt:
        emit({"event": "worker_exit", "reason": "interrupted"})
        raise SystemExit(130) from None


class _Stop:
    """The parent's shared flag, or this process's own (set by its signal handlers)."""

    def __init__(self, shared: Any) -> None:
        self.shared, self.local = shared, False

    def set(self) -> None:
        self.local = True

    def is_set(self) -> bool:
        return self.local or bool(self.shared.value)


def _emitter(events: Any, rank: int) -> Callable[[dict[str, Any]], None]:
    def emit(event: dict[str, Any]) -> None:
        try:
            events.send({"rank": rank, "time": time.time(), **event})
        except OSError:  # the parent is gone: events have no reader
            pass

    return emit


def _work(spec: Spec, slot: Slot, emit: Callable[[dict[str, Any]], None], stop: Any) -> None:
    base = prepare_job(spec.file, spec.optimizers[0], (), spec.overrides, slot.device)
    jobs = {opt: dataclasses.replace(base, optimizer=opt, hparams={}, defaulted=[]) for opt in spec.optimizers}
    storage = open_storage(spec.storage, heartbeat_s=spec.heartbeat_s, grace_s=spec.grace_s)
    studies = {
        opt: create_or_resume(storage, base.cfg, opt, base.task.fingerprint, rank=slot.rank) for opt in spec.optimizers
    }
    worker = Worker(slot.rank, f"{slot.device}:{slot.gpu}" if slot.gpu is not None else slot.device)
    emit({"event": "worker_ready", "pid": os.getpid(), "device": worker.device})
    failures, turn, parent = 0, slot.rank, os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # an orphan finishes its trial, then stops
        choice = choose(studies, spec.budget, turn)
        if choice is None:
            break
        if choice == "wait":
            for study in studies.values():
                optuna.storages.fail_stale_trials(study)  # a vanished machine's trials come back
            time.sleep(WAIT_S)
            continue
        turn += 1
        study = studies[choice]
        objective = make_objective(jobs[choice], study, spec.budget, worker, emit, stop.is_set)
        try:
            study.optimize(objective, n_trials=1)
            failures = 0
        except Surplus:
            continue
        except Interrupted:
            trial = _my_last_trial(study, worker)
            requeue(study, trial)
            emit({"event": "interrupted", "optimizer": choice, "trial": trial.number})
            break
        except Exception as exc:
            failures += 1
            if failures >= MAX_CONSECUTIVE_FAILURES:
                emit(
                    {
                        "event": "worker_exit",
                        "reason": f"{failures} trials in a row failed; last: {type(exc).__name__}: {exc}"[:300],
                    }
                )
                raise SystemExit(3) from None
    emit({"event": "worker_exit", "reason": "interrupted" if stop.is_set() else "done"})


def _my_last_trial(study: optuna.Study, worker: Worker) -> optuna.trial.FrozenTrial:
    mine = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("worker_pid") == worker.pid and t.user_attrs.get("worker_host") == worker.host
    ]
    return mine[-1]


def choose(studies: dict[str, optuna.Study], budget: int, turn: int) -> str | None:
    """The optimizer to run next: the one with the most free budget (alternating on ties);
    "wait" when every slot is taken but not yet finished; None when all budgets are finished."""
    free = {opt: budget - len(counted(study)) for opt, study in studies.items()}
    open_ = [opt for opt in studies if free[opt] > 0]
    if open_:
        order = open_[turn % len(open_) :] + open_[: turn % len(open_)]
        return max(order, key=lambda opt: free[opt])
    if all(finished(study) >= budget for study in studies.values()):
        return None
    return "wait"


def fail_trials_of(storage_url: str, names: list[str], pid: int, reason: str) -> list[tuple[str, int]]:
    """After a worker process of this host ended abnormally: fail its RUNNING trials, and re-queue
    them and any trial it failed on its way out (a second Ctrl-C) that is not re-queued yet."""
    host = socket.gethostname()
    done = []
    storage = open_storage(storage_url)
    for name in names:
        study = optuna.load_study(storage=storage, study_name=name)
        trials = study.get_trials(deepcopy=False)
        requeued = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        for t in trials:
            mine = t.user_attrs.get("worker_pid") == pid and t.user_attrs.get("worker_host") == host
            if not mine or t.number in requeued:
                continue
            tid = t._trial_id  # Optuna's storage API takes trial ids
            if t.state == TrialState.RUNNING:
                storage.set_trial_user_attr(tid, "failure", reason)  # attributes first: a FAIL trial is frozen
                if not storage.set_trial_state_values(tid, TrialState.FAIL):
                    continue
            elif not (t.state == TrialState.FAIL and t.user_attrs.get("failure") in (None, "interrupted")):
                continue
            requeue(study, storage.get_trial(tid))
            done.append((name, t.number))
    storage.engine.dispose()
    return done


def run_sweep(
    spec: Spec,
    slots: list[Slot],
    on_event: Callable[[dict[str, Any]], None],
    on_tick: Callable[[], None],
    tick_s: float = 2.0,
) -> int:
    """Start the workers and watch them until the budgets are finished.

    Returns 0 (budgets finished), 130 (Ctrl-C) or 1 (workers gave up on failing trials).
    """
    ctx = mp.get_context("spawn")
    stop = ctx.RawValue("b", 0)  # lock-free: a killed worker cannot hold it
    pipes: dict[int, Any] = {}
    names = [study_name(spec.name, opt) for opt in spec.optimizers]
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
    by_rank = {slot.rank: slot for slot in slots}
    try:
        for slot in slots:
            procs[slot.rank] = _start(ctx, spec, slot, pipes, stop)
        last_tick = 0.0
        while procs:
            for event in drain(pipes):
                if event.get("event") == "worker_ready":
                    ready.add(event["rank"])
                on_event(event)
            for rank, proc in list(procs.items()):
                if proc.is_alive():
                    continue
                proc.join()
                del procs[rank]
                if proc.exitcode == 3:
                    gave_up.append(rank)
                elif proc.exitcode != 0:
                    requeued = fail_trials_of(spec.storage, names, proc.pid, f"worker died (exit code {proc.exitcode})")
                    on_event({"event": "worker_died", "rank": rank, "exitcode": proc.exitcode, "requeued": requeued})
                    if rank not in ready:  # it died setting up: a replacement would too
                        gave_up.append(rank)
                    elif not stop.value:
                        ready.discard(rank)
                        procs[rank] = _start(ctx, spec, by_rank[rank], pipes, stop)
            if time.monotonic() - last_tick >= tick_s:
                on_tick()
                last_tick = time.monotonic()
            time.sleep(0.1)
    except BaseException as exc:  # the second Ctrl-C, or a failure here: stop the workers now
        for proc in procs.values():
            proc.kill()
        for proc in procs.values():
            proc.join()
            fail_trials_of(spec.storage, names, proc.pid, "interrupted")
        if isinstance(exc, KeyboardInterrupt):
            return 130
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        for event in drain(pipes):
            on_event(event)
    if interrupts[0]:
        return 130
    return 1 if gave_up else 0


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
