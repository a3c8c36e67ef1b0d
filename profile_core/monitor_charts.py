"""Figures for model monitoring: calibration (reliability) curve, PSI bars, confusion matrix.

Pure Plotly builders over the frames of :mod:`profile_core.monitor` — no model, no I/O; an empty or unsuitable
frame gives ``charts.empty_figure`` with a note. Look and colours follow :mod:`profile_core.charts`.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .charts import _is_empty, _layout, _missing_note, empty_figure
from .i18n import DEFAULT_LANG, t
from .monitor import PSI_ACT, PSI_WATCH

STATUS_COLORS = {"stable": "#2E7D32", "watch": "#F9A825", "act": "#C62828", None: "#90A4AE"}


def plot_calibration(table: pd.DataFrame, *, title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Mean prediction (x) against the observed rate (y) per bin of ``monitor.calibration_table``, marker
    size by count, with the diagonal of perfect calibration. Two traces."""
    need = ["p_mean", "observed", "n"]
    if _is_empty(table, need):
        return empty_figure(_missing_note(need, table, lang), title=title, lang=lang)
    top = float(max(table["p_mean"].max(), table["observed"].max(), 0.05))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", name=t("monitor.perfect", lang),
                             line=dict(color="#90A4AE", dash="dash")))
    sizes = 8 + 22 * (table["n"] / max(float(table["n"].max()), 1.0)) ** 0.5
    fig.add_trace(go.Scatter(x=table["p_mean"], y=table["observed"], mode="lines+markers",
                             name=t("monitor.observed", lang), marker=dict(size=sizes, color="#C0392B"),
                             line=dict(color="#C0392B"), customdata=table[["n"]].to_numpy(),
                             hovertemplate="%{x:.3f} → %{y:.3f} (n=%{customdata[0]})<extra></extra>"))
    fig.update_xaxes(title=t("monitor.predicted", lang), rangemode="tozero")
    fig.update_yaxes(title=t("monitor.observed", lang), rangemode="tozero")
    return _layout(fig, title, height=360)


def plot_psi(table: pd.DataFrame, *, top: int = 20, title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Horizontal PSI bars (worst ``top`` rows of ``monitor.psi_table``) coloured by status, with the 0.1 and
    0.25 thresholds as vertical lines. One bar trace."""
    need = ["feature", "psi"]
    if _is_empty(table, need) or table["psi"].dropna().empty:
        return empty_figure(_missing_note(need, table, lang), title=title, lang=lang)
    rows = table.dropna(subset=["psi"]).sort_values("psi", ascending=False).head(top).iloc[::-1]
    status = rows["status"] if "status" in rows else pd.Series([None] * len(rows), index=rows.index)
    fig = go.Figure(go.Bar(x=rows["psi"], y=rows["feature"].astype(str), orientation="h",
                           marker_color=[STATUS_COLORS.get(s, STATUS_COLORS[None]) for s in status],
                           text=[f"{v:.3f}" for v in rows["psi"]], textposition="outside",
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>", showlegend=False))
    for x, key in ((PSI_WATCH, "monitor.status.watch"), (PSI_ACT, "monitor.status.act")):
        fig.add_vline(x=x, line=dict(color=STATUS_COLORS[key.rsplit(".", 1)[1]], dash="dot"),
                      annotation_text=f"{t(key, lang)} {x}", annotation_position="top")
    fig.update_xaxes(title="PSI", rangemode="tozero")
    return _layout(fig, title, height=max(260, 26 * len(rows) + 110))


def plot_confusion(matrix: pd.DataFrame, *, title: str | None = None, lang: str = DEFAULT_LANG,
                   normalise: bool = True) -> go.Figure:
    """Heat map of ``monitor.confusion`` (rows actual, columns predicted); with ``normalise`` each actual row
    shows shares, the counts in the hover. One heatmap trace."""
    if matrix is None or not isinstance(matrix, pd.DataFrame) or matrix.empty or matrix.to_numpy().sum() == 0:
        return empty_figure(title=title, lang=lang)
    counts = matrix.to_numpy(dtype=float)
    z = counts / counts.sum(axis=1, keepdims=True).clip(min=1) if normalise else counts
    labels = [str(c) for c in matrix.columns]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=[str(i) for i in matrix.index], colorscale="Blues",
                               customdata=counts, text=[[f"{v:.0%}" if normalise else f"{v:.0f}" for v in row]
                                                        for row in z],
                               texttemplate="%{text}", hovertemplate="%{y} → %{x}: %{customdata:.0f}<extra></extra>",
                               showscale=False))
    fig.update_xaxes(title=t("monitor.predicted_class", lang), side="bottom")
    fig.update_yaxes(title=t("monitor.actual", lang), autorange="reversed")
    return _layout(fig, title, height=360)
