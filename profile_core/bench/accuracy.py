"""Accuracy benchmark on public data: multi-task nets against single-task MLPs and LightGBM.

- ``taiwan``: SharedBottom, MMoE and PLE, each with fixed and learned (uncertainty) task weighting, against a
  single-task MLP per task and LightGBM per task (early stopping on validation). Every model of a seed sees the
  same 60/20/20 split (stratified on default; a new split per seed). Test-split AUC/KS (default), RMSE/R²
  (log credit limit), macro-F1/QWK (repayment risk class) as mean ± std over the seeds.
- ``census``: the MMoE paper's group 1 (income > 50K, never married): SharedBottom, MMoE, PLE, single-task MLP,
  LightGBM; test AUC mean ± std over model seeds on one fixed 60/20/20 split of the test file (the only file
  available here), next to the published figures (which used the 199,523-row training file).

Every model of a seed sees the same split. Per head the table names the winner (best mean) and, for every model,
a paired comparison with LightGBM over the seeds: wins / ties / losses (a tie: |Δ| < ``TIE``), the mean
difference, a paired t-test and a two-sided sign test.

``python -m profile_core bench accuracy --dataset taiwan`` → ``benchmarks/results/accuracy_<dataset>.json``,
``.md`` (table) and ``.html``/``.png`` (chart; PNG only when kaleido can render). A quick run, a subsample or
fewer than ``FULL_SEEDS`` seeds writes ``accuracy_<dataset>_quick.*`` instead (git-ignored): it never replaces
the committed full results. Results name the data file relative to the data-set folder, never a machine path.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profile_core.i18n import t

#: Test metrics reported per task (the first is the headline in the chart).
REPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "taiwan": {"default": ("auc", "ks"), "credit_limit": ("rmse", "r2"), "repay_risk": ("macro_f1", "qwk"),
               "limit_band": ("accuracy", "macro_f1")},
    "census": {"income_50k": ("auc",), "never_married": ("auc",)},
}
#: Published test AUCs on Census-Income group 1 (income, never married).
PUBLISHED_CENSUS: dict[str, dict[str, Any]] = {
    "Shared-Bottom (MMoE paper)": {"income_50k": 0.9361, "never_married": 0.9915,
                                   "source": "Ma et al., KDD 2018"},
    "MMoE (MMoE paper)": {"income_50k": 0.9410, "never_married": 0.9926, "source": "Ma et al., KDD 2018"},
    "MMoE (PLE paper)": {"income_50k": 0.9393, "never_married": 0.9928,
                         "source": "Tang et al., RecSys 2020"},
    "PLE (PLE paper)": {"income_50k": 0.9522, "never_married": 0.9945, "source": "Tang et al., RecSys 2020"},
}
#: The metric each head is judged on (winner, paired test); the other reported metrics are shown beside it.
HEADLINE: dict[str, dict[str, str]] = {
    "taiwan": {"default": "auc", "credit_limit": "r2", "repay_risk": "macro_f1", "limit_band": "accuracy"},
    "census": {"income_50k": "auc", "never_married": "auc"},
}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "logloss"})
TIE = 5e-4  # |Δ| below which one seed's paired comparison counts as a tie
FULL_SEEDS = 5  # fewer seeds (or --quick, or a subsample) → the *_quick result files
REFERENCE = "LightGBM"  # what every model is paired against
CENSUS_SPLIT_SEED = 2018  # census: one fixed split; the seeds vary model initialisation and batch order
SINGLE_TASK = "Single-task MLP"
LIGHTGBM = "LightGBM"
ARCH_LABEL = {"shared-bottom": "SharedBottom", "mmoe": "MMoE", "ple": "PLE"}


DEFAULT_MTL = "MTL default"  # TrainConfig() as the app trains it without tuning: hybrid heads (net + LightGBM)
NET_ONLY = "MTL net only"  # the same without the trees (train --hybrid none; what --stream and Ray train)
BEST_MTL = "MTL best"  # the best configuration found (validation split), see SETUPS


@dataclass(frozen=True)
class Setup:
    """How one data set is benchmarked: the multi-task models (display name → TrainConfig fields over
    ``base``), which of them the single-task MLP copies (one head per fit), and the quick-mode limits."""

    dataset: str
    models: dict[str, dict[str, Any]]
    base: dict[str, Any] = field(default_factory=lambda: {"num_threads": 1})
    single: str = DEFAULT_MTL
    quick_rows: int = 3000
    quick_epochs: int = 3

    def config(self, model: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**self.base, **self.models[model], **(overrides or {})}


#: "MTL best": chosen on the validation split of seed 0 (experiments in the issue-17 notes of benchmarks/README):
#: the default net (piecewise-linear numbers, per-head selection) averaged over three seeds; on census with
#: batch 1024 (the 60,000 training rows) and every code of the 40–50-level columns one-hot. Each head then
#: blends with its own LightGBM, weighted on the validation split (profile_core.hybrid).
SETUPS: dict[str, Setup] = {
    "taiwan": Setup("taiwan", {DEFAULT_MTL: {}, NET_ONLY: {"hybrid": "none"}, BEST_MTL: {"ensemble": 3}}),
    "census": Setup("census", {DEFAULT_MTL: {}, NET_ONLY: {"hybrid": "none"},
                               BEST_MTL: {"batch_size": 1024, "lr": 3e-3, "patience": 5, "max_categories": 64,
                                          "ensemble": 3}}),
}


def load(dataset: str, path: str | Path | None = None):
    from profile_core.datasets import load_dataset

    return load_dataset(dataset, path=path)


def bench_tasks(dataset: str, bundle) -> list:
    """The data set's tasks, plus Taiwan's credit-limit band (a band of a numeric target)."""
    if dataset == "taiwan":
        from profile_core.datasets.taiwan import LIMIT_BAND_TASK

        return [*bundle.tasks, LIMIT_BAND_TASK]
    return list(bundle.tasks)


def result_stem(dataset: str, *, quick: bool, rows: int | None, seeds: int, every_model: bool = True) -> str:
    """``accuracy_<dataset>`` for a full run (all rows, ≥ FULL_SEEDS seeds, every model, no trainer overrides),
    else ``accuracy_<dataset>_quick``."""
    full = not quick and not rows and seeds >= FULL_SEEDS and every_model
    return f"accuracy_{dataset}" if full else f"accuracy_{dataset}_quick"


def data_file(path: str | Path) -> str:
    """The data file as ``<data-set folder>/<file>`` (no machine path in committed results)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _subsample(frame: pd.DataFrame, rows: int, label: str | None, seed: int) -> pd.DataFrame:
    """``rows`` rows, stratified on ``label`` (keeps the class balance of a small quick run)."""
    if rows >= len(frame):
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if label is None:
        keep = rng.choice(len(frame), rows, replace=False)
    else:
        keep = np.concatenate([
            rng.choice(idx, max(1, round(rows * len(idx) / len(frame))), replace=False)
            for idx in frame.groupby(label, sort=True).indices.values()])
    return frame.iloc[np.sort(keep)].reset_index(drop=True)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _baseline_metrics(frame, tasks, config, split, numeric, categorical, log) -> list[tuple[str, dict, float]]:
    """Single-task MLP and LightGBM per task on the same split → [(model, {task: test metrics}, seconds)]."""
    from profile_core import baselines

    out = []
    for key, label in (("single-mlp", SINGLE_TASK), ("lightgbm", LIGHTGBM)):
        t0 = time.perf_counter()
        res = baselines.run_baselines(frame, tasks, config, split, numeric=numeric, categorical=categorical,
                                      models=(key,))
        out.append((label, res[key], time.perf_counter() - t0))
        log(f"    {label}: {out[-1][2]:.1f}s")
    return out


