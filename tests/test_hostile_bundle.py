"""Hostile bundles (issue 15): an edited manifest (task mean, metrics), a re-hashed edit under a signing key, an
architecture far larger than its weights, an unsealed old bundle, an oversized manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from profile_core.bundle import (
    MANIFEST,
    BundleError,
    load_bundle,
    read_manifest,
    seal,
    seal_manifest,
)
from profile_core.scoring import current_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo"


@pytest.fixture()
def copy(tmp_path, monkeypatch):
    monkeypatch.delenv("PROFILE_BUNDLE_KEY", raising=False)
    out = tmp_path / "b"
    shutil.copytree(DEMO, out)
    return out


def _edit(path: Path, change) -> dict:
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def test_shipped_demo_bundle_is_sealed_and_loads():
    manifest = read_manifest(DEMO)
    assert len(manifest["manifest_sha256"]) == 64
    assert load_bundle(DEMO).name == "demo"


@pytest.mark.parametrize("edit", ["task_mean", "metrics", "new_key"])
def test_an_edited_manifest_is_refused(copy, edit):
    def change(m):
        if edit == "task_mean":  # would move every credit score
            task = next(t for t in m["tasks"] if t["kind"] == "regression")
            task["mean"] = task.get("mean", 0) + 200
        elif edit == "metrics":  # false AUCs
            m["metrics"] = json.loads(json.dumps(m["metrics"]).replace("0.", "0.9"))
        else:  # a key this code does not know is covered too
            m["holdout"] = {"ids": ["C1"]}

    _edit(copy, change)
    with pytest.raises(BundleError, match="does not match its manifest hash"):
        read_manifest(copy)
    with pytest.raises(BundleError, match="does not match its manifest hash"):
        load_bundle(copy)


def test_a_rehashed_edit_needs_the_signing_key(copy, monkeypatch):
    monkeypatch.setenv("PROFILE_BUNDLE_KEY", "bank-secret")
    with pytest.raises(BundleError, match="no valid signature"):  # unsigned: refused once a key is set
        load_bundle(copy)
    seal(copy)  # the owner of the key signs it
    assert load_bundle(copy).manifest["signature"]

    def change(m):
        m["tasks"][0]["mean"] = m["tasks"][0].get("mean", 0) + 200

    forged = _edit(copy, change)
    (copy / MANIFEST).write_text(json.dumps(seal_manifest(forged, b"")), encoding="utf-8")  # hash redone, no key
    with pytest.raises(BundleError, match="no valid signature"):
        load_bundle(copy)
    (copy / MANIFEST).write_text(json.dumps(seal_manifest(forged, b"wrong-key")), encoding="utf-8")
    with pytest.raises(BundleError, match="no valid signature"):
        load_bundle(copy)


def test_huge_architecture_is_refused_before_any_tensor_is_built(copy):
    def change(m):
        m["architecture"]["net"]["hidden"] = [20000, 20000]  # an 8 GB net if it were built

    (copy / MANIFEST).write_text(json.dumps(seal_manifest(_edit(copy, change), b"")), encoding="utf-8")
    before = current_rss_mb()
    with pytest.raises(BundleError, match="does not fit the weights' shapes") as err:
        load_bundle(copy)
    assert "20000" in str(err.value)
    assert current_rss_mb() - before < 200  # MiB: nothing near the 8 GB net was allocated

    def many(m):
        m["architecture"]["net"]["hidden"] = [8] * 100_000

    (copy / MANIFEST).write_text(json.dumps(seal_manifest(_edit(copy, many), b"")), encoding="utf-8")
    with pytest.raises(BundleError, match="hidden: 100000 layers"):
        load_bundle(copy)


def test_unsealed_old_bundle_gets_a_clear_message_and_can_be_sealed(copy):
    manifest = _edit(copy, lambda m: m.pop("manifest_sha256"))
    with pytest.raises(BundleError, match="has no manifest hash") as err:
        load_bundle(copy)
    assert "python -m profile_core.bundle seal" in str(err.value)
    assert seal(copy) == seal_manifest(manifest, b"")["manifest_sha256"]
    assert load_bundle(copy).name == "demo"


def test_sealing_refuses_weights_that_do_not_match(copy):
    with open(copy / "weights.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")
    with pytest.raises(BundleError, match="does not match the SHA-256"):
        seal(copy)


def test_valid_but_oversized_manifest_gets_a_size_message(copy):
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["padding"] = "x" * (17 << 20)  # valid JSON, 17 MB
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match="over the 16 MB limit") as err:
        read_manifest(copy)
    assert "not valid JSON" not in str(err.value)
