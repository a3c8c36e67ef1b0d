"""The marketing side in a real browser (Debian chromium via Playwright against ``streamlit run app.py`` with the
shipped demo bundle): the card's marketing panel with its next best product line for a customer the core
recommends a product to, and the portfolio page's campaign list. Saves ``marketing_card.png`` and
``campaign.png`` (the README's screenshots)."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import wait_idle
from tests.e2e.test_card import _nav, _no_exception, _switch, open_signed_in

pytestmark = pytest.mark.e2e


def _recommended(e2e_data) -> tuple[str, float]:
    """The customer with the highest wealth-management propensity among those within the risk limit (PD grade C
    or better), as the core ranks them with the shipped bundle — the card must offer them the product."""
    from profile_core.bundle import load_bundle
    from profile_core.campaign import rank_campaign
    from profile_core.features import build_features_from_frames
    from profile_core.views import portfolio_frame

    bundle = load_bundle(e2e_data["bundle"])
    features = build_features_from_frames(e2e_data["portfolio"].tables())
    frame = portfolio_frame(bundle.predict(features), features, bundle.tasks)
    best = rank_campaign(frame, bundle.tasks, "wm_purchase", 1, max_grade="C").selected.iloc[0]
    return str(best["customer_id"]), float(best["probability"])


def test_marketing_panel_and_campaign_list(server, page, artifacts, e2e_data):
    cid, p = _recommended(e2e_data)
    open_signed_in(page, server)
    _nav(page, "客户全景", "客户全景")
    _switch(page, cid)
    _no_exception(page)
    panel = page.locator(".st-key-customers-marketing")
    panel.scroll_into_view_if_needed()
    text = panel.inner_text()
    assert "营销视角" in text and "下一步推荐产品" in text
    assert f"推荐理财产品：购买倾向 {p:.1%}" in text and "主要原因：" in text
    assert "三个月内购买理财" in text and "三个月内流失" in text and "推高预测值的因素" in text  # the bundle's heads
    page.wait_for_timeout(300)
    panel.screenshot(path=str(artifacts / "marketing_card.png"))

    _nav(page, "组合概览", "组合概览")
    _no_exception(page)
    main = page.inner_text('[data-testid="stMain"]')
    assert "营销活动名单" in main and "预计成交" in main and "因风险排除" in main
    # the campaign section: from its heading to the end of its table (a tall viewport holds the whole page)
    page.set_viewport_size({"width": 1440, "height": 3000})
    wait_idle(page)
    title = page.get_by_role("heading", name="营销活动名单").bounding_box()
    frames = page.locator('[data-testid="stDataFrame"]')
    below = [b for b in (frames.nth(i).bounding_box() for i in range(frames.count())) if b and b["y"] > title["y"]]
    assert below, "no campaign table under the heading"
    bottom = below[0]["y"] + below[0]["height"] + 50  # the download button under the table
    page.screenshot(path=str(artifacts / "campaign.png"),
                    clip={"x": title["x"] - 10, "y": title["y"] - 10, "width": 1440 - title["x"],
                          "height": bottom - title["y"] + 10})
    page.set_viewport_size({"width": 1440, "height": 1000})
