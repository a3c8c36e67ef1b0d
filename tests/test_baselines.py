"""Baselines: single-task MLPs and LightGBM on the same split and metrics, and the comparison table."""

import numpy as np
import pytest

from profile_core.baselines import comparison_table, fit_lightgbm, run_baselines
from profile_core.bench.train import synthetic_frame
from profile_core.tasks import risk_tasks
from profile_core.train import TrainConfig, split_indices

# a tiny net trained for 42 steps: the plain numeric encoding (binned numbers need more steps than that)
CONFIG = TrainConfig(hidden=(16, 8), head_hidden=(4,), max_epochs=6, batch_size=128, lr=3e-3, device="cpu",
                     numeric_encoding="standard", num_threads=1, task_weights={"default": 2.0})
TASKS = risk_tasks()


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(1200, n_features=8, seed=11, n_categorical=1)


def test_baselines_score_every_task_and_beat_a_constant(frame):
    split = split_indices(frame, TASKS, seed=CONFIG.seed)
    results = run_baselines(frame, TASKS, CONFIG, split)
    assert set(results) == {"single-mlp", "lightgbm"}
    test = frame.iloc[split["test"]]
    for model, per_task in results.items():
        assert set(per_task) == {"credit_score", "default", "risk_level"}, model
        assert per_task["credit_score"]["rmse"] < test["credit_score"].std()
        assert per_task["default"]["auc"] > 0.6
        assert per_task["risk_level"]["accuracy"] > test["risk_level"].value_counts(normalize=True).max()
        assert per_task["default"]["n"] == len(split["test"])

    table = comparison_table({"MTL": results["single-mlp"], **results})
    assert list(table[["model", "task"]].itertuples(index=False, name=None))[:4] == [
        ("MTL", "credit_score"), ("MTL", "default"), ("MTL", "risk_level"), ("single-mlp", "credit_score")]
    assert len(table) == 9 and {"rmse", "auc", "ks", "accuracy", "qwk"} <= set(table.columns)
    assert np.isnan(table.loc[0, "auc"]) and table.loc[1, "auc"] > 0.6


def test_lightgbm_handles_missing_labels_and_absent_classes(frame):
    partial = frame.copy()
    partial.loc[partial.index[::3], "risk_level"] = None
    partial.loc[partial["risk_level"] == "E", "risk_level"] = "D"  # grade E never seen
    split = split_indices(partial, TASKS, seed=1)
    grade = TASKS[2]
    m = fit_lightgbm(partial, grade, split, numeric=[f"f{i:02d}" for i in range(8)], categorical=["c0"], n_jobs=1)
    assert set(m) == {"val", "test"} and m["test"]["n"] < len(split["test"])
    assert 0 <= m["test"]["accuracy"] <= 1 and np.isfinite(m["test"]["qwk"])
    assert comparison_table({}).empty
