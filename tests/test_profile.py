"""The panorama card: scorecard, grades, content, warnings, policy and masking."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from profile_core.explain import HeadExplainer, to_attributes
from profile_core.features import Preprocessor, build_features_from_frames, split_columns
from profile_core.nets import NetConfig, build_net
from profile_core.privacy import AccessDenied, Policy
from profile_core.profile import CardContext, build_profile_card, pd_grade, scorecard_points
from profile_core.schema import CATEGORIES
from profile_core.synth import generate_portfolio
from profile_core.tasks import default_tasks

LONELY = "C999999"  # a customer without any events


@pytest.fixture(scope="module")
def world():
    tables = generate_portfolio(150, seed=5).tables()
    extra = tables["customers"].iloc[[0]].assign(customer_id=LONELY, name="欧阳无事", rm_id="RM001",
                                                 phone="13900000000", id_number="110105199001019999")
    tables["customers"] = pd.concat([tables["customers"], extra], ignore_index=True)
    features = build_features_from_frames(tables)
    ids = features["customer_id"].astype("str")
    rank = np.linspace(0, 1, len(features))
    pd_ = 0.002 + 0.3 * rank**3
    predictions = pd.DataFrame({"customer_id": ids, "credit_score_pred": 800 - 300 * rank, "default_prob": pd_,
                                "risk_level_pred": [pd_grade(p) for p in pd_]})
    for c in "ABCDE":
        predictions[f"risk_level_prob_{c}"] = (predictions["risk_level_pred"] == c).astype(float)
    return tables, features, predictions


@pytest.fixture(scope="module")
def explainer(world):
    _, features, _ = world
    pre = Preprocessor().fit(features, *split_columns(features))
    tasks = default_tasks()
    torch.manual_seed(0)
    model = build_net("shared-bottom", NetConfig(len(pre.output_names), {t.name: t.out_dim for t in tasks},
                                                 hidden=(16,), head_hidden=(8,), dropout=0.0)).eval()
    return HeadExplainer(SimpleNamespace(model=model, preprocessor=pre, tasks=tasks), features, n_background=20)


@pytest.fixture(scope="module")
def context(world, explainer):
    tables, features, predictions = world
    return CardContext(tables, features, predictions, explainer=explainer)


def test_scorecard_points_at_known_pds():
    assert scorecard_points(1 / 51) == pytest.approx(600)  # odds 50:1
    assert scorecard_points(1 / 101) == pytest.approx(640)  # odds 100:1, one PDO up
    assert scorecard_points(1 / 26) == pytest.approx(560)
    assert scorecard_points(1e-12) == 850 and scorecard_points(0.0) == 850
    assert scorecard_points(0.99) == 300 and scorecard_points(1.0) == 300
    np.testing.assert_allclose(scorecard_points(np.array([1 / 51, 1 / 101])), [600, 640])


@pytest.mark.parametrize("pd_, grade", [(0.0, "A"), (0.0099, "A"), (0.01, "B"), (0.0299, "B"), (0.03, "C"),
                                        (0.0799, "C"), (0.08, "D"), (0.1999, "D"), (0.2, "E"), (1.0, "E")])
def test_grade_bands_at_boundaries(pd_, grade):
    assert pd_grade(pd_) == grade


def test_card_content(world, context):
    tables, _, _ = world
    cid = "C000010"
    card = context.card(cid, policy=Policy("analyst"))
    row = tables["customers"].set_index("customer_id").loc[cid]
    assert card.identity["name"] == row["name"][0] + "*" * (len(row["name"]) - 1)
    assert card.identity["phone"].count("*") == 4 and card.identity["rm_id"] == row["rm_id"]
    out = card.outputs
    assert out.points == pytest.approx(scorecard_points(out.pd))
    assert out.pd_grade == pd_grade(out.pd) and out.grade == out.risk_level and out.grade_source == "risk_level"
    assert set(card.attributes["category"]) == set(CATEGORIES)
    assert {"attribute", "name", "value", "raw", "percentile"} <= set(card.attributes.columns)
    assert "max_dpd_3m" in set(card.attributes["attribute"]) and "name" not in set(card.attributes["attribute"])
    assert len({tag.family for tag in card.tags}) >= 6
    assert all(tag.tone in {"good", "neutral", "warn", "bad"} and tag.zh and tag.en for tag in card.tags)
    assert len(card.monthly_flows) == 12 and list(card.monthly_flows.columns) == ["month", "inflow", "outflow"]
    txns = tables["transactions"][tables["transactions"]["customer_id"] == cid]
    assert card.monthly_flows[["inflow", "outflow"]].to_numpy().sum() == pytest.approx(
        txns["amount"].abs().sum(), rel=1e-9)
    beh = tables["behaviors"]
    logins = ((beh["customer_id"] == cid) & (beh["event_type"] == "login")).sum()
    assert card.login_heatmap.shape == (7, 24) and card.login_heatmap.to_numpy().sum() == logins
    recent = card.recent_transactions
    assert len(recent) == 10 and recent["txn_time"].is_monotonic_decreasing
    assert set(card.reasons) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    assert all(r.sentence for codes in card.reasons.values() for r in codes.up + codes.down)
    assert card.notice and card.as_of == "2026-10-31"
    assert context.card(cid, policy=Policy("analyst"), lang="en").tags[0].text("en") == card.tags[0].en


def test_card_for_a_customer_without_events(context):
    card = context.card(LONELY, policy=Policy("auditor"))
    assert card.identity["name"] == "欧***"
    assert card.recent_transactions.empty
    assert card.monthly_flows[["inflow", "outflow"]].to_numpy().sum() == 0
    assert card.login_heatmap.to_numpy().sum() == 0
    assert "profile.warn.no_events" in {w.key for w in card.warnings}
    assert len(card.attributes) > 0 and card.reasons


def test_heads_disagree_warnings(world):
    tables, features, predictions = world
    pred = predictions.copy()
    ids = pred["customer_id"].tolist()
    top, calm, consistent = ids[0], ids[1], ids[2]  # ids[0] has the best credit score
    pred.loc[pred["customer_id"] == top, ["default_prob", "risk_level_pred"]] = [0.35, "E"]
    pred.loc[pred["customer_id"] == calm, ["default_prob", "risk_level_pred"]] = [0.10, "A"]
    pred.loc[pred["customer_id"] == consistent, ["default_prob", "risk_level_pred"]] = [0.005, "A"]
    ctx = CardContext(tables, features, pred)
    policy = Policy("analyst")
    keys = {cid: {w.key for w in ctx.card(cid, policy=policy).warnings} for cid in (top, calm, consistent)}
    assert "profile.warn.score_vs_pd" in keys[top]
    assert "profile.warn.level_vs_pd" in keys[calm]
    assert not keys[consistent] & {"profile.warn.score_vs_pd", "profile.warn.level_vs_pd"}
    text = {w.key: w.text for w in ctx.card(calm, policy=policy, lang="en").warnings}["profile.warn.level_vs_pd"]
    assert "risk level is A" in text and "10.0%" in text


def test_rm_sees_own_customers_only(world, context):
    tables, _, _ = world
    customers = tables["customers"]
    own = customers.iloc[3]
    rm = Policy("rm", rm_id=own["rm_id"])
    assert context.card(own["customer_id"], policy=rm).identity["name"] == own["name"]
    other = customers[customers["rm_id"] != own["rm_id"]].iloc[0]["customer_id"]
    with pytest.raises(AccessDenied):
        context.card(other, policy=rm)
    with pytest.raises(KeyError):
        context.card("NOPE", policy=Policy("analyst"))


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, pd.DataFrame):
        return _strings(obj.to_numpy().ravel().tolist()) + _strings(list(map(str, obj.columns))) \
            + _strings(list(map(str, obj.index)))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _strings([getattr(obj, f.name) for f in dataclasses.fields(obj)])
    if isinstance(obj, dict):
        return _strings(list(obj.keys())) + _strings(list(obj.values()))
    if isinstance(obj, list | tuple):
        return [s for item in obj for s in _strings(item)]
    return [str(obj)] if obj is not None else []


def test_masking_never_leaks(world, context):
    tables, _, _ = world
    customers = tables["customers"].set_index("customer_id")
    txns = tables["transactions"]
    for cid in [*customers.index[:12], LONELY]:
        for role in ("analyst", "auditor", "admin"):
            card = context.card(cid, policy=Policy(role))
            text = "\n".join(_strings(card))
            row = customers.loc[cid]
            for secret in (row["name"], row["id_number"], row["phone"]):
                assert secret not in text, (cid, role, secret)
            parties = txns.loc[txns["customer_id"] == cid, "counterparty"].dropna().unique()
            leaked = [p for p in parties if len(p) >= 2 and p in text]
            assert not leaked, (cid, leaked)


def test_build_profile_card_with_a_portfolio_explanation(world, explainer):
    tables, features, predictions = world
    attr = to_attributes(explainer.explain(features.iloc[:5]), explainer.preprocessor, features)
    cid = features["customer_id"].iloc[2]
    card = build_profile_card(cid, tables=tables, features=features, predictions=predictions, explanation=attr,
                              policy=Policy("analyst"), lang="en")
    assert card.reasons["default"].customer_id == cid
    assert all("higher" in r.sentence or "lower" in r.sentence or " is " in r.sentence
               for codes in card.reasons.values() for r in codes.up)
    assert build_profile_card(cid, tables=tables, features=features, predictions=None,
                              policy=Policy("analyst")).outputs.pd is None
