"""Command tasks: any training command as a trial (``task: {kind: command, command: [...]}``).

The trial's configuration reaches the command in ``{placeholders}`` and, whole, as JSON in the
``ADEMIX_SWEEP_TRIAL`` environment variable (``ademix_sweep.trial`` reads it). The command
reports validation losses as JSON lines, ``{"ademix_sweep": {"step": 500, "val_loss": 2.31}}``,
on its stdout or in the file the environment names; each report is an evaluation (pruning and
Ctrl-C act on it, as on the built-in loop's), the last one (or one marked ``"final": true``) the
trial's value. Every other line of output goes to the trial's log.

The command runs in a process group of its own: when the trial ends (done, pruned, stopped,
diverged, failed) the whole group is signalled, SIGTERM then SIGKILL after ``KILL_GRACE_S``, so
no child process outlives its trial. After a report the client (``ademix_sweep.trial``) waits
for the engine's answer in the reply file: go on, or stop (pruned or stopped), which the client
raises as ``trial.Pruned`` so the script can exit cleanly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .command_io import Output, Reports
from .errors import TaskError, fingerprint
from .groups import RUNNING, kill_group, stop_group, wait
from .outcome import Diverged, Progress, TrainResult, TrialInfo

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ademix_sweep.sweepfile.config import Train
    from ademix_sweep.sweepfile.sections import CommandTask

ENV_TRIAL = "ADEMIX_SWEEP_TRIAL"
CLEAN_EXIT_S = 5.0  # after telling the client to stop, how long it may take to exit on its own
POLL_S = 0.02


class CommandFailed(RuntimeError):
    """The command exited non-zero, was killed, or reported nothing."""


class Command:
    """A command task, checked: its working directory exists and its program is found."""

    unit = "steps"

    def __init__(self, options: CommandTask, base_dir: Path) -> None:
        self.words = list(options.command)
        self.cwd = (base_dir / options.cwd).resolve()
        if not self.cwd.is_dir():
            raise TaskError("cwd", f"{self.cwd} is not a folder (expected a folder, relative to the sweep file)")
        self.env = {key: _text(value) for key, value in options.env.items()}
        program = self.words[0]
        if "{" not in program and not _findable(program, self.cwd, self.env):
            raise TaskError(
                "command", f"{program!r} is not found (expected a program on PATH, or a path relative to {self.cwd})"
            )
        self.fingerprint = fingerprint("command", json.dumps(self.words), json.dumps(self.env, sort_keys=True))

    def argv(self, values: Mapping[str, Any]) -> list[str]:
        """The command's words with their placeholders expanded."""
        shown = {key: _text(value) for key, value in values.items()}
        return [word.format_map(shown) for word in self.words]

    def run(
        self,
        optimizer: str,
        hparams: Mapping[str, Any],
        train_cfg: Train,
        *,
        seed: int,
        on_eval: Callable[[int, float], None] | None = None,
        on_log: Callable[[Progress], None] | None = None,
        trial: TrialInfo | None = None,
    ) -> TrainResult:
        """Run the command once with this configuration; its reports are the evaluations.
        Raises Diverged (a non-finite report), CommandFailed, or what ``on_eval`` raised
        (pruning, a stop), after the command's process group is gone."""
        trial = trial or TrialInfo()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ademix-trial-") as tmp, _log(trial.log) as log:
            files = {"report_file": str(Path(tmp) / "reports.jsonl"), "reply_file": str(Path(tmp) / "replies.jsonl")}
            for path in files.values():
                Path(path).touch()
            argv, env = self._configured(optimizer, hparams, train_cfg, seed, trial, files)
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: signalled as one, away from the terminal's Ctrl-C
            )
            RUNNING.add(proc.pid)
            reports = Reports(files["report_file"], files["reply_file"], trial.on_warning)
            try:
                if trial.on_process is not None:
                    trial.on_process(proc.pid)
                output = Output(proc, log, reports)
                self._follow(proc, reports, output, train_cfg, on_eval, on_log, started)
            finally:
                stop_group(proc)
                RUNNING.discard(proc.pid)
                reports.close()
        return _result(reports, train_cfg, proc, output, started)

    def _configured(
        self,
        optimizer: str,
        hparams: Mapping[str, Any],
        train_cfg: Train,
        seed: int,
        trial: TrialInfo,
        files: dict[str, str],
    ) -> tuple[list[str], dict[str, str]]:
        """The command's words and environment for this trial: placeholders expanded, and the whole
        configuration as JSON in ``ADEMIX_SWEEP_TRIAL``."""
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        values = {
            "optimizer": optimizer,
            "seed": seed,
            "steps": train_cfg.steps,
            "eval_every": train_cfg.eval_every,
            "trial": "" if trial.number is None else trial.number,
            "gpus": len([g for g in gpus.split(",") if g.strip()]),
        }
        payload = {**values, "hparams": dict(hparams), "study": trial.study, "train": train_cfg.model_dump(mode="json")}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env, ENV_TRIAL: json.dumps({**payload, **files})}
        return self.argv({**hparams, **values}), env

    def _follow(
        self,
        proc: subprocess.Popen[bytes],
        reports: Reports,
        output: Output,
        train_cfg: Train,
        on_eval: Callable[[int, float], None] | None,
        on_log: Callable[[Progress], None] | None,
        started: float,
    ) -> None:
        """Act on each report until the command exits: evaluations (which may raise), progress."""
        while True:
            done = proc.poll() is not None
            if done:  # what the command left running goes now (it would hold the output open)
                kill_group(proc.pid)
                output.join()
            for report in reports.take():
                if report.train_loss is not None and on_log is not None:
                    elapsed = time.perf_counter() - started
                    on_log(Progress(report.step, train_cfg.steps, report.train_loss, math.nan, math.nan, elapsed))
                if report.val_loss is None:
                    reports.reply(report, "continue")
                    continue
                if not math.isfinite(report.val_loss):
                    reports.reply(report, "stop")
                    reason = f"validation loss is {report.val_loss} (non-finite)"
                    raise Diverged(report.step, report.val_loss, reason, reports.curves())
                if on_eval is not None and not report.final:
                    try:
                        on_eval(report.step, report.val_loss)
                    except BaseException:
                        reports.reply(report, "stop")
                        if report.from_client:
                            wait(proc, CLEAN_EXIT_S)  # the client raises trial.Pruned: let it exit cleanly
                        raise
                reports.reply(report, "continue")
            if done:
                return
            time.sleep(POLL_S)


