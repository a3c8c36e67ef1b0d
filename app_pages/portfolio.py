"""组合概览 · Portfolio: predicted score, PD and grade distributions; grades by RM / city / occupation; a campaign
list on a marketing head with a risk limit; observed default rate by grade with a monotonicity check."""

from __future__ import annotations

import streamlit as st

from profile_core import charts, views
from profile_core.tasks import role_task
from ui import audit, campaign, keys, lake, state, widgets
from ui.state import tr

widgets.page_header("portfolio.title", "portfolio.caption")
# a read-only lake: estimates from its seeded reference sample, said so on the page; an RM sees own customers
bundle, scored = widgets.need_portfolio(lake.portfolio_page)

lang = state.lang()

kpis = views.portfolio_kpis(scored, bundle.tasks, lang)
for column, item in zip(st.columns(len(kpis)), kpis, strict=True):
    column.metric(item.label, item.value)
st.caption(tr("portfolio.bundle_caption", bundle=bundle.name, source=tr(f"portfolio.grade_source.{scored['grade_source'].iloc[0] or 'none'}")))
has_pd = scored["pd"].notna().any()
if not has_pd:
    st.info(tr("portfolio.no_pd_task"))

# one distribution per head that is a number (score/points, PD, generic amounts and probabilities)
score_title = tr("portfolio.score") if role_task(bundle.tasks, "score") else tr("card.kpi.points")  # only a score task
dists = [("score", score_title)] if scored["score"].notna().any() else []
dists += [("pd", tr("portfolio.pd"))] if has_pd else []
dists += [(f"{task.name}_{'pred' if task.kind == 'regression' else 'prob'}", task.display(lang))
          for task in bundle.tasks if task.role in ("generic", "propensity", "churn") and task.kind != "multiclass"]
for i, column in enumerate(st.columns(2) * ((len(dists) + 1) // 2)):
    if i >= len(dists):
        break
    col, title = dists[i]
    with column:
        widgets.chart(charts.plot_histogram(scored, column=col, by="grade" if col == "score" else None,
                                            title=tr("portfolio.head_dist", task=title), x_title=title, lang=lang,
                                            color="#C0392B" if col == "pd" else None),
                      key=f"portfolio-hist-{i}")

st.subheader(tr("portfolio.grades"))
groups = [c for c in views.GROUP_COLUMNS if c in scored.columns]
g1, g2 = st.columns([1, 2])
with g1:
    widgets.chart(charts.plot_grade_counts(scored, title=tr("portfolio.grade_counts"), lang=lang),
                  key="portfolio-grade-counts")
with g2:
    if groups:
        by = st.selectbox(tr("portfolio.group_by"), groups, key=keys.GROUP_BY,
                          format_func=state.labeller("portfolio.groups."))
        widgets.chart(charts.plot_grade_counts(scored, by=by, x_title=tr(f"portfolio.groups.{by}"),
                                               title=tr("portfolio.grade_by", group=tr(f"portfolio.groups.{by}")),
                                               lang=lang), key="portfolio-grade-by")

campaign.section(bundle, scored)  # 营销活动名单: one marketing head, a risk limit, the expected uptake

if not has_pd or views.OBSERVED not in scored.columns:
    audit.export_button(scored, f"{state.active_dataset()}/portfolio", key="portfolio-export-button",
                        file_name=f"{state.active_dataset()}_portfolio.csv")
    st.stop()
st.subheader(tr("portfolio.default_by_grade"))
table = charts.default_rate_table(scored, target=views.OBSERVED, pd_column="pd")
monotonic = charts.is_monotonic(table["rate"]) if len(table) else None
badge = {True: ("portfolio.monotonic_ok", "green"), False: ("portfolio.monotonic_bad", "red"),
         None: ("portfolio.monotonic_na", "gray")}[monotonic]
st.badge(tr(badge[0]), color=badge[1], icon=":material/trending_up:")
d1, d2 = st.columns([2, 1])
with d1:
    widgets.chart(charts.plot_default_rate_by_grade(table, lang=lang), key="portfolio-default-rate")
with d2:
    config = {c: st.column_config.NumberColumn(tr(f"portfolio.table.{c}"), format="percent")
              if c in ("rate", "pd_mean") else st.column_config.Column(tr(f"portfolio.table.{c}"))
              for c in table.columns}
    st.dataframe(table, hide_index=True, column_config=config, key="portfolio-default-table")

# the scored customers as this role sees them (an RM: own customers only), masked, formulas neutralised, audited
audit.export_button(scored, f"{state.active_dataset()}/portfolio", key="portfolio-export-button",
                    file_name=f"{state.active_dataset()}_portfolio.csv")
