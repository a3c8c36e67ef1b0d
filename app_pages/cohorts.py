"""客群对比 · Cohorts: two cohorts defined by filters (or saved with the data set) compared side by side — size
and share, every head's distribution by role, observed outcomes, top attributes by SHAP per head, drift (PSI)
between them. Aggregates only; an RM compares within own customers. Everything is ``profile_core.cohorts``."""

from __future__ import annotations

import streamlit as st

from profile_core import cohorts, views
from ui import cache, state, widgets
from ui import cohorts as editor
from ui.state import tr

widgets.page_header("cohorts.title", "cohorts.caption")
# a read-only lake: cohorts are filtered from the whole portfolio; an RM compares within own customers
bundle, scored = widgets.need_portfolio("cohorts")
lang = state.lang()
with widgets.stop_on_failure():
    frame = cohorts.cohort_frame(scored, cache.active_features())

columns = cohorts.filter_columns(frame)
labels = cohorts.column_labels(columns, bundle.tasks, lang)
stored = editor.saved()
worst = cohorts.riskiest_grades(frame)
high_risk = [("grade", "in", ", ".join(worst))] if worst else []
left, right = st.columns(2, gap="large")
with left:
    st.subheader(tr("cohorts.side_a"))
    cohort_a = editor.editor("a", columns, labels, stored, default_name=tr("cohorts.default_a"))
with right:
    st.subheader(tr("cohorts.side_b"))
    cohort_b = editor.editor("b", columns, labels, stored, default_name=tr("cohorts.default_b"),
                             default_rows=high_risk)
if cohort_a is None or cohort_b is None:
    st.stop()
try:
    a, b = cohorts.select(frame, cohort_a), cohorts.select(frame, cohort_b)
except cohorts.CohortError as err:
    st.error(err.message(lang))
    st.stop()

pre = bundle.preprocessor
comparison = cohorts.compare(a, b, (cohort_a.name, cohort_b.name), bundle.tasks, population=len(frame),
                             numeric=pre.numeric, categorical=pre.categorical, lang=lang)
names = comparison.names
st.divider()
for column, row in zip(st.columns(2), comparison.sizes.itertuples(), strict=True):
    column.metric(tr("cohorts.size", name=row.cohort), f"{row.n:,}",
                  help=tr("cohorts.share_help", total=f"{len(frame):,}"))
    column.caption(tr("cohorts.share", share=views.fmt_share(row.share, 1)))
st.dataframe(comparison.kpis, hide_index=True, key="cohorts-kpi-table")

st.subheader(tr("cohorts.distributions"))
figures = cohorts.figures(comparison, lang)
for i, column in enumerate(st.columns(2) * ((len(figures) + 1) // 2)):
    if i < len(figures):
        with column:
            widgets.chart(figures[i], key=f"cohorts-dist-{i}")

st.subheader(tr("cohorts.outcomes"))
if comparison.outcomes.empty:
    st.info(tr("cohorts.no_outcomes"))
else:
    config = {n: st.column_config.NumberColumn(n, format="%.4f") for n in names}
    config |= {"head": st.column_config.Column(tr("cohorts.col.head")),
               "role": st.column_config.Column(tr("cohorts.col.role")),
               "measure": st.column_config.Column(tr("cohorts.col.measure"))}
    st.dataframe(comparison.outcomes, hide_index=True, column_config=config, key="cohorts-outcomes-table")

st.subheader(tr("cohorts.importance"))
if len(a) and len(b):
    st.caption(tr("cohorts.importance_caption", n=cohorts.SHAP_SAMPLE))
    with st.spinner(tr("cohorts.importance_running")):
        table = editor.importance(cache._active_keys(), tuple(a["customer_id"]), tuple(b["customer_id"]), names)
    tabs = st.tabs([task.display(lang) for task in bundle.tasks])
    for tab, task in zip(tabs, bundle.tasks, strict=True):
        with tab:
            widgets.chart(cohorts.importance_figure(table, task, lang=lang), key=f"cohorts-importance-{task.name}")
else:
    st.info(tr("cohorts.empty"))

st.subheader(tr("cohorts.drift"))
st.caption(tr("cohorts.drift_caption", a=names[0], b=names[1]))
drift = comparison.drift.assign(feature=comparison.drift["feature"].map(lambda c: labels.get(c, c)),
                                kind=comparison.drift["kind"].map(lambda k: tr(f"cohorts.kind.{k}")),
                                status=comparison.drift["status"].map(lambda s: tr(f"cohorts.psi.{s}") if s else "—"))
st.dataframe(drift, hide_index=True, key="cohorts-drift-table",
             column_config={"feature": st.column_config.Column(tr("cohorts.col.feature")),
                            "kind": st.column_config.Column(tr("cohorts.col.kind")),
                            "psi": st.column_config.NumberColumn("PSI", format="%.4f"),
                            "status": st.column_config.Column(tr("cohorts.col.status"))})
