"""The model page's glue: task choices, the training job (MTL, then optional baselines, in a worker
thread), turning epoch reports into plottable frames, saving and listing bundles."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from profile_core.features import LABEL_COLUMNS
from profile_core.tasks import TaskSpec, default_tasks, infer_task
from ui import keys, state
from ui.jobs import Job

ARCHS = ("shared-bottom", "mmoe", "ple")
WEIGHTINGS = ("fixed", "uncertainty", "gradnorm", "dwa")
KINDS = ("regression", "binary", "multiclass")
#: The metric shown per task kind in curves and the comparison chart, and whether higher is better.
PRIMARY_METRIC = {"regression": ("rmse", False), "binary": ("auc", True), "multiclass": ("accuracy", True)}
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


# ------------------------------------------------------------------ tasks


def label_options(frame: pd.DataFrame, declared: dict[str, str] | None = None) -> list[str]:
    """Columns a task can learn: the labels the load declared, then the canonical labels present (with
    values), then any other column."""
    if frame is None:
        return []
    present = [c for c in frame.columns if frame[c].notna().any()]
    declared_cols = [c for c in (declared or {}) if c in present]
    labels = [c for c in LABEL_COLUMNS if c in present and c not in declared_cols]
    first = declared_cols + labels
    others = [c for c in present if c not in first and c != "customer_id" and c not in LABEL_COLUMNS
              and not pd.api.types.is_datetime64_any_dtype(frame[c])]
    return first + others


def default_labels(frame: pd.DataFrame, declared: dict[str, str] | None = None) -> list[str]:
    """The declared labels when the load recorded some, else the default tasks' labels present."""
    options = label_options(frame, declared)
    chosen = [c for c in (declared or {}) if c in options]
    return chosen or [t.label for t in default_tasks() if t.label in options]


def default_kind(frame: pd.DataFrame, label: str, declared: dict[str, str] | None = None) -> str:
    if (declared or {}).get(label) in KINDS:
        return declared[label]
    for task in default_tasks():
        if task.label == label:
            return task.kind
    try:
        return infer_task(frame, label).kind
    except ValueError:
        return "regression"


def training_frame(frame: pd.DataFrame, chosen: list[str], declared: dict[str, str] | None = None,
                   meta: dict | None = None) -> pd.DataFrame:
    """The frame handed to the trainer: declared labels that are not trained on, and columns a mapping ties
    to a trained label by derivation (``pipeline.leaking_columns``), are dropped so they never become inputs
    (the trained labels themselves never are)."""
    from profile_core.pipeline import DataSource, label_lineage, leaking_columns

    declared = declared or {}
    source = DataSource({}, declared, lineage=label_lineage((meta or {}).get("mapping"), declared))
    drop = [c for c in leaking_columns(source, chosen) if c in frame.columns and c not in chosen]
    return frame.drop(columns=drop)


def build_tasks(frame: pd.DataFrame, choices: dict[str, str], roles: dict[str, str] | None = None,
                orders: dict[str, list[str]] | None = None) -> list[TaskSpec]:
    """TaskSpecs for ``{label column: kind}``: the default spec when it matches, else inferred; a role the
    load declared for a label is kept (else proposed from its name)."""
    from dataclasses import replace

    from profile_core.tasks import in_band_order, role_fits

    defaults = {t.label: t for t in default_tasks()}
    out = []
    for label, kind in choices.items():
        spec = defaults.get(label)
        spec = spec if spec is not None and spec.kind == kind else infer_task(frame, label, kind=kind)
        role = (roles or {}).get(label)
        spec = in_band_order(spec, (orders or {}).get(label, ()))
        out.append(replace(spec, role=role) if role and role_fits(role, spec.kind) else spec)
    return out


# ------------------------------------------------------------------ the job


@dataclass
class TrainingOutcome:
    result: Any  # train.TrainResult
    comparison: pd.DataFrame | None = None  # baselines.comparison_table (MTL + baselines)
    fingerprint: str = ""  # pipeline.data_fingerprint of the training frame
    baseline_error: str | None = None
    saved_to: list[str] = field(default_factory=list)
    dataset: str = ""  # the data set trained on, its version and content fingerprint (recorded in the bundle)
    version: int | None = None
    source_fingerprint: str = ""
    customer_ids: list[str] = field(default_factory=list)  # row order of the training frame
    reference: dict = field(default_factory=dict)  # monitor.reference_snapshot of the training rows


