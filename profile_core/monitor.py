"""Model monitoring and documentation: discrimination, calibration, grade monotonicity, score error, population
stability, and a model card. Plain functions on arrays and frames; no I/O; figures in ``monitor_charts``.

* binary (default): AUC, Gini = 2·AUC − 1, KS (largest gap between the score CDFs of bads and goods), Brier
  score, a reliability table (:func:`calibration_table`);
* regression (score): RMSE, MAE; multiclass (grade): accuracy, confusion matrix, quadratic weighted kappa;
* bad rate by grade with a monotonicity check (:func:`bad_rate_by_grade`);
* PSI = Σ (cᵢ − rᵢ)·ln(cᵢ / rᵢ) over bins of the *reference* distribution (deciles for numbers, categories for
  text, missing values as their own bin; empty bins get 0.0001). Read: < 0.1 stable, 0.1–0.25 watch,
  > 0.25 act (:func:`psi_status`).

"模型辅助，人工决策": the model card states it as the intended use.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .i18n import t

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


def bad_rate_by_grade(grades, y, order: Sequence[str] = GRADES) -> tuple[pd.DataFrame, bool | None]:
    """(``grade``, ``n``, ``bads``, ``rate`` per grade in ``order`` then any others; whether the rate never
    falls from one grade to the next — None with fewer than two graded groups with labels)."""
    g = pd.Series(np.asarray(grades, dtype=object)).astype("object")
    yy = pd.to_numeric(pd.Series(np.asarray(y, dtype=object)), errors="coerce")
    frame = pd.DataFrame({"grade": g, "y": yy}).dropna()
    frame["grade"] = frame["grade"].astype(str)
    seen = list(dict.fromkeys([*(x for x in order if x in set(frame["grade"])), *sorted(set(frame["grade"]))]))
    rows = [{"grade": x, "n": int((frame["grade"] == x).sum()), "bads": int(frame.loc[frame["grade"] == x, "y"].sum()),
             "rate": float(frame.loc[frame["grade"] == x, "y"].mean())} for x in seen]
    table = pd.DataFrame(rows, columns=["grade", "n", "bads", "rate"])
    if len(table) < 2:
        return table, None
    return table, bool((np.diff(table["rate"].to_numpy()) >= -1e-12).all())


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
    columns in ``labels`` (the feature table, same row order). A task without labels gets ``{"n": 0}``."""
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.label not in labels.columns:
            out[task.name] = {"n": 0}
            continue
        y = labels[task.label].reset_index(drop=True)
        if task.kind == "binary":
            p = predictions[f"{task.name}_prob"].reset_index(drop=True)
            yy, pp = _pairs(y, p)
            out[task.name] = {"n": int(yy.size), "auc": auc(yy, pp), "gini": gini(yy, pp), "ks": ks(yy, pp),
                              "brier": brier(yy, pp)} if yy.size else {"n": 0}
        elif task.kind == "regression":
            yy, pp = _pairs(y, predictions[f"{task.name}_pred"].reset_index(drop=True))
            out[task.name] = {"n": int(yy.size), "rmse": rmse(yy, pp), "mae": mae(yy, pp)} if yy.size else {"n": 0}
        else:
            pred = predictions[f"{task.name}_pred"].reset_index(drop=True)
            a, _, _ = _labels(y, pred, task.classes)
            out[task.name] = {"n": int(len(a)), "accuracy": accuracy(y, pred),
                              "qwk": qwk(y, pred, task.classes)} if len(a) else {"n": 0}
    return out


# ------------------------------------------------------------------ model card


@dataclass
class ModelCard:
    name: str
    created: str
    architecture: str
    tasks: list[dict[str, str]]
    data: dict[str, Any]
    metrics: dict[str, dict[str, Any]]  # the held-out test split at training (the manifest's)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)  # on the active data
    stability: list[dict[str, Any]] = field(default_factory=list)  # worst PSI rows
    versions: dict[str, str] = field(default_factory=dict)
    lang: str = "zh"


def model_card(manifest: Mapping[str, Any], *, current: Mapping[str, Mapping[str, Any]] | None = None,
               stability: pd.DataFrame | None = None, dataset: str | None = None, lang: str = "zh") -> ModelCard:
    """The model card of a bundle's ``manifest``, with metrics on the active data (``current``) and the worst
    PSI rows (``stability``) when given."""
    tasks = [{"name": str(d.get("name")), "label": str(d.get("label")), "kind": str(d.get("kind")),
              "display": str(d.get("zh" if lang == "zh" else "en") or d.get("name"))}
             for d in manifest.get("tasks", [])]
    arch = manifest.get("architecture", {}).get("name", "?")
    config = manifest.get("config", {}) or {}
    data = {"dataset": dataset or "", "fingerprint": str(manifest.get("data_fingerprint", ""))[:16],
            "features": len(manifest.get("features", {}).get("names", [])),
            "split_sizes": manifest.get("split_sizes", {}), "weights_sha256": str(manifest.get("weights_sha256", ""))}
    raw = manifest.get("metrics") or {}  # {split: {task: {metric: value}}}
    split = next((s for s in ("test", "val") if isinstance(raw.get(s), Mapping)), None)
    metrics = {str(task): dict(v) for task, v in raw[split].items() if isinstance(v, Mapping)} if split else {}
    rows = [] if stability is None else stability.head(10).to_dict("records")
    return ModelCard(name=str(manifest.get("name", "")), created=str(manifest.get("created_utc", "")),
                     architecture=f"{arch} · {config.get('weighting', '')}".strip(" ·"), tasks=tasks, data=data,
                     metrics=metrics, current={k: dict(v) for k, v in (current or {}).items()}, stability=rows,
                     versions={str(k): str(v) for k, v in (manifest.get("versions") or {}).items()}, lang=lang)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4f}"
    return "—" if value is None else str(value)


