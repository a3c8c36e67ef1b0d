"""模型监控 · Monitoring: the active model on the active data — metrics per task, calibration, confusion
matrix, bad rate by grade, population stability against a reference dataset, and the model card (HTML).
Aggregates only: no customer row is shown. Open to roles with ``view_monitoring``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from profile_core import charts, fairness, monitor, monitor_charts, report, views
from profile_core.bundle import read_manifest
from profile_core.schema import display_name
from profile_core.tasks import role_task
from ui import audit, cache, model_view, state, widgets
from ui.state import tr

REFERENCE_SELECT = "monitor-reference-selectbox"
CARD_BUTTON = "monitor-card-download-button"
FAIRNESS_SELECT = "monitor-fairness-selectbox"

widgets.page_header("monitor.title", "monitor.caption")
# a read-only lake: metrics need every customer's predictions; aggregates over the whole data set, for every role
bundle, scored = widgets.need_portfolio("monitoring", own_customers=False, failed_key="monitor.predict_failed")
lang = state.lang()
with widgets.stop_on_failure("monitor.predict_failed"):
    preds, features = cache.active_predictions(), cache.active_features()

# ------------------------------------------------------------------ which rows are evaluated
rows_used, scope = monitor.evaluation_rows(bundle.manifest, features["customer_id"], dataset=state.active_dataset(),
                                           fingerprint=cache.dataset_fingerprint(state.active_dataset()))
all_preds, all_features = preds, features
preds, features = preds[rows_used].reset_index(drop=True), features[rows_used].reset_index(drop=True)
if scored is not None and len(scored) == len(rows_used):
    scored = scored[rows_used].reset_index(drop=True)

# ------------------------------------------------------------------ metrics per task
metrics = monitor.task_metrics(preds, features, bundle.tasks)
st.subheader(tr("monitor.metrics"))
(st.warning if scope == "all_rows" else st.caption)(tr(f"monitor.scope.{scope}", n=f"{int(rows_used.sum()):,}"))
rows = [{tr("monitor.col.task"): task.display(lang), tr("monitor.col.metric"): tr(f"monitor.metric.{k}"),
         tr("monitor.col.value"): views.fmt_metric(k, v)}
        for task in bundle.tasks for k, v in metrics[task.name].items()]
st.dataframe(pd.DataFrame(rows), hide_index=True, key="monitor-metrics-table")
for task in bundle.tasks:
    if not metrics[task.name].get("n"):
        st.info(tr("monitor.no_labels", task=task.display(lang)))

left, right = st.columns(2)
binary = next((t for t in bundle.tasks if t.kind == "binary" and metrics[t.name].get("n")), None)
grades = next((t for t in bundle.tasks if t.kind == "multiclass" and metrics[t.name].get("n")), None)
if binary is not None:
    table = monitor.calibration_table(features[binary.label], preds[f"{binary.name}_prob"], bins=10,
                                      strategy="quantile")
    with left:
        widgets.chart(monitor_charts.plot_calibration(table, title=tr("monitor.calibration", task=binary.display(lang)),
                                                      lang=lang), key="monitor-calibration")
if grades is not None:
    matrix = monitor.confusion(features[grades.label], preds[f"{grades.name}_pred"], grades.classes)
    with right:
        widgets.chart(monitor_charts.plot_confusion(matrix, title=tr("monitor.confusion", task=grades.display(lang)),
                                                    lang=lang), key="monitor-confusion")

if scored is not None and views.OBSERVED in scored.columns and scored["grade"].notna().any():
    st.subheader(tr("monitor.grades"))  # the pd task's observed bad rate per grade (as on the portfolio page)
    grade_table = charts.default_rate_table(scored, target=views.OBSERVED, pd_column="pd")
    monotonic = charts.is_monotonic(grade_table["rate"]) if len(grade_table) else None
    if monotonic is not None:
        st.badge(tr("monitor.monotonic_ok" if monotonic else "monitor.monotonic_bad"),
                 color="green" if monotonic else "red", icon=":material/trending_up:")
    st.dataframe(grade_table, hide_index=True, key="monitor-grade-table",
                 column_config={c: st.column_config.NumberColumn(tr(f"portfolio.table.{c}"), format="percent")
                                if c in ("rate", "pd_mean") else st.column_config.Column(tr(f"portfolio.table.{c}"))
                                for c in grade_table.columns})

# ------------------------------------------------------------------ population stability
st.subheader(tr("monitor.psi"))
names = cache.datasets()["name"].tolist()
active = state.active_dataset()
path = str(state.workspace_path())
trained_on = str(bundle.manifest.get("data_fingerprint") or "")


def _feature_fp(name: str) -> str | None:
    fp = cache.dataset_fingerprint(name)
    try:
        return cache.feature_fingerprint(path, name, fp) if fp else None
    except Exception:  # noqa: BLE001 - a dataset whose features cannot be built is no reference
        return None


SNAPSHOT = "__training_snapshot__"  # the training rows' distributions recorded in the bundle
snapshot = (bundle.manifest.get("data") or {}).get("reference")
training = next((n for n in names if trained_on and _feature_fp(n) == trained_on), None)
# never the active data against itself: the bundle's snapshot, else the training data set, else another one
options = ([SNAPSHOT] if snapshot else []) + names
default = SNAPSHOT if snapshot else training if training and training != active else \
    next((n for n in names if n != active), active)
reference = st.selectbox(tr("monitor.reference"), options, index=options.index(default), key=REFERENCE_SELECT,
                         help=tr("monitor.reference_help"),
                         format_func=lambda n: tr("monitor.reference_snapshot") if n == SNAPSHOT else
                         tr("monitor.reference_training", name=n) if n == training else n)
psi_table = pd.DataFrame(columns=["feature", "kind", "psi", "status"])
numeric, categorical = bundle.manifest["features"]["numeric"], bundle.manifest["features"]["categorical"]
try:
    if reference == SNAPSHOT:
        psi_table = monitor.psi_table(monitor.snapshot_frame(snapshot), all_features, numeric=numeric,
                                      categorical=categorical)
    else:
        ref_fp = cache.dataset_fingerprint(reference)
        ref_features = cache.feature_table(path, reference, ref_fp)
        psi_table = monitor.psi_table(ref_features, all_features, numeric=numeric, categorical=categorical)
        sha = str(read_manifest(bundle.path).get("weights_sha256", ""))
        ref_preds = cache.predictions(path, reference, ref_fp, str(bundle.path), sha)
        score_cols = [f"{t.name}_pred" if t.kind == "regression" else f"{t.name}_prob"
                      for t in bundle.tasks if t.kind in ("regression", "binary")]
        scores = monitor.psi_table(ref_preds, all_preds, numeric=score_cols)
        psi_table = pd.concat([scores.assign(kind="score"), psi_table], ignore_index=True)
except Exception as exc:  # noqa: BLE001 - a reference the bundle cannot score: features only, or nothing
    st.warning(tr("monitor.predict_failed", detail=model_view.error_text(exc)))
if not psi_table.empty:  # features by their 中文/English names
    from profile_core.features import feature_info

    psi_table["feature"] = [feature_info(f).zh if lang == "zh" else feature_info(f).en for f in psi_table["feature"]]
st.caption(tr("monitor.psi_caption", reference=tr("monitor.reference_snapshot") if reference == SNAPSHOT else reference,
              current=active))
if not psi_table.empty:
    widgets.chart(monitor_charts.plot_psi(psi_table, lang=lang), key="monitor-psi")
    shown = psi_table.assign(status=psi_table["status"].map(lambda s: tr(f"monitor.status.{s}") if s else "—"))
    st.dataframe(shown[["feature", "psi", "status"]].rename(columns={
        "feature": tr("monitor.col.feature"), "psi": tr("monitor.col.psi"), "status": tr("monitor.col.status")}),
        hide_index=True, key="monitor-psi-table",
        column_config={tr("monitor.col.psi"): st.column_config.NumberColumn(format="%.4f")})

# ------------------------------------------------------------------ fairness by group (held-out rows as above)
st.subheader(tr("fairness.title"))
pd_task = role_task(bundle.tasks, "pd")
fair_reports = []
if pd_task is None:
    st.info(tr("fairness.no_pd"))
else:
    st.caption(tr("fairness.caption", cutoff=fairness.APPROVE_UP_TO))
    attributes = fairness.candidate_groups(features)
    fair_reports = [fairness.fairness_by_group(features, preds[f"{pd_task.name}_prob"], pd_task, a)
                    for a in attributes]
    if fair_reports:
        st.dataframe(fairness.summary_frame(fair_reports, lang), hide_index=True, key="fairness-summary")
        chosen = st.selectbox(tr("fairness.attribute"), attributes, key=FAIRNESS_SELECT,
                              format_func=lambda a: display_name(a, lang))
        table = fair_reports[attributes.index(chosen)].table
        st.dataframe(table.rename(columns={c: tr(f"fairness.group.{c}") for c in table.columns}), hide_index=True,
                     key="fairness-groups",
                     column_config={tr(f"fairness.group.{c}"): st.column_config.NumberColumn(format="%.3f")
                                    for c in ("approval_rate", "mean_pd", "bad_rate", "auc", "pd_error")})

# ------------------------------------------------------------------ model card
st.subheader(tr("monitor.card_title"))
scope_text = tr(f"monitor.scope.{scope}", n=f"{int(rows_used.sum()):,}")
card_args = {"current": metrics, "stability": psi_table, "scope": scope_text, "dataset": active or "", "lang": lang,
             "fairness": fair_reports}
page = report.model_card_page(bundle.manifest, **card_args)
with st.expander(tr("monitor.card_title"), expanded=False):
    st.html(report.model_card_page(bundle.manifest, standalone=False, **card_args))  # sanitised by Streamlit
if st.download_button(tr("monitor.card_download"), data=page.encode("utf-8"), file_name=f"model_card_{bundle.name}.html",
                      mime="text/html", key=CARD_BUTTON, icon=":material/description:"):
    audit.record("export", f"model_card/{bundle.name}")
