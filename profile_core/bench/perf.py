"""Performance benchmark: one JSON and one table from the sub-benchmarks plus batch scoring.

- ingest (``profile_core.bench.ingest.run``): files → validated tables;
- training (``profile_core.bench.train.run``): samples/s, one multi-task fit vs three single-task fits;
- explanations (``profile_core.bench.explain.run``): SHAP latency per customer and for 1,000 customers;
- batch scoring (here): a saved bundle's ``predict`` on ``score_rows`` rows → rows/s.

A sub-benchmark that is missing or fails is recorded with its error string; the others still run.
``python -m profile_core bench perf`` → ``benchmarks/results/perf.json`` and ``perf.md``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import platform
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SUB_BENCHMARKS = ("ingest", "train", "explain")
#: heavier benchmarks run on their own (``python -m profile_core bench scoring`` …): perf only collects the
#: JSON they last wrote into the same folder
COLLECTED = ("scoring", "api_load")


def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``fn`` with the keyword arguments it accepts (sub-benchmarks differ in their options)."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(**kwargs)


def _guarded(name: str, fn: Callable[[], Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        value = fn()
        out = value if isinstance(value, dict) else {"value": value}
        return {"ok": True, "seconds": round(time.perf_counter() - t0, 2), "result": out}
    except Exception as err:  # recorded, never fatal: one broken sub-benchmark must not hide the rest
        return {"ok": False, "seconds": round(time.perf_counter() - t0, 2),
                "error": f"{type(err).__name__}: {err}",
                "trace": traceback.format_exc(limit=3)[-1500:]}


def sub_benchmark(name: str, out_dir: Path, quick: bool) -> dict[str, Any]:
    def go() -> Any:
        module = importlib.import_module(f"profile_core.bench.{name}")
        return _call(module.run, out_dir=out_dir, quick=quick)
    return _guarded(name, go)


def scoring(rows: int = 200_000, train_rows: int = 5_000, chunk: int = 50_000, *, repeat: int = 3) -> dict[str, Any]:
    """Train a small 3-head model, save and reload it as a bundle, then time ``predict`` on ``rows`` rows
    (best of ``repeat``)."""
    import numpy as np
    import pandas as pd

    from profile_core.bench.train import synthetic_frame
    from profile_core.bundle import load_bundle, save_bundle
    from profile_core.tasks import risk_tasks
    from profile_core.train import TrainConfig, fit

    base = synthetic_frame(train_rows, 40, seed=1, n_categorical=2)
    numeric = [c for c in base.columns if c.startswith("f")]
    categorical = [c for c in base.columns if c in ("c0", "c1")]
    config = TrainConfig(device="cpu", max_epochs=2, patience=3, batch_size=512, weighting="fixed")
    result = fit(base, risk_tasks(), config, numeric=numeric, categorical=categorical)
    big = synthetic_frame(rows, 40, seed=2, n_categorical=2)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = save_bundle(result, Path(tmp) / "bundle")
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = load_bundle(path)
        load_s = time.perf_counter() - t0
        times = []
        preds = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            parts = [loaded.predict(big.iloc[i:i + chunk]) for i in range(0, rows, chunk)]
            preds = pd.concat(parts, ignore_index=True)
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {"rows": rows, "chunk_size": chunk, "seconds": round(best, 3), "rows_per_second": round(rows / best),
            "bundle_save_seconds": round(save_s, 3), "bundle_load_seconds": round(load_s, 3),
            "output_columns": list(preds.columns) if preds is not None else [],
            "finite": bool(preds is not None and np.isfinite(preds.select_dtypes("number").to_numpy()).all())}


def collected(path: Path) -> dict[str, Any]:
    """A result another benchmark wrote earlier (not rerun here)."""
    if not path.is_file():
        return {"ok": False, "seconds": 0.0, "collected": True,
                "error": f"{path.name} not found: run python -m profile_core bench {path.stem} first"}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {"ok": False, "seconds": 0.0, "collected": True, "error": f"{type(err).__name__}: {err}"}
    return {"ok": True, "seconds": 0.0, "collected": True, "result": data,
            "written": time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))}


def _scalars(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten a result dict to (dotted key, scalar) pairs for the table."""
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _scalars(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list | tuple):
        if d and all(isinstance(x, dict) for x in d):  # e.g. one result per model
            for i, x in enumerate(d):
                out += _scalars(x, f"{prefix}[{x.get('model', i)}]")
        elif len(d) <= 6 and all(not isinstance(x, dict | list) for x in d):
            out.append((prefix, ", ".join(str(x) for x in d)))
    else:
        out.append((prefix, d))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v).replace("|", "/").replace("\n", " ")


