"""What-if, recourse and fairness in a real browser (Debian chromium via Playwright against ``streamlit run app.py``
with the shipped demo bundle): on the card of a customer the core finds a path to a better grade for, the what-if
rescoring every head and the recourse sentence with its grade change; the monitoring page's fairness section.
Saves ``whatif.png``, ``recourse.png`` and ``fairness.png`` (the README's screenshots)."""

from __future__ import annotations

import pytest

from tests.e2e.test_browser import wait_idle
from tests.e2e.test_card import _nav, _no_exception, _switch, open_signed_in

pytestmark = pytest.mark.e2e


def _with_recourse(e2e_data):
    """A customer graded C–E by the shipped bundle for whom the core finds the path to one grade better."""
    from profile_core.bundle import load_bundle
    from profile_core.features import build_features_from_frames
    from profile_core.scoring import score_chunk
    from profile_core.whatif import next_grade_recourse

    bundle = load_bundle(e2e_data["bundle"])
    features = build_features_from_frames(e2e_data["portfolio"].tables())
    scored = score_chunk(bundle, features).assign(customer_id=features["customer_id"].astype(str).to_numpy())
    for cid in scored.loc[scored["pd_grade"].isin(["C", "D", "E"]), "customer_id"].head(12):
        view = next_grade_recourse(bundle, features, cid, "zh")
        if view is not None and view.table is not None:
            return cid, view
    pytest.fail("no customer of the e2e portfolio has a path to a better grade")


def _expander(page, title: str):
    box = page.locator('[data-testid="stExpander"]').filter(has_text=title)
    box.locator("summary").click()
    return box


def test_what_if_recourse_and_fairness(server, page, artifacts, e2e_data):
    cid, view = _with_recourse(e2e_data)
    open_signed_in(page, server)
    _nav(page, "客户全景", "客户全景")
    _switch(page, cid)
    _no_exception(page)

    whatif = _expander(page, "假设分析（不写入数据）")
    whatif.scroll_into_view_if_needed()
    first = whatif.locator('input[type="number"]').first
    first.fill("0" if float(first.input_value()) > 0 else "1")  # a visible change of the first attribute
    first.press("Enter")
    wait_idle(page)
    whatif.get_by_role("button", name="模拟").click()
    wait_idle(page)
    _no_exception(page)
    whatif.get_by_text("假设后的原因").wait_for()
    assert whatif.locator('[data-testid="stDataFrame"]').count() == 1  # every head, before and after
    whatif.screenshot(path=str(artifacts / "whatif.png"))

    recourse = _expander(page, "如何达到更好的等级？")
    recourse.scroll_into_view_if_needed()
    recourse.get_by_role("button", name="寻找最小改变").click()
    wait_idle(page)
    _no_exception(page)
    text = recourse.inner_text()
    assert view.sentence in text  # the same sentence the report shows, grade change included
    assert f"→{view.target_grade}" in view.sentence
    page.wait_for_timeout(300)
    recourse.screenshot(path=str(artifacts / "recourse.png"))

    _nav(page, "模型监控", "模型监控")
    _no_exception(page)
    heading = page.get_by_role("heading", name="分组公平性")
    heading.scroll_into_view_if_needed()
    main = page.inner_text('[data-testid="stMain"]')
    assert "五分之四规则" in main and "分组依据" in main
    page.set_viewport_size({"width": 1440, "height": 3000})
    wait_idle(page)
    top = heading.bounding_box()
    frames = page.locator('[data-testid="stDataFrame"], [data-testid="stPlotlyChart"]')
    below = [b for b in (frames.nth(i).bounding_box() for i in range(frames.count())) if b and b["y"] > top["y"]]
    assert below, "no fairness table under the heading"
    bottom = max(b["y"] + b["height"] for b in below[:3]) + 20
    page.screenshot(path=str(artifacts / "fairness.png"),
                    clip={"x": top["x"] - 10, "y": top["y"] - 10, "width": 1440 - top["x"],
                          "height": bottom - top["y"] + 10})
