"""The marketing side (精准营销) of the panorama, computed once here for the card, the portfolio page and reports:
the product a propensity head is about, the card's next best product (下一步推荐产品) and retention alert, and a
campaign ranking on one marketing head with a risk cut-off.

Risk and marketing meet here: a customer whose PD grade (``scorecard.pd_grade`` of the ``pd`` head; the grade
head's level when the model has no pd head) is worse than the cut-off gets no product offer on the card and is
left out of a campaign, and the expected uptake that costs is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from profile_core.i18n import has, t
from profile_core.scorecard import GRADES, pd_grade
from profile_core.tasks import TaskSpec, role_task

MAX_GRADE = "C"  # default risk cut-off: customers graded worse than this get no offer (D and E)
RECOMMEND_PERCENTILE = 80.0  # a product is recommended when its propensity is in the portfolio's top 20 %
CHURN_ALERT_RATIO = 2.0  # retention alert when P(churn) is at least twice the portfolio's mean …
CHURN_ALERT_PERCENTILE = 90.0  # … or in the portfolio's top 10 %


def product_name(task: TaskSpec, lang: str = "zh") -> str:
    """The product a propensity head is about, in ``lang`` (a known product from the catalogue, else the bank's own
    name for it, else the head's name)."""
    key = f"marketing.product.{task.product}"
    if task.product and has(key):
        return t(key, lang)
    return task.product or task.display(lang)


def marketing_tasks_of(tasks: Sequence[TaskSpec]) -> list[TaskSpec]:
    """The propensity and churn heads of a model, in its order."""
    return [t_ for t_ in tasks if t_.role in ("propensity", "churn")]


def risk_grade(pd_: float | None, level: str | None) -> tuple[str | None, str]:
    """(grade, source) the risk cut-off compares: the PD grade when there is a PD, else the grade head's level."""
    if pd_ is not None and np.isfinite(pd_):
        return pd_grade(pd_), "pd"
    return (level, "risk_level") if level in GRADES else (None, "")


def worse_than(grade: str | None, max_grade: str | None) -> bool:
    """True when ``grade`` is a worse grade than ``max_grade`` (no cut-off or no grade: False)."""
    return bool(max_grade) and grade in GRADES and GRADES.index(grade) > GRADES.index(max_grade)


# --- the card -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NextBest:
    """The card's next best product line. ``status``: ``recommend`` (the highest propensity, high in the
    portfolio, risk within the cut-off), ``suppressed`` (it would be recommended, but the risk grade is worse than
    the cut-off), ``none`` (no propensity high enough)."""

    status: str
    task: str | None  # the propensity head behind it
    product: str  # product name in the card's language ("" when none)
    probability: float | None
    percentile: float | None  # among the portfolio's predictions, 0–100
    grade: str | None  # the risk grade compared with the cut-off
    max_grade: str | None
    reason: str  # the head's strongest reason towards buying ("" when unknown)
    text: str  # one line for people


@dataclass(frozen=True)
class Retention:
    """A retention alert from the churn head: shown when P(churn) is high against the portfolio."""

    task: str
    probability: float
    mean: float  # the portfolio's mean P(churn)
    percentile: float | None
    reason: str
    text: str


def next_best_product(heads: Sequence, *, grade: str | None, max_grade: str | None = MAX_GRADE,
                      reasons: Mapping[str, str] | None = None, lang: str = "zh",
                      products: Mapping[str, str] | None = None) -> NextBest | None:
    """The next best product of one customer from the card's heads (``profile.TaskOutput``: role, value,
    percentile): the propensity head with the highest probability. Recommended when that probability is in the
    portfolio's top ``100 - RECOMMEND_PERCENTILE`` %, suppressed when ``grade`` is worse than ``max_grade``;
    ``reasons``: task → its strongest reason sentence; ``products``: task → product name. None without a
    propensity head."""
    offers = [h for h in heads if h.role == "propensity" and h.value is not None]
    if not offers:
        return None
    best = max(offers, key=lambda h: h.value)
    product = (products or {}).get(best.task, best.title)
    reason = (reasons or {}).get(best.task, "")
    high = best.percentile is not None and best.percentile >= RECOMMEND_PERCENTILE
    values = {"product": product, "p": f"{best.value:.1%}", "grade": grade or "—", "max": max_grade or "—",
              "top": max(1, round(100 - best.percentile)) if best.percentile is not None else "—",
              "reason": reason or t("marketing.no_reason", lang)}
    if not high:
        status = "none"
    elif worse_than(grade, max_grade):
        status = "suppressed"
    else:
        status = "recommend"
    return NextBest(status, best.task, product if status != "none" else "", best.value, best.percentile, grade,
                    max_grade, reason, t(f"marketing.next_best.{status}", lang, **values))


def retention_alert(heads: Sequence, *, means: Mapping[str, float], reasons: Mapping[str, str] | None = None,
                    lang: str = "zh") -> Retention | None:
    """A retention alert when the churn head's probability is at least ``CHURN_ALERT_RATIO`` × the portfolio's mean
    or in its top ``100 - CHURN_ALERT_PERCENTILE`` %; None otherwise (or without a churn head)."""
    head = next((h for h in heads if h.role == "churn" and h.value is not None), None)
    if head is None:
        return None
    mean = float(means.get(head.task, np.nan))
    high = (np.isfinite(mean) and head.value >= CHURN_ALERT_RATIO * mean) or \
        (head.percentile is not None and head.percentile >= CHURN_ALERT_PERCENTILE)
    if not high:
        return None
    reason = (reasons or {}).get(head.task, "")
    text = t("marketing.retention", lang, p=f"{head.value:.1%}", mean=f"{mean:.1%}" if np.isfinite(mean) else "—",
             title=head.title, reason=reason or t("marketing.no_reason", lang))
    return Retention(head.task, head.value, mean, head.percentile, reason, text)


# --- campaigns ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Campaign:
    """A campaign on one marketing head: the top ``n`` customers by its probability among those within the risk
    cut-off, and what the cut-off costs against the same ``n`` chosen without it."""

    task: str
    n: int  # customers asked for
    selected: pd.DataFrame  # rank, customer_id, probability, pd, risk_grade (+ grouping columns), best first
    expected_uptake: float  # Σ probability of the selected customers
    expected_rate: float  # expected_uptake / len(selected)
    base_rate: float  # the head's mean probability over every customer (what a random pick would get)
    excluded: int  # customers left out by the risk cut-off (of all customers)
    excluded_in_top: int  # of the top n chosen without the cut-off, how many the cut-off leaves out
    uptake_without_cut: float  # Σ probability of the top n chosen without the cut-off
    uptake_lost: float  # uptake_without_cut - expected_uptake (≥ 0)
    kept_share: float  # expected_uptake / uptake_without_cut
    cut: str  # "grade" | "pd" | "none"
    cut_value: str | float | None
    grade_source: str  # "pd" (PD grades) | "risk_level" (the grade head) | ""


def campaign_columns(task: TaskSpec) -> str:
    """The probability column of a binary head in ``views.portfolio_frame``."""
    return f"{task.name}_prob"


def rank_campaign(frame: pd.DataFrame, tasks: Sequence[TaskSpec], task: str, n: int, *,
                  max_grade: str | None = MAX_GRADE, max_pd: float | None = None) -> Campaign:
    """Rank the customers of ``frame`` (``views.portfolio_frame``: ``customer_id``, ``pd``, ``grade``,
    ``<task>_prob``) for a campaign on the marketing head ``task``: best ``n`` by probability, leaving out those
    whose risk grade is worse than ``max_grade`` or whose PD is above ``max_pd`` (one of the two, or neither).
    For a churn head the ranking is a retention campaign (highest churn first)."""
    spec = next((t_ for t_ in tasks if t_.name == task), None)
    if spec is None or spec.kind != "binary" or campaign_columns(spec) not in frame.columns:
        raise KeyError(t("marketing.unknown_head", "en", task=task))
    n = max(int(n), 0)
    prob = frame[campaign_columns(spec)].astype(float)
    pds = frame["pd"].astype(float) if "pd" in frame.columns else pd.Series(np.nan, index=frame.index)
    has_pd = role_task(tasks, "pd") is not None and pds.notna().any()
    if has_pd:
        grades = pd.Series(pd_grade(pds.to_numpy()), index=frame.index, dtype=object)
        source = "pd"
    elif "grade" in frame.columns and frame["grade"].isin(GRADES).any():
        grades, source = frame["grade"].astype(object), "risk_level"
    else:
        grades, source = pd.Series(None, index=frame.index, dtype=object), ""
    if max_pd is not None and has_pd:
        out = (pds > float(max_pd)).to_numpy()
        cut, value = "pd", float(max_pd)
    elif max_grade and source:
        out = grades.map(lambda g: worse_than(g, max_grade)).to_numpy(dtype=bool)
        cut, value = "grade", max_grade
    else:
        out, cut, value = np.zeros(len(frame), bool), "none", None
    order = np.lexsort((frame["customer_id"].astype("str").to_numpy(), -prob.fillna(-1).to_numpy()))
    ranked_all = frame.iloc[order]
    keep = ~out[order] & prob.iloc[order].notna().to_numpy()
    top_all = ranked_all[prob.iloc[order].notna().to_numpy()].head(n)
    chosen = ranked_all[keep].head(n)
    cols = [c for c in ("customer_id", "rm_id", "city", "occupation") if c in frame.columns]
    selected = pd.DataFrame({"rank": np.arange(1, len(chosen) + 1)}, index=chosen.index)
    for c in cols:
        selected[c] = chosen[c].to_numpy()
    selected["probability"] = prob.loc[chosen.index].to_numpy()
    selected["pd"] = pds.loc[chosen.index].to_numpy()
    selected["risk_grade"] = grades.loc[chosen.index].to_numpy()
    selected["cumulative_uptake"] = selected["probability"].cumsum()
    selected = selected.reset_index(drop=True)
    uptake = float(selected["probability"].sum())
    without = float(prob.loc[top_all.index].sum())
    excluded_top = int(out[frame.index.get_indexer(top_all.index)].sum()) if len(top_all) else 0
    return Campaign(task=spec.name, n=n, selected=selected, expected_uptake=uptake,
                    expected_rate=uptake / len(selected) if len(selected) else float("nan"),
                    base_rate=float(prob.mean()), excluded=int(out.sum()), excluded_in_top=excluded_top,
                    uptake_without_cut=without, uptake_lost=max(without - uptake, 0.0),
                    kept_share=uptake / without if without > 0 else float("nan"), cut=cut, cut_value=value,
                    grade_source=source)
