"""The app in a real browser: Debian chromium driven by Playwright against ``streamlit run app.py``.

Opens every page (screenshots in ``tests/e2e/artifacts/<page>.png``, render times in ``timings.json``),
uploads a file on the data page, trains a tiny model with live curves, switches to English.
"""

from __future__ import annotations

import io
import json
import time

import pytest

pytestmark = pytest.mark.e2e

#: The script has finished (``notRunning``), no element is still a loading skeleton, and a title is shown.
IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelectorAll('[data-testid="stSkeleton"]').length) return false;
  return document.querySelector('h1') !== null;
}"""
PAGES = [("data", "", "数据"), ("model", "model", "模型"), ("customers", "customers", "客户全景"),
         ("explanations", "explanations", "模型解释"), ("portfolio", "portfolio", "组合概览")]
TIMINGS: dict[str, float] = {}


def wait_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_function(IDLE, timeout=timeout)
    page.wait_for_timeout(250)  # a rerun requested at the end of a run (st.rerun) starts within this
    page.wait_for_function(IDLE, timeout=timeout)


def shot(page, artifacts, name: str) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, so grow the viewport."""
    height = page.evaluate("""() => {
      const main = document.querySelector('[data-testid="stMain"]');
      return Math.max(main ? main.scrollHeight : 0, document.body.scrollHeight);
    }""")
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 40, 900), 6000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


def open_page(page, server, path: str, title: str) -> float:
    start = time.perf_counter()
    page.goto(f"{server}/{path}")
    wait_idle(page)
    elapsed = time.perf_counter() - start
    assert page.inner_text("h1").strip() == title
    assert not page.query_selector('[data-testid="stException"]'), page.inner_text('[data-testid="stException"]')
    return elapsed


def test_deep_link_first(server, page):
    """A fresh server whose first request is a deep link still runs the router (sidebar, bootstrap)."""
    TIMINGS["first_request_deep_link_with_demo_load"] = round(open_page(page, server, "portfolio", "组合概览"), 2)
    sidebar = page.inner_text('[data-testid="stSidebar"]')
    assert "模型辅助，人工决策" in sidebar and "数据" in sidebar and "demo" in sidebar


def test_every_page_renders(server, page, artifacts):
    open_page(page, server, "", "数据")  # warm-up: the first session of a fresh server loads the demo data
    for name, path, title in PAGES:
        TIMINGS[name] = round(open_page(page, server, path, title), 2)
        sidebar = page.inner_text('[data-testid="stSidebar"]')
        assert "模型辅助，人工决策" in sidebar and "demo" in sidebar  # the shell on every page
        shot(page, artifacts, name)
    assert page.locator(".js-plotly-plot").count() == 7  # 5 risk charts + a histogram per marketing head
    (artifacts / "timings.json").write_text(json.dumps(
        {"unit": "seconds from navigation to an idle page (new session each)", "pages": TIMINGS},
        indent=2, ensure_ascii=False), encoding="utf-8")


def test_train_with_live_curves(server, page, artifacts):
    open_page(page, server, "model", "模型")
    epochs = page.get_by_label("最多轮次")
    epochs.fill("3")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_text("同时训练基线").click()
    wait_idle(page)
    assert page.get_by_role("checkbox", name="每个任务再融合一个 LightGBM（混合头）").is_checked()  # on by default
    page.get_by_role("button", name="开始训练").click()
    page.get_by_text("取消训练").first.wait_for()  # the live panel polls while the worker runs
    page.screenshot(path=str(artifacts / "model_training_live.png"))
    page.get_by_text("训练完成").first.wait_for(timeout=180_000)  # then a full rerun shows the results
    wait_idle(page)
    page.get_by_text("多任务模型与单任务基线对比").first.wait_for()
    assert page.locator(".js-plotly-plot").count() >= 3  # loss, metric and comparison charts
    hybrid = page.locator("h1, h2, h3, p, div").filter(has_text="混合头：各任务中网络的权重").last
    hybrid.wait_for()
    hybrid.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "model_hybrid.png"))
    shot(page, artifacts, "model_trained")
    page.get_by_role("button", name="保存模型包").click()
    page.get_by_text("并设为当前模型").first.wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("tab", name="模型包").click()
    page.get_by_text("数据指纹").first.wait_for()
    shot(page, artifacts, "model_bundles")


def _flat_csv(portfolio, n: int = 30) -> bytes:
    credit = portfolio.credit_records.sort_values("as_of").groupby("customer_id").tail(1)
    flat = portfolio.customers.merge(credit[["customer_id", "credit_score", "default_flag", "risk_level"]],
                                     on="customer_id").head(n)
    buf = io.StringIO()
    flat.rename(columns={"customer_id": "客户ID", "credit_score": "信用评分", "default_flag": "违约"}).to_csv(
        buf, index=False)
    return buf.getvalue().encode("gb18030")


def test_demo_account_cannot_upload(server, page):
    """Demo accounts work only on demo data: no uploader, a sentence saying why, the demo reload stays
    (the upload itself, as a real analyst: tests/e2e/test_workplace.py)."""
    open_page(page, server, "", "数据")
    assert not page.query_selector('[data-testid="stFileUploaderDropzoneInput"]')
    assert "正式账户" in page.inner_text('[data-testid="stMain"]')
    assert page.get_by_role("button", name="载入演示数据").count() == 1


def test_switch_to_english(server, page, artifacts):
    open_page(page, server, "", "数据")
    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Data'")
    wait_idle(page)
    nav = page.inner_text('[data-testid="stSidebarNav"]')
    assert "Portfolio" in nav and "Customers" in nav
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Portfolio").click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === 'Portfolio overview'")
    wait_idle(page)
    shot(page, artifacts, "portfolio_en")
    # the language is kept per user: back to 中文, so the demo analyst's later sessions (other tests) open in it
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()
    page.wait_for_function("() => document.querySelector('h1')?.innerText.trim() === '组合概览'")
    wait_idle(page)