def make_target(frame: pd.DataFrame, tasks: list[TaskSpec], config, *, baselines: bool, fit_fn=None,
                baselines_fn=None, fingerprint: str | None = None, dataset: dict | None = None, tune: float = 0.0):
    """``target(job)`` for :class:`ui.jobs.Job`: fit the multi-task model (epoch reports → ``job.report``,
    ``job.cancel_event`` → stop after the epoch), then optionally the single-task baselines. ``tune`` > 0: first
    search the trainer's settings for that many seconds (``profile_core.tune``; the job's ``config`` becomes the
    chosen one). ``fingerprint``
    (the dataset's feature-table fingerprint, recorded in a saved bundle) defaults to the frame's own."""

    dataset = dataset or {}

    def target(job: Job) -> TrainingOutcome:
        from profile_core.pipeline import data_fingerprint, training_snapshot

        fit = fit_fn
        if fit is None:
            from profile_core.train import fit
        chosen = config
        if tune > 0:
            from profile_core.tune import tune as search

            job.set_phase("tune")
            chosen = search(frame, tasks, tune, base=config).config
            job.meta["config"] = chosen
        job.set_phase("mtl")
        result = fit(frame, tasks, chosen, callback=job.report, cancel=job.cancel_event)
        outcome = TrainingOutcome(result=result, fingerprint=fingerprint or data_fingerprint(frame),
                                  dataset=dataset.get("name", ""), version=dataset.get("version"),
                                  source_fingerprint=dataset.get("fingerprint", ""),
                                  customer_ids=frame["customer_id"].astype("str").tolist()
                                  if "customer_id" in frame.columns else [],
                                  reference=training_snapshot(result, frame))
        if baselines and not job.cancel_event.is_set():
            job.set_phase("baselines")
            run = baselines_fn
            from profile_core.baselines import comparison_table, report_split
            if run is None:
                from profile_core.baselines import run_baselines as run
            part = report_split(result.split)
            try:
                outcome.comparison = comparison_table({"MTL": result.metrics[part],
                                                       **run(frame, tasks, chosen, result.split)})
            except Exception as exc:  # noqa: BLE001 — the MTL model is still good; say what failed
                outcome.baseline_error = f"{type(exc).__name__}: {exc}"
        job.set_phase("done")
        return outcome

    return target


def start_job(frame: pd.DataFrame, tasks: list[TaskSpec], config, *, baselines: bool, fingerprint: str | None,
              tune: float = 0.0, **fns) -> Job:
    """Start training in a worker thread and keep the job in this session (a running job is kept)."""
    current = current_job()
    if current is not None and current.running:
        return current
    meta = {"tasks": tasks, "config": config, "baselines": baselines, "dataset": state.active_dataset(),
            "dataset_fingerprint": fingerprint, "tune": tune}
    dataset = {"name": state.active_dataset() or ""}
    try:
        from ui import cache

        with cache.workspace() as ws:
            dataset |= {"version": ws.version(dataset["name"]), "fingerprint": ws.fingerprint(dataset["name"])}
    except Exception:  # noqa: BLE001 — the bundle then records the name only
        pass
    job = Job(make_target(frame, tasks, config, baselines=baselines, fingerprint=fingerprint, dataset=dataset,
                          tune=tune, **fns), name="train", meta=meta).start()
    st.session_state[keys.JOB] = job
    return job


def current_job() -> Job | None:
    return st.session_state.get(keys.JOB)


def clear_job() -> None:
    job = current_job()
    if job is not None and job.running:
        job.cancel()
    st.session_state.pop(keys.JOB, None)


# ------------------------------------------------------------------ reports → frames