def _runs_for_seed(bundle, frame, tasks, setup: Setup, seed: int, overrides: dict[str, Any], split_seed: int,
                   log) -> list[dict[str, Any]]:
    from profile_core.train import TrainConfig, fit, split_indices

    split = split_indices(frame, tasks, seed=split_seed, val=0.2, test=0.2)
    rows: list[dict[str, Any]] = []
    reported = REPORTED[setup.dataset]

    def record(model: str, metrics: dict[str, dict[str, float]], seconds: float, **extra: Any) -> None:
        for task in tasks:
            m = metrics.get(task.name, {})
            rows.append({"model": model, "seed": seed, "task": task.name,
                         **{k: _finite(m.get(k)) for k in reported[task.name]},
                         "seconds": round(seconds, 3), **extra})

    for name in setup.models:
        cfg = TrainConfig(seed=seed, device="cpu", **setup.config(name, overrides))
        t0 = time.perf_counter()
        res = fit(frame, tasks, cfg, numeric=bundle.numeric, categorical=bundle.categorical, split=split)
        sec = time.perf_counter() - t0
        weights = res.history[-1].weights if res.history else {}
        record(name, res.metrics["test"], sec, epochs=len(res.history), best_epoch=res.best_epoch,
               final_weights={k: round(float(v), 4) for k, v in weights.items()})
        log(f"  seed {seed} {name}: {sec:.1f}s, {len(res.history)} epochs")
    cfg = TrainConfig(seed=seed, device="cpu", **setup.config(setup.single, overrides))
    for model, metrics, sec in _baseline_metrics(frame, tasks, cfg, split, bundle.numeric, bundle.categorical, log):
        record(model, metrics, sec)
    return rows


