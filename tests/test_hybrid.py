"""Hybrid heads (TrainConfig.hybrid="blend"): the trees as tensors equal LightGBM, the blend weight is the
validation optimum, the bundle round-trips and refuses bad tree indices, SHAP stays exact and additive."""

import json

import lightgbm as lgb
import numpy as np
import pytest
import torch

from profile_core.bench.train import synthetic_frame
from profile_core.bundle import MANIFEST, WEIGHTS, BundleError, load_bundle, save_bundle, sha256_file
from profile_core.explain import explain
from profile_core.hybrid import WEIGHTS as SHARES
from profile_core.hybrid import load_trees, tree_arrays, tree_inputs
from profile_core.nets import TreeEnsemble
from profile_core.scoring import score_columns
from profile_core.similar import embed
from profile_core.tasks import TaskSpec, risk_tasks
from profile_core.train import TrainConfig, fit

SMALL = dict(hidden=(32, 16), head_hidden=(8,), batch_size=128, lr=3e-3, device="cpu", num_threads=1,
             max_epochs=8)


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(2000, n_features=8, seed=3, n_categorical=1)


@pytest.fixture(scope="module")
def hybrid(frame):
    return fit(frame, risk_tasks(), TrainConfig(hybrid="blend", **SMALL))


@pytest.mark.parametrize("objective,out_dim", [("regression", 1), ("binary", 1), ("multiclass", 3)])
def test_tree_tensors_equal_lightgbm_raw_scores(objective, out_dim):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6)).astype(np.float32)
    X[:, 2] = np.round(X[:, 2])  # ties at split values
    y = {"regression": X[:, 0] * 2 + X[:, 1] ** 2, "binary": (X[:, 0] + X[:, 2] > 0).astype(float),
         "multiclass": np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])}[objective]
    params = {"objective": objective, "verbose": -1, "num_leaves": 15, "seed": 0,
              **({"num_class": 3} if objective == "multiclass" else {})}
    booster = lgb.train(params, lgb.Dataset(X[:400], y[:400]), num_boost_round=40)
    columns = [0, 1, 2, 3, 4, 5]
    arrays = tree_arrays(booster, out_dim, columns)
    module = TreeEnsemble(len(arrays["feature"]), len(arrays["roots"]), int(arrays["depth"]), out_dim)
    load_trees(module, arrays, 0.0)
    module.validate(6)
    module.CHUNK_PAIRS = 1_000  # several chunks of rows (the tensor walk, as on a GPU)
    got = module(torch.from_numpy(X[400:])).numpy()
    want = booster.predict(X[400:], raw_score=True).reshape(200, out_dim)
    assert len(arrays["roots"]) == 40 * out_dim
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(module._walk(torch.from_numpy(X[400:])).numpy(), want, atol=1e-5)


def test_tree_inputs_leave_out_the_bin_columns():
    assert tree_inputs(["age", "age#pl0", "age#pl1", "age__missing", "city=北京"]) == [0, 3, 4]


def test_each_head_blends_with_the_validation_optimum(frame, hybrid):
    assert type(hybrid.model).__name__ == "Blend" and hybrid.model.name == "shared-bottom"
    assert set(hybrid.hybrid) == {t.name for t in risk_tasks()}
    for task, chosen in hybrid.hybrid.items():
        scores = chosen["validation"]
        assert sorted(scores) == sorted(float(w) for w in SHARES)
        assert scores[chosen["weight"]] == min(scores.values())  # lower is better: RMSE, 1 − AUC, 1 − macro-F1
        assert chosen["trees"] >= chosen["rounds"] >= 1
        assert float(hybrid.model.trees[task].weight) == pytest.approx(chosen["weight"])
    # the blend is scored like any model, on the same test rows
    net_only = fit(frame, risk_tasks(), TrainConfig(**SMALL))
    assert hybrid.split["test"].tolist() == net_only.split["test"].tolist()
    assert set(hybrid.metrics["test"]) == set(net_only.metrics["test"])


def test_weight_one_is_the_net_and_zero_the_trees(frame, hybrid):
    model = hybrid.model
    x = torch.from_numpy(hybrid.preprocessor.transform(frame.iloc[:30]))
    with torch.no_grad():
        net = model.net(x)
        for t, trees in model.trees.items():
            w = float(trees.weight)
            np.testing.assert_allclose(model(x)[t].numpy(), (w * net[t] + (1 - w) * trees(x)).numpy(), atol=1e-6)


def test_bundle_round_trip_scores_and_embeds(frame, hybrid, tmp_path):
    path = save_bundle(hybrid, tmp_path / "hyb")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["config"]["hybrid"] == "blend" and set(manifest["hybrid"]) == set(hybrid.hybrid)
    assert set(manifest["architecture"]["net"]["trees"]) == set(hybrid.hybrid)
    assert sorted(p.name for p in path.iterdir()) == sorted([MANIFEST, WEIGHTS])  # still one weights file
    bundle = load_bundle(path)
    rows = frame.iloc[:100]
    got, want = score_columns(bundle, rows), score_columns(hybrid, rows)
    for column, values in want.items():
        np.testing.assert_array_equal(got[column], values)
    vectors = embed(bundle, rows)  # the net's representation; trees have none
    assert vectors.shape[0] == 100 and vectors.shape[1] % 16 == 0
    np.testing.assert_array_equal(vectors, embed(hybrid, rows))


