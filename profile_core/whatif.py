"""What-if on one customer, every head at once: change a few attributes, see each head, the scorecard points,
the grade and the reason codes move side by side. Nothing is written to the data; the caller audits the use.

Only model inputs that a person could change are editable: protected attributes are never model inputs, and
identifiers, dates and tenure are fixed (``IMMUTABLE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profile_core.features import feature_info
from profile_core.i18n import MessageError, t

IMMUTABLE = frozenset({"customer_id", "rm_id", "open_date", "tenure_months", "credit_history_months"})


class WhatIfError(MessageError):
    """A change that cannot be simulated (an attribute that is not editable, a value that is not a number)."""


@dataclass
class WhatIf:
    customer_id: str
    changes: dict[str, tuple[Any, Any]]  # attribute → (before, after)
    heads: pd.DataFrame  # task, title, role, before, after, delta (numbers; classes as text)
    scorecard: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # points / pd_grade → (before, after)
    reasons_before: dict[str, Any] = field(default_factory=dict)  # task → ReasonCodes
    reasons_after: dict[str, Any] = field(default_factory=dict)


def editable_attributes(bundle) -> list[str]:
    """The model's raw inputs a what-if may change (numbers first, then categories)."""
    from profile_core.features import protected_columns

    inputs = [*bundle.preprocessor.numeric, *bundle.preprocessor.categorical]
    fixed = IMMUTABLE | set(protected_columns(inputs))  # age and other protected attributes included
    return [c for c in inputs if c not in fixed]


def _value(bundle, attribute: str, value: Any) -> Any:
    if attribute in bundle.preprocessor.numeric:
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise WhatIfError("whatif.not_a_number", attribute=attribute, value=value) from err
        if not np.isfinite(number):
            raise WhatIfError("whatif.not_a_number", attribute=attribute, value=value)
        return number
    return None if value is None else str(value)


def what_if(bundle, row: pd.DataFrame, changes: Mapping[str, Any], *, explainer=None,
            population: pd.DataFrame | None = None, lang: str = "zh", top: int = 4) -> WhatIf:
    """Score ``row`` (one customer's feature-table row) as it is and with ``changes`` applied, every head;
    with an ``explainer`` (``explain.HeadExplainer``) the reason codes of both versions too."""
    from profile_core.scoring import score_chunk

    if len(row) != 1:
        raise ValueError("what_if takes exactly one customer row")
    editable = set(editable_attributes(bundle))
    for attribute in changes:
        if attribute not in editable:
            raise WhatIfError("whatif.not_editable", attribute=feature_info(attribute).zh if lang == "zh"
                              else feature_info(attribute).en)
    edited = row.copy()
    before_values = {}
    for attribute, value in changes.items():
        before_values[attribute] = row[attribute].iloc[0] if attribute in row.columns else None
        edited[attribute] = [_value(bundle, attribute, value)]
    before, after = score_chunk(bundle, row).iloc[0], score_chunk(bundle, edited).iloc[0]
    heads = []
    for task in bundle.tasks:
        col = f"{task.name}_prob" if task.kind == "binary" else f"{task.name}_pred"
        b, a = before[col], after[col]
        numeric = task.kind != "multiclass"
        heads.append({"task": task.name, "title": task.display(lang), "role": task.role,
                      "before": float(b) if numeric else str(b), "after": float(a) if numeric else str(a),
                      "delta": float(a) - float(b) if numeric else None})
    scorecard = {k: (before[k], after[k]) for k in ("points", "pd_grade") if k in before.index}
    out = WhatIf(str(row["customer_id"].iloc[0]) if "customer_id" in row.columns else "",
                 {k: (before_values[k], edited[k].iloc[0]) for k in changes}, pd.DataFrame(heads), scorecard)
    if explainer is not None:
        from profile_core.explain import reason_codes, to_attributes

        pop = population if population is not None else row
        both = pd.concat([row, edited], ignore_index=True)  # one SHAP pass for both versions
        both["customer_id"] = ["(now)", "(what-if)"]
        expl = to_attributes(explainer.explain(both), explainer.preprocessor, both)
        for name, cid in (("reasons_before", "(now)"), ("reasons_after", "(what-if)")):
            setattr(out, name, {task: reason_codes(expl, both, cid, task, lang=lang, top=top, population=pop)
                                for task in expl.values})
    return out


