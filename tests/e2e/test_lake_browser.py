"""The app on a read-only partitioned data set (``PROFILE_LAKE``, ``ui.lake``) in a real browser: a deep link opens
one customer's card read by key, the search box opens another, the portfolio and explanations pages show their
estimates from the cards' reference sample, and nothing is written into the lake.

The server process's memory is read from ``/proc/<pid>/status`` (VmRSS now, VmHWM the peak) before the first
session, after the first card, the second, the portfolio and the explanations page, and saved with the times to
open each card in ``artifacts/lake_app.json`` (measurements, not asserted); ``lake_card.png`` and
``lake_portfolio.png`` are the pages. By default the lake is a 300-customer one built here;
``PROFILE_E2E_LAKE`` and ``PROFILE_E2E_LAKE_FEATURES`` point the same test at a large lake
(``demo-data --customers 50000 --partitions 5 --out LAKE`` and ``features --data LAKE --out F``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, streamlit_server
from tests.e2e.test_browser import shot, wait_idle

pytestmark = pytest.mark.e2e

HEADER_HAS = "(id) => [...document.querySelectorAll('h3')].some(h => h.innerText.includes(id))"


def _server_pid() -> int:
    """The ``streamlit run`` child of this process (found in /proc: the fixture does not expose it)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me and b"streamlit" in cmdline:
            return int(entry.name)
    raise AssertionError("no streamlit server process")


def _memory_mb(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}


def _snapshot(*paths: Path) -> dict[str, tuple[int, int]]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): (f.stat().st_size, f.stat().st_mtime_ns) for f in files}


@pytest.fixture(scope="module")
def lake_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-lake")
    if os.environ.get("PROFILE_E2E_LAKE"):
        lake, features = Path(os.environ["PROFILE_E2E_LAKE"]), Path(os.environ["PROFILE_E2E_LAKE_FEATURES"])
    else:
        from profile_core.lake import lake_features, write_demo_lake

        lake, features = root / "lake", root / "features.parquet"
        write_demo_lake(lake, 300, 3, seed=7)
        lake_features(lake, features)
    env = {**os.environ, "PROFILE_WORKSPACE": str(root / "ws.duckdb"), "PROFILE_DEMO_DATA": str(root / "no-demo"),
           "PROFILE_MODELS": str(root / "models"), "PROFILE_LAKE": str(lake), "PROFILE_LAKE_FEATURES": str(features),
           "PROFILE_LAKE_BUNDLE": str(ROOT / "models" / "demo"), "PROFILE_AUTOLOGIN": "analyst"}
    try:
        with streamlit_server(env, root / "streamlit.log") as url:
            yield {"url": url, "lake": lake, "features": features, "pid": _server_pid(),
                   "customers": json.loads((lake / "_lake.json").read_text(encoding="utf-8"))["n_customers"]}
    finally:
        print((root / "streamlit.log").read_text(errors="replace")[-3000:])


def test_lake_card_in_the_browser(lake_server, page, artifacts):
    url, pid = lake_server["url"], lake_server["pid"]
    before = _snapshot(lake_server["lake"], lake_server["features"])
    memory = {"start": _memory_mb(pid)}
    first, second = "C000150", f"C{lake_server['customers'] - 7:06d}"  # another partition (the last one)

    start = time.perf_counter()
    page.goto(f"{url}/customers?id={first}")  # a deep link, signed in automatically as the demo analyst
    page.wait_for_function(HEADER_HAS, arg=first, timeout=180_000)
    first_s = time.perf_counter() - start
    wait_idle(page, timeout=180_000)
    assert not page.query_selector('[data-testid="stException"]')
    memory["first_card"] = _memory_mb(pid)
    sidebar = page.inner_text('[data-testid="stSidebar"]')
    assert "数据湖，只读" in sidebar
    assert f"{lake_server['customers']:,} 位客户" in page.inner_text('[data-testid="stMain"]')

    box = page.get_by_role("textbox", name="客户ID", exact=True)
    box.fill(second)
    start = time.perf_counter()
    box.press("Enter")
    page.wait_for_function(HEADER_HAS, arg=second, timeout=60_000)
    second_s = time.perf_counter() - start
    wait_idle(page)
    memory["second_card"] = _memory_mb(pid)
    shot(page, artifacts, "lake_card")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("组合概览", exact=True).click()
    page.wait_for_function("() => document.body.innerText.includes('数据湖上的组合概览是估计值')")
    wait_idle(page)
    assert len(page.query_selector_all('[data-testid="stPlotlyChart"]')) >= 4  # from the reference sample
    memory["portfolio_page"] = _memory_mb(pid)
    shot(page, artifacts, "lake_portfolio")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("模型解释", exact=True).click()
    page.wait_for_function("() => document.body.innerText.includes('全局图基于数据湖')", timeout=180_000)
    wait_idle(page, timeout=180_000)
    assert not page.query_selector('[data-testid="stException"]')
    memory["explanations_page"] = _memory_mb(pid)

    assert _snapshot(lake_server["lake"], lake_server["features"]) == before  # nothing written into the lake
    (artifacts / "lake_app.json").write_text(json.dumps({
        "customers": lake_server["customers"], "memory_mb": memory,
        "first_card_s": round(first_s, 2), "second_card_s": round(second_s, 2),
        "note": "first card: server start to card, including the 10k reference sample read and scored once"},
        indent=2), encoding="utf-8")