MAX_ROWS = 60  # per section of perf.md


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Performance", "", f"Machine: {result['machine']['cpus']} CPU cores, torch "
             f"{result['machine']['torch']}, Python {result['machine']['python']}, load average "
             f"{result['machine']['load_average_1m_at_end']} (the machine is shared: timings vary). Total "
             f"{result['runtime_seconds']:.0f} s" + (" (quick mode)." if result["quick"] else "."), "",
             "## Headline", "", "| measure | value | target |", "|---|---|---|"]
    for row in result["headline"]:
        lines.append(f"| {row['measure']} | {_fmt(row['value'])} | {row.get('target', '')} |")
    for name, sub in result["benchmarks"].items():
        when = f"collected, written {sub['written']}" if sub.get("collected") and sub["ok"] else \
            f"{sub['seconds']:.1f} s"
        lines += ["", f"## {name} ({when})", ""]
        if not sub["ok"]:
            lines.append(f"Not run: `{sub['error'][:300]}`")
            continue
        lines += ["| key | value |", "|---|---|"]
        pairs = [(k, v) for k, v in _scalars(sub["result"]) if "machine" not in k and "additivity_error." not in k]
        for k, v in pairs[:MAX_ROWS]:
            lines.append(f"| {k} | {_fmt(v)} |")
        if len(pairs) > MAX_ROWS:
            lines.append(f"| … | {len(pairs) - MAX_ROWS} more in perf.json |")
    return "\n".join(lines) + "\n"


def _get(d: dict[str, Any], *keys: str) -> Any:
    """First present key (sub-benchmarks may name things slightly differently)."""
    for k in keys:
        cur: Any = d
        for part in k.split("."):
            if not isinstance(cur, dict) or part not in cur:
                cur = None
                break
            cur = cur[part]
        if cur is not None:
            return cur
    return None


def headline(benchmarks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def res(name: str) -> dict[str, Any]:
        sub = benchmarks.get(name, {})
        return sub.get("result", {}) if sub.get("ok") else {}

    ingest, train, explain, score = res("ingest"), res("train"), res("explain"), res("predict")
    stream = res("scoring")
    explained = explain.get("results") or [{}]
    first = explained[0] if isinstance(explained, list) and explained else {}
    for measure, value, target in [
        ("ingest + features rows/s", _get(ingest, "rows_per_s", "rows_per_second"), ""),
        ("ingest + features seconds", _get(ingest, "seconds"), _get(ingest, "target_features_s")),
        ("training samples/s", _get(train, "samples_per_second"), _get(train, "targets.samples_per_second")),
        ("MTL time / 3 single-task", _get(train, "mtl_over_three_single"),
         _get(train, "targets.mtl_over_three_single")),
        (f"SHAP seconds, one customer ({first.get('model', '?')})", _get(first, "one_customer_seconds"),
         _get(explain, "targets.one_customer_seconds")),
        (f"SHAP seconds, {first.get('customers', 1000)} customers", _get(first, "customers_seconds"),
         _get(explain, "targets.customers_1000_seconds")),
        (f"bundle.predict rows/s ({_get(score, 'rows') or '?'} rows in memory)", _get(score, "rows_per_second"), ""),
        ("score_file rows/s (Parquet stream, collected)", _get(stream, "runs.parquet_stream.rows_per_s"), ""),
    ]:
        rows.append({"measure": measure, "value": value if value is not None else "—",
                     "target": target if target is not None else ""})
    return rows


def run(out_dir: str | Path = "benchmarks/results", quick: bool = False, *, score_rows: int = 200_000,
        include: tuple[str, ...] = (*SUB_BENCHMARKS, "scoring")) -> dict[str, Any]:
    """Run the sub-benchmarks and batch scoring; writes ``perf.json`` and ``perf.md`` into ``out_dir``."""
    import torch

    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sub_out = out if not quick else out / "quick"
    sub_out.mkdir(parents=True, exist_ok=True)
    benchmarks: dict[str, dict[str, Any]] = {}
    for name in SUB_BENCHMARKS:
        if name in include:
            benchmarks[name] = sub_benchmark(name, sub_out, quick)
    if "scoring" in include:
        rows = min(score_rows, 20_000) if quick else score_rows
        benchmarks["predict"] = _guarded("predict", lambda: scoring(rows))
    for name in COLLECTED:
        benchmarks[name] = collected(out / f"{name}.json")
    result = {
        "quick": quick, "benchmarks": benchmarks, "headline": headline(benchmarks),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "runtime_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "perf.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n",
                                   encoding="utf-8")
    (out / "perf.md").write_text(markdown(result), encoding="utf-8")
    return result
