"""Device slots for workers: one per GPU (or several), or CPU workers sharing the cores; and
the check that the machine can hold that many workers at all."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from ademix_sweep.engine.contract import Slot

WORKER_MEMORY_BYTES = 350 * 2**20  # a worker's resident memory with torch and a small task loaded


def plan_slots(
    devices: str, workers: int | None, per_device: int, cuda_count: int, cpu_count: int, gpus_per_trial: int = 1
) -> list[Slot]:
    """Device slots: one per GPU (times ``per_device``), one per ``gpus_per_trial`` GPUs (a
    command task's multi-GPU trials), or ``workers`` CPU workers sharing the cores (also when
    ``gpus_per_trial`` is 0). Raises ValueError with a one-line reason."""
    if devices == "auto":
        devices = ",".join(map(str, range(cuda_count))) if cuda_count and gpus_per_trial else "cpu"
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
    if gpus_per_trial > 1 or gpus_per_trial == 0:
        return _gpu_groups(devices, gpus, gpus_per_trial, per_device, cpu_count)
    n = len(gpus) * per_device
    return [
        Slot(i * per_device + k, "cuda", str(g), max(1, cpu_count // n))
        for i, g in enumerate(gpus)
        for k in range(per_device)
    ]


def _gpu_groups(devices: str, gpus: list[int], size: int, per_device: int, cpu_count: int) -> list[Slot]:
    """Slots of ``size`` GPUs each, in the order given: ``0,1,2,3`` in twos is ``0,1`` and ``2,3``."""
    if size == 0:
        raise ValueError(f"--devices {devices}: gpus_per_trial is 0 (expected --devices cpu, or gpus_per_trial >= 1)")
    if len(gpus) % size:
        raise ValueError(
            f"--devices {devices}: {len(gpus)} GPUs do not split into trials of {size} "
            f"(expected a multiple of gpus_per_trial = {size})"
        )
    if per_device != 1:
        raise ValueError("--workers-per-device is for one GPU per trial (expected 1 with gpus_per_trial > 1)")
    groups = [gpus[i : i + size] for i in range(0, len(gpus), size)]
    threads = max(1, cpu_count // len(groups))
    return [Slot(rank, "cuda", ",".join(map(str, group)), threads) for rank, group in enumerate(groups)]


def auto_cpu_workers(cores: int, available_bytes: int | None) -> int:
    """``--workers auto`` on a CPU: one worker per core, one thread each (on a 2-core machine that
    shape ran lm_small 1.19x faster than one worker with both threads: benchmarks/cpu_workers.py),
    as many as the memory holds (WORKER_MEMORY_BYTES each), at least one."""
    fits = cores if available_bytes is None else min(cores, available_bytes // WORKER_MEMORY_BYTES)
    return max(1, fits)


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


def check_capacity(slots: list[Slot], cores: int, available_bytes: int | None) -> None:
    """ValueError (one line) when the machine cannot hold the workers: more of them than cores,
    or more memory than is available (about WORKER_MEMORY_BYTES each)."""
    n = len(slots)
    fits = [cores]
    problems = []
    if n > cores:
        problems.append(f"{n} workers need {n} cores, this machine has {cores}")
    if available_bytes is not None:
        fits.append(max(1, available_bytes // WORKER_MEMORY_BYTES))
        if n * WORKER_MEMORY_BYTES > available_bytes:
            problems.append(
                f"{n} workers need about {_gib(n * WORKER_MEMORY_BYTES)} of memory "
                f"({WORKER_MEMORY_BYTES // 2**20} MiB each), {_gib(available_bytes)} is available"
            )
    if problems:
        raise ValueError(f"{'; '.join(problems)} (expected at most {min(fits)} workers here, or --force)")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def available_memory() -> int | None:
    """Memory this process may still use: the machine's available memory, or less under a cgroup limit."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            cap, used = Path(limit).read_text().strip(), int(Path(usage).read_text())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 2**60:
            found.append(int(cap) - used)
    return min(found) if found else None


def usable_cores() -> int:
    """The cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
