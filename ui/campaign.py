"""The portfolio page's campaign section (营销活动名单): pick a marketing head, the list size and a risk limit; every
number comes from ``profile_core.campaign.rank_campaign`` and ``views.campaign_items``."""

from __future__ import annotations

import streamlit as st

from profile_core import views
from profile_core.campaign import MAX_GRADE, marketing_tasks_of, rank_campaign
from profile_core.scorecard import GRADES
from ui import audit, state
from ui.state import tr

HEAD = "portfolio-campaign-head-selectbox"
SIZE = "portfolio-campaign-n-number-input"
CUT = "portfolio-campaign-cut-radio"
MAX_GRADE_KEY = "portfolio-campaign-grade-selectbox"
MAX_PD_KEY = "portfolio-campaign-pd-number-input"
EXPORT = "portfolio-campaign-export-button"
TABLE = "portfolio-campaign-table"
CUT_KINDS = ("grade", "pd", "none")
DEFAULT_SIZE = 200
DEFAULT_MAX_PD = 8.0  # %: the upper edge of grade C


def section(bundle, scored) -> None:
    """The campaign list for the customers this role sees (``scored``: ``views.portfolio_frame``)."""
    lang = state.lang()
    st.subheader(tr("marketing.campaign.title"), anchor=False)
    st.caption(tr("marketing.campaign.caption"))
    heads = [t_ for t_ in marketing_tasks_of(bundle.tasks) if f"{t_.name}_prob" in scored.columns]
    if not heads:
        st.info(tr("marketing.campaign.no_heads"))
        return
    names = {t_.name: t_.display(lang) for t_ in heads}
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    task = c1.selectbox(tr("marketing.campaign.head"), list(names), format_func=names.get, key=HEAD)
    n = int(c2.number_input(tr("marketing.campaign.n"), min_value=1, max_value=max(len(scored), 1),
                            value=min(DEFAULT_SIZE, max(len(scored), 1)), step=10, key=SIZE))
    has_pd = scored["pd"].notna().any()
    kinds = [k for k in CUT_KINDS if has_pd or k != "pd"]
    cut = c3.radio(tr("marketing.campaign.cut"), kinds, key=CUT,
                   format_func=lambda k: tr(f"marketing.campaign.cut_kind.{k}"))
    max_grade, max_pd = None, None
    if cut == "grade":
        max_grade = c4.selectbox(tr("marketing.campaign.max_grade"), GRADES, index=GRADES.index(MAX_GRADE),
                                 key=MAX_GRADE_KEY)
    elif cut == "pd":
        max_pd = c4.number_input(tr("marketing.campaign.max_pd"), min_value=0.1, max_value=100.0,
                                 value=DEFAULT_MAX_PD, step=0.5, key=MAX_PD_KEY) / 100
    role = next(t_.role for t_ in heads if t_.name == task)
    campaign = rank_campaign(scored, bundle.tasks, task, n, max_grade=max_grade, max_pd=max_pd)
    items = views.campaign_items(campaign, role, lang)
    for column, item in zip(st.columns(len(items)), items, strict=True):
        column.metric(item.label, item.value, help=item.help or None, delta=item.note or None, delta_color="off",
                      delta_arrow="off", border=True)
    table = campaign.selected
    config = {c: st.column_config.Column(tr(f"marketing.campaign.table.{c}")) for c in table.columns}
    for c in ("probability", "pd"):
        config[c] = st.column_config.NumberColumn(tr(f"marketing.campaign.table.{c}"), format="percent")
    config["cumulative_uptake"] = st.column_config.NumberColumn(tr("marketing.campaign.table.cumulative_uptake"),
                                                                format="%.1f")
    st.dataframe(table, hide_index=True, column_config=config, key=TABLE, height=320)
    # the list as this role may export it (an RM: own customers), masked, formulas neutralised, audited
    audit.export_button(table, f"{state.active_dataset()}/campaign/{task}", key=EXPORT,
                        file_name=f"{state.active_dataset()}_campaign_{task}.csv")
