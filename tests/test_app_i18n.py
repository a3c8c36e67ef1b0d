"""Every page in both languages is free of raw message keys (``t()`` returns the key itself when a message is
missing). Walks all pages as an admin (every page) in 中文 and English with AppTest and collects every text an
element shows: titles, captions, markdown, alerts, widget labels and options, tab labels, table headers."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from profile_core.i18n import catalogue, t
from tests.test_app import APP, TIMEOUT, demo_env, env  # noqa: F401 — fixtures reused
from ui import keys
from ui.keys import PagePath

TITLES = {PagePath.DATA: "data", PagePath.MODEL: "model", PagePath.CUSTOMERS: "customers",
          PagePath.EXPLANATIONS: "explanations", PagePath.PORTFOLIO: "portfolio", PagePath.MONITORING: "monitor",
          PagePath.AUDIT: "audit", PagePath.COHORTS: "cohorts"}
NAMESPACES = {key.split(".", 1)[0] for key in catalogue()}
KEY = re.compile(r"(?<![\w./-])([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)(?![\w/-])")


def raw_keys(text: str) -> list[str]:
    """Substrings shaped like a catalogue key of a known namespace (``monitor.title``), not file names."""
    return [m for m in KEY.findall(text) if m.split(".", 1)[0] in NAMESPACES
            and not re.search(r"\.(csv|xlsx?|parquet|json|jsonl|duckdb|yaml|html|png)$", m)]


def test_raw_key_detector() -> None:
    assert raw_keys("标题 monitor.title 与 data.kind.flat") == ["monitor.title", "data.kind.flat"]
    assert raw_keys("bank.csv · ws.duckdb.audit.jsonl · 3.5 · e.g. · https://x.org/a.b") == []


def _texts(at: AppTest) -> list[str]:
    out: list[str] = []
    for kind in ("title", "header", "subheader", "caption", "markdown", "info", "warning", "error", "success",
                 "metric", "toast"):
        for el in at.get(kind):
            out.append(str(getattr(el, "value", "") or ""))
            out.append(str(getattr(el, "label", "") or ""))
    for kind in ("button", "selectbox", "multiselect", "radio", "text_input", "number_input", "toggle", "checkbox",
                 "date_input", "slider", "select_slider", "text_area", "download_button", "tab", "expander"):
        for el in at.get(kind):
            out.append(str(getattr(el, "label", "") or ""))
            out.append(str(getattr(el, "help", "") or ""))
            for option in getattr(el, "options", None) or []:
                out.append(str(option))
    for df in at.dataframe:
        out.extend(str(c) for c in df.value.columns)
    return out


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_shows_no_raw_message_key(env, lang):  # noqa: F811 - the fixture
    found: dict[str, list[str]] = {}
    for page in PagePath:  # a fresh session per page: what a user opening that page in ``lang`` sees
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.session_state[keys.ROLE] = "admin"  # the demo admin: every page
        at.session_state[keys.LANG] = lang
        at.run()
        at.switch_page(str(page)).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        texts = _texts(at)
        assert t(f"{TITLES[page]}.title", lang) in texts and len(texts) > 10  # the walker sees the page
        keys_ = sorted({k for text in texts for k in raw_keys(text)})
        if keys_:
            found[page.name] = keys_
    assert found == {}, f"untranslated message keys on screen ({lang}): {found}"
