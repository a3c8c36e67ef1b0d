"""客户全景画像 · Customer Panorama — the Streamlit router.

Run: ``streamlit run app.py``. Wiring only: page list, sidebar (language, role, active data and model,
the 模型辅助，人工决策 notice), first-start setup. Everything else lives in ``app_pages/``, ``ui/`` and
``profile_core``. The page folder is deliberately not called ``pages/``: Streamlit runs a folder of that
name as a legacy multipage app until some session has executed ``st.navigation``, so a deep link
(``/portfolio``) as a fresh server's first request would run the page without this router. Environment: ``PROFILE_WORKSPACE`` (DuckDB file), ``PROFILE_MODELS``,
``PROFILE_DEMO_DATA``, ``PROFILE_DEMO_BUNDLE``.
"""

from __future__ import annotations

import streamlit as st

from profile_core.i18n import LANGS, t
from ui import cache, keys, state
from ui.keys import PagePath
from ui.loading import bootstrap, sync_active

_PAGES = (
    (PagePath.DATA, "nav.data", ":material/database:", True),
    (PagePath.MODEL, "nav.model", ":material/model_training:", False),
    (PagePath.CUSTOMERS, "nav.customers", ":material/account_circle:", False),
    (PagePath.EXPLANATIONS, "nav.explanations", ":material/insights:", False),
    (PagePath.PORTFOLIO, "nav.portfolio", ":material/monitoring:", False),
)


def sidebar() -> None:
    with st.sidebar:
        # The chosen values live in plain session keys (ui.state), copied from the widgets on change, so
        # they survive page switches even when Streamlit forgets a widget's state.
        st.radio(t("app.language", state.lang()), LANGS, index=LANGS.index(state.lang()), key=keys.LANG_RADIO,
                 horizontal=True, format_func=lambda code: t(f"app.lang.{code}", code),
                 on_change=lambda: state.set_lang(st.session_state[keys.LANG_RADIO]))
        st.selectbox(state.tr("app.role"), state.ROLES, index=state.ROLES.index(state.role()), key=keys.ROLE_SELECT,
                     format_func=state.labeller("app.roles."), help=state.tr("app.role_help"),
                     on_change=lambda: state.set_role(st.session_state[keys.ROLE_SELECT]))
        if state.role() == "rm":
            managers = cache.rm_ids()
            if managers and state.rm_id() not in managers:
                state.set_rm_id(managers[0])
            if managers:
                st.selectbox(state.tr("app.rm_id"), managers, index=managers.index(state.rm_id()),
                             key=keys.RM_SELECT, on_change=lambda: state.set_rm_id(st.session_state[keys.RM_SELECT]))
            else:
                st.caption(state.tr("app.no_rm"))
        elif state.role() == "admin":
            st.toggle(state.tr("app.reveal"), value=state.reveal(), key=keys.REVEAL_TOGGLE,
                      on_change=lambda: state.set_reveal(st.session_state[keys.REVEAL_TOGGLE]))
        st.divider()
        dataset, bundle = state.active_dataset(), state.active_bundle()
        st.caption(f"{state.tr('app.active_dataset')}: **{dataset or state.tr('app.none')}**")
        st.caption(f"{state.tr('app.active_bundle')}: **{bundle.name if bundle else state.tr('app.none')}**")
        st.info(state.tr("app.notice"), icon=":material/gavel:")


def main() -> None:
    st.set_page_config(page_title=state.tr("app.title"), page_icon=":material/account_balance:", layout="wide")
    pages = [st.Page(str(path), title=state.tr(title), icon=icon, default=default)
             for path, title, icon, default in _PAGES]
    page = st.navigation(pages)
    bootstrap()
    sync_active()
    sidebar()
    page.run()


main()