def summarise(runs: list[dict[str, Any]], dataset: str) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{model: {task: {metric: {mean, std, n}}}} over seeds (std: sample std, 0 for one seed)."""
    df = pd.DataFrame(runs)
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for model in pd.unique(df["model"]):
        for task, metrics in REPORTED[dataset].items():
            part = df[(df["model"] == model) & (df["task"] == task)]
            for metric in metrics:
                v = pd.to_numeric(part[metric], errors="coerce").dropna().to_numpy(float)
                out.setdefault(str(model), {}).setdefault(task, {})[metric] = {
                    "mean": float(v.mean()) if len(v) else math.nan,
                    "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
    return out


def paired(runs: list[dict[str, Any]], dataset: str, reference: str = REFERENCE
           ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """{model: {task: {metric: {wins, ties, losses, n, mean_diff, p_ttest, p_sign}}}} against ``reference``,
    paired by seed. ``mean_diff`` is model − reference (for RMSE-like metrics too); a win is a better value by at
    least ``TIE``. p-values: paired t-test and two-sided sign test (ties left out); None when undefined."""
    from scipy import stats

    df = pd.DataFrame(runs)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    ref = df[df["model"] == reference]
    if ref.empty:
        return out
    for model in pd.unique(df["model"]):
        if model == reference:
            continue
        for task, metrics in REPORTED[dataset].items():
            for metric in (m for m in metrics if m in df.columns):
                a = df[(df["model"] == model) & (df["task"] == task)].set_index("seed")[metric]
                b = ref[ref["task"] == task].set_index("seed")[metric]
                both = pd.concat([a, b], axis=1, keys=["a", "b"]).apply(pd.to_numeric, errors="coerce").dropna()
                d = (both["a"] - both["b"]).to_numpy(float)
                better = -d if metric in LOWER_IS_BETTER else d
                wins, losses = int((better >= TIE).sum()), int((better <= -TIE).sum())
                p_t = None
                if len(d) > 1 and float(np.std(d)) > 0:
                    p_t = _finite(stats.ttest_rel(both["a"], both["b"]).pvalue)
                p_sign = _finite(stats.binomtest(wins, wins + losses, 0.5).pvalue) if wins + losses else None
                out.setdefault(str(model), {}).setdefault(task, {})[metric] = {
                    "wins": wins, "ties": int(len(d) - wins - losses), "losses": losses, "n": int(len(d)),
                    "mean_diff": float(d.mean()) if len(d) else None, "p_ttest": p_t, "p_sign": p_sign}
    return out


def winners(summary: dict[str, Any], dataset: str) -> dict[str, dict[str, str]]:
    """{task: {metric: model with the best mean}}."""
    out: dict[str, dict[str, str]] = {}
    for task, metrics in REPORTED[dataset].items():
        for metric in metrics:
            vals = {m: s.get(task, {}).get(metric, {}).get("mean", math.nan) for m, s in summary.items()}
            vals = {m: v for m, v in vals.items() if v is not None and math.isfinite(v)}
            if vals:
                out.setdefault(task, {})[metric] = (min if metric in LOWER_IS_BETTER else max)(vals, key=vals.get)
    return out


def _fmt(stat: dict[str, float], digits: int = 4) -> str:
    if stat is None or not math.isfinite(stat.get("mean", math.nan)):
        return "—"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _metric_label(metric: str) -> str:
    return metric.upper() if metric in ("auc", "ks", "rmse", "qwk") else metric


def _p(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def paired_table(result: dict[str, Any]) -> list[str]:
    """Markdown lines: per head (headline metric), the winner and each model against LightGBM."""
    dataset = result["dataset"]
    rivals = [m for m in result["summary"] if m != REFERENCE]
    lines = [f"Per head (headline metric): winner by mean, and each model against {REFERENCE} paired by seed — "
             f"Δ of the means (model − {REFERENCE}), wins/ties/losses over seeds (tie: |Δ| < {TIE}), paired t-test "
             "p, sign-test p.", "",
             "| head | winner | " + " | ".join(f"{m} vs {REFERENCE}" for m in rivals) + " |",
             "|---|---|" + "---|" * len(rivals)]
    for task, metric in HEADLINE[dataset].items():
        winner = result["winners"].get(task, {}).get(metric, "—")
        cells = []
        for m in rivals:
            p = result["paired"].get(m, {}).get(task, {}).get(metric)
            if not p or p["mean_diff"] is None:
                cells.append("—")
                continue
            cells.append(f"{p['mean_diff']:+.4f}, {p['wins']}/{p['ties']}/{p['losses']}, "
                         f"p {_p(p['p_ttest'])} / {_p(p['p_sign'])}")
        lines.append(f"| {task} {_metric_label(metric)} | {winner} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    dataset = result["dataset"]
    tasks = REPORTED[dataset]
    heads = [f"{task} {_metric_label(metric)}" for task, ms in tasks.items() for metric in ms]
    lines = [f"# Accuracy — {result['title']}", "",
             f"{result['rows']:,} rows, {result['n_features']} features, seeds {result['seeds']}, "
             f"split {result['split']}; test-split metrics, mean ± std over seeds. "
             f"Runtime {result['runtime_seconds']:.0f} s wall ({result['cpu_seconds']:.0f} s CPU, 1 thread) on "
             f"{result['machine']['cpus']} shared CPU cores (load average {result['machine']['load_average_1m_at_end']})"
             + (" (quick mode: a pipeline check, not the figures)." if result["quick"] else "."), "",
             "| model | " + " | ".join(heads) + " | s / seed |",
             "|---|" + "---|" * (len(heads) + 1)]
    best = result["winners"]
    for model, per_task in result["summary"].items():
        cells = []
        for task, ms in tasks.items():
            for metric in ms:
                cell = _fmt(per_task.get(task, {}).get(metric))
                cells.append(f"**{cell}**" if best.get(task, {}).get(metric) == model else cell)
        cells.append(f"{result['seconds_per_fit'].get(model, math.nan):.1f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Bold: best mean per column (lowest RMSE, highest otherwise). \"s / seed\": one multi-task fit, "
                 "or one fit per task for the single-task baselines.")
    lines += ["", *paired_table(result)]
    configs = result.get("model_configs", {})
    if configs:
        lines += ["", "Configurations (TrainConfig fields over the trainer's defaults):", ""]
        lines += [f"- {m}: " + (", ".join(f"{k}={v}" for k, v in c.items()) or "defaults") for m, c in configs.items()]
    if dataset == "census":
        lines += ["", "Published test AUCs (group 1):", "", "| model | income_50k AUC | never_married AUC | source |",
                  "|---|---|---|---|"]
        for model, row in result["published"].items():
            lines.append(f"| {model} | {row['income_50k']:.4f} | {row['never_married']:.4f} | {row['source']} |")
    for note in result.get("notes", []):
        lines += ["", f"> {note}"]
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any]):
    """One subplot per task · metric, one bar per model with ± std error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pairs = [(task, metric) for task, ms in REPORTED[result["dataset"]].items() for metric in ms]
    cols = min(len(pairs), 3)
    nrows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{t_} · {m}" for t_, m in pairs],
                        horizontal_spacing=0.06, vertical_spacing=0.22 if nrows > 1 else 0.1)
    models = list(result["summary"])
    palette = ["#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#7f7f7f", "#ff7f0e"]
    colors = [palette[i % len(palette)] for i in range(len(models))]
    if len(models) < 8:  # census: one colour per model family, baselines grey and orange
        colors = ["#1f77b4", "#2ca02c", "#9467bd", "#7f7f7f", "#ff7f0e"][:len(models)]
    for i, (task, metric) in enumerate(pairs):
        r, c = divmod(i, cols)
        means = [result["summary"][m].get(task, {}).get(metric, {}).get("mean") for m in models]
        stds = [result["summary"][m].get(task, {}).get(metric, {}).get("std") for m in models]
        fig.add_trace(go.Bar(x=models, y=means, error_y=dict(type="data", array=stds, visible=True),
                             marker_color=colors, showlegend=False,
                             text=[f"{v:.4f}" if v is not None and math.isfinite(v) else "" for v in means],
                             textposition="outside", cliponaxis=False), row=r + 1, col=c + 1)
        finite = [v for v in means if v is not None and math.isfinite(v)]
        if finite and metric not in ("rmse",):
            lo, hi = min(finite), max(finite)
            pad = max((hi - lo) * 0.6, 0.01)
            fig.update_yaxes(range=[max(lo - pad, 0), min(hi + pad, 1.0) + pad * 0.3], row=r + 1, col=c + 1)
    fig.update_xaxes(tickangle=-35, tickfont=dict(size=9))
    fig.update_layout(title=f"{result['title']} — test metrics, mean ± std over {len(result['seeds'])} seed(s)",
                      height=420 * nrows, width=1250, template="plotly_white", margin=dict(t=90, b=40))
    return fig


