"""Shared renderers: page header, notices with a way forward, the validation report, table previews,
the bundle manifest card. Each draws with Streamlit and takes plain data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import keys, state
from ui.keys import PagePath
from ui.state import tr


def page_header(title_key: str, caption_key: str | None = None) -> None:
    """The page title (translated) and a one-line caption; shows any pending flash message."""
    st.title(tr(title_key))
    if caption_key:
        st.caption(tr(caption_key))
    message = state.pop_flash()
    if message:
        kind, text = message
        {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(text)


def chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})


def need_data() -> bool:
    """True when a dataset is active; otherwise says so with a button to the data page."""
    if state.active_dataset():
        return True
    st.info(tr("common.no_data"))
    if st.button(tr("common.go_data"), key="common-go-data-button"):
        st.switch_page(PagePath.DATA)
    return False


def need_bundle() -> bool:
    """True when a bundle is active; otherwise says so with a button to the model page."""
    if state.active_bundle():
        return True
    st.info(tr("common.no_bundle"))
    if st.button(tr("common.go_model"), key=keys.GO_MODEL_BUTTON):
        st.switch_page(PagePath.MODEL)
    return False


@contextmanager
def stop_on_failure(message_key: str = "portfolio.predict_failed") -> Iterator[None]:
    """Any exception inside (a bundle trained on other columns than the data set's) is said as ``message_key``
    with the error's sentence as ``detail``, and the page stops there."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 — say so and point to the model page, never a traceback
        from ui.model_view import error_text

        st.error(tr(message_key, detail=error_text(exc)))
        st.stop()


def need_portfolio(on_lake: str | Callable[[], object], *, own_customers: bool = True,
                   failed_key: str = "portfolio.predict_failed"):
    """The preamble of a page over the whole active portfolio (portfolio, cohorts, monitoring): (bundle, scored
    portfolio frame), or the page stops after saying why not —
    on a read-only lake, ``on_lake()`` draws the page's lake version, or when ``on_lake`` is an area name
    ``lake.unavailable(area)`` says that the page needs the whole portfolio and which command does its work;
    without a data set or a model, the notice with its button (``need_data``, ``need_bundle``); a bundle that
    cannot score the data, ``failed_key``; with ``own_customers`` the frame is limited to what the role may see
    (an RM: their own customers) and an empty one says ``portfolio.no_customers``."""
    from ui import cache, lake

    if lake.active():
        if isinstance(on_lake, str):
            lake.unavailable(on_lake)
        else:
            on_lake()
        st.stop()
    if not (need_data() and need_bundle()):
        st.stop()
    with stop_on_failure(failed_key):
        bundle, scored = cache.active_portfolio()
        if own_customers:
            scored = cache.visible(scored)
    if own_customers and scored.empty:
        st.info(tr("portfolio.no_customers"))
        st.stop()
    return bundle, scored


def validation_report(outcome) -> None:
    """A load's outcome: one sentence (error / warning / success) plus the issues as a table."""
    lang = state.lang()
    summary = outcome.summary(lang)
    report = outcome.report
    if not outcome.ok:
        st.error(summary)
    elif report is not None and report.warnings:
        st.warning(summary)
    else:
        st.success(summary)
    if report is None or not report.issues:
        return
    frame = report.to_frame(lang)
    frame["severity"] = frame["severity"].map(lambda s: tr(f"data.severity.{s}"))
    for col in ("row", "column"):  # issues about a whole file have no row / column: show blanks, not None
        frame[col] = frame[col].astype("string").fillna("")
    columns = {c: tr(f"data.report.{c}") for c in ("severity", "file", "row", "column", "count", "message")}
    st.dataframe(frame[list(columns)].rename(columns=columns), hide_index=True, key="data-report-table")


def table_previews(tables: dict[str, pd.DataFrame], rows: int = 10) -> None:
    """Row counts per table, then one tab per table with its first ``rows`` rows."""
    if not tables:
        return
    cols = st.columns(len(tables))
    for col, (name, df) in zip(cols, tables.items(), strict=True):
        col.metric(tr(f"data.table.{name}"), f"{len(df):,}")
    tabs = st.tabs([tr(f"data.table.{name}") for name in tables])
    for tab, (name, df) in zip(tabs, tables.items(), strict=True):
        with tab:
            st.caption(tr("data.preview_caption", rows=min(rows, len(df)), total=len(df), columns=df.shape[1]))
            st.dataframe(df.head(rows), hide_index=True, key=f"data-preview-{name}",
                         column_config=_column_config(name, df.columns))


def _column_config(table: str, columns) -> dict:
    """Headers in the session's language (the canonical name as the tooltip); dates without a time."""
    from profile_core.schema import TABLES, display_name

    lang = state.lang()
    kinds = {c.name: c.kind for t in TABLES.values() for c in t.columns}
    if table in TABLES:
        kinds |= {c.name: c.kind for c in TABLES[table].columns}
    config = {}
    for col in columns:
        label = display_name(str(col), lang)
        kind = kinds.get(str(col))
        if kind == "date":
            config[col] = st.column_config.DateColumn(label, help=str(col), format="YYYY-MM-DD")
        elif kind == "datetime":
            config[col] = st.column_config.DatetimeColumn(label, help=str(col), format="YYYY-MM-DD HH:mm")
        else:
            config[col] = st.column_config.Column(label, help=str(col))
    return config


def manifest_card(summary: dict[str, str], metrics: pd.DataFrame | None = None) -> None:
    """The active bundle at a glance: name, tasks, architecture, weighting, created, data fingerprint."""
    left, right = st.columns(2)
    left.markdown(
        f"**{tr('model.manifest.name')}**: `{summary['name']}`  \n"
        f"**{tr('model.manifest.tasks')}**: {summary['tasks']}  \n"
        f"**{tr('model.manifest.arch')}**: {summary['arch']} · {summary['weighting']}"
    )
    right.markdown(
        f"**{tr('model.manifest.created')}**: {summary['created']}  \n"
        f"**{tr('model.manifest.fingerprint')}**: `{summary['fingerprint']}`  \n"
        f"**{tr('model.manifest.best_epoch')}**: {summary['best_epoch']} · {summary['device']}"
    )
    if metrics is not None and not metrics.empty:
        st.dataframe(metrics, hide_index=True, key="model-manifest-metrics")
