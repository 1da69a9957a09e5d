"""space.py against a real Optuna study: names, distributions, and the EMA mappings."""

import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from ademix_sweep.engine.space import from_param, grid_space, sample_hparams
from ademix_sweep.sweepfile.config import AdEMAMixSpace
from ademix_sweep.sweepfile.dists import Dist

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = AdEMAMixSpace.model_validate(
    {
        "lr": {"log_uniform": [1e-4, 1e-2]},
        "beta1": 0.9,
        "beta2": {"one_minus_log": [0.99, 0.9999]},
        "beta3": {"half_life": [100, 10000]},
        "alpha": {"uniform": [2, 10]},
        "t_alpha_beta3": {"choice": [0.5, 1.0, 300]},
        "weight_decay": {"int": [0, 1]},
    }
)


def test_trials_store_yaml_names_and_resolved_values() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(20):
        trial = study.ask()
        hp = sample_hparams(trial, SPACE, train_steps=1000)
        study.tell(trial, 0.0)
        seen.append(hp)
        frozen = study.trials[-1]
        names = {"lr", "one_minus_beta2", "beta3_half_life", "alpha", "t_alpha_beta3", "weight_decay"}
        assert set(frozen.params) == names
        assert hp["beta1"] == 0.9 and hp["eps"] == 1e-8  # constants: no suggest call
        assert hp["beta3"] == pytest.approx(0.5 ** (1 / frozen.params["beta3_half_life"]), rel=1e-15)
        assert frozen.user_attrs["beta3"] == hp["beta3"]
        assert hp["beta2"] == pytest.approx(1 - frozen.params["one_minus_beta2"], rel=1e-15)
        expected_t = {0.5: 500, 1.0: 1000, 300: 300}[frozen.params["t_alpha_beta3"]]
        assert hp["t_alpha_beta3"] == expected_t == frozen.user_attrs["t_alpha_beta3_steps"]
    dists = study.trials[-1].distributions
    assert dists["lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["beta3_half_life"] == FloatDistribution(100, 10000, log=True)
    assert dists["one_minus_beta2"].log and dists["one_minus_beta2"].low == pytest.approx(1e-4)
    assert dists["one_minus_beta2"].high == pytest.approx(1e-2)
    assert dists["alpha"] == FloatDistribution(2, 10)
    assert dists["weight_decay"] == IntDistribution(0, 1)
    assert dists["t_alpha_beta3"] == CategoricalDistribution([0.5, 1.0, 300])
    betas3 = [hp["beta3"] for hp in seen]
    assert all(0.5 ** (1 / 100) <= b <= 0.5 ** (1 / 10000) for b in betas3)


def test_ema_mappings() -> None:
    assert from_param(Dist("half_life", (1, 2)), 692.8) == pytest.approx(0.999, abs=1e-6)
    assert from_param(Dist("half_life", (1, 2)), 6931.1) == pytest.approx(0.9999, abs=1e-8)
    assert from_param(Dist("one_minus_log", (0.9, 0.99)), 0.05) == pytest.approx(0.95)
    assert math.isclose(from_param(Dist("uniform", (0, 1)), 0.3), 0.3)


def test_zero_warmup_means_none() -> None:
    space = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": 0})
    hp = sample_hparams(optuna.trial.FixedTrial({}), space, train_steps=100)
    assert hp["t_alpha_beta3"] is None


def test_grid_space_lists_the_choices() -> None:
    space = AdEMAMixSpace.model_validate({"lr": {"choice": [1e-3, 3e-3]}, "alpha": {"choice": [4, 8]}})
    assert grid_space(space) == {"lr": [1e-3, 3e-3], "alpha": [4, 8]}


def test_t_alpha_beta3_range_in_steps_is_rounded_to_steps() -> None:
    space = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": {"uniform": [10, 400]}})
    hp = sample_hparams(optuna.trial.FixedTrial({"t_alpha_beta3": 205.3}), space, train_steps=500)
    assert hp["t_alpha_beta3"] == 205
    fractions = AdEMAMixSpace.model_validate({"lr": 1e-3, "t_alpha_beta3": {"uniform": [0.25, 1.0]}})
    hp = sample_hparams(optuna.trial.FixedTrial({"t_alpha_beta3": 0.5}), fractions, train_steps=500)
    assert hp["t_alpha_beta3"] == 250


def test_a_sweep_passes_every_hyperparameter_so_build_optimizer_defaults_never_apply():
    from ademix_sweep.engine.space import default_config
    from ademix_sweep.optim import OPTIMIZERS
    from ademix_sweep.optim.build import DEFAULTS
    from ademix_sweep.sweepfile.config import OPTIMIZERS as SWEEP_OPTIMIZERS
    from ademix_sweep.sweepfile.config import load_sweep

    assert set(OPTIMIZERS) == set(SWEEP_OPTIMIZERS)
    spaces = load_sweep(Path(__file__).resolve().parent.parent / "sweeps/rosenbrock.yaml").optimizers.spaces()
    for opt, space in spaces.items():
        values = sample_hparams(optuna.trial.FixedTrial({}), default_config(space)[0], train_steps=100)
        assert set(values) == set(DEFAULTS[opt]), opt


def test_a_trials_stored_params_read_back_as_the_hyperparameters_it_trained_with():
    from ademix_sweep.engine.space import plain_hyperparameters

    space = AdEMAMixSpace.model_validate(
        {
            "lr": {"log_uniform": [1e-4, 1e-2]},
            "beta2": {"one_minus_log": [0.99, 0.9999]},
            "beta3": {"half_life": [100, 10000]},
            "t_alpha_beta3": {"uniform": [0.25, 1.0]},
        }
    )
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    hp = sample_hparams(trial, space, train_steps=800)
    assert set(trial.params) == {"lr", "one_minus_beta2", "beta3_half_life", "t_alpha_beta3"}
    plain = plain_hyperparameters(trial.params, trial.user_attrs)
    assert plain == {k: v for k, v in hp.items() if k in plain}
    assert set(plain) == {"lr", "beta2", "beta3", "t_alpha_beta3"} and isinstance(plain["t_alpha_beta3"], int)
