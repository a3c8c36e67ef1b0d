"""模型解释 · Explanations: per-task SHAP. One customer's waterfall (base value → attribute contributions →
output) and the same customer across the heads; then global importance per task, a beeswarm per task and
a dependence plot, over a seeded portfolio sample cached per dataset + bundle (``ui.cache``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from profile_core.privacy import AccessDenied
from ui import cache, card, explain_view, lake, model_view, state, widgets
from ui.state import tr

widgets.page_header("explanations.title", "explanations.caption")
if lake.active():  # a read-only lake: one customer's explanation; global views from the CLI
    lake.explanations_page()
    st.stop()
if not (widgets.need_data() and widgets.need_bundle()):
    st.stop()

lang = state.lang()
try:
    context = cache.active_card_context()
    explainer = cache.active_head_explainer()
    customers = cache.active_customer_index(context)  # as the role may see them
except Exception as exc:  # noqa: BLE001 — a bundle trained on other columns: say so, point to the model page
    st.error(tr("explanations.failed", detail=model_view.error_text(exc)))
    st.stop()
specs = explainer.tasks
if customers.empty:
    st.info(tr("portfolio.no_customers"))
    st.stop()

task_col, customer_col = st.columns([1, 2])
task = task_col.selectbox(tr("explanations.task"), list(specs), key=explain_view.TASK_SELECT,
                          format_func=lambda k, lang=lang: card.task_label(k, specs, lang))
with customer_col:
    customer_id = card.select_customer(customers, key=explain_view.CUSTOMER_SELECT, label=tr("explanations.customer"))
try:
    state.policy().check(context.customers.loc[customer_id])
except AccessDenied as exc:
    st.error(exc.message(lang))
    st.stop()
if not card.record_view(customer_id):  # nothing about a customer is shown unaudited
    st.error(tr("customers.audit_failed"))
    st.stop()
st.caption(tr("explanations.method", method=tr(f"explain.method.{explainer.method}"),
              background=len(explainer.background_ids), seed=cache.EXPLAIN_SEED))

explain_view.local_section(explainer, context, customer_id, task, specs, lang)

sample = min(cache.EXPLAIN_SAMPLE, len(context.features))
with st.spinner(tr("explanations.computing", n=f"{sample:,}")):
    portfolio_expl = cache.active_portfolio_explanation()
visible = pd.Index(customers["customer_id"])
if state.role() == "rm":
    mine = len(portfolio_expl.customer_ids.intersection(visible))
    st.caption(tr("explanations.sample_rm", n=f"{sample:,}", mine=f"{mine:,}"))
else:
    st.caption(tr("explanations.sample", n=f"{sample:,}", seed=cache.EXPLAIN_SEED))
explain_view.global_section(portfolio_expl, specs, visible, lang)
