"""Learning tasks: what each head predicts, how its labels are encoded, and how it is scored.

Everything downstream is keyed by ``TaskSpec.name``. Label encodings (for a frame and a list of tasks):

- regression: float, NaN where missing; standardised with the spec's ``mean``/``std`` so that a
  regression loss sits on the same scale as the classification losses (predictions are mapped back);
- binary: float 0/1, NaN where missing;
- multiclass: int64 class index into ``classes``, -1 where missing (or an unknown value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from profile_core.i18n import MessageError
from profile_core.schema import RISK_LEVELS, display_name

TaskKind = Literal["regression", "binary", "multiclass"]
KINDS: tuple[str, ...] = ("regression", "binary", "multiclass")
LOSSES: dict[str, tuple[str, ...]] = {"regression": ("mse", "huber"), "binary": ("bce",), "multiclass": ("ce",)}
#: Canonical task names of the default label columns (the binary task is called "default").
_TASK_NAMES = {"default_flag": "default"}
_KNOWN_KINDS: dict[str, TaskKind] = {"credit_score": "regression", "default_flag": "binary",
                                     "risk_level": "multiclass"}


class EngineError(MessageError):
    """An error for a person: one sentence from the message catalogue (``engine.toml``).

    ``str(err)`` is the English text (logs, tests); ``err.message(lang)`` gives it in another language.
    """


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label: str  # column in the customer frame
    kind: TaskKind
    n_classes: int = 1  # output width: 1 for regression and binary
    classes: tuple[str, ...] = ()  # multiclass: ordered labels; binary (optional): (negative, positive)
    loss: str = ""  # "" → the kind's default (mse / bce / ce)
    weight: float = 1.0  # λ in L = Σ λᵢ Lᵢ ('fixed' weighting and the early-stopping total)
    zh: str = ""
    en: str = ""
    ordered: bool = False  # ordered grades: scored with quadratic-weighted kappa
    mean: float = 0.0  # regression target standardisation (fitted on the train split)
    std: float = 1.0

    def __post_init__(self) -> None:
        if not self.name or "." in self.name:
            raise EngineError("engine.task_bad_name", name=self.name)
        if self.kind not in KINDS:
            raise EngineError("engine.task_bad_kind", name=self.name, kind=self.kind)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if not self.loss:
            object.__setattr__(self, "loss", LOSSES[self.kind][0])
        if self.loss not in LOSSES[self.kind]:
            raise EngineError("engine.task_bad_loss", name=self.name, loss=self.loss, kind=self.kind)
        if self.kind == "multiclass":
            if not self.classes:
                object.__setattr__(self, "classes", tuple(str(i) for i in range(self.n_classes)))
            object.__setattr__(self, "n_classes", len(self.classes))
            if self.n_classes < 2:
                raise EngineError("engine.task_few_classes", name=self.name)
        else:
            object.__setattr__(self, "n_classes", 1)
        if self.kind == "binary" and self.classes and len(self.classes) != 2:
            raise EngineError("engine.task_few_classes", name=self.name)
        if not self.std > 0:
            object.__setattr__(self, "std", 1.0)

    @property
    def out_dim(self) -> int:
        return self.n_classes

    def display(self, lang: str = "zh") -> str:
        return (self.zh if lang == "zh" else self.en) or display_name(self.label, lang)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        return cls(**{**d, "classes": tuple(d.get("classes", ()))})


def default_tasks() -> list[TaskSpec]:
    """The reference design's three heads: credit score, default, risk level A–E."""
    return [
        TaskSpec("credit_score", "credit_score", "regression", zh="信用评分", en="Credit score"),
        TaskSpec("default", "default_flag", "binary", zh="违约概率", en="Default probability"),
        TaskSpec("risk_level", "risk_level", "multiclass", classes=RISK_LEVELS, ordered=True,
                 zh="风险等级", en="Risk level"),
    ]