@pytest.mark.parametrize("suffix,position,value", [(".feature", 0, 10_000), (".left", 0, 0), (".right", 0, -1)])
def test_bundle_with_bad_tree_indices_is_refused(hybrid, tmp_path, suffix, position, value):
    """An input outside the matrix, a node pointing back up (a cycle), a node outside the tree."""
    from safetensors.torch import load_file, save_file

    path = save_bundle(hybrid, tmp_path / "bad")
    state = load_file(str(path / WEIGHTS))
    key = next(k for k in state if k.endswith(suffix))
    state[key][position] = value
    save_file(state, str(path / WEIGHTS))
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    manifest["weights_sha256"] = sha256_file(path / WEIGHTS)
    from profile_core.bundle import seal_manifest

    manifest.pop("manifest_sha256", None)
    (path / MANIFEST).write_text(json.dumps(seal_manifest(manifest), ensure_ascii=False), encoding="utf-8")
    with pytest.raises(BundleError):
        load_bundle(path)


def test_shap_of_the_blend_is_the_blend_of_both_explanations(frame, hybrid, tmp_path):
    import shap

    from profile_core.hybrid import shap_trees

    bundle = load_bundle(save_bundle(hybrid, tmp_path / "shap"))
    rows = frame.iloc[:12]
    expl = explain(bundle, rows, background=frame, n_background=40)
    assert expl.method == "deep"
    assert max(expl.additivity_error.values()) < 1e-5  # base + Σφ = the blended logit
    # the default head: φ = w·φ_net + (1 − w)·φ_trees, φ_trees from interventional TreeSHAP on the same background
    trees = bundle.model.trees["default"]
    w = float(trees.weight)
    from profile_core.explain import HeadExplainer

    explainer = HeadExplainer(bundle, frame, n_background=40)
    x = explainer._matrix(rows)
    tree_phi = shap.TreeExplainer(shap_trees(explainer.trees["default"]), data=explainer.background.numpy(),
                                  feature_perturbation="interventional", model_output="raw").shap_values(x.numpy())
    net_phi = (expl.values["default"].to_numpy() - (1 - w) * np.asarray(tree_phi).reshape(len(rows), -1)) / max(w, 1e-9)
    if w > 0:  # the net's part alone is additive against the net's own base value
        with torch.no_grad():
            net_out = explainer.net(x)["default"][:, 0].numpy()
            net_base = explainer.net(explainer.background)["default"][:, 0].numpy().mean()
        np.testing.assert_allclose(net_phi.sum(1), net_out - net_base, atol=1e-5)


def test_hybrid_with_missing_labels_and_a_regression_only_head(frame):
    rng = np.random.default_rng(1)
    half = frame.copy()
    half.loc[rng.random(len(half)) < 0.5, "credit_score"] = np.nan
    task = TaskSpec(name="credit_score", label="credit_score", kind="regression")
    result = fit(half, [task], TrainConfig(hybrid="blend", **SMALL))
    assert result.hybrid["credit_score"]["trees"] >= 1
    assert np.isfinite(result.metrics["test"]["credit_score"]["rmse"])


def test_model_card_shows_each_heads_blend(hybrid, tmp_path):
    from profile_core.report import model_card_page

    path = save_bundle(hybrid, tmp_path / "card")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    page = model_card_page(manifest, lang="en")
    assert "Hybrid heads: the net&#39;s share per task" in page or "Hybrid heads: the net's share per task" in page
    share = f"{hybrid.hybrid['default']['weight']:.0%}"
    assert share in page and "LightGBM share" in page
    plain = dict(manifest, hybrid={})
    assert "LightGBM share" not in model_card_page(plain, lang="en")


def test_the_same_weights_always_give_the_same_file(hybrid, tmp_path):
    """The weights' sha256 is the bundle's identity (caches, the registry): saving twice must not differ."""
    digests = {sha256_file(save_bundle(hybrid, tmp_path / f"s{i}") / WEIGHTS) for i in range(6)}
    assert len(digests) == 1


def test_on_the_demo_portfolio_a_hybrid_is_explained_with_deepshap_and_treeshap():
    """The five demo heads (many count-valued inputs, late trees with tiny leaves): the automatic choice keeps
    the exact method, not the sampled permutation fallback, and every head adds up."""
    from profile_core import synth
    from profile_core.explain import TREE_PROBE_TOLERANCE, HeadExplainer
    from profile_core.features import build_features_from_frames
    from profile_core.tasks import default_tasks

    frame = build_features_from_frames(synth.generate_portfolio(1500, seed=7).tables())
    result = fit(frame, default_tasks(), TrainConfig(hybrid="blend", max_epochs=3, seed=1, num_threads=1))
    assert any(v["weight"] < 1 for v in result.hybrid.values())  # the trees take part somewhere
    explainer = HeadExplainer(result, frame, n_background=50)
    assert explainer.method == "deep", explainer.probe_error
    assert max(explainer.probe_error.values()) <= TREE_PROBE_TOLERANCE
    expl = explainer.explain(frame.iloc[:20])
    scale = {t.name: t.std if t.kind == "regression" else 1.0 for t in result.tasks}
    assert all(err <= 1e-5 * scale[k] for k, err in expl.additivity_error.items())


def test_a_validation_split_too_small_to_choose_keeps_the_net_alone():
    small = synthetic_frame(400, n_features=6, seed=4, n_categorical=1)  # ~60 validation rows
    result = fit(small, risk_tasks(), TrainConfig(hybrid="blend", **SMALL))
    assert type(result.model).__name__ != "Blend"  # no head blended: the plain net, no trees in the bundle
    for chosen in result.hybrid.values():
        assert chosen["weight"] == 1.0 and chosen["trees"] == 0
        assert "labelled validation rows < 100" in chosen["skipped"]
