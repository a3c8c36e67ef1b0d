"""The app's Streamlit-free helpers: the job runner (with a fake trainer), report → frame adapters, the
portfolio scoring adapter, and that every message key the app uses is in the catalogue."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from profile_core import i18n, views
from profile_core.tasks import risk_tasks
from ui import training
from ui.jobs import Job

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ job runner


@dataclass
class FakeReport:
    epoch: int
    train_loss: float = 1.0
    val_loss: float = 1.0
    train_losses: dict = field(default_factory=dict)
    val_losses: dict = field(default_factory=dict)
    val_metrics: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    samples_per_second: float = 100.0


def _fake_trainer(epochs: int, pause: float = 0.01, gate: threading.Event | None = None):
    def target(job: Job):
        job.set_phase("mtl")
        for epoch in range(1, epochs + 1):
            if gate is not None:
                gate.wait(5)
            time.sleep(pause)
            job.report(FakeReport(epoch))
            if job.cancel_event.is_set():
                return {"epochs": epoch, "cancelled": True}
        return {"epochs": epochs, "cancelled": False}

    return target


def test_job_runs_in_background_and_collects_reports():
    gate = threading.Event()
    job = Job(_fake_trainer(5, gate=gate), name="fake").start()
    assert job.running and job.status == "running"
    gate.set()
    assert job.join(5)
    assert job.status == "done" and job.finished
    assert [r.epoch for r in job.reports()] == [1, 2, 3, 4, 5]
    assert job.result == {"epochs": 5, "cancelled": False}
    assert job.elapsed > 0


def test_job_cancel_stops_after_current_step():
    job = Job(_fake_trainer(1000, pause=0.005)).start()
    while not job.reports():
        time.sleep(0.005)
    job.cancel()
    assert job.join(5)
    assert job.status == "cancelled"
    assert job.result["cancelled"] and len(job.reports()) < 1000


def test_job_failure_is_kept_not_raised():
    def boom(job):
        job.report(FakeReport(1))
        raise ValueError("bad data")

    job = Job(boom).start()
    assert job.join(5)
    assert job.status == "failed" and isinstance(job.error, ValueError)
    assert "bad data" in job.error_trace and len(job.reports()) == 1


def test_reports_are_a_copy():
    job = Job(_fake_trainer(2)).start()
    job.join(5)
    got = job.reports()
    got.clear()
    assert len(job.reports()) == 2


def test_make_target_runs_fit_then_baselines_with_fakes():
    tasks = risk_tasks()
    frame = pd.DataFrame({"x": range(20)})
    calls = []

    @dataclass
    class FakeResult:
        metrics: dict
        split: dict
        history: list
        preprocessor: object = field(default_factory=lambda: SimpleNamespace(numeric=["x"], categorical=[]))

    def fake_fit(frame_, tasks_, config, callback, cancel):
        for e in (1, 2):
            callback(FakeReport(e))
        calls.append(("fit", cancel is not None))
        return FakeResult({"val": {}, "test": {t.name: {"n": 3.0, "rmse": 1.0, "auc": 0.7, "accuracy": 0.5}
                                               for t in tasks_}}, {"train": np.arange(3, 20), "test": np.arange(3)}, [])

    def fake_baselines(frame_, tasks_, config, split):
        calls.append(("baselines", len(split["test"])))
        return {"lightgbm": {t.name: {"n": 3.0, "rmse": 2.0, "auc": 0.6, "accuracy": 0.4} for t in tasks_}}

    job = Job(training.make_target(frame, tasks, config=None, baselines=True, fit_fn=fake_fit,
                                   baselines_fn=fake_baselines)).start()
    assert job.join(5) and job.status == "done", job.error_trace
    assert calls == [("fit", True), ("baselines", 3)]
    outcome = job.result
    assert outcome.comparison["model"].tolist() == ["MTL"] * 3 + ["lightgbm"] * 3
    assert len(outcome.fingerprint) == 16
    long = training.comparison_long(outcome.comparison, tasks)
    assert long.set_index(["model", "task"]).loc[("lightgbm", "default"), "value"] == 0.6
    assert long.set_index(["model", "task"]).loc[("MTL", "credit_score"), "metric"] == "rmse"


# ------------------------------------------------------------------ adapters


def test_history_long_one_row_per_epoch_task_split():
    tasks = risk_tasks()
    reports = [FakeReport(e, train_losses={t.name: 1 / e for t in tasks}, val_losses={t.name: 2 / e for t in tasks},
                          val_metrics={"credit_score": {"rmse": 50.0 - e}, "default": {"auc": 0.6 + e / 100},
                                       "risk_level": {"accuracy": 0.3}},
                          weights={t.name: 1.0 for t in tasks}) for e in (1, 2)]
    long = training.history_long(reports, tasks)
    assert len(long) == 2 * 3 * 2
    val = long[(long["split"] == "val") & (long["task"] == "default")]
    assert val["metric"].tolist() == pytest.approx([0.61, 0.62]) and set(val["metric_name"]) == {"auc"}
    train = long[(long["split"] == "train") & (long["task"] == "credit_score")]
    assert train["loss"].tolist() == pytest.approx([1.0, 0.5]) and train["metric"].isna().all()


def test_metric_tables_list_each_tasks_own_metrics():
    from profile_core.views import metrics_table

    metrics = {"test": {"credit_score": {"n": 45.0, "rmse": 30.51234, "mae": 20.0, "auc": None},
                        "default": {"n": 45.0, "auc": 0.75, "ks": 0.4}}}
    table = metrics_table(metrics, risk_tasks()[:2], "zh")
    assert table.columns.tolist() == ["任务", "角色", "指标", "test"]
    assert table["指标"].tolist() == ["n", "rmse", "mae", "auc", "n", "auc", "ks"]
    assert table["test"].tolist() == [45, 30.51, 20.0, None, 45, 0.75, 0.4]  # n an integer, never NaN
    assert set(table["角色"]) == {"信用评分", "违约概率"}
    assert metrics_table({}, risk_tasks(), "zh").empty


def test_label_options_and_default_tasks():
    frame = pd.DataFrame({"customer_id": ["a", "b"], "age": [30, 40], "credit_score": [600.0, 700.0],
                          "default_flag": [0, 1], "risk_level": [None, None],
                          "open_date": pd.to_datetime(["2020-01-01", "2021-01-01"])})
    options = training.label_options(frame)
    assert options[:2] == ["credit_score", "default_flag"] and "age" in options
    assert "customer_id" not in options and "risk_level" not in options and "open_date" not in options
    assert training.default_labels(frame) == ["credit_score", "default_flag"]
    tasks = training.build_tasks(frame, {"credit_score": "regression", "age": "regression"})
    assert [t.name for t in tasks] == ["credit_score", "age"]
    assert training.valid_bundle_name("my-model_1") and not training.valid_bundle_name("../x")


# ------------------------------------------------------------------ messages


def _used_keys() -> set[str]:
    pattern = re.compile(r"""(?:\btr|\bt|page_header|labeller)\(\s*["']([a-z_]+(?:\.[a-z_0-9-]+)+)["']\s*[,)]""")
    files = [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "app_pages").glob("*.py")),
             ROOT / "profile_core" / "charts.py"]
    found = set()
    for path in files:
        found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_message_key_used_by_the_app_exists():
    used = _used_keys()
    assert len(used) > 100
    missing = sorted(k for k in used if not i18n.has(k))
    assert not missing, missing


@pytest.mark.parametrize("prefix, values", [
    ("app.roles.", ("rm", "analyst", "auditor", "admin")),
    ("model.archs.", training.ARCHS), ("model.weightings.", training.WEIGHTINGS), ("model.kinds.", training.KINDS),
    ("data.table.", ("customers", "transactions", "behaviors", "credit_records")),
    ("portfolio.groups.", views.GROUP_COLUMNS), ("charts.weekday.", tuple("0123456")),
    ("model.metrics_", ("test", "val")), ("model.phase.", ("mtl", "baselines", "done")),
    ("portfolio.grade_source.", ("risk_level", "pd_bands", "none")), ("data.kind.", ("tables", "flat")),
    ("data.severity.", ("error", "warning")), ("charts.split.", ("train", "val")),
    ("nav.", ("data", "model", "customers", "explanations", "portfolio")),
])
def test_dynamic_message_keys_exist(prefix, values):
    missing = [v for v in values if not i18n.has(prefix + v)]
    assert not missing, missing
