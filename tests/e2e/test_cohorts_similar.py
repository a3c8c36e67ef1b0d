"""Cohorts and similar customers in a real browser (Debian chromium via Playwright against ``streamlit run app.py``,
the server fixture of ``conftest.py``): the card's similar-customers section (``similar_customers.png``) and the
cohorts page comparing all customers with the riskiest ones, saving a cohort with the data set
(``cohorts.png``)."""

from __future__ import annotations

import pytest

from profile_core.cohorts import SHAP_SAMPLE
from tests.e2e.test_browser import shot, wait_idle
from tests.e2e.test_card import _nav, _no_exception, open_signed_in

pytestmark = pytest.mark.e2e

#: Top and bottom (page coordinates) of the section from the "相似客户" heading to the table after it.
SECTION = """() => {
  const h = [...document.querySelectorAll('h3')].find(e => e.innerText.trim() === '相似客户');
  if (!h) return null;
  const tables = [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .filter(t => h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
  const top = h.getBoundingClientRect().top + window.scrollY;
  const end = tables.length ? tables[0].getBoundingClientRect().bottom + window.scrollY : top + 400;
  return [top, end];
}"""


def test_similar_customers_on_the_card(server, page, artifacts):
    open_signed_in(page, server)
    _nav(page, "客户全景", "客户全景")
    _no_exception(page)
    page.wait_for_function(f"() => ({SECTION})() !== null")
    main = page.inner_text('[data-testid="stMain"]')
    assert "在模型的共享表示中与该客户最接近的 5 位客户" in main
    assert "位已知结果的相似客户中" in main  # the demo data has outcomes
    shot(page, artifacts, "customer_card_with_similar")
    height = page.evaluate("""() => {
      const main = document.querySelector('[data-testid="stMain"]');
      return Math.max(main ? main.scrollHeight : 0, document.body.scrollHeight);
    }""")
    page.set_viewport_size({"width": 1440, "height": min(max(int(height) + 40, 900), 6000)})
    page.wait_for_timeout(300)
    top, end = page.evaluate(f"({SECTION})()")
    page.screenshot(path=str(artifacts / "similar_customers.png"), full_page=True,
                    clip={"x": 250, "y": max(top - 16, 0), "width": 1190, "height": end - top + 40})
    page.set_viewport_size({"width": 1440, "height": 1000})


def test_cohorts_page_compares_and_saves(server, page, artifacts):
    open_signed_in(page, server)
    _nav(page, "客群对比", "客群对比")
    _no_exception(page)
    main = page.inner_text('[data-testid="stMain"]')
    assert "全部客户 · 客户数" in main and "高风险客户 · 客户数" in main
    assert "300" in main  # every customer of the demo portfolio in cohort A
    assert "客群之间的漂移（PSI）" in main and f"最多随机抽取 {SHAP_SAMPLE} 位客户" in main
    assert page.locator(".js-plotly-plot").count() >= 3  # distributions by role + the first head's importance
    shot(page, artifacts, "cohorts")  # all customers against the riskiest grades
    page.get_by_role("button", name="保存客群").nth(1).click()  # cohort B: the riskiest grades
    wait_idle(page)
    _no_exception(page)
    assert "客群「高风险客户」已随当前数据集保存" in page.inner_text('[data-testid="stMain"]')
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="已保存的客群").first
    box.click()
    page.get_by_role("option", name="高风险客户", exact=True).click()
    wait_idle(page)
    _no_exception(page)
    assert "grade in" in page.inner_text('[data-testid="stMain"]')  # the saved cohort's filters, as saved
    page.get_by_role("button", name="删除此客群").click()  # leave the shared workspace as it was
    wait_idle(page)
    assert "客群「高风险客户」已删除" in page.inner_text('[data-testid="stMain"]')
