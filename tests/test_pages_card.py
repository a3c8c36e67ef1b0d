"""The customers (panorama card) and explanations pages through ``streamlit.testing.v1.AppTest`` on the small
demo portfolio and 1-epoch bundle of ``tests/test_app.py`` (its fixtures are reused)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP, TIMEOUT, demo_env, env  # noqa: F401 — fixtures reused
from ui import card, explain_view, keys
from ui.keys import PagePath


@pytest.fixture()
def signed_in(env, monkeypatch):  # noqa: F811 — the fixture imported above
    """``env`` with a demo account signed in automatically (the analyst unless a test presets keys.ROLE)."""
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")
    monkeypatch.setenv("PROFILE_DEMO", "1")
    return env


def _page(page: PagePath, **session) -> AppTest:
    """The app signed in (a demo account of ``session[keys.ROLE]``, default the analyst), on ``page``."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(str(page)).run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def _trace_types(at: AppTest) -> list[str]:
    return [trace.get("type") for fig in _figures(at) for trace in fig.get("data", [])]


def _header(at: AppTest) -> str:
    return at.subheader[0].value


def test_card_renders_and_switching_customer_changes_header(signed_in):
    at = _page(PagePath.CUSTOMERS)
    customers = signed_in["portfolio"].customers
    first, second = customers["customer_id"].iloc[0], customers["customer_id"].iloc[1]
    assert at.session_state[card.SELECTED] == first
    assert first in _header(at)
    assert "*" in _header(at)  # the analyst sees names masked
    # risk tiles, then the marketing panel's propensity and churn heads
    assert [m.label for m in at.metric] == ["预测信用评分", "违约概率 PD", "评分卡分数", "理财购买倾向", "流失概率"]
    assert {"indicator", "bar", "heatmap"} <= set(_trace_types(at))  # gauge, monthly flows, login heat map
    assert len(at.tabs) >= 3 + 4  # reason codes per task, attribute categories
    assert any("模型辅助，人工决策" in i.value for i in at.info)
    assert any("推高风险的因素" in m.value for m in at.markdown)
    at.selectbox(key=card.CUSTOMER_SELECT).set_value(second).run()
    _ok(at)
    assert second in _header(at) and first not in _header(at)
    assert at.session_state[card.SELECTED] == second


def test_search_matches_masked_names_only_where_masked(signed_in):
    customers = signed_in["portfolio"].customers
    row = customers.iloc[5]
    at = _page(PagePath.CUSTOMERS)
    at.text_input(key=card.SEARCH).set_value(row["name"]).run()  # the full name is not searchable when masked
    _ok(at)
    assert at.info and "没有符合" in at.info[0].value
    at.text_input(key=card.SEARCH).set_value(row["customer_id"]).run()
    _ok(at)
    assert at.selectbox(key=card.CUSTOMER_SELECT).value == row["customer_id"]
    at.text_input(key=card.SEARCH).set_value("").run()
    at.multiselect(key=card.GRADE_FILTER).set_value(["A"]).run()
    _ok(at)
    shown = at.selectbox(key=card.CUSTOMER_SELECT)
    assert 0 < len(shown.options) < len(customers)
    assert all(label.endswith(" · A") for label in shown.options)


def test_rm_sees_only_own_customers_in_full(signed_in):
    customers = signed_in["portfolio"].customers
    rm = "RM001"  # the demo account rm01
    own = customers[customers["rm_id"].astype(str) == rm]
    at = _page(PagePath.CUSTOMERS, **{keys.ROLE: "rm", keys.RM_ID: rm})
    box = at.selectbox(key=card.CUSTOMER_SELECT)
    assert len(box.options) == len(own)
    assert {o.split(" · ")[0] for o in box.options} == set(own["customer_id"])
    first = own.iloc[0]
    assert _header(at) == f"{first['name']} · {first['customer_id']}"  # their own customers: names in full
    at.text_input(key=card.SEARCH).set_value(own.iloc[1]["name"]).run()  # full names are searchable here
    _ok(at)
    assert own.iloc[1]["customer_id"] in at.selectbox(key=card.CUSTOMER_SELECT).options[0]


def test_english_switch_changes_card_labels(signed_in):
    at = _page(PagePath.CUSTOMERS, **{keys.LANG: "en"})
    assert at.title[0].value == "Customer panorama"
    assert [m.label for m in at.metric] == ["Predicted credit score", "Probability of default", "Scorecard points",
                                            "Wealth-management propensity", "Churn probability"]
    boxes = [e.value for e in (*at.success, *at.error, *at.info)]
    assert sum(v.startswith("**Next best product** · ") for v in boxes) == 1
    labels = [t.label for t in at.tabs]
    assert "Basic information" in labels and "Transactions" in labels
    assert any("Model-assisted, human-decided" in i.value for i in at.info)


