"""Time-budgeted search of trainer settings (Optuna TPE, seeded) on the validation split only.

``tune(frame, tasks, budget_s)`` trains one net per trial on the same train/validation split and scores it by
the mean over heads of the validation headline metric (R² for regression, AUC for binary, macro-F1 for
multiclass); the test split is never read. The returned ``config`` is the best trial's TrainConfig with
``tuned`` filled in (budget, trials, score, search space), so a bundle trained with it records in its
manifest what was searched and chosen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profile_core.tasks import TaskSpec
from profile_core.train import TrainConfig, fit, split_indices

#: What a trial may change (Optuna distributions are built from these in ``_suggest``).
SPACE: dict[str, Any] = {
    "hidden": [(64, 32), (128, 64), (256, 128)],
    "lr": (5e-4, 5e-3),  # log-uniform
    "weight_decay": (1e-6, 1e-3),  # log-uniform
    "dropout": (0.0, 0.3),
    "batch_size": [256, 512, 1024],
    "numeric_encoding": ["ple", "standard"],
    "n_bins": [8, 16, 32],
    "weighting": ["fixed", "uncertainty"],
}
HEADLINE = {"regression": "r2", "binary": "auc", "multiclass": "macro_f1"}


@dataclass
class TuneResult:
    config: TrainConfig  # the best trial's settings (``tuned`` says how it was found)
    score: float  # its mean validation headline metric
    trials: list[dict[str, Any]] = field(default_factory=list)  # number, params, score, seconds

    def trials_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.trials)


def validation_score(metrics: dict[str, dict[str, float]], tasks: list[TaskSpec]) -> float:
    """Mean over heads of R² / AUC / macro-F1 on the validation split (NaN heads left out)."""
    values = [metrics.get(t.name, {}).get(HEADLINE[t.kind], math.nan) for t in tasks]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def _suggest(trial: Any) -> dict[str, Any]:
    hidden = trial.suggest_categorical("hidden", [f"{a},{b}" for a, b in SPACE["hidden"]])
    params = {
        "hidden": tuple(int(v) for v in hidden.split(",")),
        "lr": trial.suggest_float("lr", *SPACE["lr"], log=True),
        "weight_decay": trial.suggest_float("weight_decay", *SPACE["weight_decay"], log=True),
        "dropout": trial.suggest_float("dropout", *SPACE["dropout"]),
        "batch_size": trial.suggest_categorical("batch_size", SPACE["batch_size"]),
        "numeric_encoding": trial.suggest_categorical("numeric_encoding", SPACE["numeric_encoding"]),
        "weighting": trial.suggest_categorical("weighting", SPACE["weighting"]),
    }
    if params["numeric_encoding"] == "ple":
        params["n_bins"] = trial.suggest_categorical("n_bins", SPACE["n_bins"])
    return params


def tune(frame: pd.DataFrame, tasks: list[TaskSpec], budget_s: float, *, base: TrainConfig | None = None,
         numeric: list[str] | None = None, categorical: list[str] | None = None,
         split: dict[str, np.ndarray] | None = None, max_trials: int | None = None,
         verbose: bool = False) -> TuneResult:
    """Search for ``budget_s`` seconds (or ``max_trials``) from ``base`` (default TrainConfig()); the first
    trial is ``base`` itself, so the result is never worse than the defaults on validation. Seeded by
    ``base.seed`` (the sampler and every trial's net); a trial started before the budget ran out finishes."""
    import optuna

    base = base or TrainConfig()
    split = split or split_indices(frame, tasks, base.seed, base.val_fraction, base.test_fraction)
    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    base_hidden = base.hidden if base.hidden in SPACE["hidden"] else (128, 64)
    study.enqueue_trial({"hidden": f"{base_hidden[0]},{base_hidden[1]}", "lr": base.lr,
                         "weight_decay": base.weight_decay, "dropout": base.dropout,
                         "batch_size": base.batch_size, "numeric_encoding": base.numeric_encoding,
                         "n_bins": base.n_bins, "weighting": base.weighting}, skip_if_exists=True)
    trials: list[dict[str, Any]] = []
    configs: dict[int, TrainConfig] = {}

    def objective(trial: Any) -> float:
        params = _suggest(trial)
        config = base.model_copy(update={**params, "hybrid": "none"})  # the search tunes the net; trees come after
        t0 = time.perf_counter()
        result = fit(frame, tasks, config, numeric=numeric, categorical=categorical, split=split)
        score = validation_score(result.metrics["val"], result.tasks)
        configs[trial.number] = config
        trials.append({"number": trial.number, **{k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in params.items()},
                       "score": score, "seconds": round(time.perf_counter() - t0, 2)})
        return score if math.isfinite(score) else -math.inf

    study.optimize(objective, n_trials=max_trials, timeout=budget_s, gc_after_trial=False)
    best = study.best_trial
    chosen = configs[best.number].model_copy(update={"hybrid": base.hybrid, "tuned": {
        "budget_s": budget_s, "trials": len(trials), "best_trial": best.number, "score": float(best.value),
        "metric": "mean validation " + "/".join(sorted({HEADLINE[t.kind] for t in tasks})),
        "space": {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, list) else list(v)
                  for k, v in SPACE.items()}}})
    return TuneResult(config=chosen, score=float(best.value), trials=trials)
