"""A training command for the tests: no torch, a loss that depends on lr and the step only, and a
fault chosen by --mode. It reports by printing JSON lines, or through ademix_sweep.trial (--client).

Modes: ok, fail (exit 3 after a line on stderr), silent (reports nothing), malformed (one bad
report line, then good ones), nan (a non-finite report), selfkill (SIGKILL itself mid-run),
hang (stops reporting and sleeps), spawn (starts a child that sleeps, then trains slowly).
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--mode", default="ok")
parser.add_argument("--modes", default=None, help="the mode of trial 0, 1, ... (then ok)")
parser.add_argument("--client", action="store_true")
parser.add_argument("--pause", type=float, default=0.0, help="seconds per evaluation")
parser.add_argument("--pids", default=None, help="a file to which this process and its children append their pids")
parser.add_argument("--lr", type=float, default=None)
parser.add_argument("--unseeded", action="store_true", help="add noise that ignores the seed")
args, _ = parser.parse_known_args()

if args.client:
    from ademix_sweep import trial

    t = trial.current()
    cfg = {"hparams": t.hparams, "steps": t.steps, "eval_every": t.eval_every, "trial": t.number}
else:
    cfg = json.loads(os.environ["ADEMIX_SWEEP_TRIAL"])

if args.pids:
    with open(args.pids, "a") as f:
        f.write(f"{os.getpid()}\n")
if args.mode == "spawn":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(args.pids, "a") as f:
        f.write(f"{child.pid}\n")

if args.modes is not None:
    modes = args.modes.split(",")
    args.mode = modes[cfg["trial"]] if cfg["trial"] < len(modes) else "ok"
lr = cfg["hparams"]["lr"]
assert args.lr is None or math.isclose(args.lr, lr), (args.lr, lr)  # the {lr} placeholder is the same value
print(f"toy_train: trial {cfg['trial']} lr={lr}", flush=True)


def report(step: int, value: float) -> None:
    if args.client:
        t.report(step, value)
    else:
        print(json.dumps({"ademix_sweep": {"step": step, "val_loss": value}}), flush=True)


def train() -> None:
    for step in range(cfg["eval_every"], cfg["steps"] + 1, cfg["eval_every"]):
        evaluate(step)


def evaluate(step: int) -> None:
    if args.pause:
        time.sleep(args.pause)
    value = 1.0 + (math.log10(lr) + 2.0) ** 2 + 3.0 / step
    if args.unseeded:
        value += int.from_bytes(os.urandom(2), "little") / 65536 * 0.1
    if args.mode == "fail" and step > cfg["eval_every"]:
        print("RuntimeError: CUDA out of memory (pretend)", file=sys.stderr, flush=True)
        sys.exit(3)
    if args.mode == "silent":
        return
    if args.mode == "malformed" and step == cfg["eval_every"]:
        print('{"ademix_sweep": {"step": "ten", "val_loss": 1.0}}', flush=True)
    if args.mode == "nan" and step > cfg["eval_every"]:
        value = float("nan")
    if args.mode == "selfkill" and step > cfg["eval_every"]:
        os.kill(os.getpid(), signal.SIGKILL)
    if args.mode == "hang" and step > cfg["eval_every"]:
        time.sleep(300)
    report(step, value)


if args.client:
    try:
        train()
    except trial.Pruned as stop:
        print(f"pruned cleanly at step {stop.step}", flush=True)
        raise
else:
    train()
