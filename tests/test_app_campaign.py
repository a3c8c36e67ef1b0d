"""The portfolio page's campaign section (营销活动名单) through AppTest: its numbers are campaign.rank_campaign's on
the page's own portfolio frame, the risk limit moves them, and the list downloads."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_app import APP, TIMEOUT, _ok, demo_env, env  # noqa: F401,F811 — fixtures reused
from ui import campaign
from ui.keys import PagePath


def _portfolio_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    return at


def _campaign_metrics(at: AppTest) -> dict[str, str]:
    labels = ("入选客户", "预计成交", "因风险排除", "风险上限下保留的预计成交", "预计触达的流失客户")
    return {m.label: m.value for m in at.metric if m.label in labels}


def _table(at: AppTest):
    return next(df.value for df in at.dataframe if "cumulative_uptake" in df.value.columns)


def _expected(demo, n: int, **cut):
    """The same campaign computed in the core from the demo files and bundle the page uses."""
    from profile_core.bundle import load_bundle
    from profile_core.campaign import rank_campaign
    from profile_core.features import build_features_from_frames
    from profile_core.views import portfolio_frame

    bundle = load_bundle(demo["root"] / "models" / "demo")
    features = build_features_from_frames(demo["portfolio"].tables())
    frame = portfolio_frame(bundle.predict(features), features, bundle.tasks)
    return rank_campaign(frame, bundle.tasks, "wm_purchase", n, **cut)


def _shown_matches(at: AppTest, expected) -> None:
    metrics, table = _campaign_metrics(at), _table(at)
    assert table["customer_id"].tolist() == expected.selected["customer_id"].tolist()
    assert metrics["入选客户"] == f"{len(expected.selected):,}"
    assert metrics["预计成交"] == f"{expected.expected_uptake:,.1f}"
    assert metrics["因风险排除"] == f"{expected.excluded:,}"
    kept = "—" if expected.kept_share != expected.kept_share else f"{expected.kept_share:.1%}"
    assert metrics["风险上限下保留的预计成交"] == kept


def test_campaign_section_ranks_and_prices_the_risk_limit(env):  # noqa: F811
    at = _portfolio_page()
    assert any(s.value == "营销活动名单" for s in at.subheader)
    head = at.selectbox(key=campaign.HEAD)
    assert head.options == ["理财购买倾向", "流失概率"] and head.value == "wm_purchase"
    # the default limit (PD grade C): the fixture's 4-epoch model gives everyone a PD near 53 % (grade E), so
    # every customer is left out for risk and the whole expected uptake of the top 200 is lost
    default = _expected(env, 200, max_grade="C")
    assert (len(default.selected), default.excluded, default.excluded_in_top) == (0, 300, 200)
    _shown_matches(at, default)
    # allowing grade E: the plain top 200 by propensity, nothing lost
    at.selectbox(key=campaign.MAX_GRADE_KEY).set_value("E").run()
    _ok(at)
    loose = _expected(env, 200, max_grade="E")
    _shown_matches(at, loose)
    table = _table(at)
    assert len(table) == 200 and table["rank"].tolist() == list(range(1, 201))
    assert table["probability"].is_monotonic_decreasing and loose.kept_share == 1.0
    # a PD limit at the portfolio's median PD: about half are left out, the list refills from the rest
    median = float(loose.selected["pd"].median())
    at.radio(key=campaign.CUT).set_value("pd").run()
    at.number_input(key=campaign.MAX_PD_KEY).set_value(round(100 * median, 1)).run()
    at.number_input(key=campaign.SIZE).set_value(50).run()
    _ok(at)
    by_pd = _expected(env, 50, max_pd=round(100 * median, 1) / 100)
    _shown_matches(at, by_pd)
    assert 0 < by_pd.excluded < 300 and (_table(at)["pd"] <= by_pd.cut_value).all()
    assert by_pd.uptake_lost >= 0 and by_pd.expected_uptake <= by_pd.uptake_without_cut
    # the churn head: a retention list, likeliest leavers first
    at.selectbox(key=campaign.HEAD).set_value("churn").run()
    _ok(at)
    assert "预计触达的流失客户" in _campaign_metrics(at)
    assert _table(at)["probability"].is_monotonic_decreasing
    assert at.get("download_button")  # the list downloads (analyst: export permission)


@pytest.mark.parametrize("lang, title", [("en", "Campaign list")])
def test_campaign_section_in_english(env, lang, title):  # noqa: F811
    from ui import keys

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[keys.LANG] = lang
    at.run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    assert any(s.value == title for s in at.subheader)
    assert {"Customers chosen", "Expected uptake", "Left out for risk"} <= {m.label for m in at.metric}
