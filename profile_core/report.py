"""Self-contained HTML reports: one customer's panorama card, or the portfolio with a model card.

Each report is one HTML string with inline CSS and plotly.js inlined ONCE in the ``<head>`` (no CDN, no
external file: it opens offline); every figure is a ``charts.plot_*`` figure embedded as a div. Templates are
``profile_core/templates/*.html.j2`` (Jinja, autoescaped).

Privacy: :func:`customer_report` renders the card as given — its identity is already masked by the
``privacy.Policy`` the card was built with, transactions' counterparties are always masked — so the report
shows exactly what the caller may see. :func:`portfolio_report` shows aggregates only.

The app's download button::

    st.download_button(label, data=customer_report(card, explanation=expl, lang=lang),
                       file_name=f"{card.customer_id}.html", mime="text/html")

where ``expl`` is an attribute-level explanation covering the customer (``explain.to_attributes``), or
``None`` (reason codes only, no waterfalls).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import profile_core
from profile_core import charts
from profile_core.i18n import t
from profile_core.profile import ProfileCard
from profile_core.scorecard import add_scorecard
from profile_core.tasks import TaskSpec, role_task
from profile_core.views import contribution_frame, headline_items, marketing_items, reason_headings

TEMPLATES = Path(__file__).with_name("templates")
FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
IDENTITY_FIELDS = ("customer_id", "name", "gender", "age", "city", "occupation", "education", "marital_status",
                   "id_number", "phone", "rm_id", "open_date", "tenure_months")


@cache
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


@cache
def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


class _Figures:
    """Figure → div HTML without plotly.js (the page carries it once); stable div ids per report."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, fig) -> str:
        self.n += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{self.n}", config=FIGURE_CONFIG)


@dataclass(frozen=True)
class _Cell:
    text: str
    num: bool = False


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[list[_Cell]]
    empty: str = "—"


def _fmt(value: Any, digits: int = 3) -> _Cell:
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return _Cell("—", True)
    if isinstance(value, bool | np.bool_):
        return _Cell(str(bool(value)))
    if isinstance(value, int | np.integer):
        return _Cell(f"{int(value):,}", True)
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isfinite(x) and x.is_integer() and abs(x) >= 1000:
            return _Cell(f"{x:,.0f}", True)
        return _Cell(f"{x:,.{digits}f}" if abs(x) < 1e6 else f"{x:,.0f}", True)
    if isinstance(value, pd.Timestamp):
        return _Cell(str(value.date()) if value == value.normalize() else value.isoformat(sep=" "))
    return _Cell(str(value))


def table_of(frame: pd.DataFrame, *, columns: Mapping[str, str] | None = None, digits: int = 3,
             empty: str = "—") -> _Table:
    """A frame as a template table (headers renamed by ``columns``; numbers right-aligned)."""
    if frame is None or not len(frame):
        return _Table([], [], empty)
    cols = list(columns) if columns else list(frame.columns)
    heads = [columns[c] for c in cols] if columns else [str(c) for c in cols]
    return _Table(heads, [[_fmt(v, digits) for v in row] for row in frame[cols].itertuples(index=False)], empty)


def _labels(lang: str, keys: Sequence[str]) -> dict[str, str]:
    return {k: t(f"report.{k}", lang) for k in keys}


def _page(template: str, *, lang: str, title: str, subtitle: str, figures: bool, **context: Any) -> str:
    generated = t("report.generated", lang, when=datetime.now().strftime("%Y-%m-%d %H:%M"),
                  version=profile_core.__version__)
    return _env().get_template(template).render(
        lang=lang, title=title, subtitle=subtitle, notice=t("app.notice", lang), generated=generated,
        version=profile_core.__version__, plotlyjs=_plotlyjs() if figures else "", **context)


# --- one customer ----------------------------------------------------------------------------------------------

def _identity_items(card: ProfileCard, lang: str) -> list[dict[str, str]]:
    from profile_core.schema import display_name

    items = []
    for key in IDENTITY_FIELDS:
        if key not in card.identity:
            continue
        value = card.identity[key]
        label = t("report.tenure_months", lang) if key == "tenure_months" else display_name(key, lang)
        items.append({"label": label, "value": _fmt(value).text})
    return items


