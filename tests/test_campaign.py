"""The marketing side: product names, the next best product, retention alerts and campaign rankings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_core.campaign import (
    Campaign,
    next_best_product,
    product_name,
    rank_campaign,
    retention_alert,
    worse_than,
)
from profile_core.profile import TaskOutput
from profile_core.tasks import TaskSpec, default_tasks, marketing_tasks
from profile_core.views import marketing_items, reason_headings


def _head(task: str, role: str, value: float, percentile: float | None, title: str = "", product: str = ""):
    return TaskOutput(task, task, title or task, role, "binary", value=value, percentile=percentile, product=product)


def test_product_names_from_the_catalogue_or_as_the_bank_wrote_them():
    wm = marketing_tasks()[0]
    assert product_name(wm, "zh") == "理财产品" and product_name(wm, "en") == "wealth-management product"
    own = TaskSpec("gold", "bought_gold_bar", "binary", role="propensity", zh="黄金", en="Gold")
    assert own.product == "bought_gold_bar" and product_name(own, "en") == "bought_gold_bar"
    assert worse_than("D", "C") and not worse_than("C", "C") and not worse_than("E", None)
    assert not worse_than(None, "C")


def test_next_best_product_recommends_the_highest_propensity_within_the_risk_limit():
    heads = [_head("wm", "propensity", 0.31, 93.0, product="理财产品"), _head("card", "propensity", 0.12, 60.0),
             _head("churn", "churn", 0.5, 99.0), _head("default", "pd", 0.02, None)]
    reasons = {"wm": "近12个月产品浏览次数多（38 次）"}
    best = next_best_product(heads, grade="B", max_grade="C", reasons=reasons,
                             products={"wm": "理财产品", "card": "信用卡"})
    assert (best.status, best.task, best.product, best.probability) == ("recommend", "wm", "理财产品", 0.31)
    assert best.text == ("推荐理财产品：购买倾向 31.0%（组合前 7%），风险等级 B 在营销上限 C 以内。"
                         "主要原因：近12个月产品浏览次数多（38 次）")
    risky = next_best_product(heads, grade="D", max_grade="C", reasons=reasons, products={"wm": "理财产品"})
    assert risky.status == "suppressed" and risky.grade == "D"
    assert risky.text.startswith("不推荐营销：理财产品购买倾向 31.0%") and "高于营销上限 C" in risky.text
    # the cut-off is the user's: with E allowed, the same customer is offered the product
    assert next_best_product(heads, grade="D", max_grade="E").status == "recommend"
    low = next_best_product([_head("wm", "propensity", 0.09, 55.0)], grade="A", lang="en")
    assert (low.status, low.product) == ("none", "") and low.text.startswith("No clear offer: the highest propensity")
    assert next_best_product([_head("churn", "churn", 0.4, 99.0)], grade="A") is None  # no propensity head


def test_retention_alert_when_churn_is_high_against_the_portfolio():
    means = {"churn": 0.08}
    high = retention_alert([_head("churn", "churn", 0.2, 70.0, title="流失概率")], means=means,
                           reasons={"churn": "近1个月支出笔数少"})
    assert high is not None and (high.probability, high.mean) == (0.2, 0.08)
    assert high.text == "挽留预警：流失概率 20.0%（组合均值 8.0%），建议客户经理尽快联系。主要原因：近1个月支出笔数少"
    assert retention_alert([_head("churn", "churn", 0.12, 91.0)], means=means) is not None  # top 10 %
    assert retention_alert([_head("churn", "churn", 0.12, 80.0)], means=means) is None
    assert retention_alert([_head("wm", "propensity", 0.9, 99.0)], means=means) is None


def test_marketing_items_and_reason_headings():
    from profile_core.profile import CardOutputs

    heads = [_head("wm", "propensity", 0.31, 93.0, title="理财购买倾向", product="理财产品"),
             _head("churn", "churn", 0.2, 95.4, title="流失概率")]
    out = CardOutputs(None, 0.02, 610.0, "B", None, tasks=heads)
    out.next_best = next_best_product(heads, grade="B", products={"wm": "理财产品"})
    out.retention = retention_alert(heads, means={"churn": 0.08})
    items = marketing_items(out, "zh")
    assert [i.key for i in items] == ["task:wm", "task:churn", "next_best", "retention"]
    assert [(i.value, i.note) for i in items[:2]] == [("31.0%", "组合前 7%"), ("20.0%", "组合前 5%")]
    assert items[0].help == "购买倾向 · 理财产品" and items[1].tone == "warn"
    assert (items[2].value, items[2].tone) == ("理财产品", "good") and items[3].tone == "warn"
    assert reason_headings("propensity", "zh")["up"] == "推高预测值的因素"
    assert reason_headings("churn", "en")["up"] == reason_headings("generic", "en")["up"]
    assert reason_headings("pd", "zh")["up"] == "推高风险的因素"


@pytest.fixture
def portfolio() -> pd.DataFrame:
    # 10 customers: propensity falls with the index; PD makes C03 and C05 grade D, C08 grade E
    pds = [0.005, 0.02, 0.05, 0.10, 0.01, 0.15, 0.02, 0.03, 0.25, 0.01]
    return pd.DataFrame({"customer_id": [f"C{i:02d}" for i in range(10)],
                         "pd": pds, "grade": list("ABCDADBCEA"), "rm_id": ["RM001", "RM002"] * 5,
                         "wm_purchase_prob": np.linspace(0.5, 0.05, 10), "churn_prob": np.linspace(0.01, 0.3, 10),
                         "default_prob": pds})


def test_campaign_ranks_by_propensity_and_prices_the_risk_cut(portfolio):
    tasks = default_tasks()
    c = rank_campaign(portfolio, tasks, "wm_purchase", 4, max_grade="C")
    assert isinstance(c, Campaign) and (c.cut, c.cut_value, c.grade_source) == ("grade", "C", "pd")
    p = portfolio.set_index("customer_id")["wm_purchase_prob"]
    # PD grades: C03 (10%) and C05 (15%) are D, C08 (25%) E → three customers left out
    assert c.excluded == 3 and c.selected["customer_id"].tolist() == ["C00", "C01", "C02", "C04"]
    assert c.selected["rank"].tolist() == [1, 2, 3, 4] and c.selected["risk_grade"].tolist() == ["A", "B", "C", "B"]
    assert c.expected_uptake == pytest.approx(p[["C00", "C01", "C02", "C04"]].sum())
    assert c.uptake_without_cut == pytest.approx(p[["C00", "C01", "C02", "C03"]].sum())
    assert c.excluded_in_top == 1 and c.uptake_lost == pytest.approx(p["C03"] - p["C04"])
    assert c.kept_share == pytest.approx(c.expected_uptake / c.uptake_without_cut)
    assert c.expected_rate == pytest.approx(c.expected_uptake / 4) and c.base_rate == pytest.approx(p.mean())
    assert c.selected["cumulative_uptake"].iloc[-1] == pytest.approx(c.expected_uptake)
    # a PD cut-off instead of a grade: above 4 % is out (C02 5 %, C03, C05, C08)
    by_pd = rank_campaign(portfolio, tasks, "wm_purchase", 3, max_pd=0.04)
    assert (by_pd.cut, by_pd.excluded) == ("pd", 4) and by_pd.selected["customer_id"].tolist() == ["C00", "C01", "C04"]
    # no cut: the plain top n, nothing lost
    free = rank_campaign(portfolio, tasks, "wm_purchase", 3, max_grade=None)
    assert (free.cut, free.excluded, free.uptake_lost, free.kept_share) == ("none", 0, 0.0, 1.0)
    # a retention campaign on the churn head ranks the likeliest leavers first
    churn = rank_campaign(portfolio, tasks, "churn", 2, max_grade="E")
    assert churn.selected["customer_id"].tolist() == ["C09", "C08"]
    # more customers asked for than eligible: everyone eligible, in order
    assert len(rank_campaign(portfolio, tasks, "wm_purchase", 50).selected) == 7
    with pytest.raises(KeyError):
        rank_campaign(portfolio, tasks, "credit_score", 3)


def test_campaign_items_state_the_numbers(portfolio):
    from profile_core.views import campaign_items

    c = rank_campaign(portfolio, default_tasks(), "wm_purchase", 4, max_grade="C")
    items = {i.key: i for i in campaign_items(c, "propensity", "zh")}
    assert list(items) == ["selected", "uptake", "excluded", "kept"]
    assert (items["selected"].value, items["selected"].note) == ("4", "目标 4 人")
    assert items["uptake"].value == f"{c.expected_uptake:,.1f}" and items["uptake"].label == "预计成交"
    assert items["uptake"].note == f"人均 {c.expected_rate:.1%}（全体 {c.base_rate:.1%}）"
    assert f"{c.expected_rate / c.base_rate:.1f} 倍" in items["uptake"].help
    assert (items["excluded"].value, items["excluded"].note, items["excluded"].tone) == ("3", "其中 1 人本可进入前 4 名",
                                                                                        "bad")
    assert items["excluded"].help == "排除违约等级差于 C 的客户"
    assert items["kept"].value == f"{c.kept_share:.1%}" and items["kept"].note == f"因风险上限损失 {c.uptake_lost:.1f}"
    churn = campaign_items(rank_campaign(portfolio, default_tasks(), "churn", 2, max_pd=0.04), "churn", "en")
    assert churn[1].label == "Expected leavers reached" and churn[2].help == "Customers with a PD above 4.0% are left out"


def test_campaign_list_exports_as_the_role_may(portfolio):
    from profile_core.exports import export_frame
    from profile_core.privacy import Policy

    c = rank_campaign(portfolio, default_tasks(), "wm_purchase", 10, max_grade=None)
    rm = export_frame(c.selected, Policy("rm", rm_id="RM001"))
    assert set(rm["rm_id"]) == {"RM001"} and rm["customer_id"].tolist() == ["C00", "C02", "C04", "C06", "C08"]
    assert len(export_frame(c.selected, Policy("analyst"))) == 10
