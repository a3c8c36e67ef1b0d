"""The cohorts page through AppTest (fixtures of ``tests/test_pages_card.py``): all customers against the high-risk
ones by default, filters change the counts exactly, a cohort is saved with the data set, picked and deleted,
an invalid filter is refused with a sentence, and an RM compares within own customers only."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from profile_core import cohorts
from profile_core.bundle import load_bundle
from profile_core.features import build_features_from_frames
from profile_core.store import Workspace
from profile_core.views import portfolio_frame
from tests.test_app import demo_env, env  # noqa: F401 — fixtures reused
from tests.test_pages_card import _figures, _ok, _page, signed_in  # noqa: F401
from ui import cohorts as editor
from ui import keys
from ui.keys import PagePath


@pytest.fixture(scope="module")
def expected(demo_env):  # noqa: F811
    """The portfolio frame the page compares (the demo bundle over the demo data)."""
    bundle = load_bundle(demo_env["root"] / "models" / "demo")
    features = build_features_from_frames(demo_env["portfolio"].tables())
    return portfolio_frame(bundle.predict(features), features, bundle.tasks).assign(
        income=features["income"].to_numpy())


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_comparison_all_against_high_risk(signed_in, expected):  # noqa: F811
    at = _page(PagePath.COHORTS)
    assert at.title[0].value == "客群对比"
    worst = cohorts.riskiest_grades(expected)  # D and E, else the worst grade the model gives
    high = int(expected["grade"].isin(worst).sum())
    assert high > 0 and _metrics(at) == {"全部客户 · 客户数": "300", "高风险客户 · 客户数": f"{high:,}"}
    figures = _figures(at)
    histograms = [f for f in figures if f["data"] and f["data"][0]["type"] == "histogram"]
    assert histograms and all(len(f["data"]) == 2 for f in histograms)  # one trace per cohort
    assert {tr["name"] for tr in histograms[0]["data"]} == {"全部客户", "高风险客户"}
    heads = json.loads((signed_in["root"] / "models" / "demo" / "manifest.json").read_text())["tasks"]
    assert len(at.tabs) >= len(heads)  # top attributes, one tab per head
    drift = next(df.value for df in at.dataframe if "psi" in df.value.columns)
    assert len(drift) > 10 and np.isfinite(drift["psi"].astype(float)).all()
    assert any(f"最多随机抽取 {cohorts.SHAP_SAMPLE} 位客户" in c.value for c in at.caption)


def test_filters_change_counts_exactly_and_invalid_ones_are_refused(signed_in, expected):  # noqa: F811
    at = _page(PagePath.COHORTS)
    cut = float(expected["income"].median())
    at.selectbox(key=editor.key("b", "column-0-selectbox")).set_value("income")
    at.selectbox(key=editor.key("b", "operator-0-selectbox")).set_value(">=")
    at.text_input(key=editor.key("b", "values-0-text-input")).set_value(str(cut))
    at.text_input(key=editor.key("b", "name-text-input")).set_value("富裕")
    at.run()
    _ok(at)
    assert _metrics(at)["富裕 · 客户数"] == f"{int((expected['income'] >= cut).sum()):,}"
    at.selectbox(key=editor.key("a", "column-1-selectbox")).set_value("grade")
    at.selectbox(key=editor.key("a", "operator-1-selectbox")).set_value("between")
    at.text_input(key=editor.key("a", "values-1-text-input")).set_value("A")
    at.run()
    assert not at.exception
    assert at.error and "客群「全部客户」的定义无效" in at.error[0].value


def test_save_pick_and_delete_a_cohort_with_the_data_set(signed_in, expected):  # noqa: F811
    at = _page(PagePath.COHORTS)
    at.button(key=editor.key("b", "save-button")).click().run()
    _ok(at)
    assert any("已随当前数据集保存" in s.value for s in at.success)
    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:
        rows = ws.cohorts("demo")
    worst = cohorts.riskiest_grades(expected)
    assert [r["name"] for r in rows] == ["高风险客户"] and json.loads(rows[0]["definition"])["filters"] == [
        {"column": "grade", "operator": "in", "values": worst}]
    at.selectbox(key=editor.key("a", "saved-selectbox")).set_value("高风险客户").run()
    _ok(at)
    high = f"{int(expected['grade'].isin(worst).sum()):,}"
    assert list(_metrics(at).values()) == [high, high]
    assert any(c.value == f"grade in {', '.join(worst)}" for c in at.caption)
    at.button(key=editor.key("a", "delete-button")).click().run()
    _ok(at)
    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:
        assert ws.cohorts("demo") == []
    assert at.selectbox(key=editor.key("a", "saved-selectbox")).value == ""


def test_rm_compares_within_own_customers(signed_in, expected):  # noqa: F811
    rm = "RM001"  # the demo account rm01
    customers = signed_in["portfolio"].customers
    own = set(customers.loc[customers["rm_id"].astype(str) == rm, "customer_id"])
    at = _page(PagePath.COHORTS, **{keys.ROLE: "rm", keys.RM_ID: rm})
    mine = expected[expected["customer_id"].isin(own)]
    assert _metrics(at) == {"全部客户 · 客户数": f"{len(own):,}",
                            "高风险客户 · 客户数": f"{int(mine['grade'].isin(cohorts.riskiest_grades(mine)).sum()):,}"}
