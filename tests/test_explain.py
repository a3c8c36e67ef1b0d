"""SHAP per head: additivity for every architecture, agreement with shap.DeepExplainer, attributes, reason
codes, global importance and the cache."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from profile_core.explain import (
    TOLERANCE,
    Explanation,
    ExplanationCache,
    HeadExplainer,
    background_rows,
    dependence,
    explain,
    format_value,
    global_importance,
    reason_codes,
    risk_direction,
    to_attributes,
)
from profile_core.features import build_features_from_frames, feature_info
from profile_core.nets import NetConfig, build_net, member_mean
from profile_core.synth import generate_portfolio
from profile_core.tasks import TaskSpec, default_tasks, risk_tasks
from profile_core.train import TrainConfig, fit, predictions_frame

SMALL = {"hidden": (32, 16), "head_hidden": (16,), "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def world():
    """400 synthetic customers and a shared-bottom model trained for 5 epochs."""
    features = build_features_from_frames(generate_portfolio(400, seed=11).tables())
    result = fit(features, default_tasks(), TrainConfig(max_epochs=5, **SMALL))
    return features, result


@pytest.fixture(scope="module")
def explainer(world):
    features, result = world
    return HeadExplainer(result, features, n_background=50)


@pytest.fixture(scope="module")
def expl(world, explainer):
    features, _ = world
    return explainer.explain(features.iloc[:40])


def _untrained(arch: str, result, **net) -> SimpleNamespace:
    torch.manual_seed(0)
    outputs = {t.name: t.out_dim for t in result.tasks}
    model = build_net(arch, NetConfig(len(result.preprocessor.output_names), outputs, hidden=(16, 8),
                                      head_hidden=(8,), dropout=0.0, **net)).eval()
    return SimpleNamespace(model=model, preprocessor=result.preprocessor, tasks=result.tasks)


@pytest.mark.parametrize("arch, net", [("shared-bottom", {}), ("mmoe", {"n_experts": 3}),
                                       ("ple", {"n_levels": 2})])
def test_deep_is_additive_for_every_architecture(world, arch, net):
    features, result = world
    bundle = result if arch == "shared-bottom" else _untrained(arch, result, **net)
    ex = HeadExplainer(bundle, features, n_background=30)
    assert ex.method == "deep", ex.probe_error
    e = ex.explain(features.iloc[:25])
    assert set(e.values) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    for task, err in e.additivity_error.items():
        assert err < TOLERANCE, (arch, task, err)
        recomputed = np.abs(e.base_values[task] + e.values[task].sum(axis=1).to_numpy() - e.outputs[task]).max()
        assert recomputed < TOLERANCE


def test_deep_equals_shap_deep_explainer_on_relu_nets(world, explainer, expl):
    import shap

    features, result = world

    class AllHeads(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return torch.cat([out[t.name] for t in result.tasks], dim=1)

    reference = shap.DeepExplainer(AllHeads(explainer.model), explainer.background)
    x = torch.from_numpy(expl.inputs.to_numpy()[:3].copy())
    values = reference.shap_values(x, check_additivity=False)  # (rows, inputs, outputs)
    std = result.tasks[0].std
    np.testing.assert_allclose(values[:, :, 0] * std, expl.values["credit_score"].to_numpy()[:3], atol=1e-8)
    np.testing.assert_allclose(values[:, :, 1], expl.values["default"].to_numpy()[:3], atol=1e-10)
    cls = [result.tasks[2].classes.index(c) for c in expl.explained_class["risk_level"][:3]]
    picked = values[np.arange(3), :, 2 + np.asarray(cls)]
    np.testing.assert_allclose(picked, expl.values["risk_level"].to_numpy()[:3], atol=1e-10)


def test_outputs_are_the_model_outputs_in_stated_units(world, expl):
    features, result = world
    pred = predictions_frame(result.model, result.preprocessor, result.tasks, features.iloc[:40])
    assert expl.output_kind == {"credit_score": "value", "default": "logit",
                                "risk_level": "logit of predicted class", "wm_purchase": "logit", "churn": "logit"}
    np.testing.assert_allclose(1 / (1 + np.exp(-expl.outputs["churn"])), pred["churn_prob"], atol=1e-5)
    np.testing.assert_allclose(expl.outputs["credit_score"], pred["credit_score_pred"], rtol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-expl.outputs["default"])), pred["default_prob"], atol=1e-5)
    assert list(expl.explained_class["risk_level"]) == pred["risk_level_pred"].tolist()
    assert list(expl.customer_ids) == features["customer_id"].iloc[:40].tolist()
    assert expl.method == "deep"


def test_permutation_fallback_for_an_op_without_a_rule(world):
    features, result = world
    n_in = len(result.preprocessor.output_names)

    class TanhNet(nn.Module):  # tanh has no DeepLIFT rule here: the probe must notice and fall back
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
            self.heads = nn.ModuleDict({t.name: nn.Linear(8, t.out_dim) for t in result.tasks})

        def forward(self, x):
            h = self.body(x)
            return {k: head(h) for k, head in self.heads.items()}

    torch.manual_seed(0)
    bundle = SimpleNamespace(model=TanhNet().eval(), preprocessor=result.preprocessor, tasks=result.tasks)
    ex = HeadExplainer(bundle, features, n_background=20)
    assert ex.method == "permutation" and max(ex.probe_error.values()) > 1e-7
    e = ex.explain(features.iloc[:3])
    assert e.method == "permutation"
    assert max(e.additivity_error.values()) < TOLERANCE


def test_background_is_seeded_and_capped(world):
    features, _ = world
    assert len(background_rows(features, 500)) == 200
    a, b = background_rows(features, 50, seed=1), background_rows(features, 50, seed=1)
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    assert a["customer_id"].tolist() != background_rows(features, 50, seed=2)["customer_id"].tolist()


def test_attributes_keep_the_total_and_carry_metadata(world, expl):
    features, result = world
    attr = to_attributes(expl, result.preprocessor, features)
    assert attr.level == "attribute"
    cols = list(attr.values["default"].columns)
    assert "occupation" in cols and not any("=" in c or c.endswith("__missing") for c in cols)
    for task in expl.values:
        np.testing.assert_allclose(attr.values[task].sum(axis=1), expl.values[task].sum(axis=1), atol=1e-10)
    assert attr.features.loc["occupation", "zh"] == "职业"
    assert attr.features.loc["max_dpd_3m", "category"] == "credit"
    assert attr.inputs["occupation"].tolist() == features["occupation"].iloc[:40].tolist()
    rebuilt = to_attributes(expl, result.preprocessor)  # raw values rebuilt from the model inputs
    np.testing.assert_allclose(rebuilt.inputs["income"].astype(float), features["income"].iloc[:40], rtol=1e-5)  # float32 inputs, log scale


def test_global_importance_and_dependence(world, expl):
    features, result = world
    attr = to_attributes(expl, result.preprocessor, features)
    imp = global_importance(attr)
    assert {"attribute", "category", "zh", "en", "default", "default_raw"} <= set(imp.columns)
    for task in ("credit_score", "default", "risk_level"):
        assert imp[task].sum() == pytest.approx(1.0)
    dep = dependence(attr, features, "default", "max_dpd_12m")
    assert list(dep.columns) == ["customer_id", "value", "shap"] and len(dep) == 40
    assert dep["value"].tolist() == features["max_dpd_12m"].iloc[:40].tolist()


def test_risk_direction_by_task():
    tasks = {t.name: t for t in default_tasks()}
    assert risk_direction(tasks["default"]) == 1
    assert risk_direction(tasks["credit_score"]) == -1
    assert risk_direction(tasks["risk_level"], "E") == 1
    assert risk_direction(tasks["risk_level"], "A") == -1


def test_values_and_sentences_read_naturally():
    dpd, util = feature_info("max_dpd_3m"), feature_info("util_latest")
    assert format_value(45, dpd, "zh") == "45 天" and format_value(45, dpd, "en") == "45 days"
    assert format_value(0.834, util) == "83%"
    assert format_value(12345.6, feature_info("income")) == "12,346 元"
    assert format_value(None, dpd) == "缺失"
    ids = [f"C{i:03d}" for i in range(100)]
    raw = pd.DataFrame({"customer_id": ids, "max_dpd_3m": np.arange(100.0), "occupation": "教师"})
    values = pd.DataFrame({"max_dpd_3m": np.linspace(-1, 1, 100), "occupation": 0.1}, index=pd.Index(ids))
    task = TaskSpec("default", "default_flag", "binary")
    meta = pd.DataFrame({"zh": ["近3个月最大逾期天数", "职业"], "en": ["Max days past due, last 3 months", "Occupation"],
                         "category": ["credit", "basic"]}, index=["max_dpd_3m", "occupation"])
    e = Explanation(values={"default": values}, base_values={"default": np.zeros(100)},
                    outputs={"default": values.sum(axis=1).to_numpy()}, output_kind={"default": "logit"},
                    explained_class={}, method="deep", inputs=raw.set_index("customer_id"),
                    tasks={"default": task}, level="attribute", features=meta)
    high = reason_codes(e, raw, "C092", "default")
    assert [r.attribute for r in high.up] == ["max_dpd_3m", "occupation"] and high.down == []
    assert high.up[0].sentence == "近3个月最大逾期天数 92 天，高于 92% 的客户"
    assert high.up[1].sentence == "职业为“教师”"
    low = reason_codes(e, raw, "C010", "default", lang="en")
    assert low.down[0].sentence == "Max days past due, last 3 months is 10 days, lower than 89% of customers"


def test_reason_codes_name_the_planted_attribute():
    rng = np.random.default_rng(0)
    n = 600
    dpd = rng.choice([0, 0, 0, 0, 5, 15, 30, 60, 90], n).astype(float)
    frame = pd.DataFrame({"customer_id": [f"P{i:04d}" for i in range(n)], "max_dpd_3m": dpd,
                          "age": rng.integers(20, 65, n), "income": rng.lognormal(11, 0.4, n),
                          "inquiries_3m": rng.poisson(1, n).astype(float),
                          "occupation": rng.choice(["教师", "工人", "销售"], n)})
    risk = dpd / 30
    frame["credit_score"] = 720 - 40 * risk + rng.normal(0, 5, n)
    frame["default_flag"] = (risk + rng.normal(0, 0.3, n) > 1.5).astype(int)
    frame["risk_level"] = np.asarray(list("ABCDE"), dtype=object)[np.digitize(risk, [0.1, 0.6, 1.2, 2.5])]
    result = fit(frame, risk_tasks(), TrainConfig(max_epochs=40, patience=40, hidden=(16,), head_hidden=(8,),
                                                     device="cpu", seed=0))
    pred = predictions_frame(result.model, result.preprocessor, result.tasks, frame)
    riskiest = frame.iloc[[int(pred["default_prob"].idxmax())]]
    cid = riskiest["customer_id"].iloc[0]
    attr = to_attributes(explain(result, riskiest, background=frame, n_background=60), result.preprocessor, frame)
    for task in ("default", "credit_score", "risk_level"):
        codes = reason_codes(attr, frame, cid, task, population=frame)
        assert codes.up[0].attribute == "max_dpd_3m", (task, codes.up)
        dpd_of_riskiest = int(riskiest["max_dpd_3m"].iloc[0])
        assert dpd_of_riskiest >= 60  # the model's riskiest customer is among the most overdue
        assert codes.up[0].sentence.startswith(f"近3个月最大逾期天数 {dpd_of_riskiest} 天")


def test_cache_reuses_explanations(world):
    features, result = world
    cache = ExplanationCache(max_items=2)
    first = cache.explain(result, features.iloc[:5], background=features, n_background=20)
    assert cache.explain(result, features.iloc[:5], background=features, n_background=20) is first
    other = cache.explain(result, features.iloc[5:10], background=features, n_background=20)
    assert other is not first and len(cache) == 2
    assert cache.explainer(result, features, n_background=20) is cache.explainer(result, features, n_background=20)


def test_piecewise_linear_encoding_is_explained_exactly_per_attribute(world):
    """Numbers in quantile bins (Preprocessor encoding "ple"): DeepSHAP at the encoded inputs is additive per
    head, and summing each number's bin columns back gives attribute values with the same totals."""
    features, _ = world
    result = fit(features, default_tasks(), TrainConfig(max_epochs=3, numeric_encoding="ple", n_bins=6, **SMALL))
    pre = result.preprocessor
    assert any("#pl" in c for c in pre.output_names) and pre.source_of["income#pl0"] == "income"
    ex = HeadExplainer(result, features, n_background=30)
    assert ex.method == "deep", ex.probe_error
    e = ex.explain(features.iloc[:20])
    assert max(e.additivity_error.values()) < TOLERANCE
    attr = to_attributes(e, pre, features)
    cols = list(attr.values["default"].columns)
    assert "income" in cols and not any("#pl" in c for c in cols)
    income_inputs = [c for c in pre.output_names if pre.source_of[c] == "income"]
    assert len(income_inputs) > 2
    for task in e.values:
        np.testing.assert_allclose(attr.values[task]["income"], e.values[task][income_inputs].sum(axis=1), atol=1e-12)
        np.testing.assert_allclose(attr.base_values[task] + attr.values[task].sum(axis=1), attr.outputs[task],
                                   atol=TOLERANCE)
    rebuilt = to_attributes(e, pre)  # raw values rebuilt from the model inputs still read the plain number
    np.testing.assert_allclose(rebuilt.inputs["income"].astype(float), features["income"].iloc[:20], rtol=1e-4)


def test_per_head_checkpoints_stay_additive(world):
    """A MemberMean (each head reads its own checkpoint, or an average of several) is explained exactly."""
    features, result = world
    torch.manual_seed(1)
    cfg = NetConfig(len(result.preprocessor.output_names), {t.name: t.out_dim for t in result.tasks},
                    hidden=(16, 8), head_hidden=(8,), dropout=0.0)
    states = [build_net("mmoe", cfg).state_dict() for _ in range(3)]
    model = member_mean("mmoe", cfg, states, {"default": (0,), "risk_level": (1, 2)}).eval()
    bundle = SimpleNamespace(model=model, preprocessor=result.preprocessor, tasks=result.tasks)
    ex = HeadExplainer(bundle, features, n_background=20)
    assert ex.method == "deep", ex.probe_error
    e = ex.explain(features.iloc[:15])
    assert max(e.additivity_error.values()) < TOLERANCE