def _output_items(card: ProfileCard, lang: str) -> list[dict[str, Any]]:
    return [{"label": i.label, "value": f"{i.value} ({i.note})" if i.note else i.value, "grade": i.grade is not None,
             "color": charts.grade_color(i.grade) if i.grade else ""} for i in headline_items(card.outputs, lang)]


def _waterfall(explanation, card: ProfileCard, task: str, lang: str):
    expl = explanation
    if expl is None or task not in expl.values or card.customer_id not in expl.customer_ids:
        return None
    frame = contribution_frame(expl, task, card.customer_id, lang)
    title = t("report.waterfall", lang, task=_task_title(expl.tasks.get(task), task, lang),
              kind=expl.output_kind.get(task, ""))
    return charts.plot_waterfall(frame, base_value=expl.base(task, card.customer_id),
                                 output=expl.output(task, card.customer_id), task=task, title=title, lang=lang)


def _task_title(spec, name: str, lang: str) -> str:
    return name if spec is None else spec.display(lang)  # the label as the data names it


def customer_report(card: ProfileCard, *, explanation=None, figures: Mapping[str, Any] | None = None,
                    lang: str | None = None, title: str | None = None, top_n: int = 10, recourse=None) -> str:
    """The panorama card of one customer as a self-contained HTML page.

    ``explanation``: an attribute-level ``explain.Explanation`` covering ``card.customer_id`` (one waterfall
    per task); without it the page shows the card's reason codes only. ``figures``: extra Plotly figures
    by title (e.g. a dependence plot) appended at the end. ``lang`` defaults to the card's. ``recourse``: a
    ``whatif.RecourseView`` (the path to a better grade) shown after the reasons.
    """
    lang = lang or card.lang
    if explanation is not None and explanation.level != "attribute":
        raise ValueError("customer_report needs an attribute-level explanation (explain.to_attributes)")
    fig = _Figures()
    tasks, heads = [], {h.task: h for h in card.outputs.tasks}
    for task, rc in card.reasons.items():
        spec = explanation.tasks.get(task) if explanation is not None else None
        wf = _waterfall(explanation, card, task, lang)
        head = heads.get(task)
        tasks.append({"title": head.title if head else _task_title(spec, task, lang), "reasons": rc,
                      "waterfall": fig(wf) if wf else None,
                      "headings": reason_headings(head.role if head else spec.role if spec else "pd", lang)})
    attributes = []
    cat_col = "category_zh" if lang == "zh" else "category_en"
    heads = {"name": t("report.attribute", lang), "value": t("report.value", lang),
             "percentile": t("report.percentile_col", lang)}
    for cat, part in card.attributes.groupby("category", sort=False):
        shown = part.assign(percentile=part["percentile"].round(0))
        attributes.append({"title": str(part[cat_col].iloc[0]) if len(part) else str(cat),
                           "table": table_of(shown, columns=heads, digits=0)})
    recent_heads = {c: t(f"report.txn.{c}", lang) for c in card.recent_transactions.columns}
    heat = card.login_heatmap.stack().rename("count").reset_index() if len(card.login_heatmap) else pd.DataFrame()
    gauge = charts.plot_score_gauge(card.outputs.points, grade=card.outputs.pd_grade, lang=lang,
                                    title=t("card.points", lang)) if card.outputs.points is not None else None
    context = {
        "L": _labels(lang, ("identity", "outputs", "tags", "reasons", "up", "down", "no_reasons", "no_waterfall",
                            "activity", "recent")),
        "identity": _identity_items(card, lang), "outputs": _output_items(card, lang),
        "gauge": fig(gauge) if gauge is not None else None,
        "tags": [{"text": g.text(lang), "tone": g.tone} for g in card.tags],
        "warnings": [w.text for w in card.warnings], "tasks": tasks,
        "marketing": [{"label": i.label, "text": i.help} for i in marketing_items(card.outputs, lang)
                      if i.key in ("next_best", "retention")],
        "has_waterfalls": any(task["waterfall"] for task in tasks), "attributes": attributes,
        "flows": fig(charts.plot_monthly_flows(card.monthly_flows, lang=lang, title=t("report.flows", lang)))
        if card.has_transactions else None,
        "logins": fig(charts.plot_login_heatmap(heat, lang=lang, title=t("report.logins", lang)))
        if card.has_behaviors else None,
        "recent": table_of(card.recent_transactions, columns=recent_heads, digits=2,
                           empty=t("report.no_transactions", lang)),
        "extra": [{"title": name, "html": fig(f)} for name, f in (figures or {}).items()],
        "recourse": None if recourse is None else {
            "title": t("whatif.recourse_report_title", lang, grade=recourse.target_grade),
            "sentence": recourse.sentence, "side_effects": recourse.side_effects,
            "side_title": t("whatif.side_effects", lang),
            "table": table_of(recourse.table) if recourse.table is not None else None},
    }
    name = card.identity.get("name") or ""
    return _page("customer.html.j2", lang=lang, title=title or t("report.customer_title", lang),
                 subtitle=f"{card.customer_id} {name} · {t('report.as_of', lang, date=card.as_of)}",
                 figures=fig.n > 0, **context)


