"""The accuracy benchmark's pipeline in quick mode (1 seed, 3,000 rows, 3 epochs): every model × task has
finite metrics and the result files are written (to the *_quick files, never over the full results). The
figures themselves come from the full run. The paired comparison is checked on hand-made runs."""

import json
import math
from pathlib import Path

import pytest

from profile_core.bench import accuracy


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return accuracy.run("taiwan", quick=True, out_dir=out, verbose=False), out


def test_quick_run_covers_every_model_and_task(quick):
    result, out = quick
    data = json.loads((out / "accuracy_taiwan_quick.json").read_text(encoding="utf-8"))
    assert set(data["models"]) == {accuracy.DEFAULT_MTL, accuracy.NET_ONLY, accuracy.BEST_MTL,
                                   "Single-task MLP", "LightGBM"}
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
    md = (out / "accuracy_taiwan_quick.md").read_text(encoding="utf-8")
    assert "| model |" in md and "LightGBM" in md and "±" in md
    assert "| limit_band accuracy |" in md and "vs LightGBM" in md
    assert (out / "accuracy_taiwan_quick.html").stat().st_size > 1000
    assert result["chart"]["html"] == "accuracy_taiwan_quick.html"


def test_quick_run_never_writes_the_full_result_files(quick):
    _, out = quick
    assert not list(out.glob("accuracy_taiwan.*"))
    assert accuracy.result_stem("taiwan", quick=False, rows=None, seeds=5) == "accuracy_taiwan"
    assert accuracy.result_stem("taiwan", quick=False, rows=None, seeds=2) == "accuracy_taiwan_quick"
    assert accuracy.result_stem("census", quick=False, rows=5000, seeds=5) == "accuracy_census_quick"
    # a run of some models only, or with the trainer's settings overridden, is not the committed table either
    assert accuracy.result_stem("taiwan", quick=False, rows=None, seeds=5, every_model=False) == "accuracy_taiwan_quick"


def test_results_carry_no_machine_path(quick):
    _, out = quick
    text = (out / "accuracy_taiwan_quick.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["data_file"] in {"taiwan_default/UCI_Credit_Card.csv", "samples/taiwan_sample.csv"}
    assert str(Path.home()) not in text and str(out) not in text and "/work/" not in text
    assert "path" not in data


def _runs(model_values, ref_values, metric="auc", task="income_50k"):
    rows = []
    for model, values in (("Net", model_values), ("LightGBM", ref_values)):
        for seed, v in enumerate(values):
            rows.append({"model": model, "seed": seed, "task": task, metric: v})
            rows.append({"model": model, "seed": seed, "task": "never_married", metric: 0.99})
    return rows


def test_paired_counts_wins_ties_losses_and_tests():
    runs = _runs([0.951, 0.952, 0.950, 0.9532, 0.949], [0.950, 0.950, 0.950, 0.950, 0.950])
    p = accuracy.paired(runs, "census")["Net"]["income_50k"]["auc"]
    assert (p["wins"], p["ties"], p["losses"], p["n"]) == (3, 1, 1, 5)
    assert p["mean_diff"] == pytest.approx(0.00104)
    assert p["p_sign"] == pytest.approx(0.625)  # 3 wins, 1 loss: two-sided binomial
    from scipy import stats

    assert p["p_ttest"] == pytest.approx(stats.ttest_rel([0.951, 0.952, 0.950, 0.9532, 0.949], [0.95] * 5).pvalue)
    same = accuracy.paired(runs, "census")["Net"]["never_married"]["auc"]
    assert (same["wins"], same["ties"], same["losses"]) == (0, 5, 0)
    assert same["p_ttest"] is None and same["p_sign"] is None


def test_paired_counts_a_lower_rmse_as_a_win():
    rows = []
    for model, values in (("Net", [0.60, 0.61]), ("LightGBM", [0.62, 0.60])):
        for seed, v in enumerate(values):
            rows.append({"model": model, "seed": seed, "task": "credit_limit", "rmse": v})
    p = accuracy.paired(rows, "taiwan")["Net"]["credit_limit"]["rmse"]
    assert (p["wins"], p["ties"], p["losses"]) == (1, 0, 1) and p["mean_diff"] == pytest.approx(-0.005)


def test_winners_pick_the_best_mean_per_metric():
    summary = {"A": {"credit_limit": {"rmse": {"mean": 0.61}, "r2": {"mean": 0.55}}},
               "B": {"credit_limit": {"rmse": {"mean": 0.60}, "r2": {"mean": 0.54}}}}
    w = accuracy.winners(summary, "taiwan")["credit_limit"]
    assert w == {"rmse": "B", "r2": "A"}


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
