"""Does sharing a representation with the risk heads help the marketing heads?

On a synthetic demo portfolio (``synth.generate_portfolio``, 20,000 customers), for each seed: one split (stratified
on the first marketing head), then the same net trained (a) on all five heads — credit score, default, risk level,
wealth-management purchase, churn — and (b) on each marketing head alone, with the same configuration, seed, split
and inputs. Reported: test AUC per marketing head and model, mean ± std over seeds, and paired wins / ties / losses
(a tie: |ΔAUC| < ``TIE``).

``python -m profile_core bench sharing`` → ``benchmarks/results/sharing.json`` and ``sharing.md``. ``--quick`` (2,000
customers, 1 seed, 3 epochs) or fewer seeds write ``sharing_quick.*`` (git-ignored): never the committed result.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from profile_core.features import build_features_from_frames
from profile_core.synth import generate_portfolio
from profile_core.tasks import default_tasks, marketing_tasks
from profile_core.train import TrainConfig, fit, split_indices

FULL_SEEDS = 3
FULL_CUSTOMERS = 20_000
TIE = 0.002  # |ΔAUC| below this is a tie
DATA_SEED = 2026
#: the demo bundle's configuration (models/demo): PLE, uncertainty weighting, selection on the total loss
CONFIG = {"arch": "ple", "weighting": "uncertainty", "selection": "total", "device": "cpu"}


def _auc(result, task: str) -> float:
    return float(result.metrics["test"][task]["auc"])


def run(seeds: int = FULL_SEEDS, quick: bool = False, n_customers: int = FULL_CUSTOMERS,
        out_dir: str | Path = "benchmarks/results", max_epochs: int | None = None) -> dict[str, Any]:
    """Train and compare; writes ``<out_dir>/sharing.json`` + ``.md`` for a full run (else ``sharing_quick.*``)
    and returns the JSON's dict."""
    if quick:
        seeds, n_customers, max_epochs = 1, min(n_customers, 2000), 3
    full = not quick and seeds >= FULL_SEEDS and n_customers >= FULL_CUSTOMERS
    t0 = time.perf_counter()
    portfolio = generate_portfolio(n_customers, seed=DATA_SEED)
    features = build_features_from_frames(portfolio.tables())
    rates = {t.label: float(features[t.label].mean()) for t in default_tasks() if t.kind == "binary"}
    marketing = marketing_tasks()
    settings = {**CONFIG, **({"max_epochs": max_epochs, "patience": max_epochs} if max_epochs else {})}
    runs = []
    for seed in range(seeds):
        config = TrainConfig(**settings, seed=seed)
        split = split_indices(features, marketing, seed=seed)  # one split for every model of this seed
        s = time.perf_counter()
        mtl = fit(features, default_tasks(), config, split=split)
        row: dict[str, Any] = {"seed": seed, "mtl_seconds": round(time.perf_counter() - s, 1),
                               "mtl_epochs": len(mtl.history),
                               "risk": {t: {k: float(v) for k, v in mtl.metrics["test"][t].items() if k != "n"}
                                        for t in ("credit_score", "default", "risk_level")}}
        for task in marketing:
            s = time.perf_counter()
            single = fit(features, [task], config, split=split)
            row[task.name] = {"mtl": _auc(mtl, task.name), "single": _auc(single, task.name),
                              "single_seconds": round(time.perf_counter() - s, 1),
                              "single_epochs": len(single.history)}
        runs.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    for task in marketing:
        mtl = np.array([r[task.name]["mtl"] for r in runs])
        single = np.array([r[task.name]["single"] for r in runs])
        diff = mtl - single
        summary[task.name] = {
            "label": task.label, "role": task.role, "base_rate": rates[task.label],
            "mtl_mean": float(mtl.mean()), "mtl_std": float(mtl.std(ddof=1)) if len(mtl) > 1 else 0.0,
            "single_mean": float(single.mean()), "single_std": float(single.std(ddof=1)) if len(single) > 1 else 0.0,
            "diff_mean": float(diff.mean()), "diff_std": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
            "wins": int((diff >= TIE).sum()), "ties": int((np.abs(diff) < TIE).sum()), "losses": int((diff <= -TIE).sum()),
        }
    result = {
        "benchmark": "sharing", "quick": not full, "customers": n_customers, "data_seed": DATA_SEED,
        "seeds": list(range(seeds)), "config": settings, "tie": TIE,
        "test_rows": int(len(split["test"])), "base_rates": rates, "runs": runs, "summary": summary,
        "verdict": verdict(summary), "seconds": round(time.perf_counter() - t0, 1),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor()
                    or platform.machine(), "threads": 1},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = "sharing" if full else "sharing_quick"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    return result


def verdict(summary: dict[str, dict[str, Any]]) -> str:
    """One sentence per head: helps (every seed a win), hurts (every seed a loss), or no clear difference."""
    parts = []
    for task, s in summary.items():
        n = s["wins"] + s["ties"] + s["losses"]
        if s["wins"] == n:
            word = "sharing helps"
        elif s["losses"] == n:
            word = "sharing hurts"
        else:
            word = "no clear difference"
        parts.append(f"{task}: {word} (ΔAUC {s['diff_mean']:+.4f} ± {s['diff_std']:.4f}, "
                     f"{s['wins']}/{s['ties']}/{s['losses']} win/tie/loss)")
    return "; ".join(parts)


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        "# Marketing heads: shared with the risk heads (5-head MTL) vs single-task",
        "",
        f"{result['customers']:,} synthetic demo customers (data seed {result['data_seed']}), seeds "
        f"{', '.join(map(str, result['seeds']))}; per seed one split (70/15/15, {result['test_rows']:,} test "
        f"customers), the same net ({cfg['arch']}, {cfg['weighting']} weighting, selection {cfg['selection']}), "
        "same inputs. Test AUC; a tie is |ΔAUC| < "
        f"{result['tie']}." + (" **Quick run: a pipeline check, not the figures.**" if result["quick"] else ""),
        "",
        "| head | base rate | MTL (5 heads) | single-task | Δ (MTL − single) | win / tie / loss |",
        "|---|---|---|---|---|---|",
    ]
    for task, s in result["summary"].items():
        lines.append(f"| {task} (`{s['label']}`) | {s['base_rate']:.1%} | {s['mtl_mean']:.4f} ± {s['mtl_std']:.4f} | "
                     f"{s['single_mean']:.4f} ± {s['single_std']:.4f} | {s['diff_mean']:+.4f} ± {s['diff_std']:.4f} | "
                     f"{s['wins']} / {s['ties']} / {s['losses']} |")
    lines += ["", "Per seed:", "", "| seed | head | MTL | single | Δ |", "|---|---|---|---|---|"]
    for r in result["runs"]:
        for task in result["summary"]:
            lines.append(f"| {r['seed']} | {task} | {r[task]['mtl']:.4f} | {r[task]['single']:.4f} | "
                         f"{r[task]['mtl'] - r[task]['single']:+.4f} |")
    lines += ["", f"Verdict: {result['verdict']}.", "",
              f"Total time {result['seconds']:,.0f} s on CPU (1 thread per run).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
