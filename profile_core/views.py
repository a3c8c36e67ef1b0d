"""The presentation layer: the tables and figure data that a screen, an HTML report, the REST API and the CLI
show, computed once here from what the core returns. Pages and reports only render these.

Everything is driven by task roles (``tasks.ROLES``): a ``pd`` task feeds PD, scorecard points and the PD
grade; a ``score`` task is the credit score; a ``grade`` task the risk level; ``generic`` tasks are shown
by their own names and units. Nothing is called a credit score or a PD that is not one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profile_core.i18n import t
from profile_core.scorecard import pd_grade, scorecard_points
from profile_core.tasks import MARKETING_ROLES, RISK_ROLES, TaskSpec, encode_label, role_task

GROUP_COLUMNS = ("rm_id", "city", "occupation")
OBSERVED = "observed_bad"  # the pd task's observed label (0/1) in the portfolio frame


@dataclass(frozen=True)
class Item:
    """One labelled value of a headline (a KPI tile, a line of a report's summary)."""

    key: str  # stable id: "points", "pd", "grade", "pd_grade", "score", or "task:<id>"
    label: str
    value: str
    help: str = ""
    grade: str | None = None  # set when the value is an A–E grade (for colouring)
    note: str = ""  # a short qualifier shown under the value (e.g. the percentile)
    tone: str = ""  # good | warn | bad | neutral for lines that carry a judgement (next best product, alerts)


def fmt_number(value: float | None, unit: str = "", digits: int | None = None) -> str:
    """A number for people: thousands separators, no scientific notation, "—" when missing."""
    if value is None or not np.isfinite(value):
        return "—"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 2 if abs(value) >= 1 else 4
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".strip()


def fmt_metric(metric: str, value: float | None) -> str:
    """A metric for people: counts as integers, large errors (RMSE of an amount) with separators, the rest to
    four decimals."""
    if value is None or not np.isfinite(value):
        return "—"
    if metric == "n":
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4f}"


def fmt_share(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}%}"


# --- the card's headline -----------------------------------------------------------------------------------------

def headline_items(outputs, lang: str = "zh", *, marketing: bool = True) -> list[Item]:
    """The card's headline by role: points, PD and grade from the pd task, the credit score from the score
    task, the risk level from the grade task, then every other head by its own name (value with unit and
    percentile, a probability named after the task, or a class). ``marketing=False`` leaves the propensity and
    churn heads to :func:`marketing_items` (the card's marketing panel)."""
    o, items = outputs, []

    def named(key: str, role: str) -> str:  # the role's name, plus the task's own name when it adds something
        label, title = t(key, lang), o.titles.get(role, "")
        return label if not title or title.lower() in label.lower() else f"{label} · {title}"

    if o.credit_score is not None:
        pct = t("report.percentile", lang, pct=round(o.credit_score_percentile)) \
            if o.credit_score_percentile is not None else ""
        items.append(Item("score", named("card.kpi.score", "score"), f"{o.credit_score:.0f}",
                          t("card.kpi.score_help", lang), note=pct))
    if o.pd is not None:
        items.append(Item("pd", named("card.kpi.pd", "pd"), fmt_share(o.pd), t("card.kpi.pd_help", lang)))
    if o.points is not None:
        items.append(Item("points", t("card.kpi.points", lang), f"{o.points:.0f}", t("card.kpi.points_help", lang)))
    if o.grade is not None:
        items.append(Item("grade", t("card.kpi.grade", lang), o.grade, grade=o.grade,
                          help=t("card.grade_from_head" if o.grade_source == "risk_level" else "card.grade_from_pd",
                                 lang, grade=o.pd_grade or "—")))
    headline = {next((h.task for h in o.tasks if h.role == r), None) for r in ("pd", "score", "grade")}
    for head in o.tasks:
        if head.task not in headline and (marketing or head.role not in MARKETING_ROLES):  # not shown above
            pct = t("report.percentile", lang, pct=round(head.percentile)) if head.percentile is not None else ""
            items.append(Item(f"task:{head.task}", head.title, task_value_text(head, lang, percentile=False),
                              note=pct))
    return items


