"""Trainer-settings search: seeded, validation split only, the defaults as the first trial, the choice
recorded in the config (and so in a bundle's manifest)."""

import math

import pytest

from profile_core.bench.train import synthetic_frame
from profile_core.tasks import risk_tasks
from profile_core.train import TrainConfig, split_indices
from profile_core.tune import tune, validation_score

BASE = TrainConfig(hidden=(64, 32), max_epochs=3, patience=2, device="cpu", seed=5)
TASKS = risk_tasks()


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(600, n_features=6, seed=2)


def test_tune_is_seeded_starts_from_the_base_and_records_the_choice(frame):
    split = split_indices(frame, TASKS, seed=5)
    a = tune(frame, TASKS, budget_s=600, base=BASE, split=split, max_trials=3)
    b = tune(frame, TASKS, budget_s=600, base=BASE, split=split, max_trials=3)
    assert [t["score"] for t in a.trials] == [t["score"] for t in b.trials]  # same seed, same search
    assert len(a.trials) == 3 and a.trials[0]["hidden"] == [64, 32] and a.trials[0]["lr"] == BASE.lr
    assert a.score == max(t["score"] for t in a.trials) and 0 < a.score <= 1
    tuned = a.config.tuned
    assert tuned["trials"] == 3 and tuned["score"] == a.score and "lr" in tuned["space"]
    assert a.config.max_epochs == 3 and a.config.seed == 5  # what was not searched stays as given
    assert TrainConfig.model_validate(a.config.model_dump()) == a.config  # the manifest round trip


def test_validation_score_is_the_mean_headline():
    metrics = {"credit_score": {"r2": 0.5}, "default": {"auc": 0.8}, "risk_level": {"macro_f1": math.nan}}
    assert validation_score(metrics, TASKS) == pytest.approx(0.65)


def test_tuning_a_hybrid_searches_the_net_and_keeps_the_blend(frame, monkeypatch):
    import profile_core.tune as tune_module

    seen = []
    real_fit = tune_module.fit

    def spy(frame_, tasks_, config, **kwargs):
        seen.append(config.hybrid)
        return real_fit(frame_, tasks_, config, **kwargs)

    monkeypatch.setattr(tune_module, "fit", spy)
    result = tune(frame, TASKS, budget_s=600, base=BASE.model_copy(update={"hybrid": "blend"}), max_trials=2)
    assert seen == ["none", "none"]  # trials fit the net alone: the trees are fitted once, after the search
    assert result.config.hybrid == "blend" and result.config.tuned["trials"] == 2
