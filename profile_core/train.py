"""The trainer: frame → split → preprocessing → multi-task net, with masked losses, a pluggable task
weighting, early stopping, per-epoch callbacks and cancellation.

All tensors go to the device once; batches are index slices of them (a DataLoader over in-memory tensors is
several times slower). Training is seeded and, on CPU, deterministic (same seed → same weights).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from sklearn.model_selection import train_test_split
from torch import Tensor

from profile_core.features import NUMERIC_ENCODINGS, PROTECTED, Preprocessor, protected_columns, split_columns
from profile_core.nets import ARCHITECTURES, MultiTaskNet, NetConfig, build_net, member_mean
from profile_core.tasks import (
    EngineError,
    TaskSpec,
    check_labels,
    encode_labels,
    label_stats,
    labelled,
    task_metrics,
    with_label_stats,
)
from profile_core.weighting import WEIGHTINGS, Weighting, build_weighting

EVAL_CHUNK = 32_768  # rows per forward pass when evaluating/predicting
SELECTIONS = ("total", "per-head", "per-head-metric")
HYBRIDS = ("none", "blend")


class TrainConfig(BaseModel):
    """Everything that shapes a training run (stored in full in the bundle manifest)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: str = "shared-bottom"
    weighting: str = "uncertainty"
    task_weights: dict[str, float] = {}  # λ per task name; overrides TaskSpec.weight
    hidden: tuple[int, ...] = (128, 64)
    head_hidden: tuple[int, ...] = (32,)
    n_experts: int = 4
    n_shared_experts: int = 2
    n_task_experts: int = 1
    n_levels: int = 1
    dropout: float = 0.0  # CPU dropout costs more than the matmuls; weight decay + early stopping suffice
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 60
    patience: int = 8
    min_delta: float = 1e-4
    seed: int = 42
    device: str = "auto"
    # CPU threads for this run (0 = torch's default). One: these small nets gain ~15% from a second thread
    # on an idle machine but run 10-20x slower when another process (the app, a test) competes for the cores.
    num_threads: int = 1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    # numbers as the net sees them: "standard" (scaled value) or "ple" (scaled value + piecewise-linear
    # encoding over n_bins quantile bins, features.Preprocessor)
    numeric_encoding: str = "ple"  # on Taiwan / census / the demo it lifts R², band accuracy and AUC (issue 17)
    n_bins: int = 16
    max_categories: int = 20  # one-hot columns per category column (features.Preprocessor)
    # model selection: "total" keeps the epoch with the best validation Σ λᵢ·Lᵢ and stops when it stalls;
    # "per-head" keeps each head's best epoch (by its own validation loss) and stops when every head has stalled
    # for `patience` epochs, so one noisy head neither stops nor picks the epoch for the others;
    # "per-head-metric" does the same on each head's validation RMSE / AUC / macro-F1
    selection: str = "per-head-metric"
    # nets trained (seeds seed, seed+1, …) and averaged per head: one MemberMean in the bundle
    ensemble: int = 1
    # "blend": each head's logits blend the net's with a per-task LightGBM's, weighted on the validation split
    # (profile_core.hybrid; a head with too few validation labels keeps the net alone); "none": the net alone.
    # The default: on Taiwan and census it lifts every head to LightGBM's level or above (issue 17)
    hybrid: str = "blend"
    # filled by profile_core.tune: budget, trials, validation score and search space of the search that chose
    # this configuration (empty when nobody tuned it)
    tuned: dict[str, Any] = {}
    # inputs: columns never used (labels not chosen, columns derived from labels), protected attributes
    # (never inputs unless the caller lists the columns itself), and whether age may be an input
    exclude_inputs: tuple[str, ...] = ()
    protected: tuple[str, ...] = PROTECTED
    use_age: bool = False

    @field_validator("arch", "weighting", "numeric_encoding", "selection", "hybrid")
    @classmethod
    def _known(cls, v: str, info) -> str:
        what, known = {"arch": ("architecture", ARCHITECTURES), "weighting": ("weighting", WEIGHTINGS),
                       "numeric_encoding": ("numeric encoding", NUMERIC_ENCODINGS),
                       "selection": ("model selection", SELECTIONS),
                       "hybrid": ("hybrid", HYBRIDS)}[info.field_name]
        if v not in known:
            raise ValueError(f"unknown {what} {v!r}; known: {', '.join(known)}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "mps") and not v.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, not {v!r}")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> TrainConfig:
        if not 0 < self.val_fraction < 1 or not 0 <= self.test_fraction < 1 \
                or self.val_fraction + self.test_fraction > 0.8:
            raise ValueError("val_fraction must be in (0, 1), test_fraction in [0, 1), together at most 0.8")
        if min(self.batch_size, self.max_epochs, self.patience) < 1 or not self.hidden or self.lr <= 0 \
                or self.num_threads < 0 or self.n_bins < 2 or self.ensemble < 1 \
                or self.max_categories < 2:
            raise ValueError("batch_size, max_epochs, patience, ensemble must be ≥ 1, hidden non-empty, lr > 0, "
                             "num_threads ≥ 0, n_bins ≥ 2, max_categories ≥ 2")
        return self

    def net_config(self, input_dim: int, tasks: list[TaskSpec]) -> NetConfig:
        return NetConfig(input_dim=input_dim, outputs={t.name: t.out_dim for t in tasks}, hidden=self.hidden,
                         head_hidden=self.head_hidden, n_experts=self.n_experts,
                         n_shared_experts=self.n_shared_experts, n_task_experts=self.n_task_experts,
                         n_levels=self.n_levels, dropout=self.dropout)


