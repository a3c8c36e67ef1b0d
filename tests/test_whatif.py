"""What-if across every head: protected and fixed attributes are not editable, every head and the scorecard are
rescored, reason codes follow the change, nothing is written, and the card page offers it (audited)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_core.explain import HeadExplainer
from profile_core.features import build_features_from_frames
from profile_core.synth import generate_portfolio
from profile_core.tasks import default_tasks
from profile_core.train import TrainConfig, fit
from profile_core.whatif import WhatIfError, editable_attributes, heads_frame, what_if
from tests.test_app import demo_env, env  # noqa: F401 — fixtures reused


@pytest.fixture(scope="module")
def world():
    from profile_core.bundle import load_bundle, save_bundle

    frame = build_features_from_frames(generate_portfolio(400, seed=3).tables())
    result = fit(frame, default_tasks(), TrainConfig(max_epochs=30, seed=2, use_age=True))
    import tempfile
    from pathlib import Path

    path = save_bundle(result, Path(tempfile.mkdtemp()) / "m")
    return frame, load_bundle(path)


def test_fixed_and_protected_attributes_are_not_editable(world):
    frame, bundle = world
    editable = editable_attributes(bundle)
    assert "age" in bundle.preprocessor.numeric  # opted in as an input ...
    assert "age" not in editable and "tenure_months" not in editable  # ... yet never editable
    assert "util_latest" in editable
    with pytest.raises(WhatIfError, match="cannot be changed"):
        what_if(bundle, frame.iloc[[0]], {"age": 30}, lang="en")
    with pytest.raises(WhatIfError, match="needs a number"):
        what_if(bundle, frame.iloc[[0]], {"util_latest": "lots"}, lang="en")


def test_every_head_moves_and_nothing_is_written(world):
    frame, bundle = world
    row = frame.iloc[[7]]
    snapshot = frame.copy()
    result = what_if(bundle, row, {"max_dpd_3m": 90, "util_latest": 0.98}, lang="en",
                     explainer=HeadExplainer(bundle, frame), population=frame)
    pd.testing.assert_frame_equal(frame, snapshot)  # the data is untouched
    heads = result.heads.set_index("task")
    assert set(heads.index) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    assert heads.at["default", "after"] > heads.at["default", "before"]  # 90 days past due raises PD
    assert result.scorecard["points"][1] < result.scorecard["points"][0]
    after = [r.attribute for r in result.reasons_after["default"].up]
    assert {"max_dpd_3m", "util_latest"} & set(after)  # the reasons follow the change
    assert result.changes["max_dpd_3m"][1] == 90.0
    table = heads_frame(result, "en")
    assert table.columns.tolist() == ["Output", "Now", "What-if", "Changed"]
    assert table.set_index("Output").at["Scorecard points", "Changed"] == "●"
    assert np.isfinite(heads["delta"].dropna().to_numpy(dtype=float)).all()


def _card_page(monkeypatch):
    """The customer card page as the analyst sees it on the demo data (an AppTest after its first run)."""
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, TIMEOUT
    from ui.keys import PagePath

    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")
    monkeypatch.setenv("PROFILE_DEMO", "1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(str(PagePath.CUSTOMERS)).run()
    return at


def test_card_page_offers_the_what_if(env, monkeypatch):  # noqa: F811 — the fixture imported below
    """The analyst opens the what-if, simulates, sees every head before and after; the use is audited."""
    at = _card_page(monkeypatch)
    button = next(b for b in at.button if b.key and b.key.startswith("customers-whatif-button"))
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "假设后" in df.value.columns)
    assert {"信用评分", "违约概率", "风险等级", "评分卡分数"} <= set(table["输出"])
    import os
    from pathlib import Path

    log = Path(os.environ["PROFILE_WORKSPACE"] + ".audit.jsonl")  # the default audit log beside the workspace
    assert '"what_if"' in log.read_text(encoding="utf-8")


def test_input_bounds_follow_the_unit_and_the_declared_action():
    from profile_core.whatif import Action, input_bounds

    assert input_bounds("mobile_share_12m") == (0.0, 1.0)  # a share, stored as a fraction
    assert input_bounds("inquiries_12m") == (0.0, None)  # a count
    assert input_bounds("txn_in_amount_3m") == (0.0, None)  # an amount
    assert input_bounds("util_latest") == (0.0, None)  # over the limit a utilisation exceeds 100 %
    assert input_bounds("util_trend_3m_12m") == (-1.0, 1.0)  # a difference of two shares
    assert input_bounds("credit_score") == (None, None)  # no unit: no bound
    assert input_bounds("bank_segment_score") == (None, None)  # a bank's own column
    assert input_bounds("bank_segment_score", {"bank_segment_score": Action(low=1.0, high=5.0)}) == (1.0, 5.0)
    assert input_bounds("mobile_share_12m", {"mobile_share_12m": Action(high=0.8)}) == (0.0, 0.8)  # narrowed


def test_card_what_if_inputs_are_bounded(env, monkeypatch):  # noqa: F811 — the fixture imported above
    """A share cannot be typed above 100 % nor below 0, a count not below 0."""
    at = _card_page(monkeypatch)
    pick = next(m for m in at.multiselect if m.key and m.key.startswith("customers-whatif-pick"))
    pick.set_value(["mobile_share_12m", "inquiries_12m"]).run()
    assert not at.exception, [e.value for e in at.exception]
    inputs = {n.key.rsplit("-", 1)[1]: n for n in at.number_input if n.key and n.key.startswith("whatif-")}
    assert set(inputs) == {"mobile_share_12m", "inquiries_12m"}
    share, count = inputs["mobile_share_12m"], inputs["inquiries_12m"]
    assert (share.min, share.max) == (0.0, 1.0)
    assert count.min == 0.0 and count.max is None
    assert 0.0 <= share.value <= 1.0 and count.value >= 0.0  # the customer's values, inside


def test_recourse_finds_the_smallest_change_to_a_better_grade(world):
    from profile_core.scorecard import pd_grade
    from profile_core.whatif import recourse, recourse_sentence

    frame, bundle = world
    pd_now = bundle.predict(frame)["default_prob"].to_numpy()
    grades = pd_grade(pd_now)
    found = 0
    for i in np.flatnonzero(grades == "D")[:4]:
        result = recourse(bundle, frame.iloc[[i]], frame, target_grade="C")
        if not result.found:
            continue
        found += 1
        heads = result.heads.set_index("task")
        assert heads.at["default", "after"] < 0.08 <= heads.at["default", "before"]  # grade C reached
        assert 1 <= len(result.changes) <= 3 and set(result.changes) <= set(editable_attributes(bundle))
        assert result.scorecard["pd_grade"][1] in ("A", "B", "C")
        assert "→" in recourse_sentence(result, bundle, "en")
    assert found >= 1
    none = recourse(bundle, frame.iloc[[int(np.argmax(pd_now))]], frame, target_grade="A",
                    attributes=["share_dining_12m"])  # one weak lever cannot make the riskiest customer an A
    assert not none.found and "No change" in recourse_sentence(none, bundle, "en")


def test_declared_actions_bound_the_recourse_search():
    from profile_core.whatif import ACTIONS, FIXED, Action, action_of

    down = Action(direction="down", low=0.0)
    assert down.allows(0.9, 0.6) and not down.allows(0.6, 0.9) and not down.allows(0.6, -0.1)
    assert down.allows(float("nan"), 0.3)  # nothing known now: any value in bounds
    assert not FIXED.allows(1.0, 0.5) and Action().allows(1.0, 2.0) and not Action(high=1.5).allows(1.0, 2.0)
    assert action_of("max_dpd_12m") is FIXED and action_of("income") is ACTIONS["income"] is FIXED
    assert action_of("util_latest").direction == "down" and action_of("share_dining_12m") is FIXED
    assert action_of("night_login_share_3m") == Action()  # not a canonical feature: either way
    assert action_of("PAY_AMT1_12m") == Action()  # a bank's own column, whatever its name
    assert action_of("PAY_AMT1") == Action()  # a bank's own column: either way, within the population
    assert action_of("util_latest", {"util_latest": FIXED}) is FIXED  # the caller's declaration wins


def test_recourse_respects_directions_and_never_touches_fixed_attributes(world):
    from profile_core.scorecard import pd_grade
    from profile_core.whatif import FIXED, action_of, recourse

    frame, bundle = world
    grades = pd_grade(bundle.predict(frame)["default_prob"].to_numpy())
    checked = 0
    for i in np.flatnonzero(np.isin(grades, ["C", "D"]))[:3]:
        row = frame.iloc[[i]]
        result = recourse(bundle, row, frame, target_grade="B" if grades[i] == "C" else "C")
        for attribute, (now, after) in result.changes.items():
            action = action_of(attribute)
            assert action.actionable and action.allows(now, after), (attribute, now, after)
            checked += 1
        if "util_latest" in result.changes:  # declared fixed by the caller: the search goes elsewhere or fails
            again = recourse(bundle, row, frame, target_grade=result.target_grade, actions={"util_latest": FIXED})
            assert "util_latest" not in again.changes
    assert checked >= 1


def test_side_effects_name_the_other_heads_that_move():
    from profile_core.tasks import TaskSpec
    from profile_core.whatif import WhatIf, recourse_side_effects

    class Bundle:
        tasks = [TaskSpec("default", "default_flag", "binary", role="pd"), TaskSpec("churn", "churn", "binary"),
                 TaskSpec("credit_score", "credit_score", "regression", role="score")]

    heads = pd.DataFrame([
        {"task": "default", "title": "PD", "role": "pd", "before": 0.09, "after": 0.04, "delta": -0.05},
        {"task": "churn", "title": "Churn", "role": "generic", "before": 0.051, "after": 0.079, "delta": 0.028},
        {"task": "credit_score", "title": "Score", "role": "score", "before": 640.0, "after": 641.0, "delta": 1.0}])
    phrases = recourse_side_effects(WhatIf("C1", {}, heads), Bundle(), "en")
    assert phrases == ["Churn 5.1% → 7.9%"]  # the target head and a 0.2 % score move are not side effects