# --- the portfolio --------------------------------------------------------------------------------------------

def _with_scores(predictions: pd.DataFrame, tasks: Sequence[TaskSpec]) -> pd.DataFrame:
    if "points" in predictions.columns:
        return predictions
    cols = {c: predictions[c].to_numpy() for c in predictions.columns}
    return pd.DataFrame(add_scorecard(cols, tasks), index=predictions.index)


def _joined(predictions: pd.DataFrame, features: pd.DataFrame | None, tasks: Sequence[TaskSpec]) -> pd.DataFrame:
    scored = _with_scores(predictions, tasks)
    if features is None or "customer_id" not in scored.columns or "customer_id" not in features.columns:
        return scored
    extra = [c for c in features.columns if c not in scored.columns]
    right = features[["customer_id", *extra]].assign(customer_id=features["customer_id"].astype("str"))
    return scored.assign(customer_id=scored["customer_id"].astype("str")).merge(right, on="customer_id", how="left")


def monitoring_tables(predictions: pd.DataFrame, features: pd.DataFrame | None, tasks: Sequence[Any],
                      lang: str = "zh") -> dict[str, pd.DataFrame]:
    """Basic monitoring on the labelled rows (``monitor.task_metrics``: AUC, Gini, KS, Brier for binary;
    RMSE, MAE for regression; accuracy, QWK for multiclass) and the PD calibration by predicted-PD decile
    (``monitor.calibration_table``)."""
    from profile_core.monitor import calibration_table, task_metrics

    frame = _joined(predictions, features, tasks)  # predictions and labels side by side, same rows
    metrics = task_metrics(frame, frame, tasks)
    rows = [(task, metric, value) for task, values in metrics.items() for metric, value in values.items()]
    out = {t("report.mon.metrics", lang): pd.DataFrame(rows, columns=["task", "metric", "value"])}
    pd_task = role_task(tasks, "pd")
    pd_col, target = (f"{pd_task.name}_prob", pd_task.label) if pd_task else ("", "")
    if pd_col in frame.columns and target in frame.columns and frame[target].notna().sum() >= 10:
        out[t("report.mon.calibration", lang)] = calibration_table(frame[target], frame[pd_col], bins=10,
                                                                   strategy="quantile")
    return out


