"""Baselines on the same split and metrics as the multi-task model: a single-task MLP per task (the
SharedBottom net with one head, same trainer) and LightGBM per task.

``comparison_table({"MTL": result.metrics["test"], **run_baselines(...)})`` gives one row per model × task.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd

from profile_core.features import Preprocessor
from profile_core.tasks import TaskSpec, encode_label, labelled, task_metrics
from profile_core.train import TrainConfig, feature_columns, fit

BASELINES = ("single-mlp", "lightgbm")
LGBM_PARAMS = {"n_estimators": 500, "learning_rate": 0.05, "num_leaves": 31, "verbose": -1,
               "deterministic": True, "force_row_wise": True}


def report_split(split: dict[str, np.ndarray]) -> str:
    """The split baselines are scored on: test, or validation when there is no test split."""
    return "test" if len(split.get("test", ())) else "val"


def fit_lightgbm(frame: pd.DataFrame, task: TaskSpec, split: dict[str, np.ndarray], *, numeric: list[str],
                 categorical: list[str], seed: int = 42, n_jobs: int = 2,
                 early_stopping: int = 30) -> dict[str, dict[str, float]]:
    """One LightGBM model for ``task`` (early stopping on the validation split); metrics per split."""
    pre = Preprocessor().fit(frame.iloc[split["train"]], numeric, categorical)
    X = pre.transform(frame)
    y = encode_label(frame, task, standardize=False)
    has = labelled(task, y)
    train, val = (split[k][has[split[k]]] for k in ("train", "val"))
    params = {**LGBM_PARAMS, "random_state": seed, "n_jobs": n_jobs}
    model = lgb.LGBMRegressor(**params) if task.kind == "regression" else lgb.LGBMClassifier(**params)
    target = y if task.kind != "binary" else y.astype(np.float64)
    model.fit(X[train], target[train], eval_X=X[val], eval_y=target[val],
              callbacks=[lgb.early_stopping(early_stopping, verbose=False)])
    out = {}
    for name in ("val", "test"):
        rows = split.get(name, np.array([], dtype=int))
        if not len(rows):
            continue
        if task.kind == "regression":
            pred = model.predict(X[rows])
        else:
            proba = model.predict_proba(X[rows])
            full = np.zeros((len(rows), task.n_classes if task.kind == "multiclass" else 2))
            full[:, np.asarray(model.classes_, dtype=int)] = proba  # classes absent in train get 0
            pred = full[:, 1] if task.kind == "binary" else full
        out[name] = task_metrics(task, y[rows], pred)
    return out


def run_baselines(frame: pd.DataFrame, tasks: list[TaskSpec], config: TrainConfig, split: dict[str, np.ndarray],
                  *, numeric: list[str] | None = None, categorical: list[str] | None = None,
                  models: Sequence[str] = BASELINES) -> dict[str, dict[str, dict[str, float]]]:
    """model name → task → metrics on the test split (validation when there is none)."""
    numeric, categorical = feature_columns(frame, tasks, numeric, categorical, config)
    part = report_split(split)
    results: dict[str, dict[str, dict[str, float]]] = {}
    if "single-mlp" in models:
        single = config.model_copy(update={"arch": "shared-bottom", "weighting": "fixed", "task_weights": {},
                                           "hybrid": "none", "ensemble": 1})  # one net, no trees
        results["single-mlp"] = {
            t.name: fit(frame, [t], single, numeric=numeric, categorical=categorical, split=split).metrics[part][t.name]
            for t in tasks}
    if "lightgbm" in models:
        results["lightgbm"] = {
            t.name: fit_lightgbm(frame, t, split, numeric=numeric, categorical=categorical, seed=config.seed,
                                 n_jobs=config.num_threads or 2)[part]  # same CPU budget as the nets
            for t in tasks}
    return results


def comparison_table(results: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """One row per model × task (columns ``model``, ``task``, then the metrics in first-seen order)."""
    rows = [{"model": model, "task": task, **metrics}
            for model, per_task in results.items() for task, metrics in per_task.items()]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(["model", "task", *(k for r in rows for k in r)])))
