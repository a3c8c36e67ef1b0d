"""Learning tasks: what each head predicts, how its labels are encoded, and how it is scored.

Everything downstream is keyed by ``TaskSpec.name``. Label encodings (for a frame and a list of tasks):

- regression: float, NaN where missing; standardised with the spec's ``mean``/``std`` so that a
  regression loss sits on the same scale as the classification losses (predictions are mapped back);
- binary: float 0/1, NaN where missing;
- multiclass: int64 class index into ``classes``, -1 where missing (or an unknown value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from profile_core.i18n import MessageError
from profile_core.schema import LABEL_TASK_KINDS, RISK_LEVELS, display_name

TaskKind = Literal["regression", "binary", "multiclass"]
KINDS: tuple[str, ...] = ("regression", "binary", "multiclass")
LOSSES: dict[str, tuple[str, ...]] = {"regression": ("mse", "huber"), "binary": ("bce",), "multiclass": ("ce",)}
#: Canonical task names of the default label columns (the binary task is called "default").
_TASK_NAMES = {"default_flag": "default", "wm_purchase_3m": "wm_purchase", "churn_3m": "churn"}
_KNOWN_KINDS: dict[str, TaskKind] = {c: k for c, k in LABEL_TASK_KINDS.items()}  # type: ignore[misc]

#: What a task means to the card: ``pd`` a bad/default flag (→ PD, scorecard points, grade A–E), ``score`` a
#: regression that is a credit score, ``grade`` an ordinal risk class, ``propensity`` a binary uptake of a
#: product (``TaskSpec.product`` names it; the card's next best product), ``churn`` a binary leaving of the bank
#: (the card's retention alert), ``generic`` anything else (an amount, a class). Only a ``pd`` task is ever
#: called a probability of default, only a ``score`` a credit score.
ROLES: tuple[str, ...] = ("pd", "score", "grade", "propensity", "churn", "generic")
RISK_ROLES: tuple[str, ...] = ("pd", "score", "grade")
MARKETING_ROLES: tuple[str, ...] = ("propensity", "churn")
_ROLE_WORDS = {  # proposed from the label's name (lower-cased), when the kind fits the role
    "pd": re.compile(r"default|delinq|\bbad\b|^bad|bad_|charge.?off|charged|arrear|overdue|write.?off|"
                     r"not.?fully.?paid|违约|逾期|坏账|不良"),
    "score": re.compile(r"score|fico|评分|信用分"),
    "grade": re.compile(r"risk|grade|level|rating|等级|评级|风险"),
    "churn": re.compile(r"churn|attrit|closed?.?account|account.?clos|流失|销户|离行"),
    "propensity": re.compile(r"propens|purchas|uptake|\bbuy|^buy|buys|bought|convert|response|respond|subscri|"
                             r"take.?up|cross.?sell|购买|认购|申购|倾向|响应|转化|办理"),
}
#: Products a propensity head's label may name (checked in order; key → words in the lower-cased label). The
#: key is what ``TaskSpec.product`` holds; the card names it from the catalogue (``marketing.product.<key>``).
PRODUCTS: dict[str, re.Pattern[str]] = {
    "wealth_management": re.compile(r"wealth|\bwm|^wm|理财|资管"),
    "fund": re.compile(r"fund|基金"),
    "insurance": re.compile(r"insur|保险"),
    "credit_card": re.compile(r"card|信用卡"),
    "loan": re.compile(r"loan|贷"),
    "deposit": re.compile(r"deposit|saving|term|存款|定期"),
}
#: Fewest examples of each class of a binary label (and of a multiclass label's rarest class in train)
#: for training to mean anything; fewer is refused before training, naming the label and the counts.
MIN_CLASS_COUNT = 20


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
    role: str = ""  # one of ROLES; "" → proposed from the label's name and the kind (old bundles have none)
    product: str = ""  # a propensity head's product (a PRODUCTS key, or the bank's own name); "" → proposed

    def __post_init__(self) -> None:
        if not self.name or "." in self.name:
            raise EngineError("engine.task_bad_name", name=self.name)
        if self.kind not in KINDS:
            raise EngineError("engine.task_bad_kind", name=self.name, kind=self.kind)
        if not self.role:
            object.__setattr__(self, "role", propose_role(self.label or self.name, self.kind))
        if self.role not in ROLES or not role_fits(self.role, self.kind):
            raise EngineError("engine.task_bad_role", name=self.label or self.name, role=self.role,
                              kind=self.kind, roles=", ".join(r for r in ROLES if role_fits(r, self.kind)))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.role == "propensity" and not self.product:
            object.__setattr__(self, "product", propose_product(self.label or self.name))
        if self.role != "propensity" and self.product:
            object.__setattr__(self, "product", "")
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


def role_fits(role: str, kind: str) -> bool:
    """A pd, propensity or churn task is binary, a score task a regression, a grade task multiclass; generic
    fits every kind."""
    return {"pd": "binary", "score": "regression", "grade": "multiclass", "propensity": "binary",
            "churn": "binary"}.get(role, kind) == kind


def propose_product(label: str) -> str:
    """The product a propensity label names (``wm_purchase_3m`` → wealth_management, ``基金申购`` → fund), else
    the label itself as written (the card then shows the bank's own name)."""
    name = str(label).lower()
    return next((key for key, words in PRODUCTS.items() if words.search(name)), str(label))


def propose_role(label: str, kind: str) -> str:
    """The role a label's name suggests for its kind (``default.payment.next.month`` → pd, ``fico`` → score,
    ``风险等级`` → grade, ``wm_purchase_3m`` → propensity, ``churn_3m`` → churn); anything else is generic. A
    person confirms it in the mapping step or on the CLI."""
    name = str(label).lower()
    if name in ("default", "default_flag") and kind == "binary":
        return "pd"
    for role, words in _ROLE_WORDS.items():
        if role_fits(role, kind) and words.search(name):
            return role
    return "generic"


def task_id(label: str, taken: Iterable[str] = ()) -> str:
    """A safe internal task name for a label as written (module keys, weight names, prediction columns):
    runs of characters other than letters, digits and ``_`` become ``_`` (中文 stays), never two alike."""
    base = _TASK_NAMES.get(label) or re.sub(r"\W+", "_", str(label)).strip("_") or "task"
    if base[0].isdigit():
        base = f"t_{base}"
    taken, name, i = set(taken), base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def role_task(tasks: Iterable[TaskSpec], role: str) -> TaskSpec | None:
    """The first task with ``role`` (the one that drives the card's headline for it), or None."""
    return next((t_ for t_ in tasks if t_.role == role), None)


def parse_task_option(option: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:kind`` (as given to ``train --task``) → (name, kind or None)."""
    name, sep, kind = option.rpartition(":")
    if sep and kind in KINDS and name:
        return name, kind
    return option, None


def declared_tasks(frame: pd.DataFrame, labels: Mapping[str, str], *, roles: Mapping[str, str] | None = None,
                   chosen: Iterable[str] | None = None,
                   orders: Mapping[str, Sequence[str]] | None = None) -> list[TaskSpec]:
    """One task per declared label (``{column: kind}``, kind "" = infer from values), or only the ``chosen``
    ones (``NAME`` or ``NAME:kind``; NAME as written or its task id). Roles: ``roles[column]`` if declared,
    else proposed. ``orders``: the class order of labels whose classes are ordered bands (a mapping's bins),
    scored as ordered grades. Unknown or undeclared names are refused, naming what is declared."""
    roles, orders = roles or {}, orders or {}
    picks: list[tuple[str, str | None]] = []
    if chosen is None:
        picks = [(col, kind or None) for col, kind in labels.items()]
    else:
        for option in chosen:
            name, kind = parse_task_option(option)
            column = next((c for c in labels if name in (c, task_id(c))), None)
            if column is None:
                raise EngineError("engine.unknown_label", label=name,
                                  known=", ".join(labels) or "—")
            picks.append((column, kind or labels[column] or None))
    tasks: list[TaskSpec] = []
    for column, kind in dict(picks).items():
        spec = infer_task(frame, column, kind)  # type: ignore[arg-type]
        role = roles.get(column) or propose_role(column, spec.kind)
        if not role_fits(role, spec.kind):
            raise EngineError("engine.task_bad_role", name=column, role=role, kind=spec.kind,
                              roles=", ".join(r for r in ROLES if role_fits(r, spec.kind)))
        spec = in_band_order(spec, orders.get(column, ()))
        tasks.append(replace(spec, name=task_id(column, [t_.name for t_ in tasks]), role=role))
    if not tasks:
        raise EngineError("engine.no_declared_labels")
    return tasks


def in_band_order(spec: TaskSpec, order: Sequence[str]) -> TaskSpec:
    """A multiclass task whose classes are ordered bands (a mapping's bins) with its classes in that order and
    scored as ordered grades; any other task unchanged."""
    order = tuple(str(c) for c in order)
    if spec.kind == "multiclass" and order and set(spec.classes) <= set(order):
        return replace(spec, classes=order, ordered=True)
    return spec


def check_labels(frame: pd.DataFrame, tasks: list[TaskSpec], split: Mapping[str, np.ndarray]) -> None:
    """Refuse labels that cannot be learned or scored, before any training: a binary label with fewer than
    MIN_CLASS_COUNT of either class or one class only in a split, a regression label without variance, a
    multiclass label whose classes are missing from the validation split."""
    for task in tasks:
        y = encode_label(frame, task, standardize=False)
        have = labelled(task, y)
        if task.kind == "regression":
            values = y[have]
            if len(values) < 2 or float(np.nanstd(values)) <= 1e-12:
                raise EngineError("engine.label_constant", label=task.label, n=int(have.sum()))
            continue
        counts = pd.Series(y[have]).value_counts().sort_index()
        names = task.classes or ("0", "1")
        shown = ", ".join(f"{names[int(k)]}: {int(v)}" for k, v in counts.items()) or "—"
        if task.kind == "binary" and (len(counts) < 2 or int(counts.min()) < MIN_CLASS_COUNT):
            raise EngineError("engine.label_few", label=task.label, counts=shown, min=MIN_CLASS_COUNT)
        if len(counts) < 2:
            raise EngineError("engine.label_few", label=task.label, counts=shown, min=MIN_CLASS_COUNT)
        # every class must be seen in training and be there to evaluate (validation drives model selection)
        for part in ("train", "val", "test") if task.kind == "binary" else ("train", "val"):
            rows = np.asarray(split.get(part, []), dtype=int)
            if len(rows) and not set(counts.index) <= set(np.unique(y[rows][have[rows]]).tolist()):
                raise EngineError("engine.label_split", label=task.label, split=part, counts=shown)


def risk_tasks() -> list[TaskSpec]:
    """The reference design's three heads: credit score, default, risk level A–E."""
    return [
        TaskSpec("credit_score", "credit_score", "regression", zh="信用评分", en="Credit score", role="score"),
        TaskSpec("default", "default_flag", "binary", zh="违约概率", en="Default probability", role="pd"),
        TaskSpec("risk_level", "risk_level", "multiclass", classes=RISK_LEVELS, ordered=True,
                 zh="风险等级", en="Risk level", role="grade"),
    ]


def marketing_tasks() -> list[TaskSpec]:
    """The demo's two marketing heads: buying a wealth-management product, and churn (within three months)."""
    return [
        TaskSpec("wm_purchase", "wm_purchase_3m", "binary", zh="理财购买倾向", en="Wealth-management propensity",
                 role="propensity", product="wealth_management"),
        TaskSpec("churn", "churn_3m", "binary", zh="流失概率", en="Churn probability", role="churn"),
    ]


def default_tasks() -> list[TaskSpec]:
    """The demo's five heads: the three risk heads (:func:`risk_tasks`) and the two marketing heads
    (:func:`marketing_tasks`), learned on one shared representation."""
    return [*risk_tasks(), *marketing_tasks()]


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
    name = task_id(column)
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


def selection_score(task: TaskSpec, y_true: np.ndarray, pred: np.ndarray) -> float:
    """Lower is better: :func:`task_metrics`' RMSE (regression), 1 − AUC (binary) or 1 − macro-F1 (multiclass)
    alone, NaN where undefined. The same numbers at a fraction of the cost: a hybrid head scores 21 blends."""
    y_true, pred = np.asarray(y_true), np.asarray(pred, dtype=np.float64)
    mask = labelled(task, y_true)
    y, p = y_true[mask], pred[mask]
    if not len(y):
        return math.nan
    if task.kind == "regression":
        return float(np.sqrt(np.mean((p.reshape(-1) - y.astype(np.float64)) ** 2)))
    if task.kind == "binary":
        if len(np.unique(y)) < 2:
            return math.nan
        return 1.0 - _safe(skm.roc_auc_score, y, np.clip(p.reshape(-1), 1e-7, 1 - 1e-7))
    hat, y = p.argmax(axis=1), y.astype(np.int64)
    f1 = []
    for label in np.unique(y):  # macro-F1 over the classes present, as task_metrics (zero_division 0)
        tp = np.sum((hat == label) & (y == label))
        wrong = np.sum((hat == label) != (y == label))  # false positives + false negatives
        f1.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return 1.0 - float(np.mean(f1))


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
