"""The trainer: every architecture learns, masks, determinism, callbacks, cancellation, device, split."""

import json
import math
import threading

import numpy as np
import pytest
import torch

from profile_core.bench.train import run as run_bench
from profile_core.bench.train import synthetic_frame
from profile_core.nets import ARCHITECTURES
from profile_core.tasks import EngineError, encode_labels, risk_tasks
from profile_core.train import (
    EpochReport,
    TrainConfig,
    fit,
    masked_losses,
    predict,
    resolve_device,
    split_indices,
)
from profile_core.weighting import WEIGHTINGS, build_weighting

TASKS = risk_tasks()
# the net's trainer alone: hybrid heads (the default) are tested in test_hybrid.py
SMALL = dict(hidden=(32, 16), head_hidden=(8,), n_experts=2, batch_size=128, lr=3e-3, device="cpu", num_threads=1,
             hybrid="none")


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(1500, n_features=12, seed=3, n_categorical=1)


def beats_constant(result, frame) -> None:
    test = frame.iloc[result.split["test"]]
    m = result.metrics["test"]
    assert m["credit_score"]["rmse"] < test["credit_score"].std()
    assert m["default"]["auc"] > 0.6
    assert m["risk_level"]["accuracy"] > test["risk_level"].value_counts(normalize=True).max()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_beats_a_constant_predictor(frame, arch):
    result = fit(frame, TASKS, TrainConfig(arch=arch, max_epochs=12, **SMALL))
    beats_constant(result, frame)
    assert result.model.name == arch and not result.model.training
    assert set(result.metrics) == {"val", "test"} and result.device == "cpu"
    assert result.feature_names[-2:] == ["c0=hi", "c0=lo"] and result.samples_per_second > 0
    # default selection: each head's best validation metric (RMSE, AUC, macro-F1) picks its epoch
    hist = result.history_frame()
    for task, metric, best in (("credit_score", "rmse", min), ("default", "auc", max), ("risk_level", "macro_f1", max)):
        col = hist[f"{task}.{metric}"]
        assert col[result.best_epochs[task] - 1] == best(col)


def test_missing_labels_are_masked_out(frame):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    half = frame.copy()
    for col in ("credit_score", "default_flag", "risk_level"):
        half.loc[rng.random(len(half)) < 0.5, col] = np.nan
    y = {k: torch.as_tensor(v) for k, v in encode_labels(half, TASKS).items()}
    y["credit_score"] = torch.nan_to_num(y["credit_score"], nan=np.nan)
    logits = {"credit_score": torch.randn(len(half), 1), "default": torch.randn(len(half), 1),
              "risk_level": torch.randn(len(half), 5)}
    got = masked_losses(logits, y, TASKS)
    keep = ~torch.isnan(y["credit_score"])
    torch.testing.assert_close(got["credit_score"], ((logits["credit_score"][keep, 0] - y["credit_score"][keep]) ** 2).mean())
    keep = y["risk_level"] >= 0
    torch.testing.assert_close(got["risk_level"], torch.nn.functional.cross_entropy(logits["risk_level"][keep],
                                                                                     y["risk_level"][keep]))
    result = fit(half, TASKS, TrainConfig(max_epochs=8, **SMALL))  # trains on the labelled half of each task
    assert all(math.isfinite(v) for r in result.history for v in r.train_losses.values())
    assert result.metrics["test"]["default"]["n"] < len(result.split["test"])
    assert result.metrics["test"]["default"]["auc"] > 0.6


@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
def test_batch_without_labels_for_a_task_gives_zero_gradient_from_it(weighting):
    torch.manual_seed(0)
    from profile_core.nets import NetConfig, build_net

    net = build_net("shared-bottom", NetConfig(3, {t.name: t.out_dim for t in TASKS}, hidden=(4,), head_hidden=()))
    out = net(torch.randn(6, 3))
    y = {"credit_score": torch.randn(6), "default": torch.full((6,), float("nan")),
         "risk_level": torch.full((6,), -1, dtype=torch.long)}
    losses = masked_losses(out, y, TASKS)
    assert set(losses) == {"credit_score"}
    total, weights = build_weighting(weighting, TASKS).backward(losses, net.shared_parameters())
    assert torch.isfinite(total) and set(weights) == {t.name for t in TASKS}
    for task in ("default", "risk_level"):
        grad = net.heads[task].out.weight.grad
        assert grad is None or not grad.any()
    assert net.heads["credit_score"].out.weight.grad.abs().sum() > 0