def _metric_table(metrics: Mapping[str, Mapping[str, Any]], lang: str) -> str:
    if not metrics:
        return "<p>—</p>"
    head = f"<tr><th>{html.escape(t('monitor.col.task', lang))}</th><th>{html.escape(t('monitor.col.metric', lang))}" \
           f"</th><th>{html.escape(t('monitor.col.value', lang))}</th></tr>"
    body = "".join(f"<tr><td>{html.escape(str(task))}</td><td>{html.escape(str(k))}</td><td>{html.escape(_fmt(v))}</td></tr>"
                   for task, values in metrics.items() for k, v in values.items()
                   if isinstance(v, int | float | type(None)))
    return f"<table>{head}{body}</table>"


def model_card_html(card: ModelCard, *, standalone: bool = True) -> str:
    """The card as one self-contained HTML page (every value escaped; no scripts, no external resources);
    ``standalone=False`` gives the body only, without page styles (to embed in the app)."""
    lang, e = card.lang, html.escape

    def h(key: str) -> str:
        return f"<h2>{e(t(key, lang))}</h2>"

    tasks = "".join(f"<li>{e(x['display'])} — <code>{e(x['label'])}</code> ({e(x['kind'])})</li>" for x in card.tasks)
    split = ", ".join(f"{e(str(k))}: {e(str(v))}" for k, v in card.data.get("split_sizes", {}).items())
    data = (f"<ul><li>{e(t('monitor.card.fingerprint', lang))}: <code>{e(card.data.get('fingerprint', ''))}</code>"
            f"{' (' + e(card.data['dataset']) + ')' if card.data.get('dataset') else ''}</li>"
            f"<li>{e(t('monitor.card.features', lang))}: {e(str(card.data.get('features', '')))}</li>"
            f"<li>{e(t('monitor.card.samples', lang))}: {split or '—'}</li>"
            f"<li>{e(t('monitor.card.weights', lang))}: <code>{e(card.data.get('weights_sha256', ''))}</code></li></ul>")
    psi_rows = "".join(f"<tr><td>{e(str(r.get('feature')))}</td><td>{e(_fmt(r.get('psi')))}</td>"
                       f"<td>{e(t('monitor.status.' + str(r.get('status')), lang) if r.get('status') else '—')}</td></tr>"
                       for r in card.stability)
    stability = (f"<table><tr><th>{e(t('monitor.col.feature', lang))}</th><th>PSI</th>"
                 f"<th>{e(t('monitor.col.status', lang))}</th></tr>{psi_rows}</table>") if psi_rows else "<p>—</p>"
    versions = ", ".join(f"{e(k)} {e(v)}" for k, v in card.versions.items()) or "—"
    style = ("body{font-family:system-ui,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;max-width:880px;margin:2em auto;"
             "color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             ".use{background:#fff4e0;padding:.8em;border-left:4px solid #e69500}")
    body = (f"<h1>{e(t('monitor.card_title', lang))} · {e(card.name)}</h1>"
            f"<p>{e(t('monitor.card.architecture', lang))}: {e(card.architecture)} · "
            f"{e(t('monitor.card.created', lang))}: {e(card.created)}</p>"
            f"{h('monitor.card.intended_use')}<p class=\"use\">{e(t('monitor.card.intended_use_text', lang))}</p>"
            f"{h('monitor.card.data')}{data}{h('monitor.card.tasks')}<ul>{tasks}</ul>"
            f"{h('monitor.card.metrics')}{_metric_table(card.metrics, lang)}"
            f"{h('monitor.card.current')}{_metric_table(card.current, lang)}"
            f"{h('monitor.card.stability')}{stability}"
            f"{h('monitor.card.limitations')}<p>{e(t('monitor.card.limitations_text', lang))}</p>"
            f"<p><small>{e(t('monitor.card.versions', lang))}: {versions}</small></p>")
    if not standalone:
        return body
    return (f"<!DOCTYPE html><html lang=\"{'zh-CN' if lang == 'zh' else 'en'}\"><head><meta charset=\"utf-8\">"
            f"<title>{e(t('monitor.card_title', lang))} · {e(card.name)}</title><style>{style}</style></head>"
            f"<body>{body}</body></html>")


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
