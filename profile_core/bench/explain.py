"""Explanation and card benchmark on a 2,000-customer synthetic portfolio, per architecture: build the
explainer, explain one customer with all heads (warm, median of 20), explain 1,000 customers and summarise
them globally, check additivity, and build panorama cards (median of 50).

``python -m profile_core bench explain`` → ``benchmarks/results/explain.json``. The bundle in
``models/demo`` is benchmarked too when present.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from profile_core.explain import HeadExplainer, global_importance, to_attributes
from profile_core.features import build_features_from_frames
from profile_core.privacy import Policy
from profile_core.profile import CardContext
from profile_core.synth import generate_portfolio
from profile_core.tasks import default_tasks
from profile_core.train import TrainConfig, fit, predictions_frame

TARGETS = {"one_customer_seconds": "< 0.2", "customers_1000_seconds": "< 20", "card_ms": "< 50"}


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _bench_model(name: str, bundle: Any, features: Any, tables: dict, n_global: int) -> dict[str, Any]:
    explainer, init_s = _timed(lambda: HeadExplainer(bundle, features, n_background=100, seed=0))
    one = features.iloc[[0]]
    explainer.explain(one)  # warm
    singles = []
    for i in range(20):
        singles.append(_timed(lambda i=i: explainer.explain(features.iloc[[i]]))[1])
    many, many_s = _timed(lambda: explainer.explain(features.iloc[:n_global]))
    attr, attr_s = _timed(lambda: to_attributes(many, bundle.preprocessor, features))
    _, global_s = _timed(lambda: global_importance(attr))
    predictions = predictions_frame(bundle.model, bundle.preprocessor, bundle.tasks, features)
    context, context_s = _timed(lambda: CardContext(tables, features, predictions, explanation=attr))
    policy = Policy("analyst")
    ids = features["customer_id"].astype("str").tolist()
    cards = [_timed(lambda cid=cid: context.card(cid, policy=policy))[1] for cid in ids[:50]]
    return {
        "model": name, "method": explainer.method, "background": len(explainer.background),
        "inputs": len(explainer.columns), "init_seconds": round(init_s, 3),
        "one_customer_seconds": round(statistics.median(singles), 4),
        "customers": n_global, "customers_seconds": round(many_s, 2),
        "to_attributes_seconds": round(attr_s, 3), "global_importance_seconds": round(global_s, 3),
        "max_additivity_error": max(many.additivity_error.values()),
        "additivity_error": many.additivity_error,
        "card_context_seconds": round(context_s, 3), "card_ms": round(1000 * statistics.median(cards), 2),
    }


def run(out_dir: str | Path = "benchmarks/results", *, n_customers: int = 2000, n_global: int = 1000,
        epochs: int = 5, quick: bool = False, threads: int | None = 1) -> dict[str, Any]:
    """Train a small bundle per architecture (5 epochs) and time explanations; writes ``explain.json``.

    ``threads``: torch intra-op threads for the run (restored after). One thread by default: on a small,
    shared machine two threads make the small per-customer matrix products many times slower.
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(Path(out_dir), n_customers, n_global, epochs, quick)
    finally:
        torch.set_num_threads(previous)


def _run(out_dir: Path, n_customers: int, n_global: int, epochs: int, quick: bool) -> dict[str, Any]:
    archs = ("shared-bottom",) if quick else ("shared-bottom", "mmoe", "ple")
    if quick:
        n_customers, n_global = min(n_customers, 500), min(n_global, 200)
    portfolio = generate_portfolio(n_customers, seed=7)
    tables = portfolio.tables()
    features = build_features_from_frames(tables)
    results = []
    for arch in archs:
        result = fit(features, default_tasks(), TrainConfig(arch=arch, max_epochs=epochs, device="cpu", seed=0))
        results.append(_bench_model(arch, result, features, tables, n_global))
    demo = Path("models/demo")
    if (demo / "manifest.json").is_file():
        from profile_core.bundle import load_bundle

        results.append(_bench_model("models/demo", load_bundle(demo), features, tables, n_global))
    out = {
        "customers_in_portfolio": n_customers, "epochs": epochs, "results": results, "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "explain.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out