def _key(value: Any) -> str | None:
    """Class key of a raw label value: 2.0 and "2" are the same class; missing → None."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def infer_task(frame: pd.DataFrame, column: str, kind: TaskKind | None = None) -> TaskSpec:
    """A TaskSpec for ``column`` from its values (or the given ``kind``).

    The default label columns keep their kinds. Otherwise: numeric with values {0, 1} → binary; numeric →
    regression, unless it holds 3–10 distinct integers, each seen ≥ 5 times on average (ordered grades);
    text with 2 values → binary; text otherwise → multiclass (ordered when the values are risk levels A–E).
    """
    if column not in frame.columns:
        raise EngineError("engine.missing_label", task=column, column=column)
    s = frame[column]
    values = s.dropna()
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    uniq = sorted({_key(v) for v in values} - {None}, key=lambda k: (float(k), k) if numeric else (0, k))
    if kind is None and column in _KNOWN_KINDS:
        kind = _KNOWN_KINDS[column]
    if kind is None:
        if pd.api.types.is_bool_dtype(s) or (numeric and set(uniq) <= {"0", "1"} and uniq):
            kind = "binary"
        elif numeric:
            integral = bool(len(values)) and bool(np.all(np.mod(values.to_numpy(float), 1) == 0))
            grades = integral and 3 <= len(uniq) <= 10 and len(values) >= 5 * len(uniq)
            kind = "multiclass" if grades else "regression"
        else:
            kind = "binary" if len(uniq) == 2 else "multiclass"
    name = _TASK_NAMES.get(column, column)
    common = {"zh": display_name(column, "zh"), "en": display_name(column, "en")}
    if kind == "regression":
        return TaskSpec(name, column, "regression", **common)
    if kind == "binary":
        classes = () if numeric or pd.api.types.is_bool_dtype(s) else tuple(uniq)
        return TaskSpec(name, column, "binary", classes=classes, **common)
    if set(uniq) <= set(RISK_LEVELS) or column == "risk_level":
        return TaskSpec(name, column, "multiclass", classes=RISK_LEVELS, ordered=True, **common)
    return TaskSpec(name, column, "multiclass", classes=tuple(uniq) or ("0", "1"), ordered=numeric, **common)


def with_label_stats(tasks: list[TaskSpec], frame: pd.DataFrame) -> list[TaskSpec]:
    """Tasks with the regression mean/std fitted on ``frame`` (pass the train split only)."""
    out = []
    for task in tasks:
        if task.kind == "regression":
            y = pd.to_numeric(frame[task.label], errors="coerce").to_numpy(float)
            y = y[np.isfinite(y)]
            mean = float(y.mean()) if len(y) else 0.0
            std = float(y.std()) if len(y) > 1 else 1.0
            task = replace(task, mean=mean, std=std if std > 1e-12 else 1.0)
        out.append(task)
    return out


def label_stats(tasks: list[TaskSpec]) -> dict[str, dict[str, float]]:
    """The regression standardisation of each regression task (for manifests and reports)."""
    return {t_.name: {"mean": t_.mean, "std": t_.std} for t_ in tasks if t_.kind == "regression"}


def encode_label(frame: pd.DataFrame, task: TaskSpec, *, standardize: bool = True) -> np.ndarray:
    if task.label not in frame.columns:
        raise EngineError("engine.missing_label", task=task.name, column=task.label)
    s = frame[task.label]
    if task.kind == "regression":
        y = pd.to_numeric(s, errors="coerce").to_numpy(np.float32, na_value=np.nan)
        y[~np.isfinite(y)] = np.nan
        return ((y - task.mean) / task.std).astype(np.float32) if standardize else y
    if task.kind == "binary":
        if task.classes:
            y = _lookup(s, {task.classes[0]: 0.0, task.classes[1]: 1.0}, np.nan).astype(float)
        else:
            y = pd.to_numeric(s.astype(object) if pd.api.types.is_bool_dtype(s) else s,
                              errors="coerce").to_numpy(float, na_value=np.nan)
            y = np.where((y == 0) | (y == 1), y, np.nan)
        return y.astype(np.float32)
    return _lookup(s, {c: i for i, c in enumerate(task.classes)}, -1).astype(np.int64)


def _lookup(s: pd.Series, index: dict[str, Any], missing: Any) -> np.ndarray:
    """Map raw values through ``_key`` to ``index`` (unknown or missing → ``missing``), one key per distinct
    value rather than per row."""
    values = s.astype(object).to_numpy()
    inverse, uniq = pd.factorize(values, use_na_sentinel=True)
    table = np.array([index.get(_key(v), missing) for v in uniq] + [missing], dtype=object)
    return table[inverse]  # the sentinel -1 picks the trailing ``missing``


def encode_labels(frame: pd.DataFrame, tasks: list[TaskSpec], *, standardize: bool = True) -> dict[str, np.ndarray]:
    """Per-task label arrays (see module doc); ``standardize=False`` keeps regression in original units."""
    return {task.name: encode_label(frame, task, standardize=standardize) for task in tasks}


def labelled(task: TaskSpec, y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows with a label."""
    return y >= 0 if task.kind == "multiclass" else np.isfinite(y)