def history_long(reports: list, tasks: list[TaskSpec]) -> pd.DataFrame:
    """Epoch reports → one row per (epoch, task, split): ``loss``, ``metric`` (the task kind's primary
    metric, validation only) and ``weight`` — the frame ``charts.plot_training_curves`` reads."""
    kinds = {t.name: t.kind for t in tasks}
    rows = []
    for r in reports:
        for task in kinds:
            metric_name = PRIMARY_METRIC[kinds[task]][0]
            train_loss = r.train_losses.get(task)
            val_loss = r.val_losses.get(task)
            metric = (r.val_metrics.get(task) or {}).get(metric_name)
            weight = r.weights.get(task)
            rows.append({"epoch": r.epoch, "task": task, "split": "train", "loss": train_loss,
                         "metric": None, "metric_name": metric_name, "weight": weight})
            rows.append({"epoch": r.epoch, "task": task, "split": "val", "loss": val_loss,
                         "metric": metric, "metric_name": metric_name, "weight": weight})
    frame = pd.DataFrame(rows, columns=["epoch", "task", "split", "loss", "metric", "metric_name", "weight"])
    for c in ("loss", "metric", "weight"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    return frame


def comparison_long(table: pd.DataFrame, tasks: list[TaskSpec]) -> pd.DataFrame:
    """Wide ``comparison_table`` → (model, task, metric, value) with each task's primary metric."""
    kinds = {t.name: t.kind for t in tasks}
    rows = []
    if table is None or table.empty:
        return pd.DataFrame(columns=["model", "task", "metric", "value"])
    for rec in table.to_dict(orient="records"):
        kind = kinds.get(rec["task"])
        if kind is None:
            continue
        metric = PRIMARY_METRIC[kind][0]
        value = rec.get(metric)
        rows.append({"model": rec["model"], "task": rec["task"], "metric": metric,
                     "value": None if value is None or (isinstance(value, float) and math.isnan(value)) else value})
    return pd.DataFrame(rows, columns=["model", "task", "metric", "value"])


def compact_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """A wide model × task metric table → ``model``, ``task``, ``n`` and one text column listing the task's
    own metrics ("rmse 31.2 · mae 24.0 · r2 0.41"), so regression and classification rows read cleanly."""
    if table is None or table.empty:
        return pd.DataFrame(columns=["model", "task", "n", "metrics"])
    metric_cols = [c for c in table.columns if c not in ("model", "task", "n")]
    out = table[["model", "task"]].copy()
    if "n" in table:
        out["n"] = pd.to_numeric(table["n"], errors="coerce").astype("Int64")
    out["metrics"] = [
        " · ".join(f"{c} {float(row[c]):.4g}" for c in metric_cols
                   if row[c] is not None and not (isinstance(row[c], float) and math.isnan(row[c])))
        for _, row in table.iterrows()]
    return out


# ------------------------------------------------------------------ bundles


def valid_bundle_name(name: str) -> bool:
    return bool(_BUNDLE_NAME.fullmatch(name or "")) and name not in {".", ".."}


def save_result(outcome: TrainingOutcome, name: str) -> Path:
    """Save the trained model as ``models/<name>`` (replacing an earlier bundle of that name)."""
    from profile_core.bundle import save_bundle

    result = outcome.result
    ids = outcome.customer_ids
    path = save_bundle(result, state.models_dir() / name, name=name, data_fingerprint=outcome.fingerprint,
                       data={"source": outcome.dataset, "version": outcome.version,
                             "fingerprint": outcome.source_fingerprint,
                             "holdout_ids": [ids[i] for i in result.split.get("test", [])] if ids else [],
                             "reference": outcome.reference})
    outcome.saved_to.append(str(path))
    return path


def manifest_summary(manifest: dict, lang: str) -> dict[str, str]:
    """The manifest fields a person checks first, as display strings."""
    tasks = [TaskSpec.from_dict(d) for d in manifest.get("tasks", [])]
    config = manifest.get("config", {})
    return {
        "name": str(manifest.get("name", "")),
        "tasks": ", ".join(f"{t.display(lang)} ({t.kind})" for t in tasks),
        "arch": str(manifest.get("architecture", {}).get("name", config.get("arch", ""))),
        "weighting": str(config.get("weighting", "")),
        "created": str(manifest.get("created_utc", "")),
        "fingerprint": str(manifest.get("data_fingerprint", "") or "—"),
        "best_epoch": str(manifest.get("best_epoch", "")),
        "device": str(manifest.get("device", "")),
    }