def portfolio_report(predictions: pd.DataFrame, features: pd.DataFrame | None, manifest: Mapping[str, Any], *,
                     monitoring: Mapping[str, pd.DataFrame] | None = None, lang: str = "zh",
                     title: str | None = None) -> str:
    """The portfolio as a self-contained HTML page: summary, distributions (points, PD, predicted credit
    score), grades and the observed default rate by grade, ``monitoring`` tables (title → frame, e.g. from
    :func:`monitoring_tables` or ``monitor``), and a model card (intended use, model, data, tasks, metrics,
    limitations) from the bundle ``manifest``.

    ``predictions``: ``scoring.score_chunk`` / ``bundle.predict`` output (points and PD grade are added when
    missing); ``features``: the feature frame (labels such as ``default_flag`` and groups such as ``city``),
    joined on customer_id. Aggregates only: no customer is listed.
    """
    from profile_core.views import portfolio_frame, portfolio_kpis

    tasks = [TaskSpec.from_dict(d) for d in manifest.get("tasks", [])]
    frame = _joined(predictions, features, tasks)
    fig = _Figures()
    pd_task = role_task(tasks, "pd")
    pd_col = f"{pd_task.name}_prob" if pd_task else ""
    n = len(frame)
    view = portfolio_frame(predictions, features if features is not None else frame, tasks)
    summary = [{"label": i.label, "value": i.value} for i in portfolio_kpis(view, tasks, lang)]
    summary.append({"label": t("report.model_name", lang), "value": str(manifest.get("name", ""))})
    target = pd_task.label if pd_task else ""
    if pd_task is not None and target in frame.columns:
        from profile_core.tasks import encode_label

        frame[target] = encode_label(frame, pd_task)  # the observed bad flag as 0/1, whatever its codes

    distributions = []
    heads = [("points", t("report.dist.points", lang))] if "points" in frame.columns else []
    heads += [(f"{x.name}_pred" if x.kind == "regression" else f"{x.name}_prob", x.display(lang))
              for x in tasks if x.kind != "multiclass"]
    for col, title in heads:
        if col in frame.columns:
            distributions.append(fig(charts.plot_histogram(frame, column=col, by="pd_grade" if col == "points"
                                                           and "pd_grade" in frame else None,
                                                           title=title, x_title=title, lang=lang)))
    grade_figures, rate = [], pd.DataFrame()
    monotonic = None
    if "pd_grade" in frame.columns:
        grade_figures.append(fig(charts.plot_grade_counts(frame, grade="pd_grade", lang=lang,
                                                          title=t("report.grade_counts.pd", lang))))
        rate = charts.default_rate_table(frame, grade="pd_grade", target=target, pd_column=pd_col)
        if not rate["n_labelled"].sum():  # no labels: nothing observed to compare with
            rate = rate.iloc[:0]
        grade_figures.append(fig(charts.plot_default_rate_by_grade(rate, lang=lang,
                                                                   title=t("report.default_rate", lang))))
        mono = charts.is_monotonic(rate["rate"].tolist()) if len(rate) else None
        if mono is not None:
            monotonic = t("report.monotonic.yes" if mono else "report.monotonic.no", lang)
    grade_task = role_task(tasks, "grade")
    if grade_task is not None and f"{grade_task.name}_pred" in frame.columns:
        grade_figures.append(fig(charts.plot_grade_counts(frame, grade=f"{grade_task.name}_pred", lang=lang,
                                                          title=t("report.grade_counts.level", lang))))
    if "city" in frame.columns and "pd_grade" in frame.columns:
        grade_figures.append(fig(charts.plot_grade_counts(frame, grade="pd_grade", by="city", normalize=True,
                                                          lang=lang, title=t("report.grade_counts.city", lang))))
    rate_heads = {c: t(f"report.rate.{c}", lang) for c in rate.columns}
    fair = []
    if pd_task is not None and features is not None and pd_col in frame.columns:
        from profile_core.fairness import candidate_groups, fairness_by_group

        fair = [fairness_by_group(frame, frame[pd_col], pd_task, a) for a in candidate_groups(frame)]
    context = {
        **_model_card(manifest, lang, fairness=fair),
        "L": _labels(lang, ("summary", "distributions", "grades", "default_rate", "monitoring", "model_card",
                            "intended_use", "model", "data", "tasks", "excluded", "metrics", "current", "stability",
                            "fairness", "limitations")),
        "summary": summary, "distributions": distributions, "grade_figures": grade_figures,
        "default_rate": table_of(rate, columns=rate_heads, digits=4, empty=t("report.no_labels", lang)),
        "monotonic": monotonic,
        "monitoring": [{"title": name, "table": table_of(tbl, digits=4)} for name, tbl in (monitoring or {}).items()],
    }
    return _page("portfolio.html.j2", lang=lang, title=title or t("report.portfolio_title", lang),
                 subtitle=t("report.portfolio_sub", lang, n=f"{n:,}", model=manifest.get("name", "")),
                 figures=fig.n > 0, **context)


