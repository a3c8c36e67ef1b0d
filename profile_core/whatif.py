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