def heads_frame(result: WhatIf, lang: str = "zh") -> pd.DataFrame:
    """The what-if as a table for people: each head (and the scorecard) before → after, changes marked."""
    from profile_core.views import fmt_number, fmt_share

    rows = []
    for r in result.heads.itertuples():
        if pd.isna(r.delta):  # a class
            shown = (r.before, r.after)
        elif r.role == "pd" or (isinstance(r.before, float) and 0 <= r.before <= 1 and 0 <= r.after <= 1):
            shown = (fmt_share(r.before), fmt_share(r.after))
        else:
            shown = (fmt_number(r.before), fmt_number(r.after))
        rows.append({t("whatif.col.head", lang): r.title, t("whatif.col.before", lang): shown[0],
                     t("whatif.col.after", lang): shown[1],
                     t("whatif.col.changed", lang): "●" if shown[0] != shown[1] else ""})
    for key, (b, a) in result.scorecard.items():
        b, a = (f"{b:.0f}", f"{a:.0f}") if key == "points" else (str(b), str(a))
        rows.append({t("whatif.col.head", lang): t(f"whatif.{key}", lang), t("whatif.col.before", lang): b,
                     t("whatif.col.after", lang): a, t("whatif.col.changed", lang): "●" if a != b else ""})
    return pd.DataFrame(rows, dtype=object)


# --- recourse --------------------------------------------------------------------------------------------------

GRID = np.linspace(0.05, 0.95, 19)  # candidate values: population quantiles of each attribute
PAIR_TOP = 6  # attributes combined in pairs when no single change reaches the target
TRIPLE_TOP, BEAM = 8, 24  # then a third attribute (of these) added to the pairs that came closest


@dataclass(frozen=True)
class Action:
    """What a customer can do about one attribute: change it at all, in which direction, within which bounds
    (on top of the population's 5–95 % range, so suggestions stay within what customers actually have)."""

    actionable: bool = True
    direction: str = "any"  # any | down | up
    low: float | None = None
    high: float | None = None

    def allows(self, now: float, value: float) -> bool:
        if not self.actionable or (self.low is not None and value < self.low) \
                or (self.high is not None and value > self.high):
            return False
        if not np.isfinite(now):
            return True
        return self.direction == "any" or (value < now if self.direction == "down" else value > now)


FIXED = Action(actionable=False)
#: Declared actions of the canonical features. Twelve-month windows (see ``action_of``), income, the bank's own
#: limit and days-since counters cannot be changed by anything a customer does now; recent arrears, utilisation,
#: inquiries, applications and cash withdrawals can only be brought down, inflows only up; a bank's own columns
#: (not listed) may move either way within the population's range unless the caller declares otherwise.
ACTIONS: dict[str, Action] = {
    **{c: FIXED for c in ("income", "days_since_last_txn", "days_since_last_login", "credit_limit_latest")},
    **{c: Action(direction="down", low=0.0) for c in ("util_latest", "util_mean_3m", "max_dpd_3m", "inquiries_latest",
                                                        "inquiries_3m", "apply_count_3m", "cash_count_3m",
                                                        "loan_count_latest")},
    # money coming in (salary paid into the account) is a lever only upwards: never advise earning less
    **{f"txn_in_{what}_{w}m": Action(direction="up") for what in ("count", "amount") for w in (1, 3)},
}


def action_of(attribute: str, declared: Mapping[str, Action] | None = None) -> Action:
    """The declared action of ``attribute``: the caller's declaration, else the canonical table, else FIXED for
    the project's twelve-month windows (a recourse is for the next few months), else any."""
    from profile_core.features import FEATURES

    found = (declared or {}).get(attribute) or ACTIONS.get(attribute)
    if found is not None:
        return found
    return FIXED if attribute in FEATURES and attribute.endswith("_12m") else Action()


#: Units (``FeatureInfo.unit_en``) of quantities that cannot be negative: counts, devices, days, months, years,
#: amounts and ratios of amounts.
NON_NEGATIVE_UNITS = frozenset({"times", "devices", "days", "months", "years", "CNY", "×"})


def input_bounds(attribute: str, declared: Mapping[str, Action] | None = None) -> tuple[float | None, float | None]:
    """(low, high) that ``attribute`` can take at all, None for no bound — what a what-if input accepts. A share
    (unit %, stored as a fraction) lies in 0–1, a utilisation (balance over limit) is at least 0 and exceeds 1 only
    over the limit, a trend of shares (3-month minus 12-month) lies in −1–1; counts, amounts, days, months and
    ratios are at least 0. The attribute's declared ``Action`` bounds narrow these; an attribute the catalogue does
    not know (a bank's own column) has only those."""
    from profile_core.features import FEATURES

    info = FEATURES.get(attribute)
    unit = info.unit_en if info is not None else ""
    low: float | None = None
    high: float | None = None
    if unit == "%":
        if "trend" in attribute:
            low, high = -1.0, 1.0
        elif attribute.startswith("util_"):
            low = 0.0
        else:
            low, high = 0.0, 1.0
    elif unit in NON_NEGATIVE_UNITS:
        low = 0.0
    action = action_of(attribute, declared)
    if action.low is not None:
        low = action.low if low is None else max(low, action.low)
    if action.high is not None:
        high = action.high if high is None else min(high, action.high)
    return low, high


