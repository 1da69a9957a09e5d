"""A command trial's two channels: its reports (JSON lines on stdout or in the report file, and
the engine's answers in the reply file) and its ordinary output (to the trial's log, the last
lines kept for a failure message)."""

from __future__ import annotations

import collections
import json
import queue
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

REPORT_KEY = "ademix_sweep"
MARK = '{"' + REPORT_KEY + '"'
TAIL_LINES = 5


@dataclass(frozen=True)
class Report:
    step: int
    val_loss: float | None
    train_loss: float | None
    final: bool
    from_client: bool  # written to the report file (the client waits for an answer) or printed


def parse_report(line: str, from_client: bool) -> Report | str:
    """A report from one line holding ``{"ademix_sweep": {...}}`` (after any prefix, such as
    torchrun's ``[rank0]:``), or why the line is not one."""
    try:
        data = json.loads(line[line.index(MARK) :].strip())[REPORT_KEY]
    except (ValueError, TypeError, KeyError) as exc:
        return f"not JSON ({exc})"
    if not isinstance(data, dict):
        return "the value of ademix_sweep is not an object"
    step = data.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return "no step (expected a whole number of steps)"
    numbers = {}
    for key in ("val_loss", "train_loss"):
        value = data.get("value") if key == "val_loss" and key not in data else data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            if not (isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity")):
                return f"{key} is not a number"
            value = float(value)
        numbers[key] = None if value is None else float(value)
    if numbers["val_loss"] is None and numbers["train_loss"] is None:
        return "neither val_loss nor train_loss"
    return Report(step, numbers["val_loss"], numbers["train_loss"], bool(data.get("final")), from_client)


class Reports:
    """Reports in arrival order from both channels (the stdout thread's and the report file's);
    the curves so far; answers to the client. Warnings are handed to ``on_warning`` in ``take``,
    on the caller's thread (it writes to the storage and the worker's pipe)."""

    def __init__(self, report_file: str, reply_file: str, on_warning: Callable[[str], None] | None) -> None:
        self.report_file, self.reply_file, self.on_warning = open(report_file, encoding="utf-8"), reply_file, on_warning
        self.arrived: queue.Queue[Report | str] = queue.Queue()  # a report, or a warning to pass on
        self.partial = ""
        self.val_curve: list[tuple[int, float]] = []
        self.train_curve: list[tuple[int, float]] = []
        self.final_value: float | None = None
        self.warned = False

    def close(self) -> None:
        self.report_file.close()

    def line(self, text: str, from_client: bool) -> bool:
        """Take one line if it is a report (True); a malformed one is dropped with one warning."""
        if MARK not in text:
            return False
        found = parse_report(text, from_client)
        if not isinstance(found, str):
            self.arrived.put(found)
        elif not self.warned:
            self.warned = True
            self.arrived.put(f"ignored a malformed report line ({found}): {text.strip()[:200]}")
        return True

    def take(self) -> list[Report]:
        """The reports that arrived since the last call, each added to its curve."""
        chunk = self.partial + self.report_file.read()
        lines = chunk.split("\n")
        self.partial = lines.pop()  # an unfinished last line waits for its end
        for text in lines:
            self.line(text, True)
        found = []
        while not self.arrived.empty():
            item = self.arrived.get_nowait()
            if isinstance(item, str):
                if self.on_warning is not None:
                    self.on_warning(item)
                continue
            found.append(item)
            if item.train_loss is not None:
                self.train_curve.append((item.step, item.train_loss))
            if item.val_loss is not None:
                self.val_curve.append((item.step, item.val_loss))
                if item.final:
                    self.final_value = item.val_loss
        return found

    def reply(self, report: Report, action: str) -> None:
        """Tell the client what to do after its report at ``report.step``: continue or stop."""
        if report.from_client:
            with open(self.reply_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": report.step, "action": action}) + "\n")

    def final(self) -> float | None:
        """The trial's value: the report marked final, else the last validation loss."""
        if self.final_value is not None:
            return self.final_value
        return self.val_curve[-1][1] if self.val_curve else None

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        return {"val": self.val_curve, "train": self.train_curve}


class Output:
    """Two threads reading the command's stdout and stderr: reports to ``reports``, every other
    line to ``log``; the last lines of stderr (else stdout) kept for a failure message."""

    def __init__(self, proc: subprocess.Popen[bytes], log: IO[str], reports: Reports) -> None:
        self.log, self.reports, self.lock = log, reports, threading.Lock()
        self.last: dict[str, collections.deque[str]] = {
            name: collections.deque(maxlen=TAIL_LINES) for name in ("out", "err")
        }
        self.threads = [
            threading.Thread(target=self._read, args=(proc.stdout, "out"), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, "err"), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self, stream: Any, name: str) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            if name == "out" and self.reports.line(text, False):
                continue
            with self.lock:
                self.log.write(text)
                self.log.flush()
            if text.strip():
                self.last[name].append(text.rstrip())
        stream.close()

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait for the output that is left (a child that keeps the pipe open is not waited for)."""
        for thread in self.threads:
            thread.join(timeout_s)

    def tail(self) -> str:
        lines = self.last["err"] or self.last["out"]
        return " | ".join(lines)[-600:]
