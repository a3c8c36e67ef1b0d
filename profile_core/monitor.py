"""Model monitoring and documentation: discrimination, calibration, grade monotonicity, score error, population
stability, and a model card. Plain functions on arrays and frames; no I/O; figures in ``monitor_charts``.

* binary (default): AUC, Gini = 2·AUC − 1, KS (largest gap between the score CDFs of bads and goods), Brier
  score, a reliability table (:func:`calibration_table`);
* regression (score): RMSE, MAE; multiclass (grade): accuracy, confusion matrix, quadratic weighted kappa;
* PSI = Σ (cᵢ − rᵢ)·ln(cᵢ / rᵢ) over bins of the *reference* distribution (deciles for numbers, categories for
  text, missing values as their own bin; empty bins get 0.0001). Read: < 0.1 stable, 0.1–0.25 watch,
  > 0.25 act (:func:`psi_status`).

"模型辅助，人工决策": the model card states it as the intended use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

PSI_WATCH, PSI_ACT = 0.1, 0.25
_EPS = 1e-4


# ------------------------------------------------------------------ helpers


def _pairs(y: Sequence | np.ndarray | pd.Series, p: Sequence | np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Aligned float arrays with every pair holding a missing value dropped."""
    yy = pd.to_numeric(pd.Series(np.asarray(y, dtype=object)), errors="coerce").to_numpy(dtype=float)
    pp = pd.to_numeric(pd.Series(np.asarray(p, dtype=object)), errors="coerce").to_numpy(dtype=float)
    if len(yy) != len(pp):
        raise ValueError(f"labels and predictions differ in length ({len(yy)} vs {len(pp)})")
    keep = np.isfinite(yy) & np.isfinite(pp)
    return yy[keep], pp[keep]


def _binary(y, p) -> tuple[np.ndarray, np.ndarray] | None:
    yy, pp = _pairs(y, p)
    if not np.isin(yy, (0.0, 1.0)).all():
        raise ValueError("binary labels must be 0 or 1")
    if yy.size == 0 or yy.min() == yy.max():  # one class only: AUC and KS are undefined
        return None
    return yy, pp


# ------------------------------------------------------------------ binary