def _model_card(manifest: Mapping[str, Any], lang: str, *, current: Mapping[str, Mapping[str, Any]] | None = None,
                stability: pd.DataFrame | None = None, scope: str = "", dataset: str = "",
                fairness: Sequence[Any] = ()) -> dict[str, Any]:
    """The model card's context (one template, ``_model_card.html.j2``, for reports, the monitoring page and
    its download): model, data, tasks by role, the inputs left out and why, held-out metrics, and — when
    given — metrics on the active data (``current``, evaluated on the rows ``scope`` describes) and the worst
    population-stability rows."""
    from profile_core.views import hybrid_table, metrics_table

    config = manifest.get("config", {}) or {}
    arch = (manifest.get("architecture") or {}).get("name", "")
    model_rows = [("name", manifest.get("name")), ("created_utc", manifest.get("created_utc")),
                  ("architecture", arch), ("weighting", config.get("weighting")),
                  ("best_epoch", manifest.get("best_epoch")), ("device", manifest.get("device")),
                  ("seed", manifest.get("seed")), ("weights_sha256", str(manifest.get("weights_sha256", ""))[:16])]
    features = manifest.get("features", {}) or {}
    splits = manifest.get("split_sizes", {}) or {}
    made = manifest.get("data") or {}
    data_rows = [("source", " · ".join(str(x) for x in (made.get("source") or dataset, made.get("version"))
                                       if x not in (None, ""))),
                 ("split_sizes", ", ".join(f"{k} {v:,}" for k, v in splits.items())),
                 ("numeric", len(features.get("numeric", []))), ("categorical", len(features.get("categorical", []))),
                 ("model_inputs", len(features.get("names", []))),
                 ("data_fingerprint", manifest.get("data_fingerprint"))]
    key_value = {"key": t("report.field", lang), "value": t("report.value", lang)}

    def kv(rows: list[tuple[str, Any]]) -> _Table:
        frame = pd.DataFrame([(t(f"report.card.{k}", lang), v) for k, v in rows], columns=["key", "value"])
        return table_of(frame, columns=key_value)

    specs = [TaskSpec.from_dict(d) for d in manifest.get("tasks", [])]
    tasks = pd.DataFrame([{"title": x.display(lang), "label": x.label, "kind": x.kind,
                           "role": t(f"views.role.{x.role}", lang),
                           "classes": " ".join(map(str, x.classes)) or "—"} for x in specs])
    excluded = pd.DataFrame([{"column": c, "why": t(f"views.excluded.{why}", lang)}
                             for c, why in (manifest.get("excluded_inputs") or {}).items()],
                            columns=["column", "why"])
    held_out = {s: v for s, v in (manifest.get("metrics") or {}).items() if s in ("val", "test")}
    stab = None if stability is None or not len(stability) else stability.head(10)[["feature", "psi", "status"]].assign(
        status=lambda f: [t(f"monitor.status.{x}", lang) if x else "—" for x in f["status"]])
    n_train = splits.get("train")
    return {
        "L": _labels(lang, ("model_card", "intended_use", "model", "data", "tasks", "excluded", "metrics",
                            "current", "stability", "fairness", "limitations")),
        "intended_use": t("report.intended_use_text", lang),
        "model_table": kv(model_rows), "data_table": kv(data_rows),
        "tasks_table": table_of(tasks, columns={c: t(f"report.task.{c}", lang) for c in tasks.columns}),
        "excluded_table": table_of(excluded, columns={"column": t("report.excluded_column", lang),
                                                      "why": t("report.excluded_why", lang)}),
        "metrics_table": table_of(metrics_table(held_out, specs, lang), digits=4),
        "hybrid_table": table_of(hybrid_table(manifest["hybrid"], specs, lang)) if manifest.get("hybrid") else None,
        "hybrid_title": t("model.hybrid_weights", lang),
        "current_table": table_of(metrics_table({t("report.on_active", lang): current}, specs, lang), digits=4)
        if current else None,
        "scope": scope,
        "fairness_table": _fairness_table(fairness, lang) if fairness else None,
        "stability_table": table_of(stab, columns={"feature": t("monitor.col.feature", lang), "psi": "PSI",
                                                   "status": t("monitor.col.status", lang)}, digits=4)
        if stab is not None else None,
        "limitations": [t(f"report.limit.{i}", lang, n=f"{n_train:,}" if n_train else "?") for i in range(1, 6)]
        + ([t("report.limit.6", lang)] if "demo" in str(manifest.get("name", "")).lower() else []),
        "versions": ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items()),
    }


