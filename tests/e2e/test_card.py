"""The customer panorama and the explanations page in a real browser (Debian chromium via Playwright against
``streamlit run app.py``, the server fixture of ``conftest.py``).

Switches customers five times and times each switch — from pressing Enter in the customer selectbox to the new
card header being visible, and to the page being idle again — into ``artifacts/card_timings.json``; saves
``customer_card.png``, ``customer_card_en.png`` and ``explanations.png`` (full pages).
"""

from __future__ import annotations

import json
import statistics
import time

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_browser import IDLE, shot, wait_idle

pytestmark = pytest.mark.e2e

SWITCHES = 5
HEADER_HAS = "(id) => [...document.querySelectorAll('h3')].some(h => h.innerText.includes(id))"


def _demo_password() -> str:
    from profile_core.auth import load_users

    return load_users(ROOT / "config" / "users.yaml").demo_password or ""


def _nav(page, label: str, title: str) -> None:
    """Open a page through the sidebar (a reload would start a new, signed-out session)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(label, exact=True).click()
    page.wait_for_function("(t) => document.querySelector('h1')?.innerText.trim() === t", arg=title)
    wait_idle(page)


def open_signed_in(page, server) -> None:
    """The app as the demo analyst (signing in through the form unless the server signs in automatically),
    on the demo dataset."""
    page.goto(server)
    wait_idle(page)
    if page.locator('[data-testid="stForm"]').count():
        page.get_by_label("用户名").fill("analyst")
        page.get_by_label("密码").fill(_demo_password())
        page.get_by_role("button", name="登录").click()
        page.wait_for_function("() => document.querySelector('[data-testid=\"stSidebarNav\"]') !== null")
        wait_idle(page)
    if "当前数据集: demo" not in page.inner_text('[data-testid="stSidebar"]'):  # another test made 'main' default
        _nav(page, "数据", "数据")
        page.locator('[data-testid="stSelectbox"]').filter(has_text="当前数据集").click()
        page.get_by_role("option", name="demo", exact=True).click()
        wait_idle(page)


def _no_exception(page) -> None:
    assert not page.query_selector('[data-testid="stException"]'), page.inner_text('[data-testid="stException"]')


def _switch(page, customer_id: str) -> tuple[float, float]:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="选择客户")
    box.click()
    page.keyboard.type(customer_id)
    page.get_by_role("option").filter(has_text=customer_id).first.wait_for()
    start = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function(HEADER_HAS, arg=customer_id, polling=16, timeout=30_000)
    header = time.perf_counter() - start
    page.wait_for_function(IDLE, polling=16, timeout=30_000)
    return header, time.perf_counter() - start


def test_customer_card_switch_times_and_screenshots(server, page, artifacts, e2e_data):
    open_signed_in(page, server)
    start = time.perf_counter()
    _nav(page, "客户全景", "客户全景")
    first_render = time.perf_counter() - start
    _no_exception(page)
    ids = e2e_data["portfolio"].customers["customer_id"].tolist()
    assert page.locator("h3").first.inner_text().endswith(ids[0])
    assert "模型辅助，人工决策" in page.inner_text('[data-testid="stMain"]')
    assert page.locator(".js-plotly-plot").count() == 3  # gauge, monthly flows, login heat map

    header_s, idle_s = [], []
    for cid in ids[7:7 + 7 * SWITCHES:7]:
        to_header, to_idle = _switch(page, cid)
        header_s.append(round(to_header, 3))
        idle_s.append(round(to_idle, 3))
        assert cid in page.locator("h3").first.inner_text()
        _no_exception(page)
    shot(page, artifacts, "customer_card")

    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Customer panorama'")
    wait_idle(page)
    main = page.inner_text('[data-testid="stMain"]')
    assert "Predicted credit score" in main and "Basic information" in main and "预测信用评分" not in main
    shot(page, artifacts, "customer_card_en")
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()  # kept per user: back
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === '客户全景'")
    wait_idle(page)

    (artifacts / "card_timings.json").write_text(json.dumps({
        "unit": "seconds, browser side: Enter in the customer selectbox → the new card header visible (header) "
                "and → the page idle again (idle); first render: sidebar click → customers page idle",
        "customers": len(ids), "switches": len(header_s),
        "switch_to_header": header_s, "switch_to_idle": idle_s,
        "median_switch_to_header": statistics.median(header_s), "median_switch_to_idle": statistics.median(idle_s),
        "first_render_customers_page": round(first_render, 2),
    }, indent=2, ensure_ascii=False), encoding="utf-8")


def test_explanations_page(server, page, artifacts):
    open_signed_in(page, server)
    start = time.perf_counter()
    _nav(page, "模型解释", "模型解释")
    elapsed = time.perf_counter() - start
    _no_exception(page)
    main = page.inner_text('[data-testid="stMain"]')
    assert "DeepSHAP" in main and "基准值" in main
    assert page.locator(".js-plotly-plot").count() >= 1 + 1 + 1 + 3  # waterfall, importance, beeswarm, dependence
    shot(page, artifacts, "explanations")
    timings = artifacts / "card_timings.json"
    data = json.loads(timings.read_text(encoding="utf-8")) if timings.exists() else {}
    data["first_render_explanations_page"] = round(elapsed, 2)
    timings.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
