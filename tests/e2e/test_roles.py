"""Signing in through the login form in a real browser, as a relationship manager and as an analyst: the
customer card shows the RM's own customer in full and the analyst's masked. Screenshots:
``tests/e2e/artifacts/role_rm.png``, ``role_analyst.png`` (and ``login.png``).

Uses its own server *without* ``PROFILE_AUTOLOGIN`` (the shared one signs in automatically)."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import streamlit_server
from tests.e2e.test_browser import shot, wait_idle

pytestmark = pytest.mark.e2e
DEMO_PASSWORD = "demo2024"


@pytest.fixture(scope="module")
def login_server(e2e_data, tmp_path_factory):
    root = e2e_data["root"]
    work = tmp_path_factory.mktemp("roles")
    env = {k: v for k, v in os.environ.items() if k != "PROFILE_AUTOLOGIN"}
    env |= {"PROFILE_WORKSPACE": str(work / "ws.duckdb"), "PROFILE_DEMO_DATA": str(root / "demo"),
            "PROFILE_DEMO_BUNDLE": str(e2e_data["bundle"]), "PROFILE_MODELS": str(work / "models")}
    with streamlit_server(env, work / "streamlit.log") as url:
        yield url, work


def _sign_in(page, url: str, user: str) -> None:
    page.goto(url)
    wait_idle(page)
    assert page.inner_text("h1").strip() == "登录"
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_function("() => document.querySelector('h1') && document.querySelector('h1').innerText.trim() "
                           "=== '数据'", timeout=90_000)
    wait_idle(page)


@pytest.mark.parametrize("user", ["rm01", "analyst"])
def test_card_as_role(login_server, page, artifacts, e2e_data, user):
    url, _ = login_server
    if user == "rm01":
        page.goto(url)
        wait_idle(page)
        shot(page, artifacts, "login")
    _sign_in(page, url, user)
    page.get_by_role("link", name="客户全景").click()  # the navigation keeps the signed-in session
    page.wait_for_function("() => document.querySelector('h1') && document.querySelector('h1').innerText.trim() "
                           "=== '客户全景'", timeout=60_000)
    wait_idle(page)
    page.wait_for_timeout(1500)  # the card's fragment and charts settle
    wait_idle(page)
    assert not page.query_selector('[data-testid="stException"]')
    body = page.inner_text('[data-testid="stMain"]')
    sidebar = page.inner_text('[data-testid="stSidebar"]')
    customers = e2e_data["portfolio"].customers
    if user == "rm01":
        own = customers[customers["rm_id"] == "RM001"]
        assert own["name"].iloc[0] in body  # their own customer in full
        others = customers[customers["rm_id"] != "RM001"]
        assert not [n for n in others["name"] if n in body]
        assert "客户经理" in sidebar and "RM001" in sidebar
    else:
        assert not [n for n in customers["name"] if n in body]  # masked for the analyst
        assert customers["name"].iloc[0][0] + "*" in body
        assert "风险分析师" in sidebar
    assert "演示模式" in body  # the demo banner
    shot(page, artifacts, f"role_{'rm' if user == 'rm01' else 'analyst'}")


def test_export_from_the_browser_is_masked_and_audited(login_server, page, e2e_data):
    """The data page's export as the analyst: a CSV with names masked, and an ``export`` entry in the log."""
    import json

    url, work = login_server
    _sign_in(page, url, "analyst")
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="导出 CSV（按当前角色脱敏）").click()
    data = open(info.value.path(), encoding="utf-8-sig").read()
    customers = e2e_data["portfolio"].customers
    assert customers["customer_id"].iloc[0] in data
    assert not [n for n in customers["name"] if n in data] and not [p for p in customers["phone"] if p in data]
    entries = [json.loads(line) for line in open(work / "ws.duckdb.audit.jsonl", encoding="utf-8")]
    export = [e for e in entries if e["action"] == "export"][-1]
    assert export["user"] == "analyst" and export["details"]["rows"] == len(customers)
