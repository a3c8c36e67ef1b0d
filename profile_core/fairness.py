"""Fairness by group for a model's pd head: who is approved, who defaults, how well the PD ranks and how well it is
calibrated in each group, and the gaps between groups (fairlearn's MetricFrame and disparity metrics).

Approval is "grade at or better than the cut-off" (A–C by default). A group's approval rate below four fifths
of the best group's is flagged (the four-fifths rule). Groups are any column of the feature table: protected
attributes (gender, marital status, …) stay there as fields although they are never model inputs; age is cut
into bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import roc_auc_score

from profile_core.scorecard import GRADES, pd_grade
from profile_core.tasks import TaskSpec, encode_label

FOUR_FIFTHS = 0.8
APPROVE_UP_TO = "C"
AGE_BANDS = (0, 30, 40, 50, 60, 200)
MIN_GROUP = 20  # smaller groups are reported but not used for the ratios (too noisy to judge)
MISSING = "(missing)"


@dataclass
class FairnessReport:
    attribute: str
    table: pd.DataFrame  # one row per group: n, approval_rate, mean_pd, n_labelled, bad_rate, auc, pd_error
    approval_ratio: float | None  # lowest / highest approval rate among groups of at least MIN_GROUP
    parity_difference: float | None  # demographic parity difference of approval
    odds_difference: float | None  # equalised odds difference (approval vs not defaulting), labelled rows
    flagged: bool  # approval_ratio below FOUR_FIFTHS


def groups_of(features: pd.DataFrame, attribute: str) -> pd.Series:
    """The group of every customer: age in bands, anything else as text; missing values form their own group."""
    s = features[attribute]
    if attribute == "age" and pd.api.types.is_numeric_dtype(s):
        labels = [f"{lo}–{hi - 1}" if hi < 200 else f"≥{lo}" for lo, hi in pairwise(AGE_BANDS)]
        labels[0] = f"<{AGE_BANDS[1]}"
        return pd.cut(s, AGE_BANDS, right=False, labels=labels).astype("object").where(s.notna(), MISSING)
    return s.astype("object").where(s.notna(), MISSING).astype("str")


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def fairness_by_group(features: pd.DataFrame, pd_prob: Sequence[float], task: TaskSpec, attribute: str, *,
                      approve_up_to: str = APPROVE_UP_TO) -> FairnessReport:
    """Per group of ``attribute``: customers, approval rate at the cut-off, mean PD; on labelled rows the
    observed bad rate, AUC and PD error (mean PD − bad rate); then the disparity between groups."""
    groups = groups_of(features.reset_index(drop=True), attribute)
    p = np.asarray(pd_prob, dtype=float)
    approved = np.isin(pd_grade(p), GRADES[: GRADES.index(approve_up_to) + 1]).astype(int)
    everyone = MetricFrame(metrics={"n": lambda y, yp: len(y), "approval_rate": lambda y, yp: float(np.mean(yp)),
                                    "mean_pd": lambda y, yp: float(np.mean(y))},
                           y_true=p, y_pred=approved, sensitive_features=groups.to_numpy())
    table = everyone.by_group
    y = encode_label(features.reset_index(drop=True), task)
    known = np.isfinite(y)
    if known.any():
        labelled = MetricFrame(metrics={"n_labelled": lambda yt, yp: len(yt),
                                        "bad_rate": lambda yt, yp: float(np.mean(yt)),
                                        "auc": _auc, "pd_error": lambda yt, yp: float(np.mean(yp) - np.mean(yt))},
                               y_true=y[known].astype(int), y_pred=p[known],
                               sensitive_features=groups.to_numpy()[known])
        table = table.join(labelled.by_group, how="left")
    table = table.reset_index().rename(columns={table.index.name or "sensitive_feature_0": "group"})
    table["n"] = table["n"].astype(int)
    big = table[table["n"] >= MIN_GROUP]
    rates = big["approval_rate"].to_numpy(dtype=float)
    ratio = float(rates.min() / rates.max()) if len(rates) > 1 and rates.max() > 0 else None
    keep = groups.isin(set(big["group"])).to_numpy()
    parity = float(demographic_parity_difference(approved[keep], approved[keep],
                                                 sensitive_features=groups.to_numpy()[keep])) \
        if len(big) > 1 else None
    odds = None
    both = keep & known
    if len(big) > 1 and both.any():
        try:  # approval as the prediction of "repays" (label 0 = good)
            odds = float(equalized_odds_difference(1 - y[both].astype(int), approved[both],
                                                   sensitive_features=groups.to_numpy()[both]))
        except ValueError:  # a group with one outcome only
            odds = None
    return FairnessReport(attribute, table, ratio, parity, odds, ratio is not None and ratio < FOUR_FIFTHS)


def candidate_groups(features: pd.DataFrame) -> list[str]:
    """Columns worth checking: protected attributes present (never inputs, still fields), age, region."""
    from profile_core.features import PROTECTED, protected_columns

    found = protected_columns(features.columns, PROTECTED)  # includes age (it is protected unless opted in)
    return [*found, *[c for c in ("city",) if c in features.columns and c not in found]]


def summary_frame(reports: Sequence[FairnessReport], lang: str = "zh") -> pd.DataFrame:
    """One row per attribute: approval ratio, parity and equalised-odds differences, four-fifths flag."""
    from profile_core.i18n import t
    from profile_core.schema import display_name

    return pd.DataFrame([{
        t("fairness.col.attribute", lang): display_name(r.attribute, lang),
        t("fairness.col.ratio", lang): None if r.approval_ratio is None else round(r.approval_ratio, 3),
        t("fairness.col.parity", lang): None if r.parity_difference is None else round(r.parity_difference, 3),
        t("fairness.col.odds", lang): None if r.odds_difference is None else round(r.odds_difference, 3),
        t("fairness.col.flag", lang): t("fairness.flagged" if r.flagged else "fairness.ok", lang),
    } for r in reports], dtype=object)