@dataclass
class EpochReport:
    epoch: int  # 1-based
    train_loss: float  # Σ λᵢ·Lᵢ with the user's λ (comparable across epochs and weightings)
    val_loss: float  # same on the validation split: the early-stopping criterion
    train_losses: dict[str, float]
    val_losses: dict[str, float]
    val_metrics: dict[str, dict[str, float]]
    weights: dict[str, float]  # mean task weights the weighting used this epoch
    seconds: float
    samples_per_second: float  # training rows per second of the training phase
    best: bool  # the best validation loss so far
    member: int = 0  # which net of an ensemble (TrainConfig.ensemble) this epoch trained

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: MultiTaskNet  # best weights restored, eval mode
    preprocessor: Preprocessor
    tasks: list[TaskSpec]  # with fitted regression mean/std and effective λ
    config: TrainConfig
    history: list[EpochReport]
    metrics: dict[str, dict[str, dict[str, float]]]  # split → task → metric → value ("val", "test")
    split: dict[str, np.ndarray]  # "train"/"val"/"test" → row positions in the frame
    label_stats: dict[str, dict[str, float]]
    device: str
    train_seconds: float
    samples_per_second: float
    best_epoch: int
    cancelled: bool = False
    best_epochs: dict[str, int] = field(default_factory=dict)  # task → epoch whose weights its head uses
    excluded: dict[str, str] = field(default_factory=dict)  # column → why it is not an input (label | protected)
    hybrid: dict[str, dict] = field(default_factory=dict)  # task → blend weight, trees, validation scores
    feature_names: list[str] = field(default_factory=list)

    def history_frame(self) -> pd.DataFrame:
        """One row per epoch: totals, then ``train_loss.<task>``, ``val_loss.<task>``, ``weight.<task>``,
        ``<task>.<metric>`` columns."""
        rows = []
        for r in self.history:
            row: dict[str, Any] = {"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss,
                                   "seconds": r.seconds, "samples_per_second": r.samples_per_second,
                                   "best": r.best}
            row |= {f"train_loss.{t}": v for t, v in r.train_losses.items()}
            row |= {f"val_loss.{t}": v for t, v in r.val_losses.items()}
            row |= {f"weight.{t}": v for t, v in r.weights.items()}
            row |= {f"{t}.{m}": v for t, ms in r.val_metrics.items() for m, v in ms.items()}
            rows.append(row)
        return pd.DataFrame(rows)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return predictions_frame(self.model, self.preprocessor, self.tasks, frame)