def test_same_seed_same_result_and_callbacks(frame):
    reports: list[EpochReport] = []
    config = TrainConfig(max_epochs=3, weighting="uncertainty", **SMALL)
    a = fit(frame, TASKS, config, callback=reports.append)
    b = fit(frame, TASKS, config)
    assert a.metrics == b.metrics
    assert [r.val_loss for r in a.history] == [r.val_loss for r in b.history]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert [r.epoch for r in reports] == [1, 2, 3]
    r = reports[-1]
    assert set(r.train_losses) == set(r.val_losses) == set(r.weights) == set(r.val_metrics) == {t.name for t in TASKS}
    assert {"rmse", "auc", "qwk"} <= set(r.val_metrics["credit_score"]) | set(r.val_metrics["default"]) | set(
        r.val_metrics["risk_level"])
    assert r.seconds > 0 and r.samples_per_second > 0
    # uncertainty weights moved from their init (½ for regression, 1 for classification)
    assert r.weights["credit_score"] != 0.5 and r.weights["default"] != 1.0
    json.dumps(r.to_dict())
    frame_hist = a.history_frame()
    assert len(frame_hist) == 3 and {"val_loss", "weight.default", "risk_level.qwk"} <= set(frame_hist.columns)
    c = fit(frame, TASKS, config.model_copy(update={"seed": 7}))
    assert c.metrics != a.metrics


def test_cancel_stops_after_the_current_epoch(frame):
    cancel = threading.Event()

    def on_epoch(report: EpochReport) -> None:
        if report.epoch == 2:
            cancel.set()

    result = fit(frame, TASKS, TrainConfig(max_epochs=30, **SMALL), callback=on_epoch, cancel=cancel)
    assert result.cancelled and len(result.history) == 2 and result.best_epoch in (1, 2)
    assert "test" in result.metrics


def test_predict_outputs(frame):
    result = fit(frame, TASKS, TrainConfig(max_epochs=4, **SMALL))
    preds = predict(result.model, result.preprocessor.transform(frame), result.tasks)
    assert abs(preds["credit_score"].mean() - frame["credit_score"].mean()) < frame["credit_score"].std()
    assert ((preds["default"] > 0) & (preds["default"] < 1)).all()
    np.testing.assert_allclose(preds["risk_level"].sum(axis=1), 1, atol=1e-5)
    out = result.predict(frame.head(3))
    assert list(out.columns) == ["customer_id", "credit_score_pred", "default_prob", "risk_level_pred",
                                 *[f"risk_level_prob_{c}" for c in "ABCDE"]]
    assert set(out["risk_level_pred"]) <= set("ABCDE")
    assert result.label_stats["credit_score"]["std"] > 1


def test_split_is_disjoint_complete_and_stratified(frame):
    s = split_indices(frame, TASKS, seed=1, val=0.2, test=0.2)
    rows = np.concatenate([s["train"], s["val"], s["test"]])
    assert len(rows) == len(frame) == len(set(rows.tolist()))
    rate = frame["default_flag"].mean()
    for part in s.values():
        assert abs(frame["default_flag"].iloc[part].mean() - rate) < 0.02
    assert np.array_equal(split_indices(frame, TASKS, seed=1, val=0.2, test=0.2)["val"], s["val"])
    assert len(split_indices(frame, TASKS, val=0.2, test=0.0)["test"]) == 0


def test_device_and_config_checks(frame):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError):
        TrainConfig(arch="transformer")
    with pytest.raises(ValueError):
        TrainConfig(weighting="magic")
    with pytest.raises(ValueError):
        TrainConfig(val_fraction=0.0)
    with pytest.raises(EngineError, match="not in the data"):
        fit(frame.drop(columns="risk_level"), TASKS, TrainConfig(max_epochs=1, **SMALL))
    with pytest.raises(EngineError, match="unknown task"):
        fit(frame, TASKS, TrainConfig(max_epochs=1, task_weights={"nope": 2.0}, **SMALL))


def test_bench_runs_small(tmp_path):
    out = run_bench(n=2000, n_features=8, epochs=1, out_dir=tmp_path, batch_size=512, num_threads=1)
    assert out["samples_per_second"] > 0 and out["mtl_over_three_single"] > 0
    assert json.loads((tmp_path / "train.json").read_text())["rows"] == 2000


