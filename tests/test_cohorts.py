"""Cohorts: each operator selects exactly the right rows, hostile column names and values are data, invalid
definitions are refused by name; comparing two cohorts (sizes, KPIs by role for any heads, observed outcomes,
PSI per input, SHAP importance on a bounded sample); saved with their data set in the workspace."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from profile_core import cohorts
from profile_core.auth import Forbidden, User
from profile_core.cohorts import Cohort, CohortError, Filter, apply, compare, parse_values
from profile_core.store import RegistryError, Workspace
from profile_core.tasks import TaskSpec
from profile_core.views import portfolio_frame

HOSTILE = 'x"; DROP TABLE _cohorts; --'


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6"],
        "income": [1.0, 2.0, 3.0, np.nan, 5.0, 2.0],
        "city": pd.array(["北京", "上海", "北京市", None, "Shen.*zhen", "上海"], dtype="str"),
        HOSTILE: [10, 20, 30, 40, 50, 60],
    })


def _rows(frame: pd.DataFrame, *filters: tuple) -> list[str]:
    cohort = Cohort(name="c", filters=[Filter(column=c, operator=o, values=v) for c, o, v in filters])
    return frame.loc[apply(frame, cohort), "customer_id"].tolist()


def test_each_operator_selects_exactly_the_right_rows(frame):
    assert _rows(frame, ("income", "==", [2])) == ["C2", "C6"]
    assert _rows(frame, ("income", "==", ["2"])) == ["C2", "C6"]  # typed text compares as a number
    assert _rows(frame, ("income", "!=", [2])) == ["C1", "C3", "C5"]  # a missing value matches nothing
    assert _rows(frame, ("income", "in", [1, "5"])) == ["C1", "C5"]
    assert _rows(frame, ("income", "between", [2, 3])) == ["C2", "C3", "C6"]  # both ends included
    assert _rows(frame, ("income", "between", [3, 2])) == ["C2", "C3", "C6"]
    assert _rows(frame, ("income", ">=", [3])) == ["C3", "C5"]
    assert _rows(frame, ("income", "<=", [1.5])) == ["C1"]
    assert _rows(frame, ("city", "==", ["上海"])) == ["C2", "C6"]
    assert _rows(frame, ("city", "!=", ["上海"])) == ["C1", "C3", "C5"]
    assert _rows(frame, ("city", "in", ["北京", "Shen.*zhen"])) == ["C1", "C5"]
    assert _rows(frame, ("city", "contains", ["京"])) == ["C1", "C3"]
    assert _rows(frame, ("city", "contains", ["SHEN"])) == ["C5"]  # case-insensitive
    assert _rows(frame, ("city", "contains", [".*"])) == ["C5"]  # literally, never a pattern
    assert _rows(frame, ("city", "contains", ["^北"])) == []
    assert _rows(frame, ("city", "==", ["上海"]), ("income", ">=", [2])) == ["C2", "C6"]  # all filters hold
    assert _rows(frame) == ["C1", "C2", "C3", "C4", "C5", "C6"]  # no filter: everyone


def test_hostile_names_and_values_are_only_data(frame):
    assert _rows(frame, (HOSTILE, ">=", [40])) == ["C4", "C5", "C6"]
    assert _rows(frame, ("city", "==", ["'; DROP TABLE x; --"])) == []
    assert _rows(frame, ("city", "contains", ["__import__('os')"])) == []
    with pytest.raises(CohortError, match="not in the current data") as err:
        _rows(frame, ("income) or (1==1", "==", [1]))
    assert "income) or (1==1" in str(err.value)
    with pytest.raises(CohortError, match="needs a number"):
        _rows(frame, ("income", "between", ["1", "lots"]))
    with pytest.raises(CohortError, match="numeric columns only"):
        _rows(frame, ("city", ">=", ["a"]))


def test_invalid_definitions_are_refused():
    with pytest.raises(ValidationError):
        Filter(column="income", operator="between", values=[1])
    with pytest.raises(ValidationError):
        Filter(column="income", operator="==", values=[1, 2])
    with pytest.raises(ValidationError):
        Filter(column="income", operator="like", values=["%"])
    with pytest.raises(ValidationError):
        Filter(column="income", operator=">=", values=[float("nan")])
    with pytest.raises(ValidationError):
        Filter(column="", operator="==", values=[1])
    with pytest.raises(ValidationError):
        Cohort(name="  ", filters=[])
    with pytest.raises(ValidationError):
        Cohort.model_validate({"name": "a", "filters": [], "sql": "DROP"})
    c = Cohort(name=" 高收入 ", filters=[Filter(column=HOSTILE, operator="in", values=["a", 1, None])])
    assert c.name == "高收入" and Cohort.from_json(c.to_json()) == c
    assert parse_values("in", "北京， 上海,深圳") == ["北京", "上海", "深圳"]
    assert parse_values("between", "1, 2") == ["1", "2"]
    assert parse_values("contains", " a,b ") == ["a,b"]
    assert parse_values("==", "  ") == []


# ------------------------------------------------------------------ comparing, for any heads

TASKS = [TaskSpec(name="spend", label="spend_amt", kind="regression", role="generic", en="Spend"),
         TaskSpec(name="churn", label="churned", kind="binary", role="generic", en="Churn"),
         TaskSpec(name="tier", label="tier_lbl", kind="multiclass", classes=("x", "y", "z"), role="generic",
                  en="Tier")]


@pytest.fixture()
def scored() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    preds = pd.DataFrame({"customer_id": [f"K{i:03d}" for i in range(n)], "spend_pred": rng.gamma(2, 100, n),
                          "churn_prob": rng.uniform(0, 1, n), "tier_pred": rng.choice(["x", "y", "z"], n)})
    features = pd.DataFrame({"customer_id": preds["customer_id"], "age_band": rng.choice(["a", "b"], n),
                             "balance": rng.normal(1000, 200, n), "spend_amt": rng.gamma(2, 100, n),
                             "churned": rng.integers(0, 2, n).astype(float), "tier_lbl": rng.choice(["x", "y", "z"], n),
                             "rm_id": rng.choice(["R1", "R2"], n), "name": "张三"})
    features.loc[:9, "churned"] = np.nan  # unknown outcomes are left out of the rates
    return cohorts.cohort_frame(portfolio_frame(preds, features, TASKS), features)


def test_cohort_frame_carries_heads_and_attributes_but_no_identities(scored):
    assert {"spend_pred", "churn_prob", "tier_pred", "balance", "age_band", "rm_id"} <= set(scored.columns)
    assert "name" not in scored.columns
    assert scored["pd"].isna().all() and "observed_bad" not in scored.columns  # no pd head: no PD anywhere


def test_identical_cohorts_have_zero_psi_and_equal_everything(scored):
    a = scored[scored["age_band"] == "a"]
    comp = compare(a, a.copy(), ("A", "A"), TASKS, population=len(scored), numeric=["balance"],
                   categorical=["age_band"], lang="en")
    assert comp.names == ("A", "A (2)")
    assert comp.drift["psi"].tolist() == [0.0, 0.0] and set(comp.drift["status"]) == {"stable"}
    assert comp.sizes["n"].tolist() == [len(a)] * 2
    assert comp.sizes["share"].tolist() == pytest.approx([len(a) / 200] * 2)
    assert (comp.kpis["A"] == comp.kpis["A (2)"]).all()


def test_comparison_numbers_for_generic_heads(scored):
    a, b = scored[scored["balance"] >= 1000], scored[scored["balance"] < 1000]
    comp = compare(a, b, ("rich", "poor"), TASKS, population=len(scored), numeric=["balance"], lang="en")
    assert comp.sizes["n"].sum() == 200
    assert comp.drift.loc[0, "feature"] == "balance" and comp.drift.loc[0, "psi"] > 1  # split on it: far apart
    kpi = comp.kpis.set_index("Measure")
    assert kpi.loc["Customers", "rich"] == f"{len(a):,}"
    assert kpi.loc["Mean · Churn", "poor"] == f"{b['churn_prob'].mean():.2%}"
    out = comp.outcomes.set_index("head")
    assert out.loc["Churn", "rich"] == pytest.approx(a["churned"].mean())  # NaN labels left out
    assert out.loc["Churn", "rich n"] == int(a["churned"].notna().sum())
    assert out.loc["Spend", "poor"] == pytest.approx(b["spend_amt"].mean())
    top = scored["tier_lbl"].value_counts().idxmax()
    assert out.loc["Tier", "measure"] == f"share observed as {top}"
    assert out.loc["Tier", "rich"] == pytest.approx((a["tier_lbl"] == top).mean())
    kinds = [(d.column, d.kind) for d in comp.distributions]
    assert kinds == [("spend_pred", "histogram"), ("churn_prob", "histogram"), ("tier_pred", "shares")]
    figs = cohorts.figures(comp, "en")
    assert [len(f.data) for f in figs] == [2, 2, 3]  # one trace per cohort; the shares: one per class
    assert sorted(figs[2].data[0].x) == ["poor", "rich"]
    assert sum(tr.y[0] for tr in figs[2].data) == pytest.approx(1.0)  # shares within the cohort


def test_an_empty_cohort_compares_without_failing(scored):
    none = scored.iloc[0:0]
    comp = compare(scored, none, ("all", "none"), TASKS, population=len(scored), numeric=["balance"])
    assert comp.sizes["n"].tolist() == [200, 0] and comp.drift.empty
    assert (comp.kpis["none"] == "—").all()


# ------------------------------------------------------------------ with a trained model (pd/score/grade roles)


@pytest.fixture(scope="module")
def world():
    from profile_core.explain import HeadExplainer
    from profile_core.features import build_features_from_frames
    from profile_core.synth import generate_portfolio
    from profile_core.tasks import default_tasks
    from profile_core.train import TrainConfig, fit, predictions_frame

    frame = build_features_from_frames(generate_portfolio(400, seed=3).tables())
    result = fit(frame, default_tasks(), TrainConfig(max_epochs=2, seed=2))
    preds = predictions_frame(result.model, result.preprocessor, result.tasks, frame)
    bundle = SimpleNamespace(model=result.model, preprocessor=result.preprocessor, tasks=result.tasks)
    return frame, bundle, cohorts.cohort_frame(portfolio_frame(preds, frame, result.tasks), frame), \
        HeadExplainer(bundle, frame, n_background=30)


def test_roles_drive_the_distributions_and_outcomes(world):
    frame, bundle, scored, _ = world
    a = cohorts.select(scored, Cohort(name="a", filters=[Filter(column="grade", operator="in", values=["A", "B"])]))
    b = cohorts.select(scored, Cohort(name="b", filters=[Filter(column="grade", operator="!=", values=["A"])]))
    assert set(a["grade"]) <= {"A", "B"} and "A" not in set(b["grade"])
    comp = compare(a, b, ("a", "b"), bundle.tasks, population=len(scored), numeric=bundle.preprocessor.numeric,
                   categorical=bundle.preprocessor.categorical, lang="en")
    roles = [d.role for d in comp.distributions]
    assert roles[:3] == ["score", "pd", "grade"] and roles.count("generic") == \
        sum(t.role == "generic" for t in bundle.tasks)
    pd_task = next(t for t in bundle.tasks if t.role == "pd")
    out = comp.outcomes.set_index("head")
    assert out.loc[pd_task.display("en"), "a"] == pytest.approx(a[pd_task.label].mean())
    assert len(comp.drift) == len(bundle.preprocessor.numeric) + len(bundle.preprocessor.categorical)


def test_importance_on_a_bounded_sample(world):
    frame, bundle, scored, explainer = world
    ids = {"big": scored["customer_id"].tolist(), "small": scored["customer_id"].iloc[:7].tolist()}
    table = cohorts.importance(explainer, frame, ids, n=40)
    assert table.groupby("cohort")["sampled"].first().to_dict() == {"big": 40, "small": 7}
    sums = table.groupby(["cohort", "task"])["importance"].sum()
    assert len(sums) == 2 * len(bundle.tasks) and np.allclose(sums.to_numpy(), 1.0)
    again = cohorts.importance(explainer, frame, ids, n=40)  # seeded: the same sample, the same numbers
    pd.testing.assert_frame_equal(table, again)
    fig = cohorts.importance_figure(table, bundle.tasks[0], top_n=5, lang="en")
    assert len(fig.data) == 2 and len(fig.data[0].y) == 5


# ------------------------------------------------------------------ saved with the data set


def _tables() -> dict[str, pd.DataFrame]:
    return {"customers": pd.DataFrame({"customer_id": ["C1"], "rm_id": ["R1"]})}


def test_saved_with_its_data_set_only():
    analyst, rm = User("ana", "analyst"), User("rm01", "rm", rm_id="R1")
    hostile = Cohort(name="a'); DROP TABLE _cohorts; --", filters=[Filter(column=HOSTILE, operator="==", values=["'"])])
    with Workspace(":memory:") as ws:
        ws.replace_dataset("main", _tables())
        ws.replace_dataset("other", _tables())
        cohorts.save(ws, "main", hostile, user=analyst)
        cohorts.save(ws, "main", Cohort(name="mine", filters=[]), user=rm)
        assert [c.name for c in cohorts.saved(ws, "main")] == ["a'); DROP TABLE _cohorts; --", "mine"]
        assert cohorts.saved(ws, "main")[0] == hostile
        assert cohorts.saved(ws, "other") == []  # never shown on another data set
        changed = Cohort(name="mine", filters=[Filter(column="x", operator=">=", values=[1])])
        cohorts.save(ws, "main", changed, user=rm)  # the same name replaces
        assert cohorts.saved(ws, "main")[1] == changed
        with pytest.raises(RegistryError, match="only they, an analyst or an admin"):
            cohorts.delete(ws, "main", hostile.name, user=rm)
        with pytest.raises(Forbidden):
            cohorts.save(ws, "main", changed, user=User("aud", "auditor"))
        assert cohorts.delete(ws, "main", "mine", user=rm) is True
        assert cohorts.delete(ws, "main", "mine", user=rm) is False
        ws.replace_dataset("main", _tables())  # a new version keeps its cohorts
        assert [c.name for c in cohorts.saved(ws, "main")] == [hostile.name]
        ws.rename_dataset("main", "renamed")
        assert [c.name for c in cohorts.saved(ws, "renamed")] == [hostile.name]
        ws.delete_dataset("renamed", confirm="renamed")
        ws.replace_dataset("renamed", _tables())
        assert cohorts.saved(ws, "renamed") == []  # deleted with its data set
        with pytest.raises(KeyError):
            cohorts.save(ws, "missing", hostile)


def test_riskiest_grades_fall_back_to_the_worst_present():
    assert cohorts.riskiest_grades(pd.DataFrame({"grade": ["A", "E", "C", "D"]})) == ["D", "E"]
    assert cohorts.riskiest_grades(pd.DataFrame({"grade": ["A", "C", "B"]})) == ["C"]
    assert cohorts.riskiest_grades(pd.DataFrame({"grade": [None, None]})) == []
    assert cohorts.riskiest_grades(pd.DataFrame({"x": [1]})) == []
