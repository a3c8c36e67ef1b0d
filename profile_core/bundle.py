"""Model bundles: a directory holding exactly ``weights.safetensors`` and ``manifest.json``.

The manifest carries everything needed to rebuild and trust the model: tasks, architecture and full training
config, preprocessing parameters, label scaling, metrics, a training-history summary, the data fingerprint,
library versions and the sha256 of the weights. Loading verifies the hash first and never unpickles.

Refused on load: any other file in the directory (``.pt``/``.pkl``/…), symbolic links, a manifest over 16 MB,
a manifest with a key or value naming another file to load, a weights hash that is missing or malformed or
does not match, a manifest whose own hash (``manifest_sha256``: sha256 of the canonical JSON of every other
key, so it covers the weights' hash too and any key added later) is missing or does not match, and — when
``$PROFILE_BUNDLE_KEY`` is set — a manifest without a valid ``signature`` (HMAC-SHA256 of that hash with the
key). Architecture sizes are checked against the weights' shapes (read from the safetensors header, the net
built on PyTorch's ``meta`` device) before any real tensor is allocated.

A bundle written before manifests were hashed is refused with a message saying how to seal it after checking
its origin: ``python -m profile_core.bundle seal <dir>`` (it verifies the weights' hash first).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import profile_core
from profile_core.features import Preprocessor
from profile_core.nets import MultiTaskNet, NetConfig, build_net
from profile_core.tasks import EngineError, TaskSpec
from profile_core.train import TrainConfig, TrainResult, predictions_frame, resolve_device

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
ALLOWED = frozenset({WEIGHTS, MANIFEST})
MAX_MANIFEST_BYTES = 16 << 20  # a manifest is tens of KB; anything this large is refused unread
#: Manifest keys that would name another file to load: a bundle's files are fixed, so they are refused.
_POINTER_KEYS = frozenset({"weights", "weights_file", "weights_path", "path", "file", "files", "model", "model_file",
                           "model_path", "pickle", "preprocessor_file", "preprocessor_path"})
_POINTER_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".bin", ".npy", ".npz", ".ckpt", ".h5", ".onnx")
#: What ``save_bundle`` writes; other top-level keys holding a model-file name are refused too.
_MANIFEST_KEYS = frozenset({"format_version", "name", "created_utc", "tasks", "architecture", "config", "features",
                            "label_stats", "metrics", "history", "best_epoch", "cancelled", "split_sizes",
                            "data_fingerprint", "versions", "device", "seed", "train_seconds", "samples_per_second",
                            "weights_sha256", "excluded_inputs", "data", "hybrid"})
_SHA256_HEX = frozenset("0123456789abcdef")
MANIFEST_HASH = "manifest_sha256"
SIGNATURE = "signature"
KEY_ENV = "PROFILE_BUNDLE_KEY"
_SEAL_KEYS = frozenset({MANIFEST_HASH, SIGNATURE})
MAX_NET_PARTS = 64  # entries in any architecture list (layers, members): a real net has a handful


class BundleError(EngineError):
    """A bundle that cannot be saved or trusted (message names the file and what to do)."""


@dataclass
class Bundle:
    path: Path
    manifest: dict[str, Any]
    model: MultiTaskNet  # eval mode, on ``device``
    preprocessor: Preprocessor
    tasks: list[TaskSpec]
    device: str

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def config(self) -> TrainConfig:
        # a bundle from before hybrid heads (no "hybrid" in its config) is a net alone, whatever today's default
        return TrainConfig(**{"hybrid": "none", **self.manifest["config"]})

    @property
    def metrics(self) -> dict[str, dict[str, dict[str, float | None]]]:
        return self.manifest["metrics"]

    @property
    def feature_names(self) -> list[str]:
        return list(self.preprocessor.output_names)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """customer_id + per-task columns (see ``train.predictions_frame``)."""
        return predictions_frame(self.model, self.preprocessor, self.tasks, frame)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_safe(value: Any) -> Any:
    """NaN/inf → null and numpy scalars → Python, so the manifest is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def bundle_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The bundle signing key from ``$PROFILE_BUNDLE_KEY`` (None when unset)."""
    value = (environ if environ is not None else os.environ).get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of every manifest key except the hash and
    the signature — new keys are covered without any change here."""
    body = {k: v for k, v in manifest.items() if k not in _SEAL_KEYS}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _signature(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def seal_manifest(manifest: dict[str, Any], key: bytes | None = None) -> dict[str, Any]:
    """``manifest`` with its ``manifest_sha256`` and, with ``key`` (default ``$PROFILE_BUNDLE_KEY``), its
    ``signature``; any earlier seal is replaced."""
    key = bundle_key() if key is None else (key or None)
    out = {k: v for k, v in manifest.items() if k not in _SEAL_KEYS}
    out[MANIFEST_HASH] = manifest_digest(out)
    if key is not None:
        out[SIGNATURE] = _signature(key, out[MANIFEST_HASH])
    return out


def _check_seal(manifest: dict[str, Any], file: Path, key: bytes | None) -> None:
    digest = manifest.get(MANIFEST_HASH)
    if digest is None:
        raise BundleError("engine.bundle_unsealed", file=file, dir=file.parent)
    try:
        expected = manifest_digest(manifest)
    except ValueError as err:  # NaN/inf in a manifest: never written by save_bundle
        raise BundleError("engine.bundle_manifest_tampered", file=file) from err
    if not isinstance(digest, str) or not hmac.compare_digest(digest, expected):
        raise BundleError("engine.bundle_manifest_tampered", file=file)
    if key is not None:
        sig = manifest.get(SIGNATURE)
        if not isinstance(sig, str) or not hmac.compare_digest(sig, _signature(key, digest)):
            raise BundleError("engine.bundle_bad_signature", file=file, env=KEY_ENV)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "profile_core": profile_core.__version__}
    for dist in ("torch", "numpy", "pandas", "scikit-learn", "safetensors"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "unknown"
    return out


def save_bundle(result: TrainResult, out_dir: str | Path, *, name: str | None = None,
                data_fingerprint: str = "", data: dict[str, Any] | None = None) -> Path:
    """Write ``result`` as a bundle directory at ``out_dir`` (replacing an earlier bundle there); returns it.

    ``data``: what the model was made from (data set name and version, the held-out customer ids the
    monitoring evaluates by default), stored as the manifest's ``data`` block."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or {p.name for p in out.iterdir()} - ALLOWED):
        raise BundleError("engine.bundle_target_taken", path=out)
    created = datetime.now(UTC)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in result.model.state_dict().items()}
        # one metadata key: safetensors writes several in hash-map order, so the same weights could hash apart
        save_file(state, str(tmp / WEIGHTS), metadata={"format": f"profile_core/{FORMAT_VERSION}"})
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name or f"{result.config.arch}-{created:%Y%m%d-%H%M%S}",
            "created_utc": created.isoformat(timespec="seconds"),
            "tasks": [t.to_dict() for t in result.tasks],
            "architecture": {"name": result.model.name, "net": result.model.config.to_dict()},
            "config": result.config.model_dump(mode="json"),
            "features": {"names": list(result.preprocessor.output_names),
                         "numeric": list(result.preprocessor.numeric),
                         "categorical": list(result.preprocessor.categorical),
                         "preprocessor": result.preprocessor.to_dict()},
            "label_stats": result.label_stats,
            "metrics": result.metrics,
            "history": [{"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss,
                         "val_losses": r.val_losses, "weights": r.weights, "seconds": r.seconds, "best": r.best}
                        for r in result.history],
            "best_epoch": result.best_epoch,
            "hybrid": result.hybrid,
            "cancelled": result.cancelled,
            "split_sizes": {k: len(v) for k, v in result.split.items()},
            "data_fingerprint": data_fingerprint,
            "data": data or {},
            "excluded_inputs": dict(result.excluded),
            "versions": _versions(),
            "device": result.device,
            "seed": result.config.seed,
            "train_seconds": result.train_seconds,
            "samples_per_second": result.samples_per_second,
            "weights_sha256": sha256_file(tmp / WEIGHTS),
        }
        (tmp / MANIFEST).write_text(json.dumps(seal_manifest(_json_safe(manifest)), ensure_ascii=False, indent=2,
                                               allow_nan=False), encoding="utf-8")
        if out.exists():  # swap in the new bundle only once it is complete
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path`` after checking that the directory holds nothing else and that
    the manifest is sealed (its hash, and its signature when ``$PROFILE_BUNDLE_KEY`` is set)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError("engine.bundle_not_dir", path=path)
    for entry in sorted(path.iterdir()):
        if entry.is_symlink():  # a link could put any file behind an allowed name
            raise BundleError("engine.bundle_symlink", file=entry)
        if entry.name not in ALLOWED or not entry.is_file():
            raise BundleError("engine.bundle_unknown_file", file=entry)
    for needed in (MANIFEST, WEIGHTS):
        if not (path / needed).is_file():
            raise BundleError("engine.bundle_missing_file", file=path / needed)
    size = (path / MANIFEST).stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleError("engine.bundle_manifest_too_large", file=path / MANIFEST, size=f"{size / (1 << 20):.1f}",
                          limit=f"{MAX_MANIFEST_BYTES >> 20}")
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise BundleError("engine.bundle_bad_manifest", file=path / MANIFEST) from err
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError("engine.bundle_version", file=path / MANIFEST,
                          found=manifest.get("format_version") if isinstance(manifest, dict) else None,
                          expected=FORMAT_VERSION)
    for key, value in manifest.items():  # the files are fixed: a manifest naming another file is refused
        if key in _POINTER_KEYS or (key not in _MANIFEST_KEYS and isinstance(value, str)
                                    and value.lower().endswith(_POINTER_SUFFIXES)):
            raise BundleError("engine.bundle_points_elsewhere", file=path / MANIFEST, field=key)
    sha = manifest.get("weights_sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and set(sha) <= _SHA256_HEX):
        raise BundleError("engine.bundle_mismatch", file=path / MANIFEST)
    _check_seal(manifest, path / MANIFEST, bundle_key())
    return manifest


def _weight_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape from the safetensors header only (no tensor is read)."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt", device="cpu") as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118


def _check_architecture(manifest: dict[str, Any], weights: Path, file: Path) -> NetConfig:
    """The net configuration, after checking its sizes against the weights' shapes on the ``meta`` device (no
    memory is allocated however large the manifest claims the net to be)."""
    import torch

    net = manifest["architecture"]["net"]
    for key in ("hidden", "head_hidden"):
        if len(net.get(key, ())) > MAX_NET_PARTS:
            raise BundleError("engine.bundle_shape_mismatch", file=file, detail=f"{key}: {len(net[key])} layers")
    for key in ("n_experts", "n_shared_experts", "n_task_experts", "n_levels", "members"):
        if not isinstance(net.get(key, 1), int) or not 0 <= net.get(key, 1) <= MAX_NET_PARTS:
            raise BundleError("engine.bundle_shape_mismatch", file=file, detail=f"{key}: {net.get(key)!r}")
    config = NetConfig.from_dict(net)
    shapes = _weight_shapes(weights)
    with torch.device("meta"):
        skeleton = build_net(manifest["architecture"]["name"], config)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if expected != shapes:
        wrong = sorted(k for k in expected.keys() | shapes.keys() if expected.get(k) != shapes.get(k))
        first = wrong[0]
        raise BundleError("engine.bundle_shape_mismatch", file=file,
                          detail=f"{first}: manifest {expected.get(first)} vs weights {shapes.get(first)}")
    return config


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Verify and load a bundle onto ``device`` (a GPU-trained bundle loads on CPU)."""
    path = Path(path)
    manifest = read_manifest(path)
    weights = path / WEIGHTS
    if sha256_file(weights) != manifest.get("weights_sha256"):
        raise BundleError("engine.bundle_tampered", file=weights)
    target = resolve_device(device)
    try:
        config = _check_architecture(manifest, weights, path / MANIFEST)  # sizes vs shapes, before any tensor
        state = load_file(str(weights), device="cpu")  # tensors land on CPU, then move: works for any device
        model = build_net(manifest["architecture"]["name"], config)
        model.load_state_dict(state, strict=True)
        for trees in getattr(model, "trees", {}).values():  # hybrid heads: indices inside the inputs and nodes
            trees.validate(config.input_dim)
        tasks = [TaskSpec.from_dict(d) for d in manifest["tasks"]]
        preprocessor = Preprocessor.from_dict(manifest["features"]["preprocessor"])
    except BundleError:
        raise
    except SafetensorError as err:
        raise BundleError("engine.bundle_bad_weights", file=weights) from err
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BundleError("engine.bundle_mismatch", file=path / MANIFEST) from err
    model.to(target).eval()
    return Bundle(path=path, manifest=manifest, model=model, preprocessor=preprocessor, tasks=tasks,
                  device=str(target))