def resolve_device(pref: str = "auto") -> torch.device:
    """'auto' → CUDA, then MPS, then CPU; an explicit accelerator that is not there is an error."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    if (pref.startswith("cuda") and not torch.cuda.is_available()) or (pref == "mps" and not has_mps):
        raise EngineError("engine.device_unavailable", device=pref)
    return torch.device(pref)


def split_indices(frame: pd.DataFrame, tasks: list[TaskSpec], seed: int = 42, val: float = 0.15,
                  test: float = 0.15) -> dict[str, np.ndarray]:
    """Train/val/test row positions, stratified on the first binary task (missing labels as their own
    stratum); falls back to a plain random split when a stratum is too small."""
    n = len(frame)
    rows = np.arange(n)
    binary = next((t for t in tasks if t.kind == "binary"), None)
    strata = None
    if binary is not None:
        y = encode_labels(frame, [binary])[binary.name]
        strata = np.where(np.isnan(y), -1, y).astype(int)

    def cut(idx: np.ndarray, size: float, s: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        try:
            return train_test_split(idx, test_size=size, random_state=seed, stratify=s)
        except ValueError:  # a stratum with < 2 rows (or too few rows for the holdout)
            return train_test_split(idx, test_size=size, random_state=seed)

    if n < 10:
        raise EngineError("engine.too_few_rows", n=n)
    train, hold = cut(rows, val + test, strata)
    if test > 0:
        val_idx, test_idx = cut(hold, test / (val + test), None if strata is None else strata[hold])
    else:
        val_idx, test_idx = hold, np.array([], dtype=int)
    return {"train": np.sort(train), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def task_loss(task: TaskSpec, logits: Tensor, y: Tensor, *, complete: bool = False) -> Tensor | None:
    """Mean loss over the labelled rows of a batch; None when the batch has no label for the task.
    ``complete=True`` (every row labelled) skips the mask and its host sync."""
    if not complete:
        mask = y >= 0 if task.kind == "multiclass" else ~torch.isnan(y)
        if not bool(mask.any()):
            return None
        logits, y = logits[mask], y[mask]
    if task.kind == "multiclass":
        return F.cross_entropy(logits, y)
    pred, target = logits[:, 0], y
    if task.kind == "binary":
        return F.binary_cross_entropy_with_logits(pred, target)
    return F.huber_loss(pred, target) if task.loss == "huber" else F.mse_loss(pred, target)


def masked_losses(outputs: dict[str, Tensor], targets: dict[str, Tensor], tasks: list[TaskSpec],
                  complete: frozenset[str] = frozenset()) -> dict[str, Tensor]:
    """Per-task losses of the tasks that have labels in this batch (absent tasks are left out); tasks named in
    ``complete`` are known to be labelled on every row."""
    losses = {}
    for task in tasks:
        loss = task_loss(task, outputs[task.name], targets[task.name], complete=task.name in complete)
        if loss is not None:
            losses[task.name] = loss
    return losses


def _output(task: TaskSpec, logits: Tensor) -> Tensor:
    """Logits → what a person reads: original units, P(1), class probabilities."""
    if task.kind == "regression":
        return logits[:, 0] * task.std + task.mean
    if task.kind == "binary":
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)


def _forward_all(model: MultiTaskNet, X: Tensor) -> dict[str, Tensor]:
    parts = [model(X[i:i + EVAL_CHUNK]) for i in range(0, len(X), EVAL_CHUNK)]
    return {t: torch.cat([p[t] for p in parts]) for t in model.task_names}


@torch.no_grad()
def predict(model: MultiTaskNet, X: np.ndarray | Tensor, tasks: list[TaskSpec]) -> dict[str, np.ndarray]:
    """Per-task predictions: regression in original units (n,), binary probability (n,), multiclass
    probabilities (n, K). Runs on the model's device, in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
        logits = _forward_all(model, x.to(device, torch.float32))
    finally:
        model.train(was_training)
    return {t.name: _output(t, logits[t.name]).double().cpu().numpy() for t in tasks}


def predictions_frame(model: MultiTaskNet, preprocessor: Preprocessor, tasks: list[TaskSpec],
                      frame: pd.DataFrame) -> pd.DataFrame:
    """customer_id (when present) + ``<task>_pred`` (regression), ``<task>_prob`` (binary),
    ``<task>_pred`` and ``<task>_prob_<class>`` (multiclass)."""
    preds = predict(model, preprocessor.transform(frame), tasks)
    out = pd.DataFrame(index=frame.index)
    if "customer_id" in frame.columns:
        out["customer_id"] = frame["customer_id"].to_numpy()
    for name, values in prediction_columns(preds, tasks).items():
        out[name] = values
    return out.reset_index(drop=True)


