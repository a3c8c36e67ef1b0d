"""客户全景 · Customers: search and filter the customers the role may see, then read one customer's panorama
card (``profile.CardContext`` built once per dataset + bundle in ``ui.cache``; ``ui.card`` draws it)."""

from __future__ import annotations

import streamlit as st

from profile_core.privacy import AccessDenied
from profile_core.report import customer_report
from profile_core.whatif import next_grade_recourse
from ui import audit, auth, cache, card, lake, model_view, similar, state, widgets
from ui.state import tr

widgets.page_header("customers.title", "customers.caption")
if lake.active():  # a read-only lake (PROFILE_LAKE): one customer read by key, never the portfolio
    lake.customers_page()
    st.stop()
if not widgets.need_data():
    st.stop()


has_model = widgets.need_bundle()  # without a model: the card without model outputs, and a way to get one
try:
    context = cache.active_card_context(with_model=has_model)
except Exception as exc:  # noqa: BLE001 — a bundle trained on other columns: say so, show the card without it
    st.warning(tr("customers.model_failed", detail=model_view.error_text(exc)))
    has_model, context = False, cache.active_card_context(with_model=False)

customers = cache.active_customer_index(context, with_model=has_model)  # as the role may see them
if customers.empty:
    st.info(tr("portfolio.no_customers"))
    st.stop()


wanted = st.query_params.get("id")  # a deep link /customers?id=C000123 opens that card (if this role sees it)
if wanted:
    if wanted in set(customers["customer_id"]):
        st.session_state[card.SELECTED] = wanted
    del st.query_params["id"]


@st.fragment
def panorama() -> None:
    """Search, filters and the card: a change here reruns only this fragment (switching customers is then a
    card build and a redraw, not a whole app run), so the sign-in is re-checked here."""
    if card.fragment_rerun() and auth.gate() is None:  # signed out or expired since the last full run
        st.rerun()
    customer_id = card.picker(customers, with_model=has_model)
    if customer_id is None:
        return
    try:
        profile = context.card(customer_id, policy=state.policy(), lang=state.lang())
    except AccessDenied as exc:
        st.error(exc.message(state.lang()))
        return
    if not card.record_view(customer_id):  # nothing about a customer is shown unaudited
        st.error(tr("customers.audit_failed"))
        return
    card.render(profile, specs=getattr(context.explainer, "tasks", None), has_model=has_model)
    if has_model:
        card.what_if_panel(profile, context)
        card.recourse_panel(profile, context)
        similar.panel(profile)  # the nearest customers in the model's shared representation, in this role's scope
    # the report adds the path to a better grade, computed only when asked for (on the download's own thread:
    # everything from the session is read here, before)
    bundle, features, lang = (cache.active_bundle() if has_model else None), context.features, state.lang()

    def report() -> str:
        return customer_report(profile, recourse=next_grade_recourse(bundle, features, customer_id, lang)
                               if bundle is not None else None)

    audit.report_button(report, customer_id, key=f"customers-report-{customer_id}", file_name=f"{customer_id}.html")


panorama()
