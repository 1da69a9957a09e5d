"""The engine as a library: a whole sweep and a compare through the public functions, with no
Typer (in a fresh process, which then holds no typer module)."""

from __future__ import annotations

import json
import subprocess
import sys

from sweeprun import assert_sound, sweep_file

SCRIPT = """
import json, sys
from ademix_sweep.engine.slots import plan_slots
from ademix_sweep.engine.sweep import plan_sweep, run_planned
from ademix_sweep.results import rerun

slots = plan_slots("cpu", 1, 1, 0, 2)
plan = plan_sweep(sys.argv[1], slots=slots, overrides=["budget.trials=3"])
events = []
outcome = run_planned(plan, on_event=lambda e: events.append(e.kind))
compare = rerun.plan_compare(sys.argv[1], slots=slots, seeds=2)
pending = rerun.pending(compare)
compared = rerun.run_compare(compare)
summary = rerun.compare_summary(compare)
print(json.dumps({
    "code": outcome.code, "best": {o: s.best_value for o, s in plan.studies.items()},
    "completes": events.count("complete"), "pending": pending, "compare_code": compared.code,
    "runs": {o: [c["runs"] for c in s["configs"]] for o, s in summary["optimizers"].items()},
    "typer": "typer" in sys.modules,
}))
"""


def test_a_sweep_and_a_compare_through_the_library(tmp_path):
    sweep = sweep_file(tmp_path, trials=1)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(sweep)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["code"] == 0 and data["compare_code"] == 0 and data["pending"] and not data["typer"]
    assert data["completes"] == 6 and set(data["best"]) == {"ademamix", "adamw"}
    assert data["runs"] == {"ademamix": [2], "adamw": [2]}  # one configuration each, two seeds
    assert_sound(f"sqlite:///{tmp_path / 'runs' / 'rb.db'}", 3)