def prediction_columns(preds: dict[str, np.ndarray], tasks: list[TaskSpec]) -> dict[str, np.ndarray]:
    """The output columns of ``predict``'s result, named and ordered as every scorer shows them."""
    out: dict[str, np.ndarray] = {}
    for task in tasks:
        p = preds[task.name]
        if task.kind == "regression":
            out[f"{task.name}_pred"] = p
        elif task.kind == "binary":
            out[f"{task.name}_prob"] = p
        else:
            out[f"{task.name}_pred"] = np.asarray(task.classes, dtype=object)[p.argmax(axis=1)]
            for k, c in enumerate(task.classes):
                out[f"{task.name}_prob_{c}"] = p[:, k]
    return out


@contextmanager
def _run_settings(config: TrainConfig, device: torch.device):
    """Seed torch inside a forked RNG and apply the thread count; the caller's RNG state and thread count are
    restored afterwards. The ops used here are deterministic on CPU as they are, and
    ``torch.use_deterministic_algorithms`` would import torch's compiler stack (~2.5 s) for nothing."""
    devices = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        if config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _weighted_total(losses: dict[str, float], tasks: list[TaskSpec]) -> float:
    return float(sum(t.weight * losses[t.name] for t in tasks if t.name in losses))


def excluded_inputs(frame: pd.DataFrame, tasks: list[TaskSpec], config: TrainConfig) -> dict[str, str]:
    """Columns of ``frame`` that are not inputs and why: ``label`` (a task's label, another declared label or
    a column derived from one) or ``protected`` (a protected attribute; age unless ``config.use_age``)."""
    out = {c: "label" for c in (*(t.label for t in tasks), *config.exclude_inputs) if c in frame.columns}
    for c in protected_columns(frame.columns, config.protected, allow_age=config.use_age):
        out.setdefault(c, "protected")
    return out


def feature_columns(frame: pd.DataFrame, tasks: list[TaskSpec], numeric: list[str] | None,
                    categorical: list[str] | None, config: TrainConfig | None = None) -> tuple[list[str], list[str]]:
    """The model's inputs: the given columns, or every usable one (``split_columns``) less the excluded ones;
    labels and columns derived from labels are dropped even from a caller's own lists."""
    excluded = excluded_inputs(frame, tasks, config or TrainConfig())
    labels = {c for c, why in excluded.items() if why == "label"}
    if numeric is None or categorical is None:
        auto_num, auto_cat = split_columns(frame, exclude=excluded)
        numeric = auto_num if numeric is None else numeric
        categorical = auto_cat if categorical is None else categorical
    numeric = [c for c in numeric if c not in labels]
    categorical = [c for c in categorical if c not in labels]
    if not numeric and not categorical:
        raise EngineError("engine.no_features")
    return numeric, categorical


TRANSFORM_ROWS = 50_000  # rows per preprocessing chunk when building the training matrix


def transform_rows(preprocessor: Preprocessor, frame: pd.DataFrame, chunk_rows: int = TRANSFORM_ROWS) -> np.ndarray:
    """``preprocessor.transform(frame)`` chunk by chunk into one float32 array: the same values (every step
    is row by row), without the float64 intermediates of the whole frame (for a million customers with binned
    numbers those are ~8 bytes × 800 columns per row)."""
    if len(frame) <= chunk_rows:
        return preprocessor.transform(frame)
    first = preprocessor.transform(frame.iloc[:chunk_rows])
    out = np.empty((len(frame), first.shape[1]), dtype=np.float32)
    out[:chunk_rows] = first
    for start in range(chunk_rows, len(frame), chunk_rows):
        out[start:start + chunk_rows] = preprocessor.transform(frame.iloc[start:start + chunk_rows])
    return out


