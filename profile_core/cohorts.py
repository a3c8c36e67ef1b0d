"""Cohorts: named sets of filters over the portfolio, and two cohorts compared side by side.

A :class:`Cohort` is a name and a list of :class:`Filter` (``column``, ``operator``, ``values``), validated by
pydantic. :func:`apply` selects its rows with plain pandas comparisons — no ``eval``/``query``, no SQL — so a
column name or value is only ever data: a column the frame lacks is refused by name, a value that is not a
number where a number is needed is refused naming the filter. Missing values match no filter (not even ``!=``).

Operators: ``==`` ``!=`` (one value; numbers compared as numbers, text as text), ``in`` (one or more values),
``between`` (two numbers, both ends included), ``>=`` ``<=`` (one number), ``contains`` (text holds the value,
case-insensitive, literally — never a pattern).

The frame is :func:`cohort_frame`: ``views.portfolio_frame`` (every head by role, grade, observed outcome,
grouping columns) with the customers' attributes from the feature table beside it (personal identifiers
left out). :func:`compare` gives what the cohorts page shows, by the bundle's task roles and for any number
of heads: sizes and shares, ``views.portfolio_kpis`` per cohort, the distribution charts to draw (``charts``
builders over the two cohorts stacked with a ``cohort`` column), observed outcome rates where labels are known,
and PSI of every model input of B against A (``monitor.psi_table``). :func:`importance` gives the top
attributes by mean |SHAP| per head and cohort, from ``explain`` on a bounded seeded sample of each cohort.

Cohorts are saved with their data set in the workspace (``store.Workspace.save_cohort``): :func:`save`,
:func:`saved`, :func:`delete`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from profile_core.i18n import MessageError, t
from profile_core.tasks import TaskSpec, encode_label

OPERATORS: tuple[str, ...] = ("==", "!=", "in", "between", ">=", "<=", "contains")
Operator = Literal["==", "!=", "in", "between", ">=", "<=", "contains"]
MAX_FILTERS = 20
MAX_VALUES = 500
SHAP_SAMPLE = 100  # customers per cohort whose SHAP values the importance comparison averages
SHAP_SEED = 0
COHORT = "cohort"  # the column naming each row's cohort in the stacked frame the charts draw
_SPLIT = re.compile(r"[,，]")


class CohortError(MessageError):
    """A cohort that cannot be applied or saved (one sentence: which filter, what is wrong, what to do)."""


Value = str | float | int | bool | None


class Filter(BaseModel):
    """One condition: ``column`` ``operator`` ``values``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1, max_length=200)
    operator: Operator
    values: list[Value] = Field(default_factory=list, max_length=MAX_VALUES)

    @field_validator("values")
    @classmethod
    def _finite(cls, values: list[Value]) -> list[Value]:
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError("values must be finite numbers or text")
            if isinstance(v, str) and len(v) > 200:
                raise ValueError("a value is longer than 200 characters")
        return values

    @model_validator(mode="after")
    def _arity(self) -> Filter:
        n = len(self.values)
        need = {"between": (2, 2), "in": (1, MAX_VALUES)}.get(self.operator, (1, 1))
        if not need[0] <= n <= need[1]:
            raise ValueError(f"operator {self.operator} takes {need[0] if need[0] == need[1] else 'one or more'} "
                             f"value(s), not {n}")
        return self

    def describe(self) -> str:
        shown = ", ".join("∅" if v is None else str(v) for v in self.values)
        return f"{self.column} {self.operator} {shown}"