@dataclass(frozen=True)
class InputCheck:
    """How a data set fits a bundle: the model inputs it lacks entirely, and whether it is other data than
    the data the model was made from (another source or content fingerprint)."""

    missing: list[str]
    n_inputs: int
    other_data: bool
    made_from: str

    @property
    def ok(self) -> bool:
        return not self.missing


def check_inputs(bundle: Bundle, frame: pd.DataFrame, *, source: str = "", fingerprint: str = "") -> InputCheck:
    """The raw inputs the model reads that ``frame`` does not have (absent, or empty in every row), and whether
    ``frame`` comes from other data than the model's (``source`` name or content ``fingerprint`` differ)."""
    inputs = [*bundle.preprocessor.numeric, *bundle.preprocessor.categorical]
    missing = [c for c in inputs if c not in frame.columns or not frame[c].notna().any()]
    made = bundle.manifest.get("data") or {}
    other = bool(made) and ((bool(source) and source != made.get("source"))
                            or (bool(fingerprint) and fingerprint != made.get("fingerprint")))
    return InputCheck(missing, len(inputs), other, str(made.get("source") or ""))


def require_inputs(bundle: Bundle, frame: pd.DataFrame, **kwargs: str) -> InputCheck:
    """``check_inputs``, refusing (BundleError naming the missing inputs) when the data lacks any of them."""
    found = check_inputs(bundle, frame, **kwargs)
    if not found.ok:
        shown = ", ".join(found.missing[:8]) + (" …" if len(found.missing) > 8 else "")
        raise BundleError("engine.inputs_missing", model=bundle.name, n=len(found.missing), total=found.n_inputs,
                          columns=shown)
    return found