def task_value_text(head, lang: str = "zh", *, percentile: bool = True) -> str:
    """One head's prediction as text: a regression value with unit (and percentile), a probability, a class."""
    if head.kind == "regression":
        pct = f" ({t('report.percentile', lang, pct=round(head.percentile))})" \
            if percentile and head.percentile is not None else ""
        return fmt_number(head.value, head.unit) + pct
    if head.kind == "binary":
        return fmt_share(head.value)
    top = max(head.probs.values()) if head.probs else None
    return f"{head.label_value or '—'}" + (f" ({fmt_share(top, 0)})" if top is not None else "")


# --- the marketing side of the card --------------------------------------------------------------------------------

def marketing_items(outputs, lang: str = "zh") -> list[Item]:
    """The card's marketing lines: every propensity and churn head (probability, its rank in the portfolio,
    the product it is about), then the next best product (下一步推荐产品) and the retention alert when there
    is one (``campaign.next_best_product`` / ``campaign.retention_alert``, filled in by ``profile``)."""
    items = []
    for head in outputs.tasks:
        if head.role not in MARKETING_ROLES or head.value is None:
            continue
        top = max(1, round(100 - head.percentile)) if head.percentile is not None else None
        role = t(f"views.role.{head.role}", lang)
        items.append(Item(f"task:{head.task}", head.title, fmt_share(head.value, 1),
                          help=f"{role} · {head.product}" if head.product else role,
                          note=t("marketing.top", lang, top=top) if top is not None else "",
                          tone="warn" if head.role == "churn" else "neutral"))
    best = outputs.next_best
    if best is not None:
        tone = {"recommend": "good", "suppressed": "bad", "none": "neutral"}[best.status]
        items.append(Item("next_best", t("marketing.next_best_label", lang), best.product or "—", help=best.text,
                          note=best.reason, tone=tone, grade=best.grade if best.status == "suppressed" else None))
    if outputs.retention is not None:
        r = outputs.retention
        items.append(Item("retention", t("marketing.retention_label", lang), fmt_share(r.probability, 1),
                          help=r.text, note=r.reason, tone="warn"))
    return items


def campaign_items(campaign, role: str, lang: str = "zh") -> list[Item]:
    """The KPIs of a campaign (``campaign.rank_campaign``): customers chosen, expected uptake (Σ probability of
    the chosen; for a churn head, the leavers it reaches) with its rate against a random pick, customers left out
    for risk, and the expected uptake kept and lost against the same number chosen without the risk cut-off."""
    c, kind = campaign, "churn" if role == "churn" else "propensity"
    lift = c.expected_rate / c.base_rate if c.base_rate and np.isfinite(c.expected_rate) else float("nan")
    cut = {"grade": t("marketing.campaign.cut_grade", lang, grade=c.cut_value),
           "pd": t("marketing.campaign.cut_pd", lang, pd=fmt_share(c.cut_value, 1)) if c.cut == "pd" else "",
           "none": t("marketing.campaign.cut_none", lang)}[c.cut]
    return [
        Item("selected", t("marketing.campaign.selected", lang), f"{len(c.selected):,}",
             note=t("marketing.campaign.asked", lang, n=f"{c.n:,}")),
        Item("uptake", t(f"marketing.campaign.uptake.{kind}", lang), fmt_number(c.expected_uptake, digits=1),
             help=t(f"marketing.campaign.uptake_help.{kind}", lang) + " "
             + t("marketing.campaign.lift", lang, lift="—" if not np.isfinite(lift) else f"{lift:.1f}"),
             note=t("marketing.campaign.rate", lang, rate=fmt_share(c.expected_rate, 1), base=fmt_share(c.base_rate, 1))),
        Item("excluded", t("marketing.campaign.excluded", lang), f"{c.excluded:,}", help=cut,
             note=t("marketing.campaign.excluded_top", lang, k=f"{c.excluded_in_top:,}", n=f"{c.n:,}"),
             tone="bad" if c.excluded_in_top else "neutral"),
        Item("kept", t("marketing.campaign.kept", lang), fmt_share(c.kept_share, 1),
             help=t("marketing.campaign.kept_help", lang, without=fmt_number(c.uptake_without_cut, digits=1)),
             note=t("marketing.campaign.lost", lang, lost=fmt_number(c.uptake_lost, digits=1))),
    ]


