"""Task specs, label encoding and per-task metrics."""

import math

import numpy as np
import pandas as pd
import pytest

from profile_core.schema import RISK_LEVELS
from profile_core.tasks import (
    EngineError,
    TaskSpec,
    default_tasks,
    encode_labels,
    infer_task,
    label_stats,
    marketing_tasks,
    propose_product,
    propose_role,
    risk_tasks,
    task_metrics,
    with_label_stats,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "credit_score": [600.0, 700.0, np.nan, 650.0],
        "default_flag": [0, 1, np.nan, 0],
        "risk_level": ["A", "E", None, "C"],
        "segment": ["x", "y", "y", "x"],
    })


def test_default_tasks_are_three_risk_and_two_marketing_heads():
    tasks = default_tasks()
    assert [t.name for t in tasks] == ["credit_score", "default", "risk_level", "wm_purchase", "churn"]
    assert [t.role for t in tasks] == ["score", "pd", "grade", "propensity", "churn"]
    assert tasks[:3] == risk_tasks() and tasks[3:] == marketing_tasks()
    wm, churn = marketing_tasks()
    assert (wm.label, wm.kind, wm.loss, wm.product) == ("wm_purchase_3m", "binary", "bce", "wealth_management")
    assert (churn.label, churn.kind, churn.product) == ("churn_3m", "binary", "")
    reg, binary, grade = risk_tasks()
    assert (reg.name, reg.kind, reg.loss, reg.out_dim) == ("credit_score", "regression", "mse", 1)
    assert (binary.name, binary.label, binary.kind, binary.loss) == ("default", "default_flag", "binary", "bce")
    assert (grade.kind, grade.classes, grade.n_classes, grade.ordered, grade.loss) == (
        "multiclass", RISK_LEVELS, 5, True, "ce")
    assert grade.display("zh") == "风险等级" and grade.display("en") == "Risk level"


def test_spec_validation_and_round_trip():
    with pytest.raises(EngineError, match="does not fit a binary task"):
        TaskSpec("d", "default_flag", "binary", loss="mse")
    with pytest.raises(EngineError) as err:
        TaskSpec("a.b", "x", "regression")
    assert "句点" in err.value.message("zh")
    spec = TaskSpec("g", "grade", "multiclass", classes=("lo", "hi"), weight=2.0, mean=1.0)
    assert spec.n_classes == 2 and TaskSpec.from_dict(spec.to_dict()) == spec


def test_infer_task(frame):
    assert infer_task(frame, "credit_score").kind == "regression"
    d = infer_task(frame, "default_flag")
    assert (d.name, d.kind) == ("default", "binary")
    r = infer_task(frame, "risk_level")
    assert r.kind == "multiclass" and r.classes == RISK_LEVELS and r.ordered
    s = infer_task(frame, "segment")
    assert s.kind == "binary" and s.classes == ("x", "y")
    assert infer_task(frame, "segment", kind="multiclass").kind == "multiclass"
    with pytest.raises(EngineError):
        infer_task(frame, "nope")


def test_encode_labels_marks_missing_and_standardises(frame):
    tasks = with_label_stats(risk_tasks(), frame)
    y = encode_labels(frame, tasks)
    assert y["credit_score"].dtype == np.float32 and np.isnan(y["credit_score"][2])
    labelled = y["credit_score"][~np.isnan(y["credit_score"])]
    assert abs(labelled.mean()) < 1e-6 and abs(labelled.std() - 1) < 1e-6
    assert label_stats(tasks)["credit_score"]["mean"] == pytest.approx(650.0)
    raw = encode_labels(frame, tasks, standardize=False)["credit_score"]
    np.testing.assert_allclose(raw, [600, 700, np.nan, 650])
    np.testing.assert_array_equal(y["default"], np.array([0, 1, np.nan, 0], dtype=np.float32))
    assert y["risk_level"].tolist() == [0, 4, -1, 2] and y["risk_level"].dtype == np.int64
    x = encode_labels(pd.DataFrame({"segment": ["y", "x", "z", None]}), [infer_task(frame, "segment")])
    assert np.isnan(x["segment"][2:]).all() and x["segment"][:2].tolist() == [1.0, 0.0]


