"""The scorecard: PD → points and PD → grade, in one place for the card, scoring, the API, reports and the
portfolio (design §4: points = offset + factor·ln(odds), 600 at 50:1 good:bad, PDO 40, clipped 300–850;
grades A–E by PD bands <1%, 1–3%, 3–8%, 8–20%, ≥20%). Only a task whose role is ``pd`` feeds it."""

from __future__ import annotations

import math
from collections.abc import Iterable, MutableMapping

import numpy as np

from profile_core.schema import RISK_LEVELS

BASE_POINTS, BASE_ODDS, PDO = 600.0, 50.0, 40.0  # 600 points at 50:1 good:bad, +40 points per doubling
FACTOR = PDO / math.log(2)
OFFSET = BASE_POINTS - FACTOR * math.log(BASE_ODDS)
POINTS_RANGE = (300.0, 850.0)
PD_BANDS = (0.01, 0.03, 0.08, 0.20)  # A < 1% ≤ B < 3% ≤ C < 8% ≤ D < 20% ≤ E
GRADES = RISK_LEVELS


def scorecard_points(pd_: float | np.ndarray) -> float | np.ndarray:
    """points = offset + factor·ln(odds), odds = (1−PD)/PD good:bad; clipped to 300–850 (NaN stays NaN)."""
    p = np.asarray(pd_, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        points = OFFSET + FACTOR * (np.log1p(-p) - np.log(p))
    out = np.clip(points, *POINTS_RANGE)
    return float(out) if out.ndim == 0 else out


def pd_grade(pd_: float | np.ndarray) -> str | None | np.ndarray:
    """A–E from the PD bands; a band's lower edge belongs to it. Missing or non-finite PD → None."""
    p = np.asarray(pd_, dtype=float)
    idx = np.searchsorted(PD_BANDS, np.nan_to_num(p, nan=0.0), side="right")
    out = np.where(np.isfinite(p), np.asarray(GRADES, dtype=object)[idx], None)
    return out.item() if out.ndim == 0 else out


def add_scorecard(columns: MutableMapping[str, np.ndarray], tasks: Iterable) -> MutableMapping[str, np.ndarray]:
    """Add ``points`` (rounded) and ``pd_grade`` computed from the ``pd`` task's probability column, when the
    model has a pd task; a model without one gets neither (nothing is called a PD that is not one)."""
    from profile_core.tasks import role_task

    task = role_task(tasks, "pd")
    col = f"{task.name}_prob" if task is not None else None
    if col is not None and col in columns:
        p = np.asarray(columns[col], dtype=float)
        columns["points"] = np.round(scorecard_points(p), 0)
        columns["pd_grade"] = pd_grade(p)
    return columns
