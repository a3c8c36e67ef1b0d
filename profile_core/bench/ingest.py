"""Benchmark: events → customer feature table (``features.build_features_from_frames``) at scale.

Builds random but schema-conformant frames (default 1M transactions, 1M behaviour events, 20k customers with
12 monthly credit records each), times the generation and the feature step separately, and writes
``<out_dir>/ingest.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import sklearn

from profile_core.features import build_features_from_frames
from profile_core.synth import CHANNELS, CITIES, DEVICES, EVENT_TYPES, PRODUCTS, SPEND

END = pd.Timestamp("2026-10-31")


def _pick(rng: np.random.Generator, pool: list[str], n: int) -> pd.Series:
    return pd.Series(np.asarray(pool, dtype=object)[rng.integers(0, len(pool), n)], dtype="str")


def _times(rng: np.random.Generator, n: int, days: int = 365) -> np.ndarray:
    seconds = rng.integers(0, days * 86_400, n)
    return (np.datetime64(END + pd.Timedelta(days=1)) - seconds.astype("timedelta64[s]")).astype("datetime64[us]")


def make_frames(n_transactions: int = 1_000_000, n_events: int = 1_000_000, n_customers: int = 20_000,
                seed: int = 0) -> dict[str, pd.DataFrame]:
    """Random canonical tables of the requested sizes (vectorised; seconds for millions of rows)."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill((np.arange(n_customers) + 1).astype(str), 6)).astype(object)

    def cid(n: int) -> pd.Series:
        return pd.Series(ids[rng.integers(0, n_customers, n)], dtype="str")

    customers = pd.DataFrame({
        "customer_id": pd.Series(ids, dtype="str"), "name": _pick(rng, ["张伟", "王芳", "李娜", "刘洋"], n_customers),
        "gender": _pick(rng, ["男", "女"], n_customers), "age": rng.integers(22, 71, n_customers),
        "occupation": _pick(rng, ["教师", "医生", "工程师", "销售", "个体户"], n_customers),
        "city": _pick(rng, list(CITIES), n_customers), "income": np.round(rng.lognormal(11.8, 0.6, n_customers), -2),
        "open_date": _times(rng, n_customers, 3650).astype("datetime64[D]").astype("datetime64[us]"),
        "rm_id": _pick(rng, [f"RM{i:03d}" for i in range(1, 21)], n_customers),
    })
    transactions = pd.DataFrame({
        "customer_id": cid(n_transactions), "txn_time": _times(rng, n_transactions),
        "amount": np.round(rng.lognormal(5, 1.2, n_transactions), 2),
        "direction": pd.Series(np.where(rng.random(n_transactions) < 0.15, "in", "out"), dtype="str"),
        "channel": _pick(rng, CHANNELS, n_transactions),
        "category": _pick(rng, [*SPEND, "工资", "转账", "取现", "还款"], n_transactions),
        "location": _pick(rng, list(CITIES), n_transactions),
    })
    behaviors = pd.DataFrame({
        "customer_id": cid(n_events), "event_time": _times(rng, n_events),
        "event_type": _pick(rng, EVENT_TYPES, n_events), "product": _pick(rng, PRODUCTS, n_events),
        "device": _pick(rng, DEVICES, n_events),
    })
    months = pd.date_range(end=END, periods=12, freq="ME").to_numpy().astype("datetime64[us]")
    n_cr = n_customers * len(months)
    limit = np.repeat(np.round(rng.lognormal(10.5, 0.6, n_customers), -3), len(months))
    credit = pd.DataFrame({
        "customer_id": pd.Series(np.repeat(ids, len(months)), dtype="str"), "as_of": np.tile(months, n_customers),
        "credit_score": np.rint(rng.normal(650, 70, n_cr)), "default_flag": (rng.random(n_cr) < 0.07).astype(int),
        "risk_level": _pick(rng, list("ABCDE"), n_cr),
        "dpd": np.where(rng.random(n_cr) < 0.05, rng.integers(1, 120, n_cr), 0),
        "credit_limit": limit, "balance": np.round(limit * rng.random(n_cr), 2),
        "loan_count": rng.poisson(1, n_cr), "inquiries": rng.poisson(0.3, n_cr),
    })
    return {"customers": customers, "transactions": transactions, "behaviors": behaviors, "credit_records": credit}


def run(n_transactions: int = 1_000_000, n_events: int = 1_000_000, seed: int = 0,
        out_dir: str | Path = "benchmarks/results", n_customers: int = 20_000, repeats: int = 3,
        quick: bool = False) -> dict:
    """Time generation and the feature step (best of ``repeats``); write and return the results.
    ``quick`` runs a tenth of the sizes (smoke runs of the whole benchmark suite)."""
    if quick:
        n_transactions, n_events, n_customers = n_transactions // 10, n_events // 10, max(100, n_customers // 10)
    t0 = time.perf_counter()
    frames = make_frames(n_transactions, n_events, n_customers, seed)
    generate_s = time.perf_counter() - t0
    runs = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        table = build_features_from_frames(frames)
        runs.append(time.perf_counter() - t0)
    rows = sum(len(f) for f in frames.values())
    result = {
        "benchmark": "ingest",
        "customers": n_customers,
        "rows": {name: len(f) for name, f in frames.items()},
        "rows_total": rows,
        "generate_s": round(generate_s, 3),
        "features_s": round(min(runs), 3),
        "seconds": round(min(runs), 3),  # the headline: events → feature table
        "features_runs_s": [round(r, 3) for r in runs],
        "rows_per_s": round(rows / min(runs)),
        "feature_table": [len(table), table.shape[1]],
        "target_features_s": 5.0,
        "quick": quick,
        "machine": {
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "duckdb": duckdb.__version__, "scikit_learn": sklearn.__version__,
        },
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, ensure_ascii=False))