def _safe(fn, *args, **kwargs) -> float:
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def task_metrics(task: TaskSpec, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Scores on the labelled rows: y_true as from ``encode_labels(..., standardize=False)``; pred as from
    ``train.predict`` (regression in original units, binary P(1), multiclass probabilities (n, K)).

    regression: rmse, mae, r2 · binary: auc, ks, logloss, brier · multiclass: accuracy, macro_f1, logloss,
    and qwk when the grades are ordered. Always ``n`` (labelled rows). NaN where undefined.
    """
    y_true, pred = np.asarray(y_true), np.asarray(pred, dtype=np.float64)
    mask = labelled(task, y_true)
    y, p = y_true[mask], pred[mask]
    out: dict[str, float] = {"n": float(mask.sum())}
    if task.kind == "regression":
        err = p.reshape(-1) - y.astype(np.float64)
        out |= {"rmse": float(np.sqrt(np.mean(err**2))) if len(y) else math.nan,
                "mae": float(np.mean(np.abs(err))) if len(y) else math.nan,
                "r2": _safe(skm.r2_score, y, p.reshape(-1)) if len(y) > 1 else math.nan}
    elif task.kind == "binary":
        p = np.clip(p.reshape(-1), 1e-7, 1 - 1e-7)
        both = len(np.unique(y)) == 2
        if both:
            fpr, tpr, _ = skm.roc_curve(y, p)
            auc, ks = _safe(skm.roc_auc_score, y, p), float(np.max(tpr - fpr))
        else:
            auc = ks = math.nan
        out |= {"auc": auc, "ks": ks,
                "logloss": _safe(skm.log_loss, y, p, labels=[0, 1]) if len(y) else math.nan,
                "brier": float(np.mean((p - y) ** 2)) if len(y) else math.nan}
    else:
        labels = list(range(task.n_classes))
        p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)  # float32 softmax → sums to 1 in float64
        hat = p.argmax(axis=1) if len(y) else np.array([], dtype=int)
        out |= {"accuracy": float(np.mean(hat == y)) if len(y) else math.nan,
                "macro_f1": _safe(skm.f1_score, y, hat, labels=sorted(set(y.tolist())), average="macro",
                                  zero_division=0) if len(y) else math.nan,
                "logloss": _safe(skm.log_loss, y, p, labels=labels) if len(y) else math.nan}
        if task.ordered:
            agree = len(set(y.tolist()) | set(hat.tolist())) > 1
            out["qwk"] = _safe(skm.cohen_kappa_score, y, hat, labels=labels, weights="quadratic") \
                if agree else math.nan
    return out
