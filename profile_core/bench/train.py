"""Training throughput benchmark: samples/s of the 3-head shared-bottom on synthetic data, and the time of
one multi-task training relative to three single-task trainings (same epochs, same rows).

``python -m profile_core bench train`` → ``benchmarks/results/train.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from profile_core.schema import RISK_LEVELS
from profile_core.tasks import risk_tasks
from profile_core.train import TrainConfig, fit


def synthetic_frame(n: int = 2000, n_features: int = 40, seed: int = 0, *, n_categorical: int = 0) -> pd.DataFrame:
    """A customer frame where one latent factor drives all three labels (score, default, grade A–E)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    k = min(8, n_features)
    z = X[:, :k] @ rng.normal(size=k) / np.sqrt(k)
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(n_features)])
    for j in range(n_categorical):  # a categorical that carries some of the signal
        frame[f"c{j}"] = np.where(z + rng.normal(scale=1.5, size=n) > 0, "hi", "lo")
    frame.insert(0, "customer_id", [f"C{i:06d}" for i in range(n)])
    risk = -z + rng.normal(scale=0.5, size=n)
    frame["credit_score"] = 650 + 60 * z + rng.normal(scale=20, size=n)
    frame["default_flag"] = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * risk - 2.0)))).astype(int)
    cuts = np.quantile(risk, [0.2, 0.4, 0.6, 0.8])
    frame["risk_level"] = np.asarray(RISK_LEVELS, dtype=object)[np.searchsorted(cuts, risk)]
    return frame


def run(n: int = 100_000, n_features: int = 40, epochs: int = 3, out_dir: str | Path = "benchmarks/results",
        *, batch_size: int = 2048, num_threads: int = 1, quick: bool = False) -> dict[str, Any]:
    """Time the trainer on CPU (``num_threads`` as TrainConfig: 1 by default, 0 = torch's default); writes ``<out_dir>/train.json`` and
    returns the same dict."""
    if quick:
        n, epochs = min(n, 20_000), min(epochs, 2)
    frame = synthetic_frame(n, n_features, seed=0)
    features = [c for c in frame.columns if c.startswith("f")]
    # Patience above the epoch count: every run trains exactly ``epochs`` epochs.
    config = TrainConfig(device="cpu", batch_size=batch_size, max_epochs=epochs, patience=epochs + 1,
                         weighting="fixed", val_fraction=0.1, test_fraction=0.1, num_threads=num_threads)
    tasks = risk_tasks()

    def timed(task_list) -> tuple[float, float]:
        t0 = time.perf_counter()
        result = fit(frame, task_list, config, numeric=features, categorical=[])
        return time.perf_counter() - t0, result.samples_per_second

    fit(frame.iloc[:2000], tasks, config.model_copy(update={"max_epochs": 1}), numeric=features,
        categorical=[])  # warm-up: first-call allocations are not what we measure
    mtl_seconds, samples_per_second = timed(tasks)
    single = {t.name: timed([t])[0] for t in tasks}
    out = {
        "rows": n, "features": n_features, "epochs": epochs, "batch_size": batch_size,
        "train_rows": int(n * 0.8), "arch": config.arch, "hidden": list(config.hidden),
        "samples_per_second": round(samples_per_second),
        "mtl_seconds": round(mtl_seconds, 3),
        "single_task_seconds": {k: round(v, 3) for k, v in single.items()},
        "mtl_over_three_single": round(mtl_seconds / sum(single.values()), 3),
        "targets": {"samples_per_second": ">= 300000", "mtl_over_three_single": "<= 0.5"},
        "machine": {"cpus": len(os.sched_getaffinity(0)), "torch_threads": num_threads or torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
    }
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "train.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out