@dataclass
class Recourse:
    """The smallest change found (in population-spread units) that brings the pd head to ``target_grade`` or
    better, with its effect on every head; ``found`` False when no change of up to three attributes does."""

    customer_id: str
    target_grade: str
    found: bool
    changes: dict[str, tuple[float, float]] = field(default_factory=dict)  # attribute → (now, suggested)
    heads: pd.DataFrame | None = None  # as WhatIf.heads
    scorecard: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    cost: float = float("nan")  # Σ |change| / inter-quartile range
    checked: int = 0  # candidate customers scored


def _pd_limit(grade: str) -> float:
    from profile_core.scorecard import GRADES, PD_BANDS

    return PD_BANDS[GRADES.index(grade)] if grade != GRADES[-1] else 1.0


def recourse(bundle, row: pd.DataFrame, population: pd.DataFrame, *, target_grade: str = "B",
             attributes: list[str] | None = None, actions: Mapping[str, Action] | None = None) -> Recourse:
    """Search the smallest change of one attribute (then of two, then three) among the editable, actionable numeric inputs
    that brings the pd head's PD under ``target_grade``'s upper band edge. Candidates are the population's
    quantiles of each attribute that the attribute's ``Action`` allows (direction, bounds), scored in one batch;
    the cost of a change is its size in inter-quartile ranges, summed over the attributes changed."""
    from profile_core.scoring import score_chunk
    from profile_core.tasks import role_task

    task = role_task(bundle.tasks, "pd")
    if task is None:
        raise WhatIfError("whatif.no_pd")
    col, limit = f"{task.name}_prob", _pd_limit(target_grade)
    cid = str(row["customer_id"].iloc[0]) if "customer_id" in row.columns else ""
    numeric = set(bundle.preprocessor.numeric)
    acts = {a: action_of(a, actions) for a in (attributes or editable_attributes(bundle))
            if a in numeric and a in population.columns}
    names = [a for a, act in acts.items() if act.actionable]
    now = {a: float(row[a].iloc[0]) if pd.notna(row[a].iloc[0]) else np.nan for a in names}
    values = {a: np.array([v for v in np.unique(np.nanquantile(pd.to_numeric(population[a], errors="coerce"), GRID))
                           if acts[a].allows(now[a], v)]) for a in names}
    spread = {a: float(np.subtract(*np.nanquantile(pd.to_numeric(population[a], errors="coerce"), [0.75, 0.25])))
              or 1.0 for a in names}

    def batch(plans: list[dict[str, float]]) -> np.ndarray:
        frame = pd.concat([row] * len(plans), ignore_index=True)
        for a in {a for plan in plans for a in plan}:
            column = pd.to_numeric(frame[a], errors="coerce").to_numpy(dtype=float, copy=True)
            for i, plan in enumerate(plans):
                column[i] = plan.get(a, column[i])
            frame[a] = column
        return score_chunk(bundle, frame)[col].to_numpy(dtype=float)

    def cost(plan: dict[str, float]) -> float:
        return sum(abs(v - (now[a] if np.isfinite(now[a]) else v)) / spread[a] for a, v in plan.items())

    singles = [{a: float(v)} for a in names for v in values[a] if not np.isclose(v, now[a])]
    pd_single = batch(singles) if singles else np.zeros(0)
    checked = len(singles)
    ok = [(cost(p), p) for p, q in zip(singles, pd_single, strict=True) if q < limit]
    if not ok and names:  # pairs of the attributes that lower PD most on their own
        best = {}
        for p, q in zip(singles, pd_single, strict=True):
            a = next(iter(p))
            best[a] = min(best.get(a, np.inf), q)
        top = sorted(best, key=best.get)[:PAIR_TOP]
        pairs = [{a: float(u), b: float(v)} for i, a in enumerate(top) for b in top[i + 1:]
                 for u in values[a] for v in values[b]]
        pd_pairs = batch(pairs) if pairs else np.zeros(0)
        checked += len(pairs)
        ok = [(cost(p), p) for p, q in zip(pairs, pd_pairs, strict=True) if q < limit]
        if not ok and len(pairs):  # a third attribute on top of the pairs that came closest
            wider = sorted(best, key=best.get)[:TRIPLE_TOP]
            closest = [pairs[i] for i in np.argsort(pd_pairs)[:BEAM]]
            triples = [{**p, c: float(v)} for p in closest for c in wider if c not in p for v in values[c]]
            pd_triples = batch(triples) if triples else np.zeros(0)
            checked += len(triples)
            ok = [(cost(p), p) for p, q in zip(triples, pd_triples, strict=True) if q < limit]
    if not ok:
        return Recourse(cid, target_grade, False, checked=checked)
    best_cost, plan = min(ok, key=lambda x: x[0])
    result = what_if(bundle, row, plan)
    return Recourse(cid, target_grade, True, {a: (now[a], v) for a, v in plan.items()}, result.heads,
                    result.scorecard, float(best_cost), checked)