def write_chart(result: dict[str, Any], out: Path, stem: str) -> dict[str, str]:
    """PNG through kaleido when it works (the HTML then loads plotly.js from its CDN); otherwise a
    self-contained HTML only. Returns what was written (and why PNG was not)."""
    fig = figure(result)
    written: dict[str, str] = {}
    try:
        fig.write_image(out / f"{stem}.png", width=1250, height=420 * math.ceil(
            sum(len(m) for m in REPORTED[result["dataset"]].values()) / 3), scale=1)
        written["png"] = f"{stem}.png"  # file names only: no machine path in the results
    except Exception as err:  # kaleido missing or no browser: the HTML carries the chart alone
        written["png_error"] = f"{type(err).__name__}: {str(err)[:200]}"
    fig.write_html(out / f"{stem}.html", include_plotlyjs="cdn" if "png" in written else True,
                   full_html=True)
    written["html"] = f"{stem}.html"
    return written


def run(dataset: str = "taiwan", seeds: int = FULL_SEEDS, quick: bool = False,
        out_dir: str | Path = "benchmarks/results", *, path: str | Path | None = None, rows: int | None = None,
        train: dict[str, Any] | None = None, models: list[str] | None = None, verbose: bool = True
        ) -> dict[str, Any]:
    """Benchmark ``dataset`` over ``seeds`` seeds; writes ``accuracy_<dataset>.json/.md/.html(.png)`` into
    ``out_dir`` (``accuracy_<dataset>_quick.*`` unless it is a full run, see :func:`result_stem`) and returns the
    JSON's dict. ``quick``: 1 seed, a 3,000-row subsample, 3 epochs (a pipeline check). ``rows`` subsamples the
    data; ``train`` overrides trainer settings of every net; ``models`` keeps only those multi-task models."""
    import torch

    if dataset not in SETUPS:
        raise ValueError(f"unknown benchmark data set {dataset!r}; choose one of {', '.join(SETUPS)}")
    setup = SETUPS[dataset]
    if models is not None:
        unknown = set(models) - set(setup.models)
        if unknown:
            raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {', '.join(setup.models)}")
        setup = replace(setup, models={m: c for m, c in setup.models.items() if m in models})
    started, cpu_started = time.perf_counter(), time.process_time()
    log = print if verbose else (lambda *_: None)
    bundle = load(dataset, path)
    tasks = bench_tasks(dataset, bundle)
    overrides: dict[str, Any] = {}
    frame = bundle.frame
    if quick:
        seeds = 1
        rows = min(rows or setup.quick_rows, setup.quick_rows)
        overrides.update(max_epochs=setup.quick_epochs, patience=setup.quick_epochs)
    if train:
        overrides.update(train)
    if rows:
        frame = _subsample(frame, rows, bundle.stratify, seed=0)
    seed_list = list(range(seeds))
    runs: list[dict[str, Any]] = []
    for seed in seed_list:
        split_seed = CENSUS_SPLIT_SEED if dataset == "census" else seed
        runs += _runs_for_seed(bundle, frame, tasks, setup, seed, overrides, split_seed, log)

    df = pd.DataFrame(runs)
    # seconds a model takes per seed for all tasks (one MTL fit; one fit per task for the baselines)
    seconds_per_fit = {m: float(df[df["model"] == m].groupby("seed")["seconds"].first().mean())
                       for m in pd.unique(df["model"])}
    notes: list[str] = []
    if bundle.is_sample:
        notes.append(t("datasets.sample_note", "en", rows=len(bundle.frame)))
    split_text = ("60/20/20, stratified on default, a new split per seed" if dataset == "taiwan" else
                  f"60/20/20 with fixed seed {CENSUS_SPLIT_SEED}, stratified on income; seeds vary model init")
    if dataset == "census":
        notes.append(t("bench.accuracy.census_note", "en"))
        notes.append("LightGBM has std 0: with the split fixed and no bagging it is deterministic, whatever the seed.")
    summary = summarise(runs, dataset)
    result: dict[str, Any] = {
        "dataset": dataset, "title": bundle.en, "data_file": data_file(bundle.path), "is_sample": bundle.is_sample,
        "rows": len(frame), "n_features": len(bundle.features), "quick": quick, "seeds": seed_list,
        "split": split_text, "tasks": {task: list(ms) for task, ms in REPORTED[dataset].items()},
        "headline": HEADLINE[dataset],
        "model_configs": {m: _plain(setup.config(m, overrides)) for m in setup.models},
        "single_task_config": setup.single,
        "models": list(pd.unique(df["model"])), "summary": summary, "winners": winners(summary, dataset),
        "paired": paired(runs, dataset), "tie": TIE, "seconds_per_fit": seconds_per_fit, "runs": runs,
        "published": PUBLISHED_CENSUS if dataset == "census" else {}, "notes": notes,
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    result["runtime_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
    result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(dataset, quick=quick, rows=rows, seeds=seeds,
                       every_model=models is None and not train)
    result["chart"] = write_chart(result, out, stem)
    result["runtime_seconds"] = round(time.perf_counter() - started, 1)
    (out / f"{stem}.md").write_text(markdown(result), encoding="utf-8")
    (out / f"{stem}.json").write_text(json.dumps(_clean(result), indent=2, ensure_ascii=False,
                                                 default=_json_default) + "\n", encoding="utf-8")
    log(f"accuracy {dataset}: {result['runtime_seconds']:.0f} s → {out / stem}.json")
    return result


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _clean(o: Any) -> Any:
    """NaN/inf → None (strict JSON)."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


#: Trainer settings compared by :func:`sweep` (validation metrics; the base is ``SETUPS[dataset].train``).
SWEEP_GRID: dict[str, dict[str, Any]] = {
    "trainer defaults (128,64) lr2e-3 b256 p8": dict(hidden=(128, 64), lr=2e-3, batch_size=256, max_epochs=60,
                                                     patience=8),
    "(128,64) lr3e-3 b1024 p5": dict(hidden=(128, 64), lr=3e-3, batch_size=1024, patience=5),
    "(128,64) lr2e-3 b512 p5": dict(hidden=(128, 64), lr=2e-3, batch_size=512, patience=5),
    "(64,32) lr3e-3 b512 p5": dict(hidden=(64, 32), lr=3e-3, batch_size=512, patience=5),
    "(256,128) lr1e-3 b512 p5": dict(hidden=(256, 128), lr=1e-3, batch_size=512, patience=5),
    "(128,64) lr3e-3 b1024 p5 dropout0.2": dict(hidden=(128, 64), lr=3e-3, batch_size=1024, patience=5,
                                                dropout=0.2),
}


def sweep(dataset: str = "taiwan", seeds: int = 2, out_dir: str | Path = "benchmarks/results", *,
          grid: dict[str, dict[str, Any]] | None = None, archs: tuple[str, ...] = ("shared-bottom", "mmoe", "ple"),
          weightings: tuple[str, ...] = ("fixed", "uncertainty"), verbose: bool = True) -> dict[str, Any]:
    """Which trainer settings work best with defaults: every grid entry × arch × weighting × seed, scored on
    the validation split (the test split stays untouched). Writes ``accuracy_<dataset>_sweep.json/.md``."""
    from profile_core.train import TrainConfig, fit, split_indices

    log = print if verbose else (lambda *_: None)
    grid = grid or SWEEP_GRID
    bundle = load(dataset)
    reported = REPORTED[dataset]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        split = split_indices(bundle.frame, bundle.tasks, seed=seed, val=0.2, test=0.2)
        for label, overrides in grid.items():
            kwargs = {**SETUPS[dataset].base, **overrides}
            for arch in archs:
                for weighting in weightings:
                    cfg = TrainConfig(arch=arch, weighting=weighting, seed=seed, device="cpu", **kwargs)
                    t0 = time.perf_counter()
                    res = fit(bundle.frame, bundle.tasks, cfg, numeric=bundle.numeric,
                              categorical=bundle.categorical, split=split)
                    row = {"setting": label, "arch": arch, "weighting": weighting, "seed": seed,
                           "seconds": round(time.perf_counter() - t0, 2), "epochs": len(res.history)}
                    for task, metrics in reported.items():
                        for metric in metrics:
                            row[f"{task}.{metric}"] = _finite(res.metrics["val"][task].get(metric))
                    rows.append(row)
                    log(f"  {label} {arch} {weighting} seed {seed}: {row['seconds']:.1f}s")
    df = pd.DataFrame(rows)
    cols = [f"{task}.{m}" for task, ms in reported.items() for m in ms]
    by = ["setting", "arch", "weighting"]
    table = df.groupby(by, sort=False)[[*cols, "seconds", "epochs"]].mean().reset_index()
    # one score: mean of the "higher is better" headline metrics of each task (AUC, R², QWK / AUC)
    heads = [f"{task}.{next(m for m in ms if m != 'rmse')}" for task, ms in reported.items()]
    table["score"] = table[heads].mean(axis=1)
    per_setting = table.groupby("setting", sort=False)[["score", "seconds"]].mean().sort_values("score",
                                                                                                 ascending=False)
    result = {"dataset": dataset, "seeds": list(range(seeds)), "split": "validation of 60/20/20 per seed",
              "score": f"mean of {', '.join(heads)}", "grid": {k: {kk: list(vv) if isinstance(vv, tuple) else vv
                                                                 for kk, vv in v.items()} for k, v in grid.items()},
              "by_setting": per_setting.reset_index().to_dict("records"),
              "by_model": table.to_dict("records"), "runs": rows,
              "runtime_seconds": round(time.perf_counter() - started, 1)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"accuracy_{dataset}_sweep.json").write_text(
        json.dumps(_clean(result), indent=2, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
    lines = [f"# Trainer settings sweep — {dataset}", "",
             f"Validation metrics, mean over seeds {result['seeds']}; score = {result['score']}. "
             f"Runtime {result['runtime_seconds']:.0f} s.", "", "| setting | score | s / fit |", "|---|---|---|"]
    lines += [f"| {k} | {r['score']:.4f} | {r['seconds']:.1f} |" for k, r in per_setting.iterrows()]
    lines += ["", "| setting | arch | weighting | " + " | ".join(cols) + " | score | s / fit | epochs |",
              "|---|---|---|" + "---|" * (len(cols) + 3)]
    for _, r in table.iterrows():
        lines.append(f"| {r['setting']} | {r['arch']} | {r['weighting']} | "
                     + " | ".join(f"{r[c]:.4f}" for c in cols) + f" | {r['score']:.4f} | {r['seconds']:.1f} | "
                     f"{r['epochs']:.1f} |")
    (out / f"accuracy_{dataset}_sweep.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result
