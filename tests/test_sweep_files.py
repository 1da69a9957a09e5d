"""Sweep files through the CLI: shipped files and templates validate, overrides apply, and every
malformed file gives exit 2 with one line naming the field, never a traceback."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from ademix_sweep.cli import app
from ademix_sweep.sweepfile.config import load_sweep

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "sweeps").glob("*.yaml"))
runner = CliRunner()

GOOD = """\
name: t
budget: {trials: 4}
task: {kind: rosenbrock}
train:
  steps: 100
  eval_every: 10
optimizers:
  adamw: {lr: 0.01}
  ademamix:
    lr: {log_uniform: [1.0e-3, 1.0e-1]}
    beta3: {half_life: [10, 100]}
    alpha: {uniform: [2, 10]}
    t_alpha_beta3: 50
"""


def validate(*args: str):
    return runner.invoke(app, ["validate", *args])


def test_shipped_sweeps_validate() -> None:
    assert {p.name for p in SHIPPED} == {"lm_small.yaml", "vision_small.yaml", "rosenbrock.yaml"}
    result = validate(*map(str, SHIPPED))
    assert result.exit_code == 0, result.stderr
    assert result.output.count("valid ") == 3
    assert "ademamix: 4 free dimensions" in result.output  # lm_small: lr, beta3, alpha, T choice
    cfg = load_sweep(ROOT / "sweeps" / "lm_small.yaml")
    assert cfg.name == "lm_small" and cfg.task.data == "builtin:python-stdlib"
    assert cfg.optimizers.ademamix.t_alpha_beta3.values == (0.5, 1.0)


@pytest.mark.parametrize("task", ["lm", "vision", "rosenbrock"])
def test_init_writes_a_file_that_validates(tmp_path: Path, task: str) -> None:
    out = tmp_path / f"{task}.yaml"
    result = runner.invoke(app, ["init", "--task", task, "-o", str(out)])
    assert result.exit_code == 0 and out.exists()
    assert out.read_text().startswith("# ademix-sweep sweep file")
    assert validate(str(out)).exit_code == 0
    assert load_sweep(out).task.kind == task
    again = runner.invoke(app, ["init", "--task", task, "-o", str(out)])
    assert again.exit_code == 2 and again.stderr.strip() == f"{out}: already exists (use --force to overwrite it)"
    assert runner.invoke(app, ["init", "--task", task, "-o", str(out), "--force"]).exit_code == 0


def test_init_prints_without_output_and_rejects_unknown_tasks() -> None:
    result = runner.invoke(app, ["init", "--task", "rosenbrock"])
    assert result.exit_code == 0 and yaml.safe_load(result.output)["task"]["kind"] == "rosenbrock"
    bad = runner.invoke(app, ["init", "--task", "gan"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "--task: unknown task 'gan' (expected one of lm, vision, rosenbrock)"


def test_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    cfg = load_sweep(path, ["train.steps=400", "optimizers.adamw.lr={log_uniform: [1.0e-4, 1.0e-2]}", "seed=3"])
    assert cfg.train.steps == 400 and cfg.seed == 3
    assert cfg.optimizers.adamw.lr.kind == "log_uniform" and cfg.optimizers.adamw.lr.values == (1e-4, 1e-2)
    result = validate(str(path), "--set", "train.eval_every=20", "--set", "optimizers.ademamix.alpha=8")
    assert result.exit_code == 0 and "8 (constant)" in result.output
    bad = validate(str(path), "--set", "optimizers.ademamix.beta3=1.0")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == (
        f"{path} (--set optimizers.ademamix.beta3): optimizers.ademamix.beta3: 1.0 is out of range "
        "(expected 0 <= beta3 < 1)"
    )
    typo = validate(str(path), "--set", "train.stepz=5")
    assert typo.exit_code == 2 and "train.stepz: unknown key" in typo.stderr and "did you mean steps?" in typo.stderr
    assert validate(str(path), "--set", "nonsense").exit_code == 2


def test_t_alpha_beta3_steps_or_fraction(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    result = validate(str(path), "--set", "optimizers.ademamix.t_alpha_beta3=0.5")
    assert result.exit_code == 0 and "0.5 (constant) = 50 steps" in result.output
    beyond = validate(str(path), "--set", "optimizers.ademamix.t_alpha_beta3=101")
    assert "101 steps is beyond the run (expected at most train.steps = 100)" in beyond.stderr
    default = load_sweep(ROOT / "sweeps" / "vision_small.yaml").optimizers.ademamix.t_alpha_beta3
    assert default.values == (1.0,)  # the paper's default: the whole run


def test_json_schema_accepts_shipped_files_and_rejects_a_bad_one() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"name", "task", "train", "optimizers", "budget"} <= set(schema["properties"])
    for path in SHIPPED:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    bad = yaml.safe_load(GOOD)
    bad["optimizers"]["ademamix"]["beta3"] = {"half_lfe": [1, 2]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = validate(str(path))
    assert result.exit_code == 2 and not marker.exists()
    assert result.stderr.startswith(f"{path}:1: YAML error: tag 'tag:yaml.org,2002:python/object/apply:os.system'")


# name -> (file text, what the one-line message must contain). Lines are checked where known.
CORPUS: dict[str, tuple[str, str]] = {
    "syntax error": ("name: [t\nbudget: {trials: 4}\n", "YAML error:"),
    "tab indentation": ("name: t\ntrain:\n\tsteps: 5\n", "YAML error:"),
    "empty file": ("", "the file is empty"),
    "only a comment": ("# nothing\n", "the file is empty"),
    "list at top": ("- name: t\n", "the top level is a list"),
    "scalar at top": ("just words\n", "the top level is a string"),
    "unknown top key": (GOOD + "sampelr: {type: tpe}\n", ":14: sampelr: unknown key"),
    "typo beta3": (GOOD.replace("beta3:", "beta_3:"), ":11: optimizers.ademamix.beta_3: unknown key"),
    "adamw has no beta3": (GOOD.replace("adamw: {lr: 0.01}", "adamw: {lr: 0.01, beta3: 0.9}"), "adamw.beta3"),
    "steps not int": (GOOD.replace("steps: 100", "steps: many"), ":5: train.steps: 'many' is the wrong type"),
    "steps float": (GOOD.replace("steps: 100", "steps: 100.5"), "train.steps"),
    "lr string": (GOOD.replace("lr: 0.01", "lr: fast"), "optimizers.adamw.lr: 'fast' is not a number"),
    "bool lr": (GOOD.replace("lr: 0.01", "lr: true"), "optimizers.adamw.lr: True is not a number"),
    "inverted bounds": (GOOD.replace("[2, 10]", "[10, 2]"), ":12: optimizers.ademamix.alpha: low 10 >= high 2"),
    "log bound zero": (GOOD.replace("[1.0e-3, 1.0e-1]", "[0, 1.0e-1]"), "log bound 0 <= 0"),
    "beta >= 1": (GOOD.replace("adamw: {lr: 0.01}", "adamw: {lr: 0.01, beta2: 1.0}"), "(expected 0 <= beta2 < 1)"),
    "negative lr": (GOOD.replace("lr: 0.01", "lr: -0.01"), "-0.01 is out of range (expected 0 < lr)"),
    "negative alpha": (GOOD.replace("{uniform: [2, 10]}", "-1"), "optimizers.ademamix.alpha: -1 is out of range"),
    "empty optimizers": (GOOD.split("optimizers:")[0] + "optimizers: {}\n", "optimizers: no optimizer"),
    "unknown task": (GOOD.replace("kind: rosenbrock", "kind: gan"), ":3: task.kind: unknown task kind 'gan'"),
    "duplicate keys": (GOOD + "name: u\n", ":14: name: duplicate key (first defined on line 1)"),
    "python object tag": (GOOD.replace("seed", "x").replace("name: t", "name: !!python/object:os.system {}"), "tag"),
    "python tag": (GOOD.replace("name: t", "name: !!python/name:os.system"), "is not allowed"),
    "deep nesting": ("name: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 32 levels"),
    "unknown distribution": (GOOD.replace("uniform: [2, 10]", "unifrm: [2, 10]"), "did you mean uniform?"),
    "missing train": (GOOD.replace("train:\n  steps: 100\n  eval_every: 10\n", ""), "train: missing"),
    "T beyond run": (GOOD.replace("t_alpha_beta3: 50", "t_alpha_beta3: 500"), ":13: optimizers.ademamix.t_alpha_beta3"),
    "T negative": (GOOD.replace("t_alpha_beta3: 50", "t_alpha_beta3: -5"), "t_alpha_beta3: -5 is out of range"),
    "warmup too long": (GOOD.replace("eval_every: 10", "eval_every: 10\n  warmup_steps: 100"), "warmup_steps 100"),
    "choice twice": (GOOD.replace("lr: 0.01", "lr: {choice: [0.1, 0.1]}"), "lists a value twice"),
    "half_life on alpha": (GOOD.replace("{uniform: [2, 10]}", "{half_life: [2, 10]}"), "only for EMA"),
    "grid with ranges": (GOOD + "sampler: {type: grid}\n", "cannot be searched by sampler.type grid"),
    "bad schedule": (GOOD.replace("eval_every: 10", "eval_every: 10\n  schedule: cosin"), "train.schedule: 'cosin'"),
    "task options": (GOOD.replace("kind: rosenbrock", "kind: lm, model: {dim: 65}"), "task.model: dim 65"),
    "tag a value cannot take": (GOOD.replace("name: t", "name: t\nseed: !!int 0.5"), "YAML error: a value cannot"),
    "number as key": (GOOD + "1: one\n", ":14: key '1' is not a name"),
    "control character": (GOOD.replace("budget:", "\x0bbudget:"), ":2: YAML error: character '\\x0b'"),
    "unknown builtin data": (GOOD.replace("kind: rosenbrock", "kind: lm, data: 'builtin:wiki'"), "task.data: unknown"),
    "T range mixing units": (GOOD.replace("t_alpha_beta3: 50", "t_alpha_beta3: {uniform: [0.5, 50]}"), "mix steps"),
    "two-key distribution": (GOOD.replace("{uniform: [2, 10]}", "{uniform: [2, 10], int: [1, 2]}"), "exactly one key"),
}


def check_one_line(result, *must_contain: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    message = result.stderr
    assert message.count("\n") == 1 and "Traceback" not in message + result.output, message
    for text in must_contain:
        assert text in message, message


@pytest.mark.parametrize("case", list(CORPUS))
def test_malformed_file_gives_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, expected = CORPUS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    check_one_line(validate(str(path)), f"{path}", expected)


def test_binary_missing_and_directory_paths(tmp_path: Path) -> None:
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    check_one_line(validate(str(binary)), f"{binary}: is not UTF-8 text")
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: t\x00\n")
    check_one_line(validate(str(nul)), "is a binary file")
    check_one_line(validate(str(tmp_path / "missing.yaml")), "missing.yaml: no such file")
    check_one_line(validate(str(tmp_path)), f"{tmp_path}: is a directory")


def test_many_files_report_each_and_fail_if_any_fails(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("lr: 0.01", "lr: -1"))
    result = validate(str(good), str(bad))
    assert result.exit_code == 2 and f"valid {good}" in result.output.replace("\n", "")
    assert result.stderr.startswith(f"{bad}:8: optimizers.adamw.lr: -1 is out of range")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) + 4 >= 25


def test_yaml_1_2_floats_and_short_run_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("lr: 0.01", "lr: 1e-2").replace("  eval_every: 10\n", "").replace("100", "60"))
    cfg = load_sweep(path)
    assert cfg.optimizers.adamw.lr.values == (0.01,)  # PyYAML alone would read the string '1e-2'
    assert cfg.train.eval_every == 60  # default 200, capped at the run's length
    assert load_sweep(path, ["train.steps=1000"]).train.eval_every == 200