def optimizer_groups(model: MultiTaskNet, weighting: Weighting, weight_decay: float) -> list[dict[str, Any]]:
    """The net's parameters with weight decay; the weighting's own (learned task weights) without it."""
    groups = [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    if own := list(weighting.parameters()):
        groups.append({"params": own, "weight_decay": 0.0})
    return groups


def fit(
    frame: pd.DataFrame,
    tasks: list[TaskSpec],
    config: TrainConfig | None = None,
    *,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    split: dict[str, np.ndarray] | None = None,
    callback: Callable[[EpochReport], None] | None = None,
    cancel: threading.Event | None = None,
) -> TrainResult:
    """Train a multi-task net on ``frame`` (one row per customer, label columns included).

    The preprocessor and the regression scaling are fitted on the train split only. Early stopping on the
    validation loss Σ λᵢ·Lᵢ restores the best epoch's weights. ``cancel`` set → stop after the current epoch
    and return the best model so far (``cancelled=True``).
    """
    config = config or TrainConfig()
    if not tasks:
        raise EngineError("engine.no_tasks")
    for task in tasks:
        if task.label not in frame.columns:
            raise EngineError("engine.missing_label", task=task.name, column=task.label)
    unknown = set(config.task_weights) - {t.name for t in tasks}
    if unknown:
        raise EngineError("engine.unknown_task", task=", ".join(sorted(unknown)))
    tasks = [replace(t, weight=config.task_weights.get(t.name, t.weight)) for t in tasks]
    numeric, categorical = feature_columns(frame, tasks, numeric, categorical, config)
    split = split or split_indices(frame, tasks, config.seed, config.val_fraction, config.test_fraction)
    check_labels(frame, tasks, split)
    train_rows = frame.iloc[split["train"]]
    preprocessor = Preprocessor(config.numeric_encoding, config.n_bins, config.max_categories).fit(train_rows, numeric, categorical)
    tasks = with_label_stats(tasks, train_rows)
    raw = encode_labels(frame, tasks, standardize=False)  # for metrics, in original units
    encoded = {t.name: (raw[t.name] - t.mean) / t.std if t.kind == "regression" else raw[t.name] for t in tasks}
    for task in tasks:
        if not labelled(task, encoded[task.name][split["train"]]).any():
            raise EngineError("engine.no_labels", task=task.name, column=task.label)
    # tasks labelled on every train row need no mask (and no host sync per batch)
    complete = frozenset(t.name for t in tasks if labelled(t, encoded[t.name][split["train"]]).all())

    device = resolve_device(config.device)
    started = time.perf_counter()
    with _run_settings(config, device):
        X = torch.as_tensor(transform_rows(preprocessor, frame)).to(device)
        Y = {t: torch.as_tensor(y).to(device) for t, y in encoded.items()}
        idx = {k: torch.as_tensor(v, dtype=torch.long).to(device) for k, v in split.items()}
        history: list[EpochReport] = []
        train_time, cancelled = 0.0, False
        n_train = len(split["train"])
        members: list[MultiTaskNet] = []
        best_epochs: dict[str, int] = {}
        for member in range(config.ensemble):
            model = build_net(config.arch, config.net_config(X.shape[1], tasks)).to(device)
            weighting = build_weighting(config.weighting, tasks).to(device)
            optimizer = torch.optim.AdamW(optimizer_groups(model, weighting, config.weight_decay), lr=config.lr,
                                          foreach=True)
            perm_gen = torch.Generator().manual_seed(config.seed + member)
            checkpoints = _Checkpoints(tasks, config.selection, config.min_delta, config.patience)
            for epoch in range(1, config.max_epochs + 1):
                t0 = time.perf_counter()
                order = idx["train"][torch.randperm(n_train, generator=perm_gen).to(device)]
                train_losses, weights = _train_epoch(model, weighting, optimizer, X, Y, order, tasks, complete,
                                                     config.batch_size)
                weighting.end_epoch(train_losses)
                t_train = time.perf_counter() - t0
                train_time += t_train

                report = close_epoch(model, checkpoints, Validation(X, Y, idx["val"], raw, split["val"]), tasks,
                                     epoch=epoch, member=member, train_losses=train_losses, weights=weights,
                                     started=t0, train_seconds=t_train, samples=n_train)
                history.append(report)
                if callback is not None:
                    callback(report)
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                if checkpoints.stalled:
                    break
            members.append(checkpoints.restore(model, config.arch))
            if not best_epochs:  # the first member's (the only one unless ensembling)
                best_epochs = checkpoints.best_epochs()
            if cancelled:
                break
        model = members[0] if len(members) == 1 else ensemble_of(members, config.arch).to(device)
        hybrid: dict[str, dict] = {}
        if config.hybrid == "blend" and not cancelled:
            from profile_core.hybrid import blend

            model, hybrid = blend(model, config.arch, X.cpu().numpy(), encoded, raw, split, tasks,
                                  list(preprocessor.output_names), seed=config.seed, threads=config.num_threads)
        best_epoch = max(best_epochs.values(), default=0)
        model.eval()
        metrics = {}
        for name in ("val", "test"):
            if len(split[name]):
                preds = predict(model, X[idx[name]], tasks)
                metrics[name] = {t.name: task_metrics(t, raw[t.name][split[name]], preds[t.name]) for t in tasks}
    return TrainResult(
        model=model, preprocessor=preprocessor, tasks=tasks, config=config, history=history, metrics=metrics,
        split=split, label_stats=label_stats(tasks), device=str(device),
        train_seconds=time.perf_counter() - started,
        samples_per_second=n_train * len(history) / max(train_time, 1e-9), best_epoch=best_epoch,
        cancelled=cancelled, best_epochs=best_epochs, feature_names=list(preprocessor.output_names), hybrid=hybrid,
        excluded={c: why for c, why in excluded_inputs(frame, tasks, config).items()
                  if c not in numeric and c not in categorical})


def _selection_score(kind: str, metrics: dict[str, float]) -> float:
    """Lower is better: RMSE (regression), 1 − AUC (binary), 1 − macro-F1 (multiclass); NaN when undefined."""
    if kind == "regression":
        return metrics.get("rmse", math.nan)
    return 1.0 - metrics.get("auc" if kind == "binary" else "macro_f1", math.nan)


def ensemble_of(models: list[MultiTaskNet], arch: str) -> MultiTaskNet:
    """One MemberMean of several trained nets (each plain or a MemberMean of checkpoints): every head averages
    the members its source nets gave it."""
    states: list[dict[str, Tensor]] = []
    member_of: dict[str, list[int]] = {}
    for net in models:
        parts = list(getattr(net, "members", [net]))
        for t in net.task_names:
            uses = net.config.members_of(t) if len(parts) > 1 else (0,)
            member_of.setdefault(t, []).extend(len(states) + i for i in uses)
        states += [p.state_dict() for p in parts]
    config = replace(models[0].config, members=1, member_of={})
    return member_mean(arch, config, states, {t: tuple(v) for t, v in member_of.items()})


class _Checkpoints:
    """Best-epoch bookkeeping for one criterion (``"total"``: Σ λᵢ·Lᵢ) or one per head (per-head selection):
    the weights of each criterion's best epoch (one copy per epoch, shared), its epoch and its stall count."""

    def __init__(self, tasks: list[TaskSpec], selection: str, min_delta: float, patience: int) -> None:
        self.tasks = [t.name for t in tasks]
        self.kinds = {t.name: t.kind for t in tasks}
        self.selection, self.per_head = selection, selection != "total"
        self.min_delta, self.patience = min_delta, patience
        keys = self.tasks if self.per_head else ["total"]
        self.best = dict.fromkeys(keys, math.inf)
        self.epoch = dict.fromkeys(keys, 0)
        self.bad = dict.fromkeys(keys, 0)
        self.states: dict[int, dict[str, Tensor]] = {}  # epoch → weights

    def update(self, epoch: int, val_losses: dict[str, float], val_metrics: dict[str, dict[str, float]],
               val_total: float, model: MultiTaskNet) -> bool:
        """Record this epoch's validation scores; True when any criterion improved (its weights are kept)."""
        if self.selection == "per-head-metric":
            values = {t: _selection_score(self.kinds[t], val_metrics.get(t, {})) for t in self.tasks}
        elif self.per_head:
            values = {t: val_losses.get(t, math.nan) for t in self.tasks}
        else:
            values = {"total": val_total}
        improved = [k for k, v in values.items() if v < self.best[k] - self.min_delta]  # NaN never improves
        for k in self.best:
            if k in improved:
                self.best[k], self.epoch[k], self.bad[k] = values[k], epoch, 0
            else:
                self.bad[k] += 1
        if improved:
            self.states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            kept = set(self.epoch.values())
            self.states = {e: s for e, s in self.states.items() if e in kept}
        return bool(improved)

    @property
    def stalled(self) -> bool:
        return all(b >= self.patience for b in self.bad.values())

    def best_epochs(self) -> dict[str, int]:
        return {t: self.epoch[t if self.per_head else "total"] for t in self.tasks}

    def restore(self, model: MultiTaskNet, arch: str) -> MultiTaskNet:
        """The net with each head's best weights (eval mode): the model itself when one epoch serves every head,
        else a MemberMean with one member per kept epoch (a head that never improved averages them all)."""
        epochs = sorted(e for e in set(self.epoch.values()) if e in self.states)
        if len(epochs) == 1:
            model.load_state_dict(self.states[epochs[0]])
        elif epochs:
            member_of = {t: (epochs.index(self.epoch[t]),) for t in self.tasks if self.epoch.get(t) in self.states}
            device = next(model.parameters()).device
            model = member_mean(arch, model.config, [self.states[e] for e in epochs], member_of).to(device)
        return model.eval()


def _train_epoch(model: MultiTaskNet, weighting: Weighting, optimizer: torch.optim.Optimizer, X: Tensor,
                 Y: dict[str, Tensor], order: Tensor, tasks: list[TaskSpec], complete: frozenset[str],
                 batch_size: int, forward: torch.nn.Module | None = None
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """One pass over ``order`` (row indices on the device); mean train loss and mean weight per task.
    ``forward``: the module that runs the batches when it is not ``model`` itself (a DistributedDataParallel
    wrapper of it, ``profile_core.distributed``)."""
    model.train()
    forward = model if forward is None else forward
    shared = model.shared_parameters()
    sums = {t.name: torch.zeros((), device=X.device) for t in tasks}
    counts = dict.fromkeys(sums, 0)
    weight_sums = dict.fromkeys(sums, 0.0)
    n_steps = 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        losses = masked_losses(forward(X[rows]), {t: y[rows] for t, y in Y.items()}, tasks, complete)
        if not losses:  # no labels at all in this batch
            continue
        optimizer.zero_grad(set_to_none=True)
        _, weights = weighting.backward(losses, shared)
        optimizer.step()
        n_steps += 1
        for t, loss in losses.items():
            sums[t] += loss.detach()
            counts[t] += 1
        for t, w in weights.items():
            weight_sums[t] += w
    train_losses = {t: float(sums[t]) / counts[t] for t in sums if counts[t]}
    return train_losses, {t: w / max(n_steps, 1) for t, w in weight_sums.items()}


class Validation(NamedTuple):
    """What an epoch is validated on: the inputs and standardised labels, the validation rows of them (a
    tensor of indices), the raw labels and those rows' positions in them (metrics in original units)."""

    X: Tensor
    Y: dict[str, Tensor]
    rows: Tensor
    raw: dict[str, np.ndarray]
    positions: np.ndarray


def close_epoch(model: MultiTaskNet, checkpoints: _Checkpoints, validation: Validation, tasks: list[TaskSpec], *,
                epoch: int, member: int, train_losses: dict[str, float], weights: dict[str, float], started: float,
                train_seconds: float, samples: int) -> EpochReport:
    """The end of every trainer's epoch (``fit``, streamed, Ray): validate on ``validation``, keep the weights
    where a criterion improved, and report the epoch (``samples``: training rows seen in ``train_seconds``)."""
    v = validation
    val_losses, val_metrics = _evaluate(model, v.X, v.Y, v.rows, tasks, v.raw, v.positions)
    val_total = _weighted_total(val_losses, tasks)
    improved = checkpoints.update(epoch, val_losses, val_metrics, val_total, model)
    return EpochReport(
        epoch=epoch, train_loss=_weighted_total(train_losses, tasks), val_loss=val_total,
        train_losses=train_losses, val_losses=val_losses, val_metrics=val_metrics, weights=weights,
        seconds=time.perf_counter() - started, samples_per_second=samples / max(train_seconds, 1e-9),
        best=improved, member=member)


@torch.no_grad()
def _evaluate(model: MultiTaskNet, X: Tensor, Y: dict[str, Tensor], rows: Tensor, tasks: list[TaskSpec],
              raw: dict[str, np.ndarray], positions: np.ndarray) -> tuple[dict[str, float], dict[str, dict]]:
    """Validation losses (standardised scale, like training) and metrics (original units)."""
    model.eval()
    logits = _forward_all(model, X[rows])
    losses = masked_losses(logits, {t: y[rows] for t, y in Y.items()}, tasks)
    metrics = {t.name: task_metrics(t, raw[t.name][positions], _output(t, logits[t.name]).double().cpu().numpy())
               for t in tasks}
    return {t: float(v) for t, v in losses.items()}, metrics
