"""Process groups of command trials: a command runs in a group of its own, and whatever ends its
trial ends the whole group (SIGTERM, then SIGKILL after KILL_GRACE_S), so no child outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

KILL_GRACE_S = 5.0  # after SIGTERM to a command's group, before SIGKILL
RUNNING: set[int] = set()  # process groups of this process's running commands (the worker kills them if orphaned)


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = KILL_GRACE_S) -> None:
    """End the command's whole process group: SIGTERM, then SIGKILL after ``grace_s`` (at once
    when the command itself has exited: what it left behind is killed)."""
    if proc.poll() is None:
        kill_group(proc.pid, signal.SIGTERM)
        wait(proc, grace_s)
    kill_group(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group; one already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def command_groups(pid: int) -> list[int]:
    """The process groups of ``pid``'s children that lead a group of their own (its commands);
    read from /proc, so on Linux only (elsewhere: none)."""
    groups = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found = [int(child) for child in children.read_text().split()]
        except OSError:
            continue
        for child in found:
            try:
                if os.getpgid(child) == child:
                    groups.append(child)
            except ProcessLookupError:
                pass
    return groups


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait(proc: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass



class Ending:
    """Command process groups on their way out: SIGTERM first, SIGKILL once their grace is over."""

    def __init__(self) -> None:
        self.groups: dict[int, float] = {}  # process group -> when it gets SIGKILL

    def add(self, pgid: int, *, now: bool = False) -> None:
        kill_group(pgid, signal.SIGKILL if now else signal.SIGTERM)
        if not now:
            self.groups[pgid] = time.monotonic() + KILL_GRACE_S

    def step(self) -> None:
        """SIGKILL the groups whose grace is over; forget those that are gone."""
        for pgid, deadline in list(self.groups.items()):
            if not group_alive(pgid):
                del self.groups[pgid]
            elif time.monotonic() >= deadline:
                kill_group(pgid, signal.SIGKILL)
                del self.groups[pgid]

    def finish(self) -> None:
        """Before the parent exits: wait out the graces, then kill what is left."""
        while self.groups:
            self.step()
            time.sleep(0.05)