def _result(
    reports: Reports, train_cfg: Train, proc: subprocess.Popen[bytes], output: Output, started: float
) -> TrainResult:
    code = proc.returncode
    if code != 0:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = output.tail()
        raise CommandFailed(f"the command {how}" + (f"; its last output: {tail}" if tail else ""))
    final = reports.final()
    if final is None:
        raise CommandFailed(
            'the command reported no val_loss (expected lines like {"ademix_sweep": {"step": 100, "val_loss": 2.5}} '
            "on its stdout, or trial.report(step, val_loss); see docs/own-training.md)"
        )
    wall = time.perf_counter() - started
    val_curve = reports.val_curve
    last_step = max(step for step, _ in val_curve)
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return TrainResult(
        final_val_loss=final,
        best_val_loss=min(v for _, v in val_curve),
        val_curve=val_curve,
        train_curve=reports.train_curve,
        steps=train_cfg.steps,
        unit="steps",
        items=last_step,
        items_per_s=last_step / wall if wall > 0 else math.nan,
        wall_time_s=wall,
        eval_time_s=0.0,
        device=f"command (CUDA_VISIBLE_DEVICES={gpus})" if gpus else "command",
        precision="command",
        peak_memory_bytes=None,
        optimizer_impl=None,
    )


class _log:
    """The trial's log file, or the terminal's stderr (``ademix-sweep train``: stdout may be its JSON)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.file = path, None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stderr
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8", errors="replace")
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "0"  # t_alpha_beta3 of 0: no warm-up
    return repr(value) if isinstance(value, float) else str(value)


def _findable(program: str, cwd: Path, env: Mapping[str, str]) -> bool:
    if os.sep in program:
        path = cwd / program
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.environ.get("PATH"))) is not None


def build(options: CommandTask, base_dir: Path) -> Command:
    return Command(options, base_dir)
