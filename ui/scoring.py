"""Bundle predictions → the per-customer portfolio frame the portfolio page draws.

Score scaling and PD bands come from ``profile_core.profile`` (design §4: points = offset + factor·ln(odds),
600 at 50:1, PDO 40, clipped 300–850; grades A–E by PD bands). Grades come from the model's own risk-level
head when it has one, otherwise from the PD bands.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profile_core.schema import RISK_LEVELS

GROUP_COLUMNS = ("rm_id", "city", "occupation")


def points_from_pd(pd_: pd.Series) -> pd.Series:
    from profile_core.profile import scorecard_points

    p = pd_.to_numpy(dtype=float).clip(1e-9, 1 - 1e-9)
    return pd.Series(scorecard_points(p), index=pd_.index, dtype=float)


def grade_from_pd(pd_: pd.Series) -> pd.Series:
    from profile_core.profile import PD_BANDS

    idx = np.searchsorted(np.asarray(PD_BANDS), pd_.to_numpy(dtype=float), side="right")
    out = pd.Series(np.asarray(RISK_LEVELS, dtype=object)[np.clip(idx, 0, 4)], index=pd_.index, dtype=object)
    return out.where(pd_.notna())


def portfolio_frame(preds: pd.DataFrame, features: pd.DataFrame, tasks: list) -> pd.DataFrame:
    """customer_id, ``score`` (the regression head named credit_score, else points from PD), ``pd``,
    ``grade`` and ``grade_source``, observed ``default_flag`` when known, and the grouping columns."""
    out = pd.DataFrame({"customer_id": preds["customer_id"]} if "customer_id" in preds else {}, index=preds.index)
    binary = next((t for t in tasks if t.kind == "binary" and t.name == "default"), None) \
        or next((t for t in tasks if t.kind == "binary"), None)
    regression = next((t for t in tasks if t.kind == "regression" and t.label == "credit_score"), None)
    grades = next((t for t in tasks if t.kind == "multiclass" and set(t.classes) <= set(RISK_LEVELS)), None)
    out["pd"] = preds[f"{binary.name}_prob"].astype(float) if binary else np.nan
    if regression is not None:
        out["score"] = preds[f"{regression.name}_pred"].astype(float)
    elif binary is not None:
        out["score"] = points_from_pd(out["pd"])
    else:
        out["score"] = np.nan
    if grades is not None:
        out["grade"], out["grade_source"] = preds[f"{grades.name}_pred"].astype(object), grades.name
    elif binary is not None:
        out["grade"], out["grade_source"] = grade_from_pd(out["pd"]), "pd_bands"
    else:
        out["grade"], out["grade_source"] = None, ""
    aligned = features.reset_index(drop=True)
    if len(aligned) == len(out):
        for col in ("default_flag", *GROUP_COLUMNS):
            if col in aligned.columns:
                out[col] = aligned[col].to_numpy()
    return out