# --- the portfolio -----------------------------------------------------------------------------------------------

def portfolio_frame(preds: pd.DataFrame, features: pd.DataFrame, tasks: Sequence[TaskSpec]) -> pd.DataFrame:
    """One row per customer: ``score`` (the score task, else points from the pd task), ``pd`` (the pd task),
    ``grade`` and ``grade_source`` (the grade task, else the PD band), ``observed_bad`` (the pd task's
    label when known), the grouping columns, and every head's prediction columns as the model names them."""
    out = pd.DataFrame({"customer_id": preds["customer_id"]} if "customer_id" in preds else {}, index=preds.index)
    pd_task, score_task, grade_task = (role_task(tasks, r) for r in ("pd", "score", "grade"))
    out["pd"] = preds[f"{pd_task.name}_prob"].astype(float) if pd_task else np.nan
    if score_task is not None:
        out["score"] = preds[f"{score_task.name}_pred"].astype(float)
    elif pd_task is not None:
        out["score"] = scorecard_points(out["pd"].to_numpy(dtype=float).clip(1e-9, 1 - 1e-9))
    else:
        out["score"] = np.nan
    if grade_task is not None:
        out["grade"], out["grade_source"] = preds[f"{grade_task.name}_pred"].astype(object), "risk_level"
    elif pd_task is not None:
        out["grade"], out["grade_source"] = pd_grade(out["pd"].to_numpy(dtype=float)), "pd_bands"
    else:
        out["grade"], out["grade_source"] = None, ""
    heads = [c for c in preds.columns if c != "customer_id" and c not in out.columns]
    out[heads] = preds[heads]
    aligned = features.reset_index(drop=True)
    if len(aligned) == len(out):
        if pd_task is not None and pd_task.label in aligned.columns:
            out[OBSERVED] = encode_label(aligned, pd_task)
        for col in GROUP_COLUMNS:
            if col in aligned.columns:
                out[col] = aligned[col].to_numpy()
    return out


def portfolio_kpis(frame: pd.DataFrame, tasks: Sequence[TaskSpec], lang: str = "zh") -> list[Item]:
    """Customers, then mean PD, mean score/points, high-risk share (grades D–E) and observed bad rate when a
    model has the role that gives them, then the mean of every generic head (named as written)."""
    items = [Item("customers", t("portfolio.customers", lang), f"{len(frame):,}")]
    pd_task, score_task = role_task(tasks, "pd"), role_task(tasks, "score")
    if score_task is not None or pd_task is not None:
        label = score_task.display(lang) if score_task else t("card.kpi.points", lang)
        items.append(Item("score", f"{t('portfolio.mean', lang)} · {label}", fmt_number(frame["score"].mean(),
                                                                                        digits=0)))
    if pd_task is not None:
        items.append(Item("pd", f"{t('portfolio.mean_pd', lang)} · {pd_task.display(lang)}",
                          fmt_share(frame["pd"].mean())))
    if frame["grade"].notna().any():
        items.append(Item("high_risk", t("portfolio.high_risk", lang), fmt_share(frame["grade"].isin(["D", "E"]).mean(),
                                                                                  1)))
    if OBSERVED in frame.columns and np.isfinite(frame[OBSERVED].to_numpy(dtype=float)).any():
        items.append(Item("observed", t("report.observed_rate", lang), fmt_share(np.nanmean(frame[OBSERVED]))))
    for task in tasks:
        if task.role in RISK_ROLES or task.kind == "multiclass":
            continue
        col = f"{task.name}_pred" if task.kind == "regression" else f"{task.name}_prob"
        if col in frame.columns:
            value = frame[col].astype(float).mean()
            items.append(Item(f"task:{task.name}", f"{t('portfolio.mean', lang)} · {task.display(lang)}",
                              fmt_share(value) if task.kind == "binary" else fmt_number(value)))
    return items


