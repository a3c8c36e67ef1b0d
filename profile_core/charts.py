"""Pure Plotly figure builders: ``plot_<name>(df, *, ...) -> go.Figure``.

Every builder takes plain DataFrames (or a number) and keyword options, does no I/O and never sees a model.
Empty or unusable input gives an empty figure carrying a note instead of an exception. Colours are stable:
one per task (:func:`task_color`), one per grade (A green … E red, :data:`GRADE_COLORS`), one per model.

A few small data helpers that the figures need (:func:`default_rate_table`, :func:`is_monotonic`) sit here
too; they are pure pandas and may move to ``monitor.py`` once it exists.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from profile_core.i18n import DEFAULT_LANG, t
from profile_core.schema import RISK_LEVELS

__all__ = [
    "GRADE_COLORS",
    "MODEL_COLORS",
    "DEFAULT_SCORE_BANDS",
    "default_rate_table",
    "empty_figure",
    "grade_color",
    "is_monotonic",
    "model_color",
    "plot_beeswarm",
    "plot_comparison",
    "plot_default_rate_by_grade",
    "plot_dependence",
    "plot_grade_counts",
    "plot_histogram",
    "plot_importance",
    "plot_login_heatmap",
    "plot_monthly_flows",
    "plot_score_gauge",
    "plot_training_curves",
    "plot_waterfall",
    "task_color",
]

# --------------------------------------------------------------------------------------------- colours

GRADE_COLORS: dict[str, str] = {
    "A": "#2E7D32",  # green: lowest risk
    "B": "#8BC34A",
    "C": "#F9A825",
    "D": "#EF6C00",
    "E": "#C62828",  # red: highest risk
}
_OTHER_GRADE = "#90A4AE"

_FIXED_TASK_COLORS: dict[str, str] = {
    "credit_score": "#1F4E79",
    "default": "#C0392B",
    "default_flag": "#C0392B",
    "risk_level": "#6A3D9A",
}
_TASK_PALETTE = ("#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD", "#8C564B", "#E377C2", "#17BECF", "#BCBD22")

MODEL_COLORS: dict[str, str] = {
    "mtl": "#1F4E79",
    "single_mlp": "#5DA5DA",
    "mlp": "#5DA5DA",
    "lightgbm": "#B2912F",
    "lgbm": "#B2912F",
}

_FONT = dict(family="'Source Sans Pro', 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif", size=13)

#: Score bands per grade for the gauge (points = offset + factor·ln(odds), 600 at 50:1, PDO 40, PD bands
#: 1/3/8/20 %, clipped to 300–850). ``(low, high, grade)``.
_FACTOR = 40 / math.log(2)
_OFFSET = 600 - _FACTOR * math.log(50)


def _points(pd_: float) -> float:
    return _OFFSET + _FACTOR * math.log((1 - pd_) / pd_)


DEFAULT_SCORE_BANDS: tuple[tuple[float, float, str], ...] = (
    (300.0, _points(0.20), "E"),
    (_points(0.20), _points(0.08), "D"),
    (_points(0.08), _points(0.03), "C"),
    (_points(0.03), _points(0.01), "B"),
    (_points(0.01), 850.0, "A"),
)


def task_color(task: str) -> str:
    """Stable colour of a task: fixed for the default tasks, otherwise picked from a palette by name."""
    if task in _FIXED_TASK_COLORS:
        return _FIXED_TASK_COLORS[task]
    return _TASK_PALETTE[zlib.crc32(str(task).encode("utf-8")) % len(_TASK_PALETTE)]


def grade_color(grade: object) -> str:
    """A green … E red; any other grade grey."""
    return GRADE_COLORS.get(str(grade).strip().upper(), _OTHER_GRADE)


def model_color(model: str) -> str:
    key = str(model).strip().lower().replace("-", "_").replace(" ", "_")
    if key in MODEL_COLORS:
        return MODEL_COLORS[key]
    return _TASK_PALETTE[zlib.crc32(key.encode("utf-8")) % len(_TASK_PALETTE)]


# --------------------------------------------------------------------------------------------- helpers


def _layout(fig: go.Figure, title: str | None = None, *, height: int | None = None) -> go.Figure:
    """Common look: white template, title top-left, the legend in a row under the plot (never over the title)."""
    legend = sum(1 for tr in fig.data if getattr(tr, "showlegend", False) is not False) > 1
    fig.update_layout(
        template="plotly_white",
        title=dict(text=title or "", x=0.0, xanchor="left"),
        font=_FONT,
        margin=dict(l=50, r=20, t=50 if title else 25, b=90 if legend else 40),
        legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0.0),
    )
    if height:
        fig.update_layout(height=height)
    return fig


def empty_figure(note: str | None = None, *, title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """A figure with no traces and a centred note (default: "no data")."""
    fig = go.Figure()
    fig.add_annotation(
        text=note or t("charts.empty", lang), x=0.5, y=0.5, xref="paper", yref="paper",
        showarrow=False, font=dict(size=15, color="#607D8B"),
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=260)


def _is_empty(df: pd.DataFrame | None, columns: Sequence[str] = ()) -> bool:
    if df is None or not isinstance(df, pd.DataFrame) or df.empty:
        return True
    return any(c not in df.columns for c in columns)


def _missing_note(columns: Sequence[str], df: pd.DataFrame | None, lang: str) -> str | None:
    if df is None or not isinstance(df, pd.DataFrame):
        return None
    missing = [c for c in columns if c not in df.columns]
    return t("charts.missing_columns", lang, columns=", ".join(missing)) if missing else None


def _grade_order(values: Sequence[object]) -> list[str]:
    seen = [str(v) for v in pd.unique(pd.Series(list(values), dtype="object").dropna())]
    known = [g for g in RISK_LEVELS if g in seen]
    rest = sorted(g for g in seen if g not in RISK_LEVELS)
    return known + rest


# --------------------------------------------------------------------------------------------- data helpers


def default_rate_table(df: pd.DataFrame, *, grade: str = "grade", target: str = "default_flag",
                       pd_column: str | None = None) -> pd.DataFrame:
    """Per grade: customers ``n``, observed ``defaults`` and ``rate``; ``pd_mean`` when ``pd_column`` given.

    Rows come in grade order (A … E, then others); rows with no grade are dropped, and customers without
    an observed label do not count towards ``defaults``/``rate`` (``n_labelled`` says how many do).
    """
    cols = ["grade", "n", "n_labelled", "defaults", "rate"] + (["pd_mean"] if pd_column else [])
    if _is_empty(df, [grade]):
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame({"grade": df[grade].astype("object")})
    if target in df.columns:
        frame["y"] = pd.to_numeric(df[target], errors="coerce")
    else:
        frame["y"] = np.nan
    if pd_column and pd_column in df.columns:
        frame["p"] = pd.to_numeric(df[pd_column], errors="coerce")
    frame = frame.dropna(subset=["grade"])
    frame["grade"] = frame["grade"].astype(str)
    rows = []
    for g in _grade_order(frame["grade"]):
        part = frame[frame["grade"] == g]
        labelled = part["y"].dropna()
        row = {
            "grade": g,
            "n": int(len(part)),
            "n_labelled": int(len(labelled)),
            "defaults": int((labelled > 0.5).sum()),
            "rate": float((labelled > 0.5).mean()) if len(labelled) else np.nan,
        }
        if pd_column:
            row["pd_mean"] = float(part["p"].mean()) if "p" in part and part["p"].notna().any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def is_monotonic(values: Sequence[float], *, increasing: bool = True) -> bool | None:
    """Whether ``values`` (NaN skipped) never decrease (``increasing``) or never increase; None if < 2 values."""
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if len(clean) < 2:
        return None
    diffs = np.diff(clean)
    return bool((diffs >= -1e-12).all()) if increasing else bool((diffs <= 1e-12).all())


# --------------------------------------------------------------------------------------------- portfolio


def plot_histogram(df: pd.DataFrame, *, column: str, by: str | None = None, bins: int = 30,
                   title: str | None = None, x_title: str | None = None, lang: str = DEFAULT_LANG,
                   color: str | None = None) -> go.Figure:
    """Distribution of ``column``; one overlaid trace per value of ``by`` (grade colours when ``by`` holds
    grades, task colours otherwise)."""
    need = [column] + ([by] if by else [])
    if _is_empty(df, need) or df[column].dropna().empty:
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    fig = go.Figure()
    if by:
        groups = _grade_order(df[by])
        is_grade = all(g in GRADE_COLORS for g in groups)
        for g in groups:
            values = df.loc[df[by].astype(str) == g, column].dropna()
            fig.add_trace(go.Histogram(
                x=values, name=str(g), nbinsx=bins, opacity=0.75,
                marker_color=grade_color(g) if is_grade else task_color(str(g)),
            ))
        fig.update_layout(barmode="overlay")
    else:
        fig.add_trace(go.Histogram(x=df[column].dropna(), name=x_title or column, nbinsx=bins,
                                   marker_color=color or "#1F4E79", showlegend=False))
    fig.update_xaxes(title_text=x_title or column)
    fig.update_yaxes(title_text=t("charts.count", lang))
    return _layout(fig, title)


def plot_grade_counts(df: pd.DataFrame, *, grade: str = "grade", by: str | None = None, top_n: int = 20,
                      title: str | None = None, x_title: str | None = None, normalize: bool = False,
                      lang: str = DEFAULT_LANG) -> go.Figure:
    """Customers per grade; with ``by`` (RM, city, occupation …) one stacked trace per grade over the
    ``top_n`` largest groups. ``normalize`` shows shares within each group instead of counts."""
    need = [grade] + ([by] if by else [])
    if _is_empty(df, need) or df[grade].dropna().empty:
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    grades = _grade_order(df[grade])
    fig = go.Figure()
    if by is None:
        counts = df[grade].dropna().astype(str).value_counts()
        y = [int(counts.get(g, 0)) for g in grades]
        fig.add_trace(go.Bar(x=grades, y=y, marker_color=[grade_color(g) for g in grades], text=y,
                             textposition="auto", showlegend=False, name=t("charts.count", lang)))
        fig.update_xaxes(title_text=x_title or t("charts.grade", lang))
    else:
        frame = pd.DataFrame({"g": df[grade].astype("object"), "k": df[by].astype("object")}).dropna()
        frame["g"] = frame["g"].astype(str)
        frame["k"] = frame["k"].astype(str)
        order = frame["k"].value_counts().index[:top_n].tolist()
        table = pd.crosstab(frame["k"], frame["g"]).reindex(index=order, columns=grades, fill_value=0)
        if normalize:
            table = table.div(table.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        for g in grades:
            fig.add_trace(go.Bar(x=order, y=table[g].tolist(), name=g, marker_color=grade_color(g)))
        fig.update_layout(barmode="stack")
        fig.update_xaxes(title_text=x_title or by)
    fig.update_yaxes(title_text=t("charts.share" if normalize else "charts.count", lang),
                     tickformat=".0%" if normalize else None)
    return _layout(fig, title)


def plot_default_rate_by_grade(table: pd.DataFrame, *, title: str | None = None,
                               lang: str = DEFAULT_LANG) -> go.Figure:
    """Observed default rate per grade (bars, grade colours, n on hover) from :func:`default_rate_table`;
    the mean predicted PD as a line when the table has ``pd_mean``."""
    if _is_empty(table, ["grade", "rate"]) or (table["rate"].isna().all()
                                                and ("pd_mean" not in table or table["pd_mean"].isna().all())):
        return empty_figure(t("charts.no_labels", lang), title=title, lang=lang)
    grades = table["grade"].astype(str).tolist()
    fig = go.Figure()
    if table["rate"].notna().any():
        n = table["n"].tolist() if "n" in table else [None] * len(grades)
        fig.add_trace(go.Bar(
            x=grades, y=table["rate"].tolist(), name=t("charts.observed_rate", lang),
            marker_color=[grade_color(g) for g in grades], customdata=n,
            text=[f"{r:.1%}" if pd.notna(r) else "" for r in table["rate"]], textposition="auto",
            hovertemplate="%{x}: %{y:.2%} (n=%{customdata})<extra></extra>",
        ))
    if "pd_mean" in table and table["pd_mean"].notna().any():
        fig.add_trace(go.Scatter(x=grades, y=table["pd_mean"].tolist(), mode="lines+markers",
                                 name=t("charts.predicted_pd", lang), line=dict(color="#263238", dash="dot")))
    fig.update_xaxes(title_text=t("charts.grade", lang))
    fig.update_yaxes(title_text=t("charts.default_rate", lang), tickformat=".0%", rangemode="tozero")
    return _layout(fig, title)


# --------------------------------------------------------------------------------------------- training


def plot_training_curves(history: pd.DataFrame, *, value: str = "loss", tasks: Sequence[str] | None = None,
                         facet: bool = False, title: str | None = None, y_title: str | None = None,
                         lang: str = DEFAULT_LANG) -> go.Figure:
    """Per-task curves from a long history frame (``epoch``, ``task``, ``split``, ``value``): one trace per
    task and split, colour per task, train solid and validation dashed. ``facet`` draws one panel per task
    (own y-scale: metrics such as RMSE and AUC do not share a scale); panel titles name the task and, when the
    frame has ``metric_name``, its metric."""
    need = ["epoch", "task", value]
    if _is_empty(history, need) or history[value].dropna().empty:
        return empty_figure(_missing_note(need, history, lang), title=title, lang=lang)
    frame = history.dropna(subset=[value])
    if "split" not in frame.columns:
        frame = frame.assign(split="train")
    order = [tk for tk in (list(tasks) if tasks else list(pd.unique(frame["task"]))) if (frame["task"] == tk).any()]
    if facet:
        names = []
        for tk in order:
            metric = frame.loc[frame["task"] == tk, "metric_name"].iloc[0] if "metric_name" in frame else None
            names.append(f"{tk} · {metric}" if metric else str(tk))
        fig = make_subplots(rows=1, cols=len(order), subplot_titles=names, horizontal_spacing=0.08)
    else:
        fig = go.Figure()
    for col, task in enumerate(order, start=1):
        for split in pd.unique(frame["split"]):
            part = frame[(frame["task"] == task) & (frame["split"] == split)].sort_values("epoch")
            if part.empty:
                continue
            dash = "solid" if str(split) == "train" else "dash"
            trace = go.Scatter(
                x=part["epoch"].tolist(), y=part[value].tolist(), mode="lines+markers",
                name=f"{task} · {t('charts.split.' + str(split), lang)}", legendgroup=str(task),
                line=dict(color=task_color(str(task)), dash=dash), marker=dict(size=5),
            )
            if facet:
                fig.add_trace(trace, row=1, col=col)
            else:
                fig.add_trace(trace)
    fig.update_xaxes(title_text=t("charts.epoch", lang))
    if facet:
        fig.update_yaxes(title_text=y_title or value, row=1, col=1)
        fig.update_annotations(font_size=12)
    else:
        fig.update_yaxes(title_text=y_title or value)
    return _layout(fig, title)


def plot_comparison(df: pd.DataFrame, *, model: str = "model", task: str = "task", metric: str = "metric",
                    value: str = "value", title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Model × task metric bars, one panel per task (each with its own scale: RMSE and AUC differ by orders
    of magnitude) titled "task · metric"; in each panel one bar trace per model, colour per model, the
    legend listing each model once."""
    need = [model, task, value]
    if _is_empty(df, need) or pd.to_numeric(df[value], errors="coerce").dropna().empty:
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df.copy()
    frame[value] = pd.to_numeric(frame[value], errors="coerce")
    tasks = list(pd.unique(frame[task]))
    models = list(pd.unique(frame[model]))
    names = []
    for tk in tasks:
        metrics = frame.loc[frame[task] == tk, metric].dropna().unique() if metric in frame.columns else []
        names.append(f"{tk} · {metrics[0]}" if len(metrics) else str(tk))
    fig = make_subplots(rows=1, cols=len(tasks), subplot_titles=names, horizontal_spacing=0.06)
    for col, tk in enumerate(tasks, start=1):
        part = frame[frame[task] == tk].drop_duplicates(subset=[model]).set_index(model)[value]
        y = [float(part[m]) if m in part.index and pd.notna(part[m]) else None for m in models]
        for m, v in zip(models, y, strict=True):
            fig.add_trace(go.Bar(x=[str(m)], y=[v], name=str(m), legendgroup=str(m), showlegend=col == 1,
                                 marker_color=model_color(str(m)), text=[f"{v:.3f}" if v is not None else ""],
                                 textposition="auto"), row=1, col=col)
    fig.update_layout(barmode="group")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(title_text=t("charts.metric_value", lang), row=1, col=1)
    fig.update_annotations(font_size=12)
    return _layout(fig, title)


