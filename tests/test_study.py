"""study.py: storage URLs and masking, SQLite set-up, study metadata, and refusing a changed sweep."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
from databases import ensure_mariadb, ensure_postgres, fresh_postgres_database

from ademix_sweep.engine.storage import StorageError, open_storage
from ademix_sweep.engine.study import (
    ATTR,
    SweepMismatch,
    create_or_resume,
    differences,
    identity_hash,
    make_pruner,
    make_sampler,
)
from ademix_sweep.engine.urls import mask_url, resolve_storage_url
from ademix_sweep.sweepfile.config import load_sweep

ROOT = Path(__file__).resolve().parent.parent
ROSEN = ROOT / "sweeps/rosenbrock.yaml"


def test_storage_precedence():
    env = {"ADEMIX_SWEEP_STORAGE": "sqlite:///env.db"}
    assert resolve_storage_url("sqlite:///cli.db", "sqlite:///file.db", "s", env) == "sqlite:///cli.db"
    assert resolve_storage_url(None, "sqlite:///file.db", "s", env) == "sqlite:///file.db"
    assert resolve_storage_url(None, None, "s", env) == "sqlite:///env.db"
    assert resolve_storage_url(None, None, "s", {}) == "sqlite:///runs/s.db"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://ana:s3cret@db:5432/sweeps", "postgresql+psycopg://ana:***@db:5432/sweeps"),
        ("mysql+pymysql://root@db/x", "mysql+pymysql://root@db/x"),
        ("postgresql://ana:p@ss:w0rd@db/x", "postgresql://ana:***@db/x"),
        ("sqlite:///runs/a.db", "sqlite:///runs/a.db"),
    ],
)
def test_mask_url_hides_passwords(url, masked):
    assert mask_url(url) == masked


def test_sqlite_storage_makes_its_folder_and_uses_wal(tmp_path):
    path = tmp_path / "deep" / "runs" / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    optuna.create_study(storage=storage, study_name="x")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "storage not a url: not a database URL (expected"),
        (
            "postgresql+psycopg://ana:s3cret@127.0.0.1:1/db",
            "storage postgresql+psycopg://ana:***@127.0.0.1:1/db: cannot connect (",
        ),
        ("mysql+nosuchdriver://ana:s3cret@h/db", "storage mysql+nosuchdriver://ana:***@h/db: no database driver ("),
        ("sqlite://", "storage sqlite://: an in-memory SQLite database"),
    ],
)
def test_bad_storages_give_one_masked_line(url, message):
    with pytest.raises(StorageError) as info:
        open_storage(url)
    text = str(info.value)
    assert text.startswith(message) and "s3cret" not in text and "\n" not in text


def test_refused_passwords_give_one_masked_line():
    ensure_postgres()
    ensure_mariadb()
    for url, refusal in (
        ("mysql+pymysql://root:s3cret@127.0.0.1:3306/test", "Access denied for user 'root'"),
        ("postgresql+psycopg://nobody:s3cret@127.0.0.1:5432/test", 'role "nobody" does not exist'),
    ):
        with pytest.raises(StorageError) as info:
            open_storage(url)
        text = str(info.value)
        assert refusal in text and "s3cret" not in text and "***" in text and "\n" not in text


def test_new_study_records_the_sweep_and_a_same_file_resumes(tmp_path):
    cfg = load_sweep(ROSEN)
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = create_or_resume(storage, cfg, "ademamix", "fp1")
    meta = study.user_attrs[ATTR]
    assert study.study_name == "rosenbrock.ademamix" and study.direction == optuna.study.StudyDirection.MINIMIZE
    assert meta["data_fingerprint"] == "fp1" and meta["identity_hash"] == identity_hash(meta["identity"])
    assert meta["identity"]["space"]["alpha"] == ["uniform", [1, 10]]
    assert meta["torch_version"].startswith("2.") and meta["optuna_version"].startswith("5.")
    stored = optuna.load_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="rosenbrock.ademamix")
    assert stored.metric_names == ["val_loss"]  # what optuna-dashboard shows instead of "Objective 0"
    bigger = load_sweep(ROSEN, ["budget.trials=500", "storage=sqlite:///elsewhere.db"])
    again = create_or_resume(storage, bigger, "ademamix", "fp1")  # budget and storage may change
    assert again._study_id == study._study_id
    assert optuna.load_study(storage=storage, study_name="rosenbrock.ademamix").user_attrs[ATTR] == meta


def test_changed_search_space_or_training_is_refused_naming_the_fields(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    create_or_resume(storage, load_sweep(ROSEN), "ademamix", "fp1")
    changed = load_sweep(ROSEN, ["optimizers.ademamix.alpha=3", "train.steps=100", "train.eval_every=50"])
    with pytest.raises(SweepMismatch) as info:
        create_or_resume(storage, changed, "ademamix", "fp1")
    assert "different settings: optimizers.ademamix.alpha, train.eval_every, train.steps (expected" in str(info.value)
    with pytest.raises(SweepMismatch, match=r"different data \(fingerprint fp1, here fp2\)"):
        create_or_resume(storage, load_sweep(ROSEN), "ademamix", "fp2")


def test_a_deferred_fingerprint_is_recorded_by_the_first_worker_and_checked_after(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    cfg = load_sweep(ROSEN)
    create_or_resume(storage, cfg, "adamw", None)  # run's parent: the file only
    assert (
        optuna.load_study(storage=storage, study_name="rosenbrock.adamw").user_attrs[ATTR]["data_fingerprint"] is None
    )
    create_or_resume(storage, cfg, "adamw", "fp1", rank=1)  # the first worker to load the data
    assert (
        optuna.load_study(storage=storage, study_name="rosenbrock.adamw").user_attrs[ATTR]["data_fingerprint"] == "fp1"
    )
    create_or_resume(storage, cfg, "adamw", None)  # a later parent still passes
    with pytest.raises(SweepMismatch, match=r"different data \(fingerprint fp1, here fp2\)"):
        create_or_resume(storage, cfg, "adamw", "fp2", rank=2)


def test_differences_lists_dotted_paths():
    assert differences({"a": {"b": 1, "c": [1]}, "d": 2}, {"a": {"b": 2, "c": [1]}, "e": 3}) == ["a.b", "d", "e"]
    assert differences([1], [1]) == []


def test_samplers_and_pruners_follow_the_file():
    cfg = load_sweep(ROSEN, ["sampler.type=random"])
    assert isinstance(make_sampler(cfg, "adamw", 3), optuna.samplers.RandomSampler)
    tpe = make_sampler(load_sweep(ROSEN, ["sampler.startup_trials=7"]), "adamw", 3)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._n_startup_trials == 7
    grid = load_sweep(
        ROSEN,
        [
            "sampler.type=grid",
            "optimizers.adamw.lr={choice: [0.01, 0.1]}",
            "optimizers.ademamix.lr=0.01",
            "optimizers.ademamix.beta3=0.999",
            "optimizers.ademamix.alpha={choice: [2, 8]}",
        ],
    )
    assert isinstance(make_sampler(grid, "ademamix", 0), optuna.samplers.GridSampler)
    assert isinstance(make_sampler(load_sweep(ROSEN, ["sampler.type=cmaes"]), "adamw", 0), optuna.samplers.CmaEsSampler)
    assert isinstance(make_pruner(cfg), optuna.pruners.NopPruner)
    median = make_pruner(load_sweep(ROSEN, ["pruner={type: median, min_steps: 300}"]))
    assert isinstance(median, optuna.pruners.MedianPruner) and median._n_warmup_steps == 300
    band = make_pruner(load_sweep(ROSEN, ["pruner={type: hyperband, min_steps: 300}"]))
    assert isinstance(band, optuna.pruners.HyperbandPruner)


def test_postgresql_storage_holds_both_studies_plainly():
    cfg = load_sweep(ROSEN)
    with fresh_postgres_database() as url:
        storage = open_storage(url)
        for optimizer in ("ademamix", "adamw"):
            create_or_resume(storage, cfg, optimizer, "fp")
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage=url))
        assert names == ["rosenbrock.adamw", "rosenbrock.ademamix"]
        plain = optuna.load_study(storage=url, study_name="rosenbrock.adamw")  # no ademix-sweep needed to read it
        assert plain.user_attrs[ATTR]["identity"]["optimizer"] == "adamw"
        storage.engine.dispose()