# --- model metrics -----------------------------------------------------------------------------------------------

METRIC_DIGITS = {"auc": 4, "ks": 4, "logloss": 4, "brier": 4, "accuracy": 4, "macro_f1": 4, "qwk": 4, "r2": 4}


def metrics_table(metrics: dict, tasks: Sequence[TaskSpec] | Sequence[dict], lang: str = "zh") -> pd.DataFrame:
    """One row per (task, metric) with a column per split (``val``, ``test``, …): the task named as its label
    is written, with its role; ``n`` as an integer; missing metrics as None (never NaN on screen)."""
    specs = [TaskSpec.from_dict(t_) if isinstance(t_, dict) else t_ for t_ in tasks]
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for split, per_task in (metrics or {}).items():
        for spec in specs:
            for metric, value in ((per_task or {}).get(spec.name) or {}).items():
                row = rows.setdefault((spec.name, metric), {
                    t("views.task", lang): spec.display(lang), t("views.role_column", lang): t(f"views.role.{spec.role}", lang),
                    t("views.metric", lang): metric})
                ok = value is not None and np.isfinite(float(value))
                row[split] = (int(value) if metric == "n" else round(float(value), METRIC_DIGITS.get(metric, 2))) \
                    if ok else None
    return pd.DataFrame(list(rows.values()), dtype=object)


def hybrid_table(hybrid: dict[str, dict], tasks: Sequence[TaskSpec] | Sequence[dict], lang: str = "zh"
                 ) -> pd.DataFrame:
    """Hybrid heads (``TrainResult.hybrid`` / the manifest's ``hybrid``): per task the net's and the trees'
    shares of the blended logits and the number of trees."""
    specs = [TaskSpec.from_dict(t_) if isinstance(t_, dict) else t_ for t_ in tasks]
    rows = [{t("views.task", lang): spec.display(lang),
             t("views.hybrid_net", lang): f"{hybrid[spec.name]['weight']:.0%}",
             t("views.hybrid_trees", lang): f"{1 - hybrid[spec.name]['weight']:.0%}",
             t("views.hybrid_tree_count", lang): int(hybrid[spec.name]["trees"]),
             t("views.hybrid_note", lang): t("views.hybrid_skipped", lang) if hybrid[spec.name].get("skipped") else ""}
            for spec in specs if spec.name in hybrid]
    return pd.DataFrame(rows, dtype=object)


# --- explanations ------------------------------------------------------------------------------------------------

def attribute_name(expl, attribute: str, lang: str = "zh") -> str:
    """An explained attribute's display name (中文/English) from an attribute-level explanation."""
    meta = expl.features
    if meta is not None and attribute in meta.index:
        return str(meta.at[attribute, "zh" if lang == "zh" else "en"])
    return attribute


def attribute_value(expl, attribute: str, customer_id: str, lang: str = "zh") -> str:
    """The customer's value of an explained attribute, formatted with its unit."""
    from profile_core.explain import format_value
    from profile_core.features import feature_info

    return format_value(expl.inputs.at[customer_id, attribute], feature_info(attribute), lang)


def contribution_frame(expl, task: str, customer_id: str, lang: str = "zh") -> pd.DataFrame:
    """``feature`` ("name = value") and ``contribution``: one customer's attribute contributions to ``task``
    (the waterfall of the explanations page and of the HTML report)."""
    row = expl.values[task].loc[customer_id]
    return pd.DataFrame({
        "feature": [f"{attribute_name(expl, a, lang)} = {attribute_value(expl, a, customer_id, lang)}"
                    for a in row.index],
        "contribution": row.to_numpy(dtype=float)})


def reason_headings(role: str, lang: str = "zh") -> dict[str, str]:
    """Headings of a head's reason codes: towards and away from risk for risk heads (pd, score, grade); up
    and down for any other head (an amount, a propensity or churn is no risk)."""
    suffix = "" if role in RISK_ROLES else "_value"
    return {"up": t(f"explain.up{suffix}", lang), "down": t(f"explain.down{suffix}", lang)}