def seal(path: str | Path, key: bytes | None = None) -> str:
    """Add (or renew) the manifest hash — and the signature with ``$PROFILE_BUNDLE_KEY`` — of the bundle at
    ``path`` after checking its files and its weights' hash; returns the hash. For bundles written before
    manifests were sealed, once their origin is checked: sealing vouches for the manifest as it is."""
    path = Path(path)
    file = path / MANIFEST
    try:
        read_manifest(path)
    except BundleError as err:
        if err.key not in ("engine.bundle_unsealed", "engine.bundle_manifest_tampered", "engine.bundle_bad_signature"):
            raise
    manifest = json.loads(file.read_text(encoding="utf-8"))
    if sha256_file(path / WEIGHTS) != manifest.get("weights_sha256"):
        raise BundleError("engine.bundle_tampered", file=path / WEIGHTS)
    sealed = seal_manifest(manifest, key)
    tmp = file.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(sealed, ensure_ascii=False, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, file)
    return sealed[MANIFEST_HASH]


def main(argv: list[str] | None = None) -> int:
    """``python -m profile_core.bundle seal DIR [DIR ...]``: seal old bundles (see :func:`seal`)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m profile_core.bundle")
    p.add_argument("command", choices=["seal"])
    p.add_argument("bundles", nargs="+")
    a = p.parse_args(argv)
    for b in a.bundles:
        print(f"{b}: manifest_sha256 {seal(b)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