class Cohort(BaseModel):
    """A named set of filters (all must hold). No filter: every customer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        name = name.strip()
        if not name or any(ord(c) < 32 for c in name):
            raise ValueError("a cohort name needs visible characters")
        return name

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> Cohort:
        return cls.model_validate_json(text)

    def describe(self) -> str:
        return " · ".join(f.describe() for f in self.filters)


def parse_values(operator: str, text: str) -> list[Value]:
    """The values a person typed for ``operator``: ``in`` and ``between`` split on commas (, or ，), the rest
    one value; numbers stay text here (:func:`apply` compares by the column's type)."""
    text = (text or "").strip()
    if operator in ("in", "between"):
        return [part.strip() for part in _SPLIT.split(text) if part.strip()]
    return [text] if text else []


# --- applying ------------------------------------------------------------------------------------------------

def _number(value: Value, f: Filter) -> float:
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise CohortError("cohorts.not_a_number", column=f.column, operator=f.operator, value=str(value)) from None
    if not math.isfinite(number):
        raise CohortError("cohorts.not_a_number", column=f.column, operator=f.operator, value=str(value))
    return number


def _text(s: pd.Series) -> pd.Series:
    return s.astype("str").str.strip()


def _mask(frame: pd.DataFrame, f: Filter) -> pd.Series:
    if f.column not in frame.columns:
        raise CohortError("cohorts.unknown_column", column=f.column)
    s = frame[f.column]
    known = s.notna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    op, values = f.operator, f.values
    if op == "contains":
        needle = str(values[0]).strip().lower()
        hit = _text(s).str.lower().str.contains(needle, regex=False).to_numpy(dtype=bool)
    elif op in (">=", "<=", "between"):
        if not numeric:
            raise CohortError("cohorts.needs_numbers", column=f.column, operator=op)
        x = s.to_numpy(dtype=float, na_value=np.nan)
        if op == ">=":
            hit = x >= _number(values[0], f)
        elif op == "<=":
            hit = x <= _number(values[0], f)
        else:
            lo, hi = sorted((_number(values[0], f), _number(values[1], f)))
            hit = (x >= lo) & (x <= hi)
    elif numeric:
        x = s.to_numpy(dtype=float, na_value=np.nan)
        wanted = np.array([_number(v, f) for v in values if v is not None and str(v).strip() != ""], dtype=float)
        hit = np.isin(x, wanted)
        if op == "!=":
            hit = ~hit
    else:
        wanted_text = {str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()
                       for v in values if v is not None}
        hit = _text(s).isin(wanted_text).to_numpy(dtype=bool)
        if op == "!=":
            hit = ~hit
    return pd.Series(hit & known, index=frame.index)


def apply(frame: pd.DataFrame, cohort: Cohort) -> pd.Series:
    """Boolean mask of ``frame``'s rows in ``cohort`` (every filter holds)."""
    keep = pd.Series(True, index=frame.index)
    for f in cohort.filters:
        keep &= _mask(frame, f)
    return keep


def select(frame: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    return frame.loc[apply(frame, cohort)]


def cohort_frame(portfolio: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """``portfolio`` (``views.portfolio_frame``: one row per customer) with the customers' attributes from
    ``features`` beside it (matched by customer_id; personal identifiers left out): what filters address."""
    from profile_core.schema import personal_columns

    skip = personal_columns() | set(portfolio.columns)
    extra = [c for c in features.columns if c not in skip]
    attrs = features[["customer_id", *extra]].copy()
    attrs["customer_id"] = attrs["customer_id"].astype("str")
    out = portfolio.copy()
    out["customer_id"] = out["customer_id"].astype("str")
    return out.merge(attrs.drop_duplicates("customer_id"), on="customer_id", how="left", validate="one_to_one")


def filter_columns(frame: pd.DataFrame) -> list[str]:
    """Columns a person may filter on: everything but the id and internal columns."""
    return [c for c in frame.columns if c not in ("customer_id", "grade_source")]


def riskiest_grades(frame: pd.DataFrame) -> list[str]:
    """The grades a default "high-risk" cohort holds: D and E where the frame has them, else its worst grade
    (a young model may predict no D or E at all); [] without grades."""
    from profile_core.schema import RISK_LEVELS

    if "grade" not in frame.columns:
        return []
    present = [g for g in RISK_LEVELS if (frame["grade"].astype("str") == g).any()]
    return [g for g in present if g in ("D", "E")] or present[-1:]


def column_labels(columns: Sequence[str], tasks: Sequence[TaskSpec], lang: str = "zh") -> dict[str, str]:
    """column → what a person reads: the heads by role and by the names the bundle gives them, the attributes
    by their 中文/English names (``features.feature_info``); the column itself in brackets when it differs."""
    from profile_core.features import feature_info
    from profile_core.tasks import role_task

    score_task, pd_task = role_task(tasks, "score"), role_task(tasks, "pd")
    named = {"pd": t("card.kpi.pd", lang), "grade": t("card.kpi.grade", lang),
             "score": score_task.display(lang) if score_task else t("card.kpi.points", lang),
             "observed_bad": f"{pd_task.display(lang) if pd_task else 'PD'} · {t('cohorts.measure.rate', lang)}"}
    for task in tasks:
        named[f"{task.name}_pred"] = task.display(lang)
        named[f"{task.name}_prob"] = task.display(lang)
        for c in task.classes if task.kind == "multiclass" else ():
            named[f"{task.name}_prob_{c}"] = f"{task.display(lang)} P({c})"
    out = {}
    for col in columns:
        info = feature_info(col)
        label = named.get(col) or (info.zh if lang == "zh" else info.en) or col
        out[col] = label if label == col else f"{label} ({col})"
    return out


def from_rows(name: str, rows: Sequence[tuple[str | None, str, str]]) -> Cohort:
    """A cohort from what a person entered: (column, operator, values as typed) per filter row, rows without a
    column skipped (:func:`parse_values`). ``CohortError`` naming the cohort and the problem when invalid."""
    from pydantic import ValidationError

    try:
        return Cohort(name=name, filters=[Filter(column=c, operator=op, values=parse_values(op, text))
                                          for c, op, text in rows if c])
    except ValidationError as err:
        first = err.errors()[0]
        raise CohortError("cohorts.invalid", name=name, problem=str(first.get("msg", "")).removeprefix(
            "Value error, ")) from None


# --- comparing -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Distribution:
    """One chart of the comparison: ``kind`` ``histogram`` (a number per customer) or ``shares`` (a class per
    customer, shares within each cohort), over ``column`` of the stacked frame, titled ``title``."""

    column: str
    title: str
    kind: str
    role: str


@dataclass
class Comparison:
    names: tuple[str, str]
    sizes: pd.DataFrame  # cohort, n, share (of the customers the comparison saw)
    kpis: pd.DataFrame  # one row per KPI (views.portfolio_kpis), one column per cohort
    stacked: pd.DataFrame  # both cohorts' rows with a ``cohort`` column (what the charts draw)
    distributions: list[Distribution]
    outcomes: pd.DataFrame  # head, role, per cohort: observed rate / mean and labelled n
    drift: pd.DataFrame  # feature, kind, psi, status (B against A), worst first


def distributions(tasks: Sequence[TaskSpec], frame: pd.DataFrame, lang: str = "zh") -> list[Distribution]:
    """The charts a comparison draws, by role, for whatever heads the bundle has: the score (or scorecard
    points from a pd head), the PD, the grade, then every other head as its number, probability or class."""
    from profile_core.tasks import role_task

    out: list[Distribution] = []
    score_task, pd_task = role_task(tasks, "score"), role_task(tasks, "pd")
    if "score" in frame.columns and frame["score"].notna().any():
        title = score_task.display(lang) if score_task else t("card.kpi.points", lang)
        out.append(Distribution("score", title, "histogram", "score" if score_task else "pd"))
    if pd_task is not None and "pd" in frame.columns:
        out.append(Distribution("pd", f"{t('card.kpi.pd', lang)} · {pd_task.display(lang)}", "histogram", "pd"))
    if "grade" in frame.columns and frame["grade"].notna().any():
        out.append(Distribution("grade", t("card.kpi.grade", lang), "shares", "grade"))
    for task in tasks:
        if task.role != "generic":
            continue
        col = f"{task.name}_prob" if task.kind == "binary" else f"{task.name}_pred"
        if col in frame.columns:
            out.append(Distribution(col, task.display(lang), "shares" if task.kind == "multiclass" else "histogram",
                                    "generic"))
    return out


def outcome_table(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], tasks: Sequence[TaskSpec],
                  lang: str = "zh") -> pd.DataFrame:
    """Observed outcomes per head where the frames hold its label: the rate of a binary head's positive class,
    the mean of a regression label, the share of the most common class of a multiclass one; with labelled
    counts. Columns: ``head``, ``role``, ``measure``, then ``<name>`` and ``<name> n`` per cohort."""
    rows = []
    for task in tasks:
        if task.label not in a.columns or task.label not in b.columns:
            continue
        row: dict[str, Any] = {"head": task.display(lang), "role": t(f"views.role.{task.role}", lang)}
        ys = [encode_label(f.reset_index(drop=True), task, standardize=False) for f in (a, b)]
        if task.kind == "multiclass":
            both = np.concatenate([y[y >= 0] for y in ys])
            if not len(both):
                continue
            top = int(np.bincount(both).argmax())
            row["measure"] = t("cohorts.measure.class_share", lang, value=task.classes[top])
            stats = [((y[y >= 0] == top).mean() if (y >= 0).any() else np.nan, int((y >= 0).sum())) for y in ys]
        else:
            row["measure"] = t("cohorts.measure.rate" if task.kind == "binary" else "cohorts.measure.mean", lang)
            stats = [(float(np.nanmean(y)) if np.isfinite(y).any() else np.nan, int(np.isfinite(y).sum())) for y in ys]
        if not any(n for _, n in stats):
            continue
        for name, (value, n) in zip(names, stats, strict=True):
            row[name], row[f"{name} n"] = value, n
        rows.append(row)
    return pd.DataFrame(rows)


def compare(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str], tasks: Sequence[TaskSpec], *,
            population: int, numeric: Sequence[str] = (), categorical: Sequence[str] = (),
            lang: str = "zh") -> Comparison:
    """Cohorts ``a`` and ``b`` (rows of :func:`cohort_frame`) side by side; ``population``: how many customers
    the cohorts were drawn from (the shares' denominator); ``numeric`` / ``categorical``: the model's inputs
    (drift: PSI of each input of ``b`` against ``a``)."""
    from profile_core.monitor import psi_table
    from profile_core.views import portfolio_kpis

    if names[0] == names[1]:
        names = (names[0], f"{names[1]} (2)")
    sizes = pd.DataFrame({COHORT: list(names), "n": [len(a), len(b)],
                          "share": [len(a) / population if population else np.nan,
                                    len(b) / population if population else np.nan]})
    per = [{i.key: i for i in portfolio_kpis(f, tasks, lang)} if len(f) else {} for f in (a, b)]
    keys = list(dict.fromkeys([*per[0], *per[1]]))
    kpis = pd.DataFrame([{t("cohorts.kpi", lang): (per[0].get(k) or per[1].get(k)).label,
                          names[0]: per[0][k].value if k in per[0] else "—",
                          names[1]: per[1][k].value if k in per[1] else "—"} for k in keys])
    stacked = pd.concat([a.assign(**{COHORT: names[0]}), b.assign(**{COHORT: names[1]})], ignore_index=True)
    drift = psi_table(a, b, numeric=list(numeric), categorical=list(categorical)) if len(a) and len(b) else \
        pd.DataFrame(columns=["feature", "kind", "psi", "status"])
    return Comparison(names, sizes, kpis, stacked, distributions(tasks, stacked, lang),
                      outcome_table(a, b, names, tasks, lang), drift)


def figures(comparison: Comparison, lang: str = "zh") -> list:
    """The distribution charts of a comparison (``charts`` builders; one overlaid trace or bar per cohort)."""
    from profile_core import charts

    figs = []
    for d in comparison.distributions:
        title = t("cohorts.dist_title", lang, head=d.title)
        if d.kind == "histogram":
            figs.append(charts.plot_histogram(comparison.stacked, column=d.column, by=COHORT, title=title,
                                              x_title=d.title, lang=lang))
        else:
            figs.append(charts.plot_grade_counts(comparison.stacked, grade=d.column, by=COHORT, normalize=True,
                                                 title=title, x_title=t("cohorts.cohort", lang), lang=lang))
    return figs


def sample_ids(frame: pd.DataFrame, n: int = SHAP_SAMPLE, seed: int = SHAP_SEED) -> list[str]:
    """A reproducible sample of at most ``n`` of the frame's customer ids (in frame order)."""
    ids = frame["customer_id"].astype("str").to_numpy()
    if len(ids) <= n:
        return ids.tolist()
    return ids[np.sort(np.random.default_rng(seed).choice(len(ids), n, replace=False))].tolist()


def importance(explainer, features: pd.DataFrame, cohorts: dict[str, Sequence[str]], *,
               n: int = SHAP_SAMPLE, seed: int = SHAP_SEED) -> pd.DataFrame:
    """Mean |SHAP| per attribute, head and cohort (``explain.global_importance``: each head's share, summing to
    1 per head and cohort) over a seeded sample of at most ``n`` customers of each cohort; long format:
    ``cohort``, ``task``, ``attribute``, ``zh``, ``en``, ``importance``, ``sampled`` (customers explained)."""
    from profile_core.explain import global_importance, to_attributes

    index = features["customer_id"].astype("str")
    rows = []
    for name, ids in cohorts.items():
        wanted = set(sample_ids(pd.DataFrame({"customer_id": list(ids)}), n, seed))
        part = features.loc[index.isin(wanted).to_numpy()]
        if part.empty:
            continue
        table = global_importance(to_attributes(explainer.explain(part), explainer.preprocessor, part))
        for task in explainer.tasks:
            rows.append(pd.DataFrame({COHORT: name, "task": task, "attribute": table["attribute"],
                                      "zh": table["zh"], "en": table["en"], "importance": table[task],
                                      "sampled": len(part)}))
    cols = [COHORT, "task", "attribute", "zh", "en", "importance", "sampled"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def importance_figure(table: pd.DataFrame, task: TaskSpec, *, top_n: int = 10, lang: str = "zh"):
    """One head's top attributes, one panel per cohort (``charts.plot_importance``)."""
    from profile_core import charts

    part = table[table["task"] == task.name]
    part = part.assign(attribute=part["zh" if lang == "zh" else "en"].astype("str"))
    return charts.plot_importance(part, attribute="attribute", task=COHORT, importance="importance", top_n=top_n,
                                  title=t("cohorts.importance_title", lang, head=task.display(lang)), lang=lang)


# --- saved with the data set ---------------------------------------------------------------------------------

def save(ws, dataset: str, cohort: Cohort, *, user: Any = None) -> None:
    """Save (or replace) ``cohort`` with data set ``dataset`` in the workspace."""
    ws.save_cohort(dataset, cohort.name, cohort.to_json(), user=user)


def saved(ws, dataset: str) -> list[Cohort]:
    """The cohorts saved with ``dataset`` (by name); a stored definition that no longer validates is skipped."""
    out = []
    for row in ws.cohorts(dataset):
        try:
            out.append(Cohort.from_json(row["definition"]))
        except ValueError:
            continue
    return out


def delete(ws, dataset: str, name: str, *, user: Any = None) -> bool:
    return ws.delete_cohort(dataset, name, user=user)


def to_dict(cohort: Cohort) -> dict:
    return json.loads(cohort.to_json())
