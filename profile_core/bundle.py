"""Model bundles: a directory holding exactly ``weights.safetensors`` and ``manifest.json``.

The manifest carries everything needed to rebuild and trust the model: tasks, architecture and full training
config, preprocessing parameters, label scaling, metrics, a training-history summary, the data fingerprint,
library versions and the sha256 of the weights. Loading verifies the hash first and never unpickles.

Refused on load: any other file in the directory (``.pt``/``.pkl``/…), symbolic links, a manifest over 16 MB,
a manifest with a key or value naming another file to load, a weights hash that is missing or malformed or
does not match.
"""

from __future__ import annotations

import hashlib
import json
import math
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
                            "weights_sha256", "excluded_inputs", "data"})
_SHA256_HEX = frozenset("0123456789abcdef")


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
        return TrainConfig(**self.manifest["config"])

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
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "profile_core", "version": str(FORMAT_VERSION)})
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
        (tmp / MANIFEST).write_text(json.dumps(_json_safe(manifest), ensure_ascii=False, indent=2,
                                               allow_nan=False), encoding="utf-8")
        if out.exists():  # swap in the new bundle only once it is complete
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the bundle at ``path`` after checking that the directory holds nothing else."""
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
    if (path / MANIFEST).stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError("engine.bundle_bad_manifest", file=path / MANIFEST)
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
    return manifest


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Verify and load a bundle onto ``device`` (a GPU-trained bundle loads on CPU)."""
    path = Path(path)
    manifest = read_manifest(path)
    weights = path / WEIGHTS
    if sha256_file(weights) != manifest.get("weights_sha256"):
        raise BundleError("engine.bundle_tampered", file=weights)
    target = resolve_device(device)
    try:
        state = load_file(str(weights), device="cpu")  # tensors land on CPU, then move: works for any device
        model = build_net(manifest["architecture"]["name"], NetConfig.from_dict(manifest["architecture"]["net"]))
        model.load_state_dict(state, strict=True)
        tasks = [TaskSpec.from_dict(d) for d in manifest["tasks"]]
        preprocessor = Preprocessor.from_dict(manifest["features"]["preprocessor"])
    except SafetensorError as err:
        raise BundleError("engine.bundle_bad_weights", file=weights) from err
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BundleError("engine.bundle_mismatch", file=path / MANIFEST) from err
    model.to(target).eval()
    return Bundle(path=path, manifest=manifest, model=model, preprocessor=preprocessor, tasks=tasks,
                  device=str(target))

