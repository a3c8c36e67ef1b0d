"""Does sharing a representation with the risk heads help the marketing heads?

On synthetic demo portfolios (``synth.generate_portfolio``: 20,000 customers, and the demo's 2,000), for each seed:
one split (stratified on the first marketing head), then the same net trained (a) on all five heads — credit score, default, risk level,
wealth-management purchase, churn — and (b) on each marketing head alone, with the same configuration, seed, split
and inputs. Reported: test AUC per marketing head and model, mean ± std over seeds, and paired wins / ties / losses
(a tie: |ΔAUC| < ``TIE``).

``python -m profile_core bench sharing`` → ``benchmarks/results/sharing.json`` and ``sharing.md`` (5 seeds; ``--sizes``
picks the portfolio sizes). ``--quick`` (2,000 customers, 1 seed, 3 epochs), fewer seeds or no 20,000-customer run
write ``sharing_quick.*`` (git-ignored): never the committed result.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from profile_core.features import build_features_from_frames
from profile_core.synth import generate_portfolio
from profile_core.tasks import default_tasks, marketing_tasks
from profile_core.train import TrainConfig, fit, split_indices

FULL_SEEDS = 5
FULL_CUSTOMERS = 20_000
DEFAULT_SIZES = (FULL_CUSTOMERS, 2_000)  # the benchmark's size and the demo's
TIE = 0.002  # |ΔAUC| below this is a tie
DATA_SEED = 2026
#: the demo bundle's configuration (models/demo): PLE, uncertainty weighting, selection on the total loss
CONFIG = {"arch": "ple", "weighting": "uncertainty", "selection": "total", "device": "cpu"}


def _auc(result, task: str) -> float:
    return float(result.metrics["test"][task]["auc"])


def compare(n_customers: int, seeds: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One portfolio of ``n_customers``; per seed one split and the three fits (5-head MTL, each marketing head
    alone); the per-seed AUCs and their summary per head."""
    portfolio = generate_portfolio(n_customers, seed=DATA_SEED)
    features = build_features_from_frames(portfolio.tables())
    rates = {t.label: float(features[t.label].mean()) for t in default_tasks() if t.kind == "binary"}
    marketing = marketing_tasks()
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
        print(json.dumps({"customers": n_customers, **row}), flush=True)
    summary = {}
    for task in marketing:
        mtl = np.array([r[task.name]["mtl"] for r in runs])
        single = np.array([r[task.name]["single"] for r in runs])
        diff = mtl - single
        sd = (lambda x: float(x.std(ddof=1)) if len(x) > 1 else 0.0)  # noqa: E731
        summary[task.name] = {
            "label": task.label, "role": task.role, "base_rate": rates[task.label],
            "mtl_mean": float(mtl.mean()), "mtl_std": sd(mtl), "single_mean": float(single.mean()),
            "single_std": sd(single), "diff_mean": float(diff.mean()), "diff_std": sd(diff),
            "wins": int((diff >= TIE).sum()), "ties": int((np.abs(diff) < TIE).sum()), "losses": int((diff <= -TIE).sum()),
        }
    return {"customers": n_customers, "test_rows": int(len(split["test"])), "base_rates": rates, "runs": runs,
            "summary": summary, "verdict": verdict(summary)}


def run(seeds: int = FULL_SEEDS, quick: bool = False, sizes: str | Sequence[int] | None = None,
        out_dir: str | Path = "benchmarks/results", max_epochs: int | None = None) -> dict[str, Any]:
    """Train and compare at each portfolio size (default 20,000 and the demo's 2,000 customers); writes
    ``<out_dir>/sharing.json`` + ``.md`` for a full run (≥ FULL_SEEDS seeds, 20,000 customers among the sizes),
    else ``sharing_quick.*``, and returns the JSON's dict."""
    if isinstance(sizes, str):
        sizes = [int(x) for x in sizes.split(",") if x.strip()]
    sizes = list(sizes or DEFAULT_SIZES)
    if quick:
        seeds, sizes, max_epochs = 1, [min(min(sizes), 2000)], 3
    full = not quick and seeds >= FULL_SEEDS and FULL_CUSTOMERS in sizes
    t0 = time.perf_counter()
    settings = {**CONFIG, **({"max_epochs": max_epochs, "patience": max_epochs} if max_epochs else {})}
    results = [compare(n, seeds, settings) for n in sizes]
    result = {
        "benchmark": "sharing", "quick": not full, "data_seed": DATA_SEED, "seeds": list(range(seeds)),
        "config": settings, "tie": TIE, "sizes": results, "seconds": round(time.perf_counter() - t0, 1),
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
        f"Synthetic demo portfolios (data seed {result['data_seed']}), seeds {', '.join(map(str, result['seeds']))}; "
        "per seed one split (70/15/15, stratified on the purchase label) used by every model, the same net "
        f"({cfg['arch']}, {cfg['weighting']} weighting, selection {cfg['selection']}) and the same inputs; MTL "
        "trains credit score, default, risk level, purchase and churn together, single-task one marketing head. "
        f"Test AUC; a tie is |ΔAUC| < {result['tie']}."
        + (" **Quick run: a pipeline check, not the figures.**" if result["quick"] else ""),
    ]
    for size in result["sizes"]:
        lines += ["", f"## {size['customers']:,} customers ({size['test_rows']:,} test)", "",
                  "| head | base rate | MTL (5 heads) | single-task | Δ (MTL − single) | win / tie / loss |",
                  "|---|---|---|---|---|---|"]
        for task, s in size["summary"].items():
            lines.append(f"| {task} (`{s['label']}`) | {s['base_rate']:.1%} | {s['mtl_mean']:.4f} ± {s['mtl_std']:.4f} | "
                         f"{s['single_mean']:.4f} ± {s['single_std']:.4f} | {s['diff_mean']:+.4f} ± "
                         f"{s['diff_std']:.4f} | {s['wins']} / {s['ties']} / {s['losses']} |")
        lines += ["", "| seed | head | MTL | single | Δ |", "|---|---|---|---|---|"]
        for r in size["runs"]:
            for task in size["summary"]:
                lines.append(f"| {r['seed']} | {task} | {r[task]['mtl']:.4f} | {r[task]['single']:.4f} | "
                             f"{r[task]['mtl'] - r[task]['single']:+.4f} |")
        lines += ["", f"Verdict: {size['verdict']}."]
    lines += ["", f"Total time {result['seconds']:,.0f} s on CPU (1 thread per run).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
