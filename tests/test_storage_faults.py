"""Storages that fail for good or hold secrets: a corrupt SQLite file, a full disk, malformed URLs,
and passwords in every form SQLAlchemy accepts, through every command."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from databases import fresh_postgres_database
from sweeprun import assert_sound, run, sweep_file, wait_for_running
from typer.testing import CliRunner

from ademix_sweep.cli import app
from ademix_sweep.engine.storage import StorageError, checkpoint_sqlite, open_storage
from ademix_sweep.engine.study import create_or_resume
from ademix_sweep.engine.urls import mask_url, scrub
from ademix_sweep.sweepfile.config import load_sweep

READERS = (["status"], ["best"], ["export"], ["plot", "-o", "figures"])


def cli(folder: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A command in its own process (``run`` and ``compare`` start workers); in-process for the
    commands that only read, which is quicker and shows a traceback as an exception."""
    if args[0] in ("run", "compare"):
        return subprocess.run(
            [sys.executable, "-m", "ademix_sweep", *args], cwd=folder, capture_output=True, text=True, timeout=timeout
        )
    cwd = os.getcwd()
    os.chdir(folder)  # relative storage paths, as from a shell in the sweep's folder
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory) -> tuple[Path, Path, str]:
    """A sweep database with finished trials whose SQLite file has 32 KB of random bytes at offset 12288."""
    folder = tmp_path_factory.mktemp("corrupt")
    sweep = sweep_file(folder, trials=3)
    db = folder / "runs" / "rb.db"
    storage = open_storage(f"sqlite:///{db}")
    cfg = load_sweep(sweep)
    for opt in cfg.optimizers.spaces():
        study = create_or_resume(storage, cfg, opt, "fingerprint")
        for k in range(40):
            study.add_trial(optuna.create_trial(value=1.0 / (k + 1), params={}, distributions={}, user_attrs={"k": k}))
    storage.engine.dispose()
    with db.open("r+b") as f:
        f.seek(12288)
        f.write(random.Random(0).randbytes(32768))
    return folder, sweep, hashlib.sha256(db.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", [*READERS, ["run"]], ids=lambda c: c[0])
def test_a_corrupt_sqlite_file_gives_one_line_and_is_left_untouched(corrupt, command):
    folder, sweep, digest = corrupt
    out = cli(folder, command[0], str(sweep), *command[1:])
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "the database is damaged (database disk image is malformed)" in lines[0]
    assert 'check it with: sqlite3 runs/rb.db "PRAGMA integrity_check"' in lines[0]
    assert hashlib.sha256((folder / "runs" / "rb.db").read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://u:s3cret@[::1:1/db", "postgresql+psycopg://u:***@[::1:1/db: not a database URL"),
        ("postgresql+psycopg://u:s3@cret@127.0.0.1/db", "the password holds an unencoded '@'"),
    ],
)
@pytest.mark.parametrize("command", [*READERS, ["run"]], ids=lambda c: c[0])
def test_malformed_urls_give_one_masked_line(tmp_path, url, message, command):
    out = cli(tmp_path, command[0], str(sweep_file(tmp_path)), "--storage", url, *command[1:])
    assert out.returncode == 2, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr
    assert "s3" not in out.stderr + out.stdout and "cret" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("url", "masked", "secret"),
    [
        ("postgresql+psycopg://pg@h/db?password=s3cret", "postgresql+psycopg://pg@h/db?password=***", "s3cret"),
        ("mysql+pymysql://root@h/x?ssl=1&passwd=s3cret", "mysql+pymysql://root@h/x?ssl=1&passwd=***", "s3cret"),
        ("postgresql://u:s3%40cret@h/db?sslpassword=k3y", "postgresql://u:***@h/db?sslpassword=***", "s3@cret"),
        ("postgresql://u:s3@cret@h/db", "postgresql://u:***@h/db", "s3@cret"),
    ],
)
def test_every_password_form_is_masked(url, masked, secret):
    assert mask_url(url) == masked
    message = scrub(f"connection for {url} refused: password '{secret}'", url)
    assert message == f"connection for {scrub(url, url)} refused: password '***'"
    assert "cret" not in message and "k3y" not in message


def test_wal_is_folded_back_while_the_storage_is_open(tmp_path):
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    study = optuna.create_study(storage=storage, study_name="s")
    for _ in range(30):
        study.enqueue_trial({"x": 1.0})
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    assert checkpoint_sqlite(f"sqlite:///{path}")
    assert wal.stat().st_size == 0 and len(study.trials) == 30
    storage.engine.dispose()


def test_passwords_never_appear_in_any_command_output(tmp_path):
    with fresh_postgres_database() as plain:  # trust authentication: the password is ignored, and must stay hidden
        forms = [plain + "?password=s3cret", plain.replace("postgres@", "postgres:s3cret@")]
        sweep = sweep_file(tmp_path, trials=2)
        outputs = [run(sweep, "--storage", forms[0])]
        assert outputs[0].returncode == 0, outputs[0].stderr
        for url in forms:
            outputs += [cli(tmp_path, c[0], str(sweep), "--storage", url, *c[1:]) for c in READERS]
            outputs.append(cli(tmp_path, "status", "--storage", url, "--name", "nosuch"))
        outputs.append(cli(tmp_path, "compare", str(sweep), "--storage", forms[1], "--seeds", "1", timeout=300))
        assert [o.returncode for o in outputs] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0], [o.stderr for o in outputs]
        assert "***" in outputs[0].stdout and "no sweep 'nosuch' in storage" in outputs[5].stderr
        for out in outputs:
            assert "s3cret" not in out.stdout + out.stderr


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


@pytest.mark.load  # a real sweep filled mid-run; the classification is in the quick test below
def test_a_full_disk_stops_the_run_with_one_line_and_the_resume_is_exact(tmp_path):
    runs = tmp_path / "runs"
    if not _mount_tmpfs(runs, "16m"):  # room for SQLite's write-ahead log (up to 4 MB) once freed
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        sweep, url = sweep_file(tmp_path, trials=2, steps=1500, eval_every=100), f"sqlite:///{runs / 'rb.db'}"
        slow = ("--workers", "2", "--set", "task.step_pause_s=0.001")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ademix_sweep", "run", str(sweep), *slow],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_running(url, proc)
            subprocess.run(["dd", "if=/dev/zero", f"of={runs / 'filler'}", "bs=64k"], capture_output=True)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 1, err
        assert err.strip().splitlines() == [
            f"{sweep}: workers stopped: storage sqlite:///runs/rb.db: disk full (the disk holding runs/rb.db); "
            "free some space, then run the same command again to resume"
        ]
        (runs / "filler").unlink()
        out = run(sweep, *slow, timeout=300)
        assert out.returncode == 0, out.stderr
        assert_sound(url, 2)
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def test_storage_error_for_a_full_disk_at_open(tmp_path):
    runs = tmp_path / "runs"
    if not _mount_tmpfs(runs, "64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        (runs / "filler").write_bytes(b"\0" * 60_000)
        with pytest.raises(StorageError, match=r"disk full .*free some space"):
            optuna.create_study(storage=open_storage(f"sqlite:///{runs / 's.db'}"), study_name="s")
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)