def auc(y, p) -> float | None:
    """Area under the ROC curve (ties count one half); None when only one class is present."""
    pair = _binary(y, p)
    if pair is None:
        return None
    yy, pp = pair
    ranks = pd.Series(pp).rank(method="average").to_numpy()
    n_pos = yy.sum()
    n_neg = len(yy) - n_pos
    return float((ranks[yy == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gini(y, p) -> float | None:
    a = auc(y, p)
    return None if a is None else 2 * a - 1


def ks(y, p) -> float | None:
    """Kolmogorov–Smirnov: max over thresholds of |F_bad(s) − F_good(s)|; None with one class only."""
    pair = _binary(y, p)
    if pair is None:
        return None
    yy, pp = pair
    thresholds = np.unique(pp)
    bad = np.searchsorted(np.sort(pp[yy == 1]), thresholds, side="right") / (yy == 1).sum()
    good = np.searchsorted(np.sort(pp[yy == 0]), thresholds, side="right") / (yy == 0).sum()
    return float(np.max(np.abs(bad - good)))


def brier(y, p) -> float | None:
    """Mean squared difference between probability and outcome (0 is perfect)."""
    yy, pp = _pairs(y, p)
    if yy.size == 0:
        return None
    return float(np.mean((pp - yy) ** 2))


def calibration_table(y, p, bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """Reliability bins: ``bin``, ``lower``, ``upper``, ``n``, ``p_mean`` (mean prediction), ``observed``
    (event rate). ``strategy``: ``uniform`` (equal-width bins on [0, 1]) or ``quantile`` (equal counts).
    Empty bins are left out."""
    yy, pp = _pairs(y, p)
    cols = ["bin", "lower", "upper", "n", "p_mean", "observed"]
    if yy.size == 0:
        return pd.DataFrame(columns=cols)
    if strategy == "quantile":
        edges = np.unique(np.quantile(pp, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([pp.min(), pp.max()])
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    else:
        raise ValueError("strategy must be 'uniform' or 'quantile'")
    idx = np.clip(np.searchsorted(edges, pp, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        part = idx == b
        if part.any():
            rows.append({"bin": b, "lower": float(edges[b]), "upper": float(edges[b + 1]), "n": int(part.sum()),
                         "p_mean": float(pp[part].mean()), "observed": float(yy[part].mean())})
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------ regression and grades


def rmse(y, y_hat) -> float | None:
    yy, pp = _pairs(y, y_hat)
    return float(np.sqrt(np.mean((pp - yy) ** 2))) if yy.size else None


def mae(y, y_hat) -> float | None:
    yy, pp = _pairs(y, y_hat)
    return float(np.mean(np.abs(pp - yy))) if yy.size else None


def _labels(y_true, y_pred, labels: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    def text(v: Any) -> str | None:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v).strip() or None

    a = np.array([text(v) for v in np.asarray(y_true, dtype=object)], dtype=object)
    b = np.array([text(v) for v in np.asarray(y_pred, dtype=object)], dtype=object)
    if len(a) != len(b):
        raise ValueError(f"labels and predictions differ in length ({len(a)} vs {len(b)})")
    keep = np.array([x is not None and z is not None for x, z in zip(a, b, strict=True)], dtype=bool)
    a, b = a[keep], b[keep]
    order = [str(c) for c in labels] if labels is not None else sorted(set(a) | set(b))
    return a, b, order


def confusion(y_true, y_pred, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts: rows are actual classes, columns predicted (in ``labels`` order; others are left out)."""
    a, b, order = _labels(y_true, y_pred, labels)
    pos = {c: i for i, c in enumerate(order)}
    m = np.zeros((len(order), len(order)), dtype=int)
    for x, z in zip(a, b, strict=True):
        if x in pos and z in pos:
            m[pos[x], pos[z]] += 1
    return pd.DataFrame(m, index=pd.Index(order, name="actual"), columns=pd.Index(order, name="predicted"))


def accuracy(y_true, y_pred) -> float | None:
    a, b, _ = _labels(y_true, y_pred, None)
    return float(np.mean(a == b)) if len(a) else None


def qwk(y_true, y_pred, labels: Sequence[str] | None = None) -> float | None:
    """Quadratic weighted kappa over ordered ``labels`` (1 perfect, 0 chance); None when undefined."""
    m = confusion(y_true, y_pred, labels).to_numpy(dtype=float)
    n, k = m.sum(), len(m)
    if n == 0 or k < 2:
        return None
    w = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / (k - 1) ** 2
    expected = np.outer(m.sum(axis=1), m.sum(axis=0)) / n
    denom = (w * expected).sum()
    return None if denom == 0 else float(1 - (w * m).sum() / denom)


GRADES = ("A", "B", "C", "D", "E")


# ------------------------------------------------------------------ population stability


def psi_status(value: float | None) -> str | None:
    """``stable`` (< 0.1), ``watch`` (0.1–0.25), ``act`` (> 0.25); None for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return "stable" if value < PSI_WATCH else ("watch" if value <= PSI_ACT else "act")


def _shares(keys: pd.Series, bins: list) -> np.ndarray:
    counts = keys.value_counts(dropna=False)
    total = max(len(keys), 1)
    return np.array([counts.get(b, 0) / total for b in bins], dtype=float)


def psi(reference, current, bins: int = 10, *, categorical: bool | None = None) -> float | None:
    """Population stability index of ``current`` against ``reference`` (see the module docstring); None when
    either side is empty."""
    ref, cur = pd.Series(np.asarray(reference, dtype=object)), pd.Series(np.asarray(current, dtype=object))
    if ref.empty or cur.empty:
        return None
    ref_num, cur_num = pd.to_numeric(ref, errors="coerce"), pd.to_numeric(cur, errors="coerce")
    if categorical is None:
        categorical = bool(ref.notna().any()) and bool(ref_num[ref.notna()].isna().any())
    if categorical:
        r = ref.map(lambda v: "∅" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))
        c = cur.map(lambda v: "∅" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v))
        keys = sorted(set(r) | set(c))
        r_share, c_share = _shares(r, keys), _shares(c, keys)
    else:
        finite = ref_num[np.isfinite(ref_num.astype(float))]
        edges = np.unique(np.quantile(finite.astype(float), np.linspace(0, 1, bins + 1))[1:-1]) if len(finite) else []

        def key(s: pd.Series) -> pd.Series:
            v = s.astype(float)
            out = pd.Series(np.searchsorted(edges, v.to_numpy(), side="right"), index=s.index).astype(object)
            return out.where(np.isfinite(v), "∅")

        r, c = key(ref_num), key(cur_num)
        keys = list(range(len(edges) + 1)) + ["∅"]
        r_share, c_share = _shares(r, keys), _shares(c, keys)
    r_share, c_share = np.clip(r_share, _EPS, None), np.clip(c_share, _EPS, None)
    return float(np.sum((c_share - r_share) * np.log(c_share / r_share)))


def psi_table(reference: pd.DataFrame, current: pd.DataFrame, *, numeric: Iterable[str] = (),
              categorical: Iterable[str] = (), bins: int = 10) -> pd.DataFrame:
    """``feature``, ``kind``, ``psi``, ``status`` for each listed column present on both sides, worst first."""
    rows = []
    for kind, cols in (("numeric", numeric), ("categorical", categorical)):
        for col in cols:
            if col in reference.columns and col in current.columns:
                value = psi(reference[col], current[col], bins, categorical=kind == "categorical")
                rows.append({"feature": col, "kind": kind, "psi": value, "status": psi_status(value)})
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "status"])
    return table.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


# ------------------------------------------------------------------ per task


def task_metrics(predictions: pd.DataFrame, labels: pd.DataFrame, tasks: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Metrics per task of the model's ``predictions`` (``train.predictions_frame`` columns) against the label
    columns in ``labels`` (same row order): ``tasks.task_metrics`` — the one metric implementation, the same
    as at training — plus the Gini (2·AUC − 1) of binary heads; ``n`` as an integer. A task without labels
    gets ``{"n": 0}``."""
    from profile_core.tasks import encode_label
    from profile_core.tasks import task_metrics as metrics_of

    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.label not in labels.columns:
            out[task.name] = {"n": 0}
            continue
        y = encode_label(labels.reset_index(drop=True), task, standardize=False)
        if task.kind == "regression":
            pred = pd.to_numeric(predictions[f"{task.name}_pred"], errors="coerce").to_numpy(dtype=float)
        elif task.kind == "binary":
            pred = pd.to_numeric(predictions[f"{task.name}_prob"], errors="coerce").to_numpy(dtype=float)
        else:
            cols = [f"{task.name}_prob_{c}" for c in task.classes]
            if all(c in predictions.columns for c in cols):
                pred = predictions[cols].to_numpy(dtype=float)
            else:  # only the predicted class: one-hot
                hat = pd.Index(task.classes).get_indexer(predictions[f"{task.name}_pred"].astype("str"))
                pred = np.eye(len(task.classes))[np.clip(hat, 0, None)] * (hat >= 0)[:, None]
        values = metrics_of(task, y, pred)
        n = int(values.pop("n"))
        if not n:
            out[task.name] = {"n": 0}
            continue
        clean = {k: (None if v is None or not math.isfinite(v) else float(v)) for k, v in values.items()}
        if "auc" in clean:
            clean["gini"] = None if clean["auc"] is None else 2 * clean["auc"] - 1
        out[task.name] = {"n": n, **clean}
    return out


# ------------------------------------------------------------------ which rows, against what

SNAPSHOT_QUANTILES = 101  # percentiles kept per numeric input: enough for decile PSI, tiny in a manifest
SNAPSHOT_ROWS = 1000  # rows of the synthetic reference rebuilt from a snapshot


def reference_snapshot(frame: pd.DataFrame, numeric: Iterable[str], categorical: Iterable[str]) -> dict[str, Any]:
    """The training rows' distribution of each model input, small enough for the bundle manifest:
    percentiles 0–100 of numeric inputs (and their missing share), shares of categorical values."""
    out: dict[str, Any] = {"rows": int(len(frame)), "numeric": {}, "categorical": {}}
    for col in numeric:
        if col in frame.columns:
            v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            ok = v[np.isfinite(v)]
            if ok.size:
                out["numeric"][col] = {"q": np.quantile(ok, np.linspace(0, 1, SNAPSHOT_QUANTILES)).tolist(),
                                       "missing": float(1 - ok.size / max(v.size, 1))}
    for col in categorical:
        if col in frame.columns:
            shares = frame[col].astype("str").where(frame[col].notna(), "(missing)").value_counts(normalize=True)
            out["categorical"][col] = {str(k): float(v) for k, v in shares.head(50).items()}
    return out


def snapshot_frame(snapshot: Mapping[str, Any], rows: int = SNAPSHOT_ROWS) -> pd.DataFrame:
    """A frame of ``rows`` rows whose columns follow the snapshot's distributions (quantile interpolation for
    numbers, value shares for categories): the drift reference when the training data itself is not at hand."""
    cols: dict[str, Any] = {}
    grid = np.linspace(0, 1, rows)
    for col, spec in (snapshot.get("numeric") or {}).items():
        q = np.asarray(spec["q"], dtype=float)
        values = np.interp(grid, np.linspace(0, 1, len(q)), q)
        n_missing = int(round(float(spec.get("missing", 0.0)) * rows))
        values[:n_missing] = np.nan
        cols[col] = values
    for col, shares in (snapshot.get("categorical") or {}).items():
        counts = np.round(np.asarray(list(shares.values())) * rows).astype(int)
        values = np.repeat(np.asarray(list(shares), dtype=object), counts)[:rows]
        cols[col] = np.concatenate([values, np.full(rows - len(values), None, dtype=object)])
    return pd.DataFrame(cols)


def evaluation_rows(manifest: Mapping[str, Any], customer_ids: pd.Series, *, dataset: str | None = None,
                    fingerprint: str | None = None) -> tuple[np.ndarray, str]:
    """Which rows monitoring evaluates, and why: on the data the model was made from, only its held-out rows
    (``"holdout"``; training rows would flatter it); on other data every row (``"other_data"``); when the
    bundle records no held-out rows, every row with a warning (``"all_rows"``)."""
    made = manifest.get("data") or {}
    same = bool(made) and ((dataset is not None and made.get("source") == dataset)
                           or (fingerprint is not None and made.get("fingerprint") == fingerprint))
    ids = customer_ids.astype("str")
    if same and made.get("holdout_ids"):
        return ids.isin(set(made["holdout_ids"])).to_numpy(), "holdout"
    if made and not same:
        return np.ones(len(ids), dtype=bool), "other_data"
    return np.ones(len(ids), dtype=bool), "all_rows"
