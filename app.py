"""客户全景画像 · Customer Panorama — the Streamlit router.

Run: ``streamlit run app.py``. Wiring only: sign-in (``ui.auth``), the pages the signed-in user's role may open,
sidebar (language, user and sign-out, active data and model, the 模型辅助，人工决策 notice), first-start setup,
the demo banner, audit of model actions, log redaction. Everything else lives in ``app_pages/``, ``ui/`` and
``profile_core``. The page folder is deliberately not called ``pages/``: Streamlit runs a folder of that
name as a legacy multipage app until some session has executed ``st.navigation``, so a deep link
(``/portfolio``) as a fresh server's first request would run the page without this router. Pages a role may
not open are not in its navigation, so their URLs do not run for it.

Environment: ``PROFILE_WORKSPACE`` (DuckDB file), ``PROFILE_MODELS``, ``PROFILE_DEMO_DATA``,
``PROFILE_DEMO_BUNDLE``; sign-in: ``PROFILE_USERS``, ``PROFILE_DEMO``, ``PROFILE_AUTOLOGIN``,
``PROFILE_SESSION_MINUTES``; ``PROFILE_AUDIT`` (audit log file); ``PROFILE_LAKE`` with ``PROFILE_LAKE_FEATURES`` (and
``PROFILE_LAKE_BUNDLE``): a partitioned data set shown read-only, one customer read by key (``ui.lake``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from profile_core.audit import install_log_redaction
from profile_core.auth import allowed
from profile_core.i18n import LANGS, t
from ui import audit, auth, cache, keys, lake, registry, state
from ui.keys import PagePath
from ui.loading import bootstrap, sync_active

log = logging.getLogger(__name__)
FAVICON = state.ROOT / "ui" / "assets" / "favicon.png"
#: (page, title key, icon, the permission needed to open it — profile_core.auth.PERMISSIONS)
_PAGES = (
    (PagePath.DATA, "nav.data", ":material/database:", "view_customers"),
    (PagePath.MODEL, "nav.model", ":material/model_training:", "train"),
    (PagePath.CUSTOMERS, "nav.customers", ":material/account_circle:", "view_customers"),
    (PagePath.EXPLANATIONS, "nav.explanations", ":material/insights:", "view_customers"),
    (PagePath.PORTFOLIO, "nav.portfolio", ":material/monitoring:", "view_customers"),
    (PagePath.COHORTS, "nav.cohorts", ":material/compare:", "view_customers"),
    (PagePath.MONITORING, "nav.monitoring", ":material/query_stats:", "view_monitoring"),
    (PagePath.AUDIT, "nav.audit", ":material/policy:", "view_audit"),
)


def _language() -> None:
    def changed() -> None:
        state.set_lang(st.session_state[keys.LANG_RADIO])
        auth.save_lang(state.lang())  # kept per user in the workspace: the next sign-in opens in it

    st.session_state[keys.LANG_RADIO] = state.lang()  # follows a language restored at sign-in
    st.radio(t("app.language", state.lang()), LANGS, key=keys.LANG_RADIO, horizontal=True,
             format_func=lambda code: t(f"app.lang.{code}", code), on_change=changed)


def _login_pages() -> list:
    """Signed out: the login page at ``/login`` and at every page's own address, so a deep link
    (``/customers?id=C000123``) shows the login form cleanly and, once signed in, the same URL — page and
    parameters — runs the real page."""
    def login_at(stem: str):
        def page() -> None:
            auth.login_page()
        page.__name__ = f"login_{stem}"
        return page

    pages = [st.Page(auth.login_page, title=state.tr("auth.title"), icon=":material/login:", url_path="login",
                     default=True)]
    for path, *_ in _PAGES:
        stem = Path(path).stem
        pages.append(st.Page(login_at(stem), title=state.tr("auth.title"), icon=":material/login:", url_path=stem))
    return pages


def _on_reveal() -> None:
    value = bool(st.session_state[keys.REVEAL_TOGGLE])
    state.set_reveal(value)
    audit.record("reveal", str(state.active_dataset() or ""), on=value)


def sidebar(user) -> None:
    with st.sidebar:
        # The chosen values live in plain session keys (ui.state), copied from the widgets on change, so
        # they survive page switches even when Streamlit forgets a widget's state.
        _language()
        auth.sidebar_user(user)
        if allowed(state.policy(), "reveal"):
            st.toggle(state.tr("app.reveal"), value=state.reveal(), key=keys.REVEAL_TOGGLE, on_change=_on_reveal,
                      help=state.tr("trust.reveal_help"))
        st.divider()
        if lake.active():  # a read-only lake: its name and the model its cards use
            dataset, bundle_name = lake.sidebar_names()
        else:
            dataset, bundle = state.active_dataset(), state.active_bundle()
            bundle_name = bundle.name if bundle else None
        st.caption(f"{state.tr('app.active_dataset')}: **{dataset or state.tr('app.none')}**")
        st.caption(f"{state.tr('app.active_bundle')}: **{bundle_name or state.tr('app.none')}**")
        st.info(state.tr("app.notice"), icon=":material/gavel:")


def _redact_names() -> None:
    """Customer names of the active dataset never reach the logs (``profile_core.audit.RedactingFilter``)."""
    try:
        customers = cache.active_tables().get("customers")
        if customers is not None and "name" in customers.columns:
            install_log_redaction().set_names(customers["name"].dropna().tolist(),
                                              key=cache.dataset_fingerprint(state.active_dataset()) or "")
    except Exception:  # noqa: BLE001 - never take a page down for this
        log.error("log redaction: reading customer names failed")


def main() -> None:
    # a local favicon: a ":material/…:" page icon makes the browser fetch an SVG from fonts.gstatic.com
    st.set_page_config(page_title=state.tr("app.title"), page_icon=str(FAVICON), layout="wide")
    install_log_redaction()
    user = auth.gate()
    if user is None:
        with st.sidebar:
            _language()
        st.navigation(_login_pages(), position="hidden").run()
        return
    policy = state.policy()
    pages = [st.Page(str(path), title=state.tr(title), icon=icon)
             for path, title, icon, permission in _PAGES if allowed(policy, permission)]
    page = st.navigation(pages)  # the first page allowed is the default
    if not lake.active():  # on a lake nothing portfolio-wide is loaded, warmed or written (ui.lake)
        bootstrap()
        sync_active()
        _redact_names()
        try:
            cache.warm_active()  # predictions, cards and explanations built in the background, once per model × data
        except Exception:  # noqa: BLE001 - the pages compute what they need themselves
            log.exception("starting the warm-up failed")
    audit.watch_session()
    sidebar(user)
    if user.demo:
        auth.demo_banner()
    registry.rm_assignment_notice()
    page.run()


main()