def recourse_sentence(result: Recourse, bundle, lang: str = "zh") -> str:
    """"把近3个月最大逾期天数从 45 天降到 0 天，违约概率预计从 9.1% 降到 2.3%，等级 D→B" in 中文/English."""
    from profile_core.explain import format_value
    from profile_core.tasks import role_task
    from profile_core.views import fmt_share

    if not result.found:
        return t("whatif.recourse_none", lang, grade=result.target_grade)
    task = role_task(bundle.tasks, "pd")
    head = result.heads.set_index("task").loc[task.name]
    parts = []
    for a, (before, after) in result.changes.items():
        info = feature_info(a)
        parts.append(t("whatif.recourse_change", lang, attribute=info.zh if lang == "zh" else info.en,
                       before=format_value(before, info, lang), after=format_value(after, info, lang)))
    grades = result.scorecard.get("pd_grade", ("—", "—"))
    return t("whatif.recourse_sentence", lang, changes="；".join(parts) if lang == "zh" else "; ".join(parts),
             before=fmt_share(head["before"], 1), after=fmt_share(head["after"], 1), grade_before=grades[0],
             grade_after=grades[1])


def recourse_side_effects(result: Recourse | WhatIf, bundle, lang: str = "zh", *, min_change: float = 0.01
                          ) -> list[str]:
    """The other heads a change moves, one phrase each ("流失概率 5.1% → 7.9%"): a change that lowers PD can
    raise churn or lower an uptake propensity, and a relationship manager should see that before proposing it.
    Probabilities count when they move by ``min_change`` or more, numbers by that share of their value."""
    from profile_core.tasks import role_task
    from profile_core.views import fmt_number, fmt_share

    if result.heads is None:
        return []
    target = role_task(bundle.tasks, "pd")
    out = []
    for r in result.heads.itertuples():
        if target is not None and r.task == target.name:
            continue
        if pd.isna(r.delta):
            if r.before != r.after:
                out.append(t("whatif.side_effect", lang, head=r.title, before=r.before, after=r.after))
            continue
        probability = 0 <= r.before <= 1 and 0 <= r.after <= 1
        if abs(r.delta) < (min_change if probability else min_change * max(abs(r.before), 1e-9)):
            continue
        fmt = (lambda v: fmt_share(v, 1)) if probability else fmt_number
        out.append(t("whatif.side_effect", lang, head=r.title, before=fmt(r.before), after=fmt(r.after)))
    return out


def better_grade(grade: str) -> str:
    """One grade better than ``grade`` (A stays A): the default recourse target."""
    from profile_core.scorecard import GRADES

    return GRADES[max(GRADES.index(grade) - 1, 0)]


@dataclass
class RecourseView:
    """A recourse as people read it — in the HTML report and on the card: sentence, side effects, heads table."""

    target_grade: str
    sentence: str
    side_effects: list[str]
    table: pd.DataFrame | None


def next_grade_recourse(bundle, features: pd.DataFrame, customer_id: str, lang: str = "zh"
                        ) -> RecourseView | None:
    """The recourse to one grade better than the customer's PD grade now; None without a pd head, for an
    A-graded customer, or for a customer not in ``features``."""
    from profile_core.scorecard import GRADES
    from profile_core.scoring import score_chunk
    from profile_core.tasks import role_task

    row = features[features["customer_id"].astype(str) == str(customer_id)]
    if role_task(bundle.tasks, "pd") is None or len(row) != 1:
        return None
    grade = str(score_chunk(bundle, row)["pd_grade"].iloc[0])
    if grade not in GRADES or grade == GRADES[0]:
        return None
    result = recourse(bundle, row, features, target_grade=better_grade(grade))
    table = heads_frame(WhatIf(str(customer_id), dict(result.changes), result.heads, result.scorecard), lang) \
        if result.found else None
    return RecourseView(result.target_grade, recourse_sentence(result, bundle, lang),
                        recourse_side_effects(result, bundle, lang), table)
