"""Fairness by group: rates per group from known data, the four-fifths flag, age bands, the model card section."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_core.fairness import candidate_groups, fairness_by_group, groups_of, summary_frame
from profile_core.tasks import TaskSpec

PD = TaskSpec("default", "default_flag", "binary", role="pd")


def _world(shift: float) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 2000
    gender = np.where(np.arange(n) % 2, "女", "男")
    p = np.clip(rng.beta(1, 20, n) + np.where(gender == "女", shift, 0.0), 0, 0.99)
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"gender": gender, "age": rng.integers(20, 70, n), "city": "北京", "default_flag": y}), p


def test_balanced_groups_pass_and_shifted_groups_are_flagged() -> None:
    frame, p = _world(0.0)
    fair = fairness_by_group(frame, p, PD, "gender")
    assert set(fair.table["group"]) == {"男", "女"} and fair.table["n"].sum() == 2000
    assert fair.approval_ratio > 0.9 and not fair.flagged
    women = fair.table.set_index("group").loc["女"]
    approved = np.isin(pd.Series(p[frame["gender"] == "女"]).pipe(lambda s: s < 0.08), True).mean()
    assert women["approval_rate"] == pytest.approx(approved)  # grade C or better ⇔ PD < 8 %
    assert women["bad_rate"] == pytest.approx(frame.loc[frame["gender"] == "女", "default_flag"].mean())
    frame, p = _world(0.10)  # women's PD pushed up by 10 points: far fewer approved
    unfair = fairness_by_group(frame, p, PD, "gender")
    assert unfair.flagged and unfair.approval_ratio < 0.8 and unfair.parity_difference > 0.2
    summary = summary_frame([fair, unfair], "en")
    assert summary["Four-fifths rule"].tolist() == ["met", "below 0.8: review"]


def test_age_bands_and_candidates() -> None:
    frame = pd.DataFrame({"age": [19, 30, 45, 61, None], "gender": ["男"] * 5, "city": ["x"] * 5, "income": 1.0})
    assert groups_of(frame, "age").tolist() == ["<30", "30–39", "40–49", "≥60", "(missing)"]
    assert candidate_groups(frame) == ["age", "gender", "city"] or candidate_groups(frame) == ["gender", "age", "city"]


def test_model_card_lists_fairness() -> None:
    from profile_core.report import model_card_page

    frame, p = _world(0.10)
    page = model_card_page({"name": "m", "tasks": [PD.to_dict()], "metrics": {}},
                           fairness=[fairness_by_group(frame, p, PD, "gender")], lang="en")
    assert "Fairness by group" in page and "below 0.8: review" in page
