"""Model monitoring on hand-checked examples and known distributions: AUC / Gini / KS / Brier, calibration bins,
confusion matrix and QWK, bad rate by grade, PSI (identical → 0, shifted → act), the model card, the figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from profile_core import monitor as m
from profile_core import monitor_charts as mc
from profile_core.tasks import TaskSpec

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_binary_metrics_by_hand():
    # bads {0.35, 0.8} vs goods {0.1, 0.4}: 3 of 4 pairs ordered → AUC 0.75
    assert m.auc(Y, P) == pytest.approx(0.75)
    assert m.gini(Y, P) == pytest.approx(0.5)
    # CDFs at 0.1: bad 0, good 1/2; at 0.35: 1/2, 1/2; at 0.4: 1/2, 1 → KS = 1/2
    assert m.ks(Y, P) == pytest.approx(0.5)
    # (0.01 + 0.16 + 0.4225 + 0.04) / 4
    assert m.brier(Y, P) == pytest.approx(0.158125)
    assert m.auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # ties count one half
    assert m.ks([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(1.0)
    assert m.auc([1, 1], [0.2, 0.3]) is None and m.ks([0, 0], [0.2, 0.3]) is None  # one class only
    assert m.auc([0, None, 1], [0.2, 0.9, np.nan]) is None  # missing pairs dropped: one class remains
    with pytest.raises(ValueError):
        m.auc([0, 2], [0.1, 0.2])


def test_auc_matches_sklearn_on_random_data():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500) * 0.5 + y * 0.3, 2)  # with ties
    assert m.auc(y, p) == pytest.approx(roc_auc_score(y, p))


def test_calibration_bins_by_hand():
    table = m.calibration_table([0, 1, 0, 1, 1], [0.05, 0.95, 0.15, 0.85, 0.12], bins=10)
    assert table["bin"].tolist() == [0, 1, 8, 9]
    row = table.set_index("bin").loc[1]
    assert row["n"] == 2 and row["p_mean"] == pytest.approx(0.135) and row["observed"] == pytest.approx(0.5)
    assert table["n"].sum() == 5
    q = m.calibration_table(np.r_[np.zeros(50), np.ones(50)], np.linspace(0, 1, 100), bins=4, strategy="quantile")
    assert q["n"].tolist() == [25, 25, 25, 25] and q["observed"].tolist() == [0, 0, 1, 1]


def test_calibrated_predictions_lie_on_the_diagonal():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    table = m.calibration_table(y, p, bins=10)
    assert np.abs(table["observed"] - table["p_mean"]).max() < 0.03
    assert m.brier(y, p) == pytest.approx(1 / 6, abs=0.01)  # E[p(1-p)] for p ~ U(0, 1)


def test_regression_metrics():
    assert m.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert m.mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert m.rmse([], []) is None


def test_confusion_and_qwk_by_hand():
    y_true = ["A", "A", "B", "C", "C"]
    y_pred = ["A", "B", "B", "C", "A"]
    matrix = m.confusion(y_true, y_pred, ["A", "B", "C"])
    assert matrix.to_numpy().tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m.accuracy(y_true, y_pred) == pytest.approx(0.6)
    from sklearn.metrics import cohen_kappa_score

    assert m.qwk(y_true, y_pred, ["A", "B", "C"]) == pytest.approx(
        cohen_kappa_score(y_true, y_pred, weights="quadratic"))
    grades = list("ABCDE")
    assert m.qwk(grades, grades, grades) == pytest.approx(1.0)
    assert m.qwk(grades, grades[::-1], grades) == pytest.approx(-1.0)
    assert m.confusion([1.0, 2], ["1", "2"]).to_numpy().trace() == 2  # 1.0 and "1" are one class


def test_psi_on_known_distributions():
    rng = np.random.default_rng(7)
    a = rng.normal(size=10000)
    assert m.psi(a, a) == pytest.approx(0.0, abs=1e-12)  # identical → 0
    assert m.psi(a, rng.normal(size=10000)) < 0.01  # same distribution, new sample → stable
    assert m.psi(a, a + 0.05) < m.PSI_WATCH
    shifted = m.psi(a, a + 1.0)  # one standard deviation: a large shift
    assert shifted > m.PSI_ACT and m.psi_status(shifted) == "act"
    # by hand: two categories, 50/50 → 80/20: (0.3·ln(1.6) + (−0.3)·ln(0.4)) = 0.4159
    ref = ["x"] * 50 + ["y"] * 50
    cur = ["x"] * 80 + ["y"] * 20
    assert m.psi(ref, cur) == pytest.approx(0.3 * np.log(1.6) - 0.3 * np.log(0.4))
    assert m.psi(["x"] * 10, ["x"] * 10) == pytest.approx(0.0)
    assert m.psi([1.0, None, 2.0, None], [1.0, 2.0, 1.0, 2.0]) > 0.25  # missing values are their own bin
    assert m.psi([], [1, 2]) is None


def test_psi_status_thresholds():
    assert [m.psi_status(v) for v in (0.0, 0.099, 0.1, 0.25, 0.2501, None)] == \
        ["stable", "stable", "watch", "watch", "act", None]


def test_psi_table():
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"age": rng.normal(40, 10, 2000), "city": rng.choice(["a", "b"], 2000),
                        "same": rng.random(2000)})
    cur = ref.assign(age=ref["age"] + 12, city="a")
    table = m.psi_table(ref, cur, numeric=["age", "same", "absent"], categorical=["city"])
    assert table["feature"].tolist()[-1] == "same" and set(table["feature"]) == {"age", "city", "same"}
    assert dict(zip(table["feature"], table["status"], strict=True)) == {"age": "act", "city": "act",
                                                                         "same": "stable"}


# ------------------------------------------------------------------ per task, model card


def _tasks():
    return [TaskSpec("credit_score", "credit_score", "regression"), TaskSpec("default", "default_flag", "binary"),
            TaskSpec("risk_level", "risk_level", "multiclass", classes=tuple("ABCDE"), ordered=True),
            TaskSpec("other", "no_such_label", "binary")]


def test_task_metrics():
    labels = pd.DataFrame({"credit_score": [600, 650, None, 700], "default_flag": [0, 0, 1, 1],
                           "risk_level": ["A", "B", "E", None]})
    preds = pd.DataFrame({"credit_score_pred": [610, 640, 500, 700], "default_prob": P,
                          "risk_level_pred": ["A", "C", "E", "A"], "other_prob": [0.1] * 4})
    out = m.task_metrics(preds, labels, _tasks())
    assert out["credit_score"]["n"] == 3 and out["credit_score"]["rmse"] == pytest.approx(np.sqrt(200 / 3))
    assert out["credit_score"]["r2"] == pytest.approx(1 - 200 / 5000)  # the training metrics, sklearn-based
    assert out["default"] == {"n": 4, "auc": pytest.approx(0.75), "gini": pytest.approx(0.5),
                              "ks": pytest.approx(0.5), "brier": pytest.approx(0.158125),
                              "logloss": pytest.approx(0.4722879538)}  # sklearn log_loss
    assert out["risk_level"]["n"] == 3 and out["risk_level"]["accuracy"] == pytest.approx(2 / 3)
    assert out["other"] == {"n": 0}


def _manifest() -> dict:
    return {"name": "demo<script>alert(1)</script>", "created_utc": "2026-01-01T00:00:00+00:00",
            "architecture": {"name": "ple"}, "config": {"weighting": "uncertainty"},
            "tasks": [t.to_dict() for t in _tasks()[:3]], "data_fingerprint": "0123456789abcdef",
            "features": {"names": ["a", "b"]}, "split_sizes": {"train": 70, "val": 15, "test": 15},
            "metrics": {"val": {"default": {"auc": 0.8}}, "test": {"default": {"auc": 0.78, "n": 15.0}}},
            "weights_sha256": "f" * 64, "versions": {"torch": "2.x"}}


def test_model_card_html():
    """One model card (report.model_card_page, the Jinja template the portfolio report uses too)."""
    from profile_core.report import model_card_page

    psi = pd.DataFrame({"feature": ["<b>age</b>"], "kind": ["numeric"], "psi": [0.3], "status": ["act"]})
    manifest = {**_manifest(), "excluded_inputs": {"gender": "protected", "PAY_0": "label"}}
    page = model_card_page(manifest, current={"default": {"n": 4, "auc": 0.75}}, stability=psi, dataset="demo",
                           scope="评估范围：留出样本")
    assert page.startswith("<!DOCTYPE html>") and "模型辅助，人工决策" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "&lt;b&gt;age" in page  # escaped
    for text in ("0.7800", "0.7500", "0.3000", "行动", "0123456789", "ple", "uncertainty", "局限", "受保护属性",
                 "PAY_0", "违约概率", "评估范围：留出样本"):
        assert text in page, text
    fragment = model_card_page(manifest, standalone=False)
    assert "<style>" not in fragment and "<html" not in fragment and "0.7800" in fragment
    english = model_card_page(manifest, lang="en")
    assert "Model-assisted, human-decided" in english and "Intended use" in english
    assert "protected attribute" in english and "probability of default" in english


# ------------------------------------------------------------------ figures


def _spec(fig) -> dict:
    return json.loads(fig.to_json())


def test_figures():
    table = m.calibration_table([0, 1, 0, 1], [0.05, 0.95, 0.15, 0.85])
    fig = mc.plot_calibration(table, title="cal")
    assert len(fig.data) == 2 and list(fig.data[1].y) == [0.0, 0.0, 1.0, 1.0]
    psi = pd.DataFrame({"feature": ["a", "b", "c"], "psi": [0.05, 0.2, 0.5], "status": ["stable", "watch", "act"]})
    fig = mc.plot_psi(psi)
    assert len(fig.data) == 1 and list(fig.data[0].y) == ["a", "b", "c"]  # worst on top (last in a bar chart)
    assert list(fig.data[0].marker.color) == [mc.STATUS_COLORS[s] for s in ("stable", "watch", "act")]
    assert len(_spec(fig)["layout"]["shapes"]) == 2  # the 0.1 and 0.25 lines
    matrix = m.confusion(["A", "A", "B"], ["A", "B", "B"], ["A", "B"])
    fig = mc.plot_confusion(matrix)
    assert len(fig.data) == 1 and fig.data[0].z[0][0] == pytest.approx(0.5)


@pytest.mark.parametrize("builder", [lambda: mc.plot_calibration(pd.DataFrame()),
                                     lambda: mc.plot_psi(pd.DataFrame({"feature": [], "psi": []})),
                                     lambda: mc.plot_confusion(pd.DataFrame())])
def test_figures_on_empty_input_say_so(builder):
    fig = builder()
    assert len(fig.data) == 0 and fig.layout.annotations


def test_snapshot_reference_reproduces_the_training_distribution():
    from profile_core.monitor import evaluation_rows, psi_table, reference_snapshot, snapshot_frame

    rng = np.random.default_rng(3)
    train = pd.DataFrame({"x": rng.lognormal(8, 1, 5000), "c": rng.choice(["a", "b", "c"], 5000, p=[.6, .3, .1])})
    train.loc[:499, "x"] = np.nan  # 10 % missing
    snap = reference_snapshot(train, ["x"], ["c"])
    assert len(snap["numeric"]["x"]["q"]) == 101 and snap["numeric"]["x"]["missing"] == pytest.approx(0.1)
    ref = snapshot_frame(snap)
    same = pd.DataFrame({"x": rng.lognormal(8, 1, 3000), "c": rng.choice(["a", "b", "c"], 3000, p=[.6, .3, .1])})
    same.loc[:299, "x"] = np.nan  # the same 10 % missing
    shifted = same.assign(x=same["x"] * 3, c="c")
    stable = psi_table(ref, same, numeric=["x"], categorical=["c"]).set_index("feature")["psi"]
    moved = psi_table(ref, shifted, numeric=["x"], categorical=["c"]).set_index("feature")["psi"]
    assert (stable < 0.1).all() and (moved > 0.25).all()
    # which rows are evaluated: the held-out ones on the training data, all rows elsewhere
    ids = pd.Series([f"C{i}" for i in range(10)])
    manifest = {"data": {"source": "demo", "holdout_ids": ["C1", "C2"]}}
    rows, scope = evaluation_rows(manifest, ids, dataset="demo")
    assert scope == "holdout" and rows.sum() == 2
    rows, scope = evaluation_rows(manifest, ids, dataset="taiwan")
    assert scope == "other_data" and rows.all()
    assert evaluation_rows({}, ids, dataset="demo")[1] == "all_rows"
