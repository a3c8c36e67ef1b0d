"""Explanations leave nothing behind (issue 15): the DeepLIFT rules' saved tensors and autograd graphs are freed
after every call, so a long-running server does not grow with each /v1/explain or profile request."""

from __future__ import annotations

import gc
from pathlib import Path

import torch

from profile_core.bundle import load_bundle
from profile_core.explain import HeadExplainer
from profile_core.service import median_frame

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "demo"


def _is_tensor(o: object) -> bool:
    try:
        return isinstance(o, torch.Tensor)
    except Exception:  # noqa: BLE001 — a lazy module proxy (e.g. a plotting extra) raising on __class__
        return False


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if _is_tensor(o))


def test_repeated_explanations_keep_no_tensors_alive():
    bundle = load_bundle(BUNDLE)
    reference = median_frame(bundle.preprocessor)
    explainer = HeadExplainer(bundle, reference, n_background=1, method="deep")
    frame = reference.assign(age=[33.0])
    for _ in range(5):  # warm-up (lazy caches)
        explainer.explain(frame)
    before = _live_tensors()
    for i in range(100):
        explainer.explain(frame.assign(age=[20.0 + i]), ["default", "risk_level"] if i % 2 else None)
    assert _live_tensors() - before == 0  # was +13 per call (a saved view of the softmax output)