def test_card_without_bundle_points_to_model_page(signed_in, monkeypatch, tmp_path):
    monkeypatch.setenv("PROFILE_DEMO_BUNDLE", str(tmp_path / "no-bundle"))
    at = _page(PagePath.CUSTOMERS)
    assert at.button(key=keys.GO_MODEL_BUTTON)
    assert not at.metric  # no model outputs
    assert signed_in["portfolio"].customers["customer_id"].iloc[0] in _header(at)
    assert {"bar", "heatmap"} <= set(_trace_types(at))


def test_explanations_show_waterfall_for_chosen_task(signed_in):
    at = _page(PagePath.EXPLANATIONS)
    assert at.title[0].value == "模型解释"
    assert any("DeepSHAP" in c.value for c in at.caption)  # the method is stated
    assert _trace_types(at).count("waterfall") == 1
    assert "信用评分" in " ".join(m.value for m in at.markdown)
    at.selectbox(key=explain_view.TASK_SELECT).set_value("default").run()
    _ok(at)
    waterfall = next(f for f in _figures(at) if f["data"][0].get("type") == "waterfall")
    assert waterfall["data"][0]["measure"][0] == "absolute" and waterfall["data"][0]["measure"][-1] == "total"
    assert any("logit" in m.value and "%" in m.value for m in at.markdown)  # logit and probability
    types = _trace_types(at)
    assert types.count("bar") >= 3  # importance: one panel per task
    at.selectbox(key=explain_view.ATTRIBUTE_SELECT).set_value("income").run()  # age is protected: not an input
    _ok(at)


@pytest.mark.parametrize("role", ["rm"])
def test_explanations_respect_rm(signed_in, role):
    customers = signed_in["portfolio"].customers
    rm = "RM001"  # the demo account rm01
    at = _page(PagePath.EXPLANATIONS, **{keys.ROLE: role, keys.RM_ID: rm})
    options = at.selectbox(key=explain_view.CUSTOMER_SELECT).options
    assert len(options) == (customers["rm_id"].astype(str) == rm).sum()


def test_card_offers_its_html_report_for_download(signed_in):
    at = _page(PagePath.CUSTOMERS)
    first = signed_in["portfolio"].customers["customer_id"].iloc[0]
    buttons = [el for el in at.get("download_button") if el.proto.id and first in el.proto.id]
    assert buttons, "the card has a report download button"
    assert buttons[0].proto.label == "下载 HTML 报告"


def test_card_shows_the_marketing_panel_with_next_best_product_and_reasons(signed_in):
    """The next best product line is in the box its status calls for (offer: success, above the risk cut-off:
    error, nothing clear: info); propensity and churn show their rank in the portfolio and their reasons."""
    at = _page(PagePath.CUSTOMERS)
    lines = {kind: [e.value for e in getattr(at, kind) if e.value.startswith("**下一步推荐产品** · ")]
             for kind in ("success", "error", "info")}
    assert sum(len(v) for v in lines.values()) == 1
    line = next(v[0] for v in lines.values() if v)
    if lines["success"]:
        assert "推荐理财产品：购买倾向" in line and "主要原因：" in line
    elif lines["error"]:
        assert "不推荐营销" in line and "高于营销上限 C" in line
    else:
        assert "暂无明确推荐" in line
    marketing = [m for m in at.metric if m.label in ("理财购买倾向", "流失概率")]
    assert len(marketing) == 2 and all(m.value.endswith("%") for m in marketing)
    assert all(str(m.proto.delta).startswith("组合前 ") for m in marketing)
    assert sum("推高预测值的因素" in m.value for m in at.markdown) == 2  # one per marketing head
    # customers with a high churn probability get a retention alert; find one through the picker
    for cid in signed_in["portfolio"].customers["customer_id"].iloc[:60]:
        at.selectbox(key=card.CUSTOMER_SELECT).set_value(cid).run()
        alerts = [e.value for e in at.warning if e.value.startswith("**挽留预警** · ")]
        if alerts:
            assert "组合均值" in alerts[0] and "主要原因：" in alerts[0]
            break
    else:
        raise AssertionError("no retention alert among the first 60 customers")
