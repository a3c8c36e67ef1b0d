"""Figure builders in profile_core.charts: trace counts, values, colours; empty input gives a note."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from profile_core import charts
from profile_core.charts import GRADE_COLORS


def _note(fig: go.Figure) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


# ------------------------------------------------------------------------------------------------ empties

EMPTY_CALLS = {
    "histogram": lambda df: charts.plot_histogram(df, column="x"),
    "grade_counts": lambda df: charts.plot_grade_counts(df, grade="grade"),
    "default_rate": lambda df: charts.plot_default_rate_by_grade(df),
    "training": lambda df: charts.plot_training_curves(df),
    "comparison": lambda df: charts.plot_comparison(df),
    "monthly": lambda df: charts.plot_monthly_flows(df),
    "heatmap": lambda df: charts.plot_login_heatmap(df),
    "waterfall": lambda df: charts.plot_waterfall(df, base_value=0.1),
    "importance": lambda df: charts.plot_importance(df),
    "beeswarm": lambda df: charts.plot_beeswarm(df),
    "dependence": lambda df: charts.plot_dependence(df),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CALLS))
@pytest.mark.parametrize("df", [pd.DataFrame(), None], ids=["empty", "none"])
def test_empty_input_gives_figure_with_note(name, df):
    fig = EMPTY_CALLS[name](df)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    assert _note(fig)


def test_empty_note_is_translated_and_names_missing_columns():
    assert _note(charts.empty_figure(lang="en")) == "No data"
    assert _note(charts.empty_figure(lang="zh")) == "暂无数据"
    fig = charts.plot_histogram(pd.DataFrame({"y": [1, 2]}), column="x", lang="en")
    assert "x" in _note(fig) and "Missing" in _note(fig)


def test_gauge_none_is_empty():
    fig = charts.plot_score_gauge(None)
    assert len(fig.data) == 0 and _note(fig)
    assert len(charts.plot_score_gauge(float("nan")).data) == 0


# ------------------------------------------------------------------------------------------------ colours


def test_colours_are_stable():
    assert charts.grade_color("A") == GRADE_COLORS["A"] and charts.grade_color("e") == GRADE_COLORS["E"]
    assert charts.grade_color("Z") not in GRADE_COLORS.values()
    assert charts.task_color("credit_score") == charts.task_color("credit_score")
    assert charts.task_color("my_task") == charts.task_color("my_task")
    assert charts.task_color("default_flag") != charts.task_color("credit_score")


def test_score_bands_follow_the_design_scaling():
    bands = charts.DEFAULT_SCORE_BANDS
    assert [b[2] for b in bands] == ["E", "D", "C", "B", "A"]
    # PD 1 % → 50:1 odds is 600 points; 99:1 is 600 + 40·log2(99/50)
    assert bands[-1][0] == pytest.approx(600 + 40 * math.log2(99 / 50))
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:], strict=False))


# ------------------------------------------------------------------------------------------------ portfolio


def test_histogram_single_and_by_grade():
    df = pd.DataFrame({"score": [500, 600, 700, 650, np.nan], "grade": ["C", "B", "A", "A", "E"]})
    fig = charts.plot_histogram(df, column="score")
    assert len(fig.data) == 1 and list(fig.data[0].x) == [500, 600, 700, 650]
    fig = charts.plot_histogram(df, column="score", by="grade")
    assert [tr.name for tr in fig.data] == ["A", "B", "C", "E"]
    assert fig.data[0].marker.color == GRADE_COLORS["A"]
    assert list(fig.data[0].x) == [700, 650]


def test_grade_counts_total_and_by_group():
    df = pd.DataFrame({"grade": ["A", "A", "B", "E", "C"], "city": ["x", "y", "x", "x", "y"]})
    fig = charts.plot_grade_counts(df)
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == ["A", "B", "C", "E"] and list(fig.data[0].y) == [2, 1, 1, 1]
    assert list(fig.data[0].marker.color) == [GRADE_COLORS[g] for g in "ABCE"]
    fig = charts.plot_grade_counts(df, by="city")
    assert [tr.name for tr in fig.data] == ["A", "B", "C", "E"]
    assert list(fig.data[0].x) == ["x", "y"]  # x has 3 customers, y 2
    assert list(fig.data[0].y) == [1, 1] and list(fig.data[3].y) == [1, 0]
    fig = charts.plot_grade_counts(df, by="city", normalize=True)
    assert sum(tr.y[0] for tr in fig.data) == pytest.approx(1.0)


def test_default_rate_table_and_monotonic():
    df = pd.DataFrame({
        "grade": ["A"] * 4 + ["B"] * 4 + ["C"] * 2 + [None],
        "default_flag": [0, 0, 0, 1, 0, 1, 1, np.nan, 1, 1, 1],
        "pd": [0.01] * 4 + [0.05] * 4 + [0.3] * 2 + [0.5],
    })
    table = charts.default_rate_table(df, pd_column="pd")
    assert table["grade"].tolist() == ["A", "B", "C"]
    assert table["n"].tolist() == [4, 4, 2]
    assert table["n_labelled"].tolist() == [4, 3, 2]
    assert table["rate"].tolist() == pytest.approx([0.25, 2 / 3, 1.0])
    assert table["pd_mean"].tolist() == pytest.approx([0.01, 0.05, 0.3])
    assert charts.is_monotonic(table["rate"]) is True
    assert charts.is_monotonic([0.1, 0.05, 0.2]) is False
    assert charts.is_monotonic([0.3, 0.2], increasing=False) is True
    assert charts.is_monotonic([0.1, float("nan")]) is None
    fig = charts.plot_default_rate_by_grade(table)
    assert len(fig.data) == 2
    assert list(fig.data[0].y) == pytest.approx([0.25, 2 / 3, 1.0])
    assert list(fig.data[0].marker.color) == [GRADE_COLORS[g] for g in "ABC"]
    assert list(fig.data[1].y) == pytest.approx([0.01, 0.05, 0.3])


def test_default_rate_without_labels_is_a_note():
    table = charts.default_rate_table(pd.DataFrame({"grade": ["A", "B"]}))
    assert table["rate"].isna().all()
    fig = charts.plot_default_rate_by_grade(table, lang="en")
    assert len(fig.data) == 0 and "label" in _note(fig)


# ------------------------------------------------------------------------------------------------ training


def _history():
    rows = []
    for epoch in (1, 2, 3):
        for task in ("credit_score", "default_flag"):
            for split in ("train", "val"):
                rows.append({"epoch": epoch, "task": task, "split": split, "loss": 1.0 / epoch,
                             "metric": 0.5 + epoch / 10})
    return pd.DataFrame(rows)


def test_training_curves_one_trace_per_task_and_split():
    fig = charts.plot_training_curves(_history(), value="loss")
    assert len(fig.data) == 4
    first = fig.data[0]
    assert list(first.x) == [1, 2, 3] and list(first.y) == pytest.approx([1, 0.5, 1 / 3])
    assert first.line.color == charts.task_color("credit_score") and first.line.dash == "solid"
    assert fig.data[1].line.dash == "dash"
    fig = charts.plot_training_curves(_history(), value="metric", tasks=["default_flag"])
    assert len(fig.data) == 2 and fig.data[0].line.color == charts.task_color("default_flag")


def test_training_curves_facet_one_panel_per_task():
    history = _history().assign(metric_name=lambda d: d["task"].map({"credit_score": "rmse", "default_flag": "auc"}))
    fig = charts.plot_training_curves(history[history["split"] == "val"], value="metric", facet=True)
    assert len(fig.data) == 2
    assert [tr.xaxis for tr in fig.data] == ["x", "x2"]
    assert [a.text for a in fig.layout.annotations] == ["credit_score · rmse", "default_flag · auc"]


def test_legend_sits_below_the_plot():
    fig = charts.plot_training_curves(_history(), title="t")
    assert fig.layout.legend.y < 0 and fig.layout.margin.b >= 80


def test_comparison_one_panel_per_task_one_bar_per_model():
    df = pd.DataFrame({
        "model": ["MTL", "MTL", "LightGBM", "LightGBM", "single_mlp"],
        "task": ["credit_score", "default_flag", "credit_score", "default_flag", "credit_score"],
        "metric": ["rmse", "auc", "rmse", "auc", "rmse"],
        "value": [30.0, 0.8, 31.0, 0.79, 32.0],
    })
    fig = charts.plot_comparison(df)
    assert len(fig.data) == 3 * 2  # models × tasks
    assert [a.text for a in fig.layout.annotations] == ["credit_score · rmse", "default_flag · auc"]
    first = [tr for tr in fig.data if tr.xaxis == "x"]
    assert [(tr.name, tr.y[0]) for tr in first] == [("MTL", 30.0), ("LightGBM", 31.0), ("single_mlp", 32.0)]
    second = {tr.name: tr.y[0] for tr in fig.data if tr.xaxis == "x2"}
    assert second == {"MTL": 0.8, "LightGBM": 0.79, "single_mlp": None}
    assert [tr.showlegend for tr in fig.data] == [True, True, True, False, False, False]
    assert first[1].marker.color == charts.MODEL_COLORS["lightgbm"]


# ------------------------------------------------------------------------------------------------ card


def test_score_gauge_value_and_steps():
    fig = charts.plot_score_gauge(655.0, grade="A")
    assert len(fig.data) == 1 and fig.data[0].value == 655.0
    assert len(fig.data[0].gauge.steps) == 5
    assert fig.data[0].gauge.steps[-1].color == GRADE_COLORS["A"]


def test_monthly_flows_three_traces():
    df = pd.DataFrame({"month": ["2024-02", "2024-01"], "inflow": [100.0, 50.0], "outflow": [-30.0, 80.0]})
    fig = charts.plot_monthly_flows(df)
    assert len(fig.data) == 3
    assert list(fig.data[0].x) == ["2024-01", "2024-02"]
    assert list(fig.data[1].y) == [80.0, 30.0]  # outflow as a positive amount
    assert list(fig.data[2].y) == [-30.0, 70.0]


def test_login_heatmap_grid():
    df = pd.DataFrame({"weekday": [0, 0, 6, 9], "hour": [9, 9, 23, 1], "count": [2, 3, 1, 5]})
    fig = charts.plot_login_heatmap(df, lang="en")
    z = np.array(fig.data[0].z)
    assert len(fig.data) == 1 and z.shape == (7, 24)
    assert z[0, 9] == 5 and z[6, 23] == 1 and z.sum() == 6  # weekday 9 is dropped
    assert list(fig.data[0].y)[0] == "Mon"
    counted = charts.plot_login_heatmap(df.drop(columns="count"))
    assert np.array(counted.data[0].z)[0, 9] == 2


# ------------------------------------------------------------------------------------------------ explanations


def test_waterfall_top_n_and_others():
    df = pd.DataFrame({"feature": list("abcde"), "contribution": [0.5, -0.2, 0.05, 0.01, -0.3]})
    fig = charts.plot_waterfall(df, base_value=0.1, top_n=3, lang="en")
    tr = fig.data[0]
    assert len(fig.data) == 1
    assert list(tr.y) == ["Base value", "a", "e", "b", "2 others", "Model output"]
    assert list(tr.measure) == ["absolute", "relative", "relative", "relative", "relative", "total"]
    assert list(tr.x)[:5] == pytest.approx([0.1, 0.5, -0.3, -0.2, 0.06])
    assert tr.x[-1] == pytest.approx(0.1 + 0.06)


def test_importance_side_by_side():
    df = pd.DataFrame({
        "attribute": ["age", "income", "dpd", "age", "income", "dpd"],
        "task": ["credit_score"] * 3 + ["default_flag"] * 3,
        "importance": [10.0, 5.0, 1.0, 0.1, 0.2, 0.7],
    })
    fig = charts.plot_importance(df)
    assert len(fig.data) == 2
    assert [tr.name for tr in fig.data] == ["credit_score", "default_flag"]
    assert list(fig.data[0].y) == list(fig.data[1].y)
    assert fig.data[1].xaxis == "x2"
    y = list(fig.data[0].y)
    assert fig.data[0].x[y.index("age")] == 10.0 and fig.data[1].x[y.index("dpd")] == 0.7
    assert len(charts.plot_importance(df, top_n=2).data[0].y) == 2


def test_beeswarm_one_trace_ordered_by_mean_abs():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "feature": ["age"] * 20 + ["city"] * 20,
        "shap": np.r_[rng.normal(0, 0.1, 20), rng.normal(0, 1.0, 20)],
        "value": list(range(20)) + ["x", "y"] * 10,
    })
    fig = charts.plot_beeswarm(df)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 40
    assert list(fig.layout.yaxis.ticktext) == ["city", "age"]
    colours = np.array(fig.data[0].marker.color)
    assert colours.min() >= 0 and colours.max() <= 1
    # deterministic jitter
    assert list(charts.plot_beeswarm(df).data[0].y) == list(fig.data[0].y)


def test_dependence_scatter_with_colour():
    df = pd.DataFrame({"value": [1, 2, 3], "shap": [0.1, 0.0, -0.2], "age": [20, 30, 40]})
    fig = charts.plot_dependence(df, color="age", feature_name="income")
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [0.1, 0.0, -0.2]
    assert list(fig.data[0].marker.color) == [20, 30, 40]
    assert fig.layout.xaxis.title.text == "income"


def test_charts_do_not_import_streamlit():
    code = "import sys, profile_core.charts; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