# --------------------------------------------------------------------------------------------- customer card


def plot_score_gauge(score: float | None, *, lo: float = 300.0, hi: float = 850.0,
                     bands: Sequence[tuple[float, float, str]] | None = DEFAULT_SCORE_BANDS,
                     grade: str | None = None, title: str | None = None,
                     lang: str = DEFAULT_LANG) -> go.Figure:
    """A gauge for one score; coloured steps per grade band (``(low, high, grade)``)."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return empty_figure(title=title, lang=lang)
    steps = [dict(range=[max(lo, b0), min(hi, b1)], color=grade_color(g)) for b0, b1, g in (bands or ())]
    number_suffix = f"  {grade}" if grade else ""
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=float(score),
        number=dict(suffix=number_suffix, valueformat=".0f"),
        gauge=dict(axis=dict(range=[lo, hi]), bar=dict(color="#263238", thickness=0.25), steps=steps),
    ))
    fig = _layout(fig, title, height=260)
    fig.update_layout(margin=dict(l=30, r=30, t=50 if title else 20, b=10))
    return fig


def plot_monthly_flows(df: pd.DataFrame, *, month: str = "month", inflow: str = "inflow",
                       outflow: str = "outflow", title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Monthly inflow and outflow bars plus the net as a line (three traces)."""
    need = [month, inflow, outflow]
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df[need].copy().sort_values(month)
    x = frame[month].astype(str).tolist()
    inn = pd.to_numeric(frame[inflow], errors="coerce").fillna(0.0)
    out = pd.to_numeric(frame[outflow], errors="coerce").fillna(0.0).abs()
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=inn.tolist(), name=t("charts.inflow", lang), marker_color="#2E7D32"))
    fig.add_trace(go.Bar(x=x, y=out.tolist(), name=t("charts.outflow", lang), marker_color="#C62828"))
    fig.add_trace(go.Scatter(x=x, y=(inn - out).tolist(), name=t("charts.net", lang), mode="lines+markers",
                             line=dict(color="#1F4E79")))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text=t("charts.month", lang), type="category")
    fig.update_yaxes(title_text=t("charts.amount", lang))
    return _layout(fig, title)


