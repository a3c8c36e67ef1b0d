"""Fixtures for the browser tests: a Streamlit server on a free port over temporary data, and Playwright
driving Debian's /usr/bin/chromium (never a downloaded browser)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from profile_core.local_server import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def e2e_data(tmp_path_factory):
    """A 300-customer demo portfolio in a temporary folder, scored by the shipped demo bundle (models/demo),
    so the screenshots show what a newcomer sees."""
    from profile_core.synth import generate_portfolio, write_portfolio

    root = tmp_path_factory.mktemp("e2e")
    portfolio = generate_portfolio(300, seed=7)
    write_portfolio(portfolio, root / "demo")
    return {"root": root, "portfolio": portfolio, "bundle": ROOT / "models" / "demo"}


@contextmanager
def streamlit_server(env: dict[str, str], log_path: Path):
    """``streamlit run app.py`` on a free port of 127.0.0.1 with ``env``; yields the base URL, stops it after."""
    port = free_port()
    log = open(log_path, "wb")  # closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/_stcore/health", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def server(e2e_data):
    """The app over a temporary workspace, signed in automatically as the demo analyst; yields the base URL."""
    root = e2e_data["root"]
    env = {**os.environ,
           "PROFILE_WORKSPACE": str(root / "ws.duckdb"), "PROFILE_DEMO_DATA": str(root / "demo"),
           "PROFILE_DEMO_BUNDLE": str(e2e_data["bundle"]), "PROFILE_MODELS": str(root / "models"),
           "PROFILE_AUTOLOGIN": "analyst"}  # demo sign-in (ui.auth)
    try:
        with streamlit_server(env, root / "streamlit.log") as url:
            yield url
    finally:
        print((root / "streamlit.log").read_text(errors="replace")[-3000:])


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
