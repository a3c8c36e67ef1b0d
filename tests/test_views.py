"""The presentation layer: role-driven headline, portfolio frame and KPIs; one scorecard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_core import views
from profile_core.scorecard import add_scorecard, pd_grade, scorecard_points
from profile_core.tasks import TaskSpec, default_tasks


def test_scorecard_points_and_grades() -> None:
    p = np.array([0.005, 0.01, 0.02, 0.05, 0.1, 0.5, np.nan])
    assert pd_grade(p).tolist() == ["A", "B", "B", "C", "D", "E", None]
    assert pd_grade(0.03) == "C" and pd_grade(float("nan")) is None
    assert scorecard_points(1 / 51) == pytest.approx(600.0)
    assert scorecard_points(np.array([1e-9, 0.999])).tolist() == [850.0, 300.0]
    assert scorecard_points(0.02) - scorecard_points(0.04) == pytest.approx(40.0, abs=1.5)  # PDO 40


def test_add_scorecard_only_from_a_pd_task() -> None:
    cols = {"y_prob": np.array([0.02, 0.3])}
    generic = [TaskSpec("y", "y", "binary", role="generic")]
    assert set(add_scorecard(dict(cols), generic)) == {"y_prob"}  # a subscription is not a PD
    pd_task = [TaskSpec("bad", "bad", "binary", role="pd")]
    out = add_scorecard({"bad_prob": np.array([0.02, 0.3])}, pd_task)
    assert out["pd_grade"].tolist() == ["B", "E"] and out["points"][0] > out["points"][1]


def test_portfolio_frame_uses_roles() -> None:
    tasks = default_tasks()
    preds = pd.DataFrame({"customer_id": ["a", "b"], "credit_score_pred": [650.0, 520.0],
                          "default_prob": [0.02, 0.3], "risk_level_pred": ["B", "E"]})
    features = pd.DataFrame({"customer_id": ["a", "b"], "default_flag": [0, 1], "city": ["上海", "北京"]})
    out = views.portfolio_frame(preds, features, tasks)
    assert out["score"].tolist() == [650.0, 520.0] and out["grade"].tolist() == ["B", "E"]
    assert set(out["grade_source"]) == {"risk_level"} and out["city"].tolist() == ["上海", "北京"]
    assert out[views.OBSERVED].tolist() == [0.0, 1.0]
    only_default = views.portfolio_frame(preds.drop(columns=["credit_score_pred", "risk_level_pred"]), features,
                                         [t for t in tasks if t.kind == "binary"])
    assert only_default["grade"].tolist() == ["B", "E"] and set(only_default["grade_source"]) == {"pd_bands"}
    assert only_default["score"].iloc[0] > only_default["score"].iloc[1]


def test_generic_heads_are_never_a_pd_or_a_score() -> None:
    tasks = [TaskSpec("LIMIT_BAL", "LIMIT_BAL", "regression"), TaskSpec("y", "y", "binary")]
    assert [t.role for t in tasks] == ["generic", "generic"]
    preds = pd.DataFrame({"customer_id": ["a", "b"], "LIMIT_BAL_pred": [50_000.0, 120_000.0],
                          "y_prob": [0.1, 0.7]})
    frame = views.portfolio_frame(preds, pd.DataFrame({"customer_id": ["a", "b"], "y": [0, 1]}), tasks)
    assert frame["pd"].isna().all() and frame["score"].isna().all() and frame["grade"].isna().all()
    kpis = {i.key: i for i in views.portfolio_kpis(frame, tasks, "en")}
    assert set(kpis) == {"customers", "task:LIMIT_BAL", "task:y"}
    assert kpis["task:LIMIT_BAL"].value == "85,000" and kpis["task:y"].value == "40.00%"
    assert "LIMIT_BAL" in kpis["task:LIMIT_BAL"].label


def test_number_formatting_has_no_machine_notation() -> None:
    assert views.fmt_number(98050.0) == "98,050"
    assert views.fmt_number(None) == "—" and views.fmt_number(float("nan")) == "—"
    assert views.fmt_number(1234.5, "元") == "1,234 元" or views.fmt_number(1234.5, "元") == "1,235 元"
    assert views.fmt_share(0.0213) == "2.13%"


def test_metric_formatting() -> None:
    assert views.fmt_metric("n", 450.0) == "450" and views.fmt_metric("n", 4500) == "4,500"
    assert views.fmt_metric("rmse", 103140.8533) == "103,141" and views.fmt_metric("auc", 0.72591) == "0.7259"
    assert views.fmt_metric("auc", None) == "—" and views.fmt_metric("r2", float("nan")) == "—"