def plot_login_heatmap(df: pd.DataFrame, *, weekday: str = "weekday", hour: str = "hour",
                       count: str | None = "count", title: str | None = None,
                       lang: str = DEFAULT_LANG) -> go.Figure:
    """Weekday (0 = Monday) × hour (0–23) activity; counts rows when ``count`` is absent."""
    need = [weekday, hour]
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    w = pd.to_numeric(df[weekday], errors="coerce")
    h = pd.to_numeric(df[hour], errors="coerce")
    c = pd.to_numeric(df[count], errors="coerce") if count and count in df.columns else pd.Series(1.0, df.index)
    frame = pd.DataFrame({"w": w, "h": h, "c": c}).dropna()
    frame = frame[(frame["w"] >= 0) & (frame["w"] <= 6) & (frame["h"] >= 0) & (frame["h"] <= 23)]
    if frame.empty:
        return empty_figure(title=title, lang=lang)
    grid = np.zeros((7, 24))
    for (wi, hi), v in frame.groupby([frame["w"].astype(int), frame["h"].astype(int)])["c"].sum().items():
        grid[wi, hi] = v
    days = [t(f"charts.weekday.{i}", lang) for i in range(7)]
    fig = go.Figure(go.Heatmap(z=grid.tolist(), x=list(range(24)), y=days, colorscale="Blues",
                               colorbar=dict(title=t("charts.count", lang)),
                               hovertemplate="%{y} %{x}:00 — %{z}<extra></extra>"))
    fig.update_xaxes(title_text=t("charts.hour", lang), dtick=2)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title)