def test_per_head_selection_keeps_each_heads_best_epoch(frame):
    config = TrainConfig(max_epochs=14, patience=3, selection="per-head", **SMALL)
    result = fit(frame, TASKS, config)
    hist = result.history_frame()
    for task in TASKS:
        losses = hist[f"val_loss.{task.name}"]
        assert result.best_epochs[task.name] == int(hist["epoch"][losses.idxmin()])  # its own best epoch
    # stops only when every head has stalled for `patience` epochs (or at max_epochs)
    last = len(result.history)
    assert last == config.max_epochs or all(last - e >= config.patience for e in result.best_epochs.values())
    assert result.best_epoch == max(result.best_epochs.values())
    # the restored model scores each head as its own best epoch did: validation loss per head = that minimum
    from profile_core.train import _evaluate  # noqa: PLC0415 (private helper, checked directly)

    X = torch.as_tensor(result.preprocessor.transform(frame))
    encoded = encode_labels(frame, result.tasks)
    Y = {t: torch.as_tensor(v) for t, v in encoded.items()}
    raw = encode_labels(frame, result.tasks, standardize=False)
    val = torch.as_tensor(result.split["val"])
    losses, _ = _evaluate(result.model, X, Y, val, result.tasks, raw, result.split["val"])
    for task in TASKS:
        assert losses[task.name] == pytest.approx(hist[f"val_loss.{task.name}"].min(), rel=1e-5)
    epochs = set(result.best_epochs.values())
    assert getattr(result.model, "members", None) is None if len(epochs) == 1 else len(result.model.members) == len(epochs)


def test_total_selection_restores_the_best_total_and_checks_names(frame):
    assert TrainConfig().selection == "per-head-metric" and TrainConfig().numeric_encoding == "ple"
    assert TrainConfig().hybrid == "blend"  # hybrid heads by default (issue 17)
    with pytest.raises(ValueError, match="model selection"):
        TrainConfig(selection="best")
    with pytest.raises(ValueError, match="numeric encoding"):
        TrainConfig(numeric_encoding="fourier")
    result = fit(frame, TASKS, TrainConfig(max_epochs=6, selection="total", **SMALL))
    assert set(result.best_epochs.values()) == {result.best_epoch}
    best = min(r.val_loss for r in result.history)
    assert result.history[result.best_epoch - 1].val_loss == best  # best epoch's weights restored


def test_piecewise_linear_encoding_trains_and_round_trips(frame):
    result = fit(frame, TASKS, TrainConfig(max_epochs=6, numeric_encoding="ple", n_bins=8, **SMALL))
    beats_constant(result, frame)
    names = result.feature_names
    assert "f00#pl0" in names and "f00#pl7" in names and "f00#pl8" not in names
    assert result.preprocessor.source_of["f00#pl3"] == "f00"
    assert result.model.config.input_dim == len(names)


def test_ensemble_averages_seeded_members_per_head(frame):
    from profile_core.nets import MemberMean

    config = TrainConfig(max_epochs=4, ensemble=2, selection="per-head", **SMALL)
    result = fit(frame, TASKS, config)
    assert isinstance(result.model, MemberMean) and result.model.name == "shared-bottom"
    assert {r.member for r in result.history} == {0, 1}
    # every head's output is the mean of the members it reads
    x = torch.as_tensor(result.preprocessor.transform(frame.head(50)))
    with torch.no_grad():
        outs = [m(x) for m in result.model.members]
        got = result.model(x)
    for task in TASKS:
        used = result.model.config.members_of(task.name)
        assert len(used) >= 2  # at least one checkpoint of each seed
        torch.testing.assert_close(got[task.name], torch.stack([outs[i][task.name] for i in used]).mean(0))
    beats_constant(result, frame)
    with pytest.raises(ValueError):
        TrainConfig(ensemble=0)


def test_member_mean_bundle_is_one_weights_file_and_loads(frame, tmp_path):
    from profile_core.bundle import load_bundle, save_bundle

    result = fit(frame, TASKS, TrainConfig(max_epochs=3, ensemble=2, numeric_encoding="ple", n_bins=4, **SMALL))
    save_bundle(result, tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.suffix == ".safetensors") == ["weights.safetensors"]
    loaded = load_bundle(tmp_path / "b")
    np.testing.assert_allclose(loaded.predict(frame.head(20))["default_prob"],
                               result.predict(frame.head(20))["default_prob"], rtol=1e-6)
    assert loaded.preprocessor.edges == result.preprocessor.edges and loaded.preprocessor.encoding == "ple"