def _fairness_table(reports: Sequence[Any], lang: str) -> _Table:
    from profile_core.fairness import summary_frame

    return table_of(summary_frame(reports, lang), digits=3)


def model_card_page(manifest: Mapping[str, Any], *, current: Mapping[str, Mapping[str, Any]] | None = None,
                    stability: pd.DataFrame | None = None, scope: str = "", dataset: str = "", lang: str = "zh",
                    fairness: Sequence[Any] = (), standalone: bool = True) -> str:
    """The model card as a self-contained HTML page (``standalone=False``: the card's section only, to embed
    in the app). Every value is escaped; no scripts."""
    context = _model_card(manifest, lang, current=current, stability=stability, scope=scope, dataset=dataset,
                          fairness=fairness)
    if not standalone:
        return _env().get_template("_model_card.html.j2").render(**context)
    return _page("model_card.html.j2", lang=lang, title=f"{t('report.model_card', lang)} · {manifest.get('name', '')}",
                 subtitle=dataset, figures=False, **context)


# --- the command line ------------------------------------------------------------------------------------------

def report_cli(bundle_path: str | Path, data: str | Path, *, out: str | Path, customer: str | None = None,
               portfolio: bool = False, workspace: str | Path | None = None, lang: str = "zh",
               role: str = "analyst", rm_id: str | None = None) -> int:
    """``python -m profile_core report``: write a customer report (``customer``) or the portfolio report."""
    from profile_core.auth import Forbidden, require
    from profile_core.bundle import load_bundle
    from profile_core.features import build_features_from_frames
    from profile_core.pipeline import read_tables
    from profile_core.privacy import Policy
    from profile_core.scoring import score_chunk

    if bool(customer) == bool(portfolio):
        raise SystemExit("give either --customer ID or --portfolio")
    policy = Policy(role, rm_id=rm_id)  # type: ignore[arg-type]
    try:  # the app's rules: cards need view_customers; the portfolio's model card and monitoring view_monitoring
        require(policy, "view_monitoring" if portfolio else "view_customers")
    except Forbidden as err:
        print(err.message(lang))
        return 2
    bundle = load_bundle(bundle_path)
    tables = read_tables(data, workspace=workspace)
    features = build_features_from_frames(tables)
    from profile_core.bundle import require_inputs

    require_inputs(bundle, features)
    scored = score_chunk(bundle, features)
    if portfolio:
        html = portfolio_report(scored, features, bundle.manifest, lang=lang,
                                monitoring=monitoring_tables(scored, features, bundle.tasks, lang))
    else:
        from profile_core.explain import HeadExplainer, to_attributes
        from profile_core.privacy import AccessDenied
        from profile_core.profile import CardContext
        from profile_core.whatif import next_grade_recourse

        explainer = HeadExplainer(bundle, features)
        context = CardContext(tables, features, scored, explainer=explainer)
        try:
            card = context.card(customer, policy=policy, lang=lang)
        except (KeyError, AccessDenied):
            print(t("service.not_found", lang, customer=customer))
            return 1
        rows = features[features["customer_id"].astype("str") == str(customer)]
        explanation = to_attributes(explainer.explain(rows), bundle.preprocessor, features)
        html = customer_report(card, explanation=explanation, lang=lang,
                               recourse=next_grade_recourse(bundle, features, customer, lang))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    print(f"{out} ({len(html.encode('utf-8')) / 1e6:.1f} MB)")
    return 0
