"""The accuracy benchmark's pipeline in quick mode (1 seed, 3,000 rows, 3 epochs): every model × task has
finite metrics and the result files are written. The figures themselves come from the full run."""

import json
import math

import pytest

from profile_core.bench import accuracy


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return accuracy.run("taiwan", quick=True, out_dir=out, verbose=False), out


def test_quick_run_covers_every_model_and_task(quick):
    result, out = quick
    data = json.loads((out / "accuracy_taiwan.json").read_text(encoding="utf-8"))
    models = {f"{a} ({w})" for a in ("SharedBottom", "MMoE", "PLE") for w in ("fixed", "uncertainty")}
    assert set(data["models"]) == models | {"Single-task MLP", "LightGBM"}
    for model in data["models"]:
        for task, metrics in accuracy.REPORTED["taiwan"].items():
            for metric in metrics:
                stat = data["summary"][model][task][metric]
                assert stat["n"] == 1 and math.isfinite(stat["mean"]), (model, task, metric)
    assert data["quick"] and data["rows"] <= 3000 and data["seeds"] == [0]
    auc = data["summary"]["LightGBM"]["default"]["auc"]["mean"]
    assert 0.5 < auc <= 1.0


def test_quick_run_writes_table_and_chart(quick):
    result, out = quick
    md = (out / "accuracy_taiwan.md").read_text(encoding="utf-8")
    assert "| model |" in md and "LightGBM" in md and "±" in md
    assert (out / "accuracy_taiwan.html").stat().st_size > 1000
    assert "html" in result["chart"]


def test_perf_records_a_missing_sub_benchmark(tmp_path, monkeypatch):
    from profile_core.bench import perf

    monkeypatch.setattr(perf, "SUB_BENCHMARKS", ("no_such_benchmark",))
    result = perf.run(out_dir=tmp_path, include=("no_such_benchmark",))
    sub = result["benchmarks"]["no_such_benchmark"]
    assert not sub["ok"] and "No module named" in sub["error"]
    assert not result["benchmarks"]["scoring"]["ok"]  # nothing to collect in an empty folder
    data = json.loads((tmp_path / "perf.json").read_text(encoding="utf-8"))
    assert data["benchmarks"]["no_such_benchmark"]["error"] == sub["error"]
    assert "Not run" in (tmp_path / "perf.md").read_text(encoding="utf-8")
