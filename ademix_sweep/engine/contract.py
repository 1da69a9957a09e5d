"""What the parent of the workers and each worker agree on: the worker's slot, the sweep it
rebuilds, its exit codes, and how long a stop may take. Neither side imports the other."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_DONE = 0
EXIT_BAD_INPUT = 2  # the sweep file, its data or the stored sweep is wrong: every worker would fail so
EXIT_GAVE_UP = 3  # the worker's trials kept failing
EXIT_STORAGE = 4  # the storage failed for good (a full disk, a corrupt file)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (Slurm, Kubernetes, systemd)
STOP_GRACE_S = 20.0  # after a stop is asked for, how long a trial may take to reach its next evaluation


def study_name(name: str, optimizer: str) -> str:
    """The study of one optimizer of sweep ``name``."""
    return f"{name}.{optimizer}"


def compare_study_name(name: str) -> str:
    """The study of ``compare``'s re-runs (both optimizers; each trial names its run)."""
    return f"{name}.compare"


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
    timeout_s: float | None = None  # train.timeout: a trial running longer is stopped and failed
    stop_grace_s: float = STOP_GRACE_S  # after a stop: the wait for running trials' next evaluation
    logs: str | None = None  # the folder for command trials' output (one log file per trial)

    def study_names(self) -> list[str]:
        """The studies this sweep's workers run trials of."""
        if self.mode == "compare":
            return [compare_study_name(self.name)]
        return [study_name(self.name, opt) for opt in self.optimizers]