def test_metrics_perfect_constant_and_missing():
    reg, binary, grade = risk_tasks()
    y = np.array([600.0, 700.0, np.nan, 650.0])
    m = task_metrics(reg, y, np.array([600.0, 700.0, 123.0, 650.0]))
    assert m["n"] == 3 and m["rmse"] == 0 and m["mae"] == 0 and m["r2"] == 1

    yb = np.array([0, 1, np.nan, 1, 0], dtype=np.float32)
    m = task_metrics(binary, yb, np.array([0.1, 0.9, 0.5, 0.8, 0.2]))
    assert (m["auc"], m["ks"], m["n"]) == (1.0, 1.0, 4)
    assert 0 < m["logloss"] < 0.3 and 0 < m["brier"] < 0.05
    assert task_metrics(binary, yb, np.full(5, 0.4))["auc"] == 0.5
    assert math.isnan(task_metrics(binary, np.zeros(3), np.full(3, 0.1))["auc"])

    yg = np.array([0, 4, -1, 2])
    probs = np.eye(5)[[0, 4, 1, 2]] * 0.96 + 0.01
    m = task_metrics(grade, yg, probs)
    assert m["accuracy"] == 1 and m["macro_f1"] == 1 and m["qwk"] == pytest.approx(1) and m["n"] == 3
    off_by_one = task_metrics(grade, yg, np.eye(5)[[1, 3, 0, 3]])["qwk"]
    far = task_metrics(grade, yg, np.eye(5)[[4, 0, 0, 0]])["qwk"]
    assert far < off_by_one < 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selection_score_is_task_metrics_selection_metric(seed):
    """The hybrid's fast score equals RMSE, 1 − AUC and 1 − macro-F1 of task_metrics (missing labels, ties,
    a class never predicted and one never labelled included)."""
    from profile_core.tasks import selection_score

    reg, binary, grade = risk_tasks()
    rng = np.random.default_rng(seed)
    n = 400
    y_reg = np.where(rng.random(n) < 0.2, np.nan, rng.normal(650, 50, n))
    p_reg = rng.normal(650, 50, n)
    assert selection_score(reg, y_reg, p_reg) == pytest.approx(task_metrics(reg, y_reg, p_reg)["rmse"], rel=1e-12)
    y_bin = np.where(rng.random(n) < 0.2, np.nan, rng.random(n) < 0.3)
    p_bin = np.round(rng.random(n), 1)  # ties
    assert selection_score(binary, y_bin, p_bin) == pytest.approx(1 - task_metrics(binary, y_bin, p_bin)["auc"])
    y_grade = np.where(rng.random(n) < 0.2, -1, rng.integers(0, 4, n))  # grade 4 never labelled
    p_grade = rng.dirichlet(np.ones(5), n)
    p_grade[:, 3] = 0  # grade 3 never predicted
    assert selection_score(grade, y_grade, p_grade) == pytest.approx(
        1 - task_metrics(grade, y_grade, p_grade)["macro_f1"])
    assert math.isnan(selection_score(binary, np.zeros(3), np.full(3, 0.1)))
    assert math.isnan(selection_score(reg, np.full(3, np.nan), np.ones(3)))


def test_marketing_roles_are_proposed_from_name_and_kind_and_round_trip():
    assert propose_role("wm_purchase_3m", "binary") == "propensity"
    assert propose_role("基金申购意向", "binary") == "propensity"
    assert propose_role("churn_3m", "binary") == "churn"
    assert propose_role("客户流失", "binary") == "churn"
    assert propose_role("churn_3m", "regression") == "generic"  # a churn role is binary only
    assert propose_role("default_flag", "binary") == "pd" and propose_role("LIMIT_BAL", "regression") == "generic"
    assert propose_product("wm_purchase_3m") == "wealth_management" and propose_product("基金申购") == "fund"
    assert propose_product("bought_gold") == "bought_gold"  # the bank's own name when no product is known
    spec = TaskSpec("buy", "bought_card", "binary")
    assert (spec.role, spec.product) == ("propensity", "credit_card")
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in marketing_tasks()[0].to_dict().items() if k != "product"}  # a bundle from before
    assert TaskSpec.from_dict(old).product == "wealth_management"
    assert TaskSpec("c", "churn_3m", "binary", product="x").product == ""  # only a propensity names a product
    with pytest.raises(EngineError, match="does not fit a regression task"):
        TaskSpec("c", "churn_3m", "regression", role="churn")
