"""Bundles: round trip, integrity checks, no pickle, device mapping."""

import json
import pickle

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from profile_core.bench.train import synthetic_frame
from profile_core.bundle import (
    MANIFEST,
    WEIGHTS,
    BundleError,
    load_bundle,
    read_manifest,
    save_bundle,
    seal_manifest,
    sha256_file,
)
from profile_core.tasks import risk_tasks
from profile_core.train import TrainConfig, fit

CONFIG = TrainConfig(hidden=(16, 8), head_hidden=(4,), max_epochs=3, batch_size=128, device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(600, n_features=6, seed=5, n_categorical=1)


@pytest.fixture(scope="module")
def result(frame):
    return fit(frame, risk_tasks(), CONFIG)


@pytest.fixture
def bundle_dir(result, tmp_path):
    return save_bundle(result, tmp_path / "model", name="demo", data_fingerprint="abc123")


def test_round_trip_gives_identical_predictions(result, frame, bundle_dir):
    assert sorted(p.name for p in bundle_dir.iterdir()) == [MANIFEST, WEIGHTS]
    bundle = load_bundle(bundle_dir)
    assert not bundle.model.training and bundle.device == "cpu" and bundle.name == "demo"
    assert bundle.tasks == result.tasks and bundle.config == CONFIG
    pd.testing.assert_frame_equal(bundle.predict(frame), result.predict(frame), check_exact=True)
    assert bundle.feature_names == result.feature_names
    out = bundle.predict(frame.head(2))
    assert {"customer_id", "credit_score_pred", "default_prob", "risk_level_pred", "risk_level_prob_E"} <= set(out)


def test_manifest_describes_the_model(result, bundle_dir):
    m = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    assert m["weights_sha256"] == sha256_file(bundle_dir / WEIGHTS) and m["data_fingerprint"] == "abc123"
    assert m["architecture"]["name"] == "shared-bottom" and m["config"]["hidden"] == [16, 8]
    assert [t["name"] for t in m["tasks"]] == ["credit_score", "default", "risk_level"]
    assert m["features"]["names"] == result.feature_names and m["features"]["categorical"] == ["c0"]
    assert m["label_stats"]["credit_score"]["std"] > 0 and m["seed"] == CONFIG.seed
    assert {"python", "torch", "numpy", "pandas", "scikit-learn", "profile_core"} <= set(m["versions"])
    assert len(m["history"]) == 3 and set(m["history"][0]["weights"]) == {"credit_score", "default", "risk_level"}
    assert m["metrics"]["test"]["default"]["auc"] is not None and m["created_utc"].endswith("+00:00")
    assert read_manifest(bundle_dir) == m


def test_tampered_weights_are_refused(bundle_dir):
    data = bytearray((bundle_dir / WEIGHTS).read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    (bundle_dir / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError) as err:
        load_bundle(bundle_dir)
    assert str(err.value).startswith(f"The weights file {bundle_dir / WEIGHTS} does not match the SHA-256")
    assert "SHA-256" in err.value.message("zh") and WEIGHTS in err.value.message("zh")


@pytest.mark.parametrize("name", ["model.pkl", "weights.pt", "notes.txt"])
def test_unknown_or_pickle_files_are_refused(bundle_dir, name):
    (bundle_dir / name).write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(BundleError, match=f"not allowed, .*{name}"):
        load_bundle(bundle_dir)


def test_pickle_disguised_as_safetensors_is_never_unpickled(bundle_dir):
    weights = bundle_dir / WEIGHTS
    weights.write_bytes(pickle.dumps({"bottom.0.weight": [1.0]}))
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["weights_sha256"] = sha256_file(weights)  # an attacker who also rewrote both hashes
    (bundle_dir / MANIFEST).write_text(json.dumps(seal_manifest(manifest, b"")))
    with pytest.raises(BundleError, match="not a valid safetensors file"):
        load_bundle(bundle_dir)


def test_missing_or_mismatched_parts(bundle_dir, tmp_path):
    save_file({"x": torch.zeros(2)}, str(bundle_dir / WEIGHTS))
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["weights_sha256"] = sha256_file(bundle_dir / WEIGHTS)
    (bundle_dir / MANIFEST).write_text(json.dumps(seal_manifest(manifest, b"")))
    with pytest.raises(BundleError, match="does not fit the weights' shapes"):  # checked before building the net
        load_bundle(bundle_dir)
    (bundle_dir / WEIGHTS).unlink()
    with pytest.raises(BundleError, match="lacks the file"):
        load_bundle(bundle_dir)
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "nowhere")


def test_save_refuses_a_foreign_directory_and_replaces_a_bundle(result, tmp_path):
    other = tmp_path / "docs"
    other.mkdir()
    (other / "readme.md").write_text("mine")
    with pytest.raises(BundleError, match="exists and is not a bundle"):
        save_bundle(result, other)
    path = save_bundle(result, tmp_path / "b", name="one")
    save_bundle(result, path, name="two")
    assert read_manifest(path)["name"] == "two" and len(list(tmp_path.iterdir())) == 2


def test_loads_onto_the_requested_device(frame, bundle_dir):
    bundle = load_bundle(bundle_dir, device="cpu")
    assert all(p.device.type == "cpu" for p in bundle.model.parameters())
    if torch.cuda.is_available():  # the real thing: trained on the GPU, loaded on the CPU
        gpu = fit(frame, risk_tasks(), CONFIG.model_copy(update={"device": "cuda"}))
        assert gpu.device.startswith("cuda")
        path = save_bundle(gpu, bundle_dir.parent / "gpu")
        on_cpu = load_bundle(path, device="cpu")
        assert all(p.device.type == "cpu" for p in on_cpu.model.parameters())
        pd.testing.assert_frame_equal(on_cpu.predict(frame), gpu.predict(frame), check_exact=False, atol=1e-4)


def test_the_shipped_demo_bundle_from_before_hybrid_heads_reads_as_a_net_alone():
    """models/demo's config has no "hybrid" key: it was trained as a net alone, whatever today's default."""
    from pathlib import Path

    demo = load_bundle(Path(__file__).resolve().parents[1] / "models" / "demo")
    assert "hybrid" not in demo.manifest["config"] and not hasattr(demo.model, "trees")
    assert demo.config.hybrid == "none"
