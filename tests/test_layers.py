"""The package's layers: every import points down (lazy and type-only imports included), and the
commands and the workers' parent start without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ademix_sweep"
# Lower ranks are imported by higher ones, never the other way round.
RANK = {"sweepfile": 0, "optim": 0, "tasks": 1, "train": 2, "trial": 2, "hf": 3, "engine": 3, "results": 4, "cli": 5}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return [m for m in found if m.startswith("ademix_sweep.")]


def test_imports_point_down():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        module = "ademix_sweep." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        here = _layer(module)
        if here is None:
            continue
        for target in _imports(path):
            there = _layer(target)
            if there is not None and RANK[there] > RANK[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_help_and_the_workers_parent_start_without_torch():
    code = (
        "import sys; from ademix_sweep.cli import app; import ademix_sweep.engine.workers;"
        "import ademix_sweep.results.read; import ademix_sweep.trial; from ademix_sweep.tasks import build_task;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