# --------------------------------------------------------------------------------------------- explanations


def plot_waterfall(df: pd.DataFrame, *, base_value: float, feature: str = "feature",
                   contribution: str = "contribution", top_n: int = 10, output: float | None = None,
                   task: str | None = None, title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Base value + the ``top_n`` largest contributions (the rest summed as "others") → output.

    One ``Waterfall`` trace: measures ``absolute``, ``relative``…, ``total``. The total bar is
    ``base_value + sum(contributions)``; ``output`` (the model's own output) is shown in the hover title
    when it is given.
    """
    need = [feature, contribution]
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df[[feature, contribution]].copy()
    frame[contribution] = pd.to_numeric(frame[contribution], errors="coerce").fillna(0.0)
    frame = frame.reindex(frame[contribution].abs().sort_values(ascending=False).index)
    head, rest = frame.iloc[:top_n], frame.iloc[top_n:]
    labels = [t("charts.base_value", lang)] + head[feature].astype(str).tolist()
    values = [float(base_value)] + head[contribution].astype(float).tolist()
    if len(rest):
        labels.append(t("charts.others", lang, n=len(rest)))
        values.append(float(rest[contribution].sum()))
    total = float(base_value) + float(frame[contribution].sum())
    labels.append(t("charts.output", lang))
    values.append(total)
    measure = ["absolute"] + ["relative"] * (len(values) - 2) + ["total"]
    color = task_color(task) if task else "#1F4E79"
    fig = go.Figure(go.Waterfall(
        orientation="h", y=labels, x=values, measure=measure,
        text=[f"{v:+.3f}" if m == "relative" else f"{v:.3f}" for v, m in zip(values, measure, strict=True)],
        increasing=dict(marker_color="#C62828"), decreasing=dict(marker_color="#2E7D32"),
        totals=dict(marker_color=color), connector=dict(line=dict(color="#B0BEC5")),
    ))
    fig.update_yaxes(autorange="reversed")
    if output is not None and title is None:
        title = t("charts.waterfall_title", lang, output=f"{output:.3f}")
    return _layout(fig, title, height=max(300, 28 * len(labels) + 80))


def plot_importance(df: pd.DataFrame, *, attribute: str = "attribute", task: str = "task",
                    importance: str = "importance", top_n: int = 15, tasks: Sequence[str] | None = None,
                    title: str | None = None, lang: str = DEFAULT_LANG) -> go.Figure:
    """Global importance (mean |SHAP|) per attribute, one panel per task side by side, shared attribute axis
    ordered by the importance summed over tasks."""
    need = [attribute, task, importance]
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df[need].copy()
    frame[importance] = pd.to_numeric(frame[importance], errors="coerce").fillna(0.0)
    order_tasks = list(tasks) if tasks else list(pd.unique(frame[task]))
    # Per-task scale differs (score points vs log-odds): rank by the sum of per-task shares.
    share = frame.groupby(task)[importance].transform(lambda s: s / s.sum() if s.sum() else s)
    ranking = frame.assign(_s=share).groupby(attribute)["_s"].sum().sort_values(ascending=False)
    attrs = ranking.index[:top_n].tolist()
    fig = make_subplots(rows=1, cols=len(order_tasks), shared_yaxes=True, subplot_titles=order_tasks,
                        horizontal_spacing=0.04)
    for i, tk in enumerate(order_tasks, start=1):
        part = frame[frame[task] == tk].groupby(attribute)[importance].sum()
        x = [float(part.get(a, 0.0)) for a in attrs]
        fig.add_trace(go.Bar(x=x, y=attrs, orientation="h", name=str(tk), marker_color=task_color(str(tk)),
                             showlegend=False), row=1, col=i)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=max(320, 24 * len(attrs) + 100))


def plot_beeswarm(df: pd.DataFrame, *, feature: str = "feature", shap: str = "shap", value: str = "value",
                  top_n: int = 15, seed: int = 0, title: str | None = None,
                  lang: str = DEFAULT_LANG) -> go.Figure:
    """SHAP summary: one marker per (customer, feature), x = SHAP value, rows = features by mean |SHAP|,
    colour = the feature value scaled 0–1 within its feature (categories by code). One trace."""
    need = [feature, shap, value]
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df[need].copy()
    frame[shap] = pd.to_numeric(frame[shap], errors="coerce")
    frame = frame.dropna(subset=[shap])
    if frame.empty:
        return empty_figure(title=title, lang=lang)
    order = frame.groupby(feature)[shap].apply(lambda s: s.abs().mean()).sort_values(ascending=False)
    feats = order.index[:top_n].tolist()
    rng = np.random.default_rng(seed)
    xs, ys, cs, texts = [], [], [], []
    for i, f in enumerate(feats):
        part = frame[frame[feature] == f]
        raw = part[value]
        num = pd.to_numeric(raw, errors="coerce")
        if num.notna().sum() == 0 and raw.notna().any():
            num = pd.Series(pd.Categorical(raw.astype(str)).codes, index=raw.index, dtype=float)
        lo, hi = num.min(), num.max()
        scaled = (num - lo) / (hi - lo) if pd.notna(lo) and hi > lo else num * 0 + 0.5
        xs += part[shap].tolist()
        ys += (i + rng.uniform(-0.3, 0.3, len(part))).tolist()
        cs += scaled.fillna(0.5).tolist()
        texts += [f"{f} = {v}" for v in raw.tolist()]
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers", text=texts, hovertemplate="%{text}<br>SHAP %{x:.4f}<extra></extra>",
        marker=dict(size=5, color=cs, colorscale="RdBu_r", cmin=0, cmax=1, opacity=0.7,
                    colorbar=dict(title=t("charts.feature_value", lang), tickvals=[0, 1],
                                  ticktext=[t("charts.low", lang), t("charts.high", lang)])),
        showlegend=False,
    ))
    fig.update_yaxes(tickvals=list(range(len(feats))), ticktext=feats, autorange="reversed")
    fig.update_xaxes(title_text=t("charts.shap_value", lang), zeroline=True, zerolinecolor="#90A4AE")
    return _layout(fig, title, height=max(320, 26 * len(feats) + 100))


def plot_dependence(df: pd.DataFrame, *, value: str = "value", shap: str = "shap", color: str | None = None,
                    feature_name: str | None = None, task: str | None = None, title: str | None = None,
                    lang: str = DEFAULT_LANG) -> go.Figure:
    """SHAP dependence: feature value (x) against its SHAP value (y), optionally coloured by ``color``."""
    need = [value, shap] + ([color] if color else [])
    if _is_empty(df, need):
        return empty_figure(_missing_note(need, df, lang), title=title, lang=lang)
    frame = df[need].copy()
    frame[shap] = pd.to_numeric(frame[shap], errors="coerce")
    frame = frame.dropna(subset=[shap, value])
    if frame.empty:
        return empty_figure(title=title, lang=lang)
    marker: dict = dict(size=6, opacity=0.7, color=task_color(task) if task else "#1F4E79")
    if color and pd.api.types.is_numeric_dtype(frame[color]):
        marker.update(color=frame[color].tolist(), colorscale="RdBu_r", colorbar=dict(title=color))
    fig = go.Figure(go.Scatter(x=frame[value].tolist(), y=frame[shap].tolist(), mode="markers", marker=marker,
                               showlegend=False))
    fig.update_xaxes(title_text=feature_name or value)
    fig.update_yaxes(title_text=t("charts.shap_value", lang), zeroline=True, zerolinecolor="#90A4AE")
    return _layout(fig, title)
