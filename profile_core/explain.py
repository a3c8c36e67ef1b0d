"""SHAP per task head, summed back to the attributes people recognise, reason codes and global importance.

What is explained, per task (``Explanation.output_kind``):

- regression: the predicted value in the label's original units (e.g. credit-score points);
- binary: the logit of the positive class (``default``: log-odds of default);
- multiclass: the logit of each customer's predicted class (``explained_class``).

Methods (``Explanation.method``):

- ``deep``: DeepSHAP, the algorithm of ``shap.DeepExplainer``: DeepLIFT multipliers of a customer against
  each background row, times the input difference, averaged over the background. It runs batched over
  customers on a float64 copy of the net, with one pass for all heads. ReLU uses the rescale rule (as
  shap does, so on a ReLU-only net the numbers equal ``shap.DeepExplainer``'s); the gated nets (MMoE, PLE)
  also need a rule for their softmax gates (a rank-one rescale: Δy = M·Δz exactly) and for the gate × expert
  mixture (the Shapley rule of a product: Δ(ab) = Δa·b̄ + ā·Δb with means of the two points). With those
  every architecture here is exactly additive: base + Σ SHAP = output.
- ``permutation``: ``shap.PermutationExplainer`` on all heads' outputs, used when a probe at construction
  finds ``deep`` not additive (an operation this module has no rule for). Also exactly additive, much
  slower; shap seeds NumPy's global generator with ``seed`` for it.

The background is a seeded sample (at most 200 rows) of the frame given; the base value is the mean
explained output over it.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from profile_core.features import FeatureInfo, Preprocessor, feature_info, protected_columns
from profile_core.i18n import t
from profile_core.tasks import TaskSpec

TOLERANCE = 1e-4  # additivity: |base + Σ SHAP − output| in output units
PROBE_TOLERANCE = 1e-7  # float64 DeepLIFT with a rule for every op is exact to ~1e-12
TREE_PROBE_TOLERANCE = 1e-5  # a hybrid head: shap's interventional TreeSHAP sums to ~1e-7 of its trees' output
MAX_BACKGROUND = 200
CHUNK_PAIRS = 32_768  # customer × background pairs per batched pass (for up to CHUNK_COLUMNS input columns)
CHUNK_COLUMNS = 128
OUTPUT_KIND = {"regression": "value", "binary": "logit", "multiclass": "logit of predicted class"}
#: Regression labels for which a higher value is better (their risk direction is negative).
HIGHER_IS_BETTER = frozenset({"credit_score"})


class ModelBundle(Protocol):
    """What the explainer needs of a ``bundle.Bundle`` (a ``train.TrainResult`` fits as well)."""

    model: nn.Module
    preprocessor: Preprocessor
    tasks: list[TaskSpec]


# --- the explanation -------------------------------------------------------------------------------------

@dataclass
class Explanation:
    """SHAP values per task; every per-task frame has one row per customer (index ``customer_id``).

    ``level`` is ``"input"`` (columns = model inputs, ``inputs`` = the model input matrix) or
    ``"attribute"`` (columns = source attributes, ``inputs`` = their raw values, ``features`` = metadata).
    ``base_values[task][i] + values[task].iloc[i].sum() == outputs[task][i]`` within ``TOLERANCE``.
    """

    values: dict[str, pd.DataFrame]
    base_values: dict[str, np.ndarray]  # per row: for multiclass it depends on the explained class
    outputs: dict[str, np.ndarray]
    output_kind: dict[str, str]
    explained_class: dict[str, np.ndarray]  # multiclass tasks: predicted class label per row
    method: str
    inputs: pd.DataFrame
    tasks: dict[str, TaskSpec]
    additivity_error: dict[str, float] = field(default_factory=dict)
    level: str = "input"
    features: pd.DataFrame | None = None  # attribute level: zh, en, category, kind, unit_zh, unit_en

    @property
    def customer_ids(self) -> pd.Index:
        return self.inputs.index

    def base(self, task: str, customer_id: str) -> float:
        return float(self.base_values[task][self.customer_ids.get_loc(customer_id)])

    def output(self, task: str, customer_id: str) -> float:
        return float(self.outputs[task][self.customer_ids.get_loc(customer_id)])


def additivity_errors(expl: Explanation) -> dict[str, float]:
    """max |base + Σ SHAP − output| per task."""
    return {task: float(np.max(np.abs(expl.base_values[task] + v.to_numpy().sum(axis=1) - expl.outputs[task]),
                               initial=0.0))
            for task, v in expl.values.items()}


# --- DeepLIFT rules (applied inside _DeepLift) -------------------------------------------------------------

def _against(x: Tensor, ref: Tensor) -> Tensor:
    """``x − ref`` for rows laid out customer-major against the ``len(ref)`` reference rows (no tiling)."""
    return (x.unflatten(0, (-1, ref.shape[0])) - ref).flatten(0, 1)


def _midpoint(x: Tensor, ref: Tensor) -> Tensor:
    return ((x.unflatten(0, (-1, ref.shape[0])) + ref) / 2).flatten(0, 1)


class _ReluLift(torch.autograd.Function):
    """Rescale rule: multiplier Δy/Δx against the paired reference (the gradient where Δx = 0)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, rx: Tensor, ry: Tensor) -> Tensor:
        y = torch.relu(x)
        dx = _against(x, rx)
        ctx.save_for_backward(torch.where(dx == 0, (x > 0).to(x.dtype), _against(y, ry) / dx))
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (m,) = ctx.saved_tensors
        return grad * m, None, None


class _SoftmaxLift(torch.autograd.Function):
    """Rank-one rescale for a vector function: M = Δy Δzᵀ / |Δz|² (so M·Δz = Δy); the Jacobian where Δz ≈ 0."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, rz: Tensor, ry: Tensor, dim: int) -> Tensor:
        y = torch.softmax(z, dim)
        ctx.dim = dim if dim < 0 else dim - z.dim()
        # save the output itself, never a view of it: a saved view keeps the output (and through its grad_fn
        # this node) alive — a reference cycle through C++ that leaked ~13 tensors per explained request
        ctx.save_for_backward(*(a.movedim(ctx.dim, -1) for a in (_against(z, rz), _against(y, ry))), y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        dz, dy, y = ctx.saved_tensors
        y = y.movedim(ctx.dim, -1)
        g = grad.movedim(ctx.dim, -1)
        norm = (dz * dz).sum(-1, keepdim=True)
        rank_one = (g * dy).sum(-1, keepdim=True) * dz / norm.clamp_min(1e-30)
        jacobian = y * (g - (g * y).sum(-1, keepdim=True))
        return torch.where(norm < 1e-20, jacobian, rank_one).movedim(-1, ctx.dim), None, None, None


class _BmmLift(torch.autograd.Function):
    """Shapley rule of a product: Δ(ab) = Δa·b̄ + ā·Δb with ā, b̄ the means of the customer and reference."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, ra: Tensor, rb: Tensor) -> Tensor:
        ctx.save_for_backward(_midpoint(a, ra), _midpoint(b, rb))
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        a_mean, b_mean = ctx.saved_tensors
        return grad @ b_mean.transpose(1, 2), a_mean.transpose(1, 2) @ grad, None, None


_RELU = {F.relu, torch.relu, Tensor.relu}
_SOFTMAX = {F.softmax, torch.softmax, Tensor.softmax}
_BMM = {torch.bmm, Tensor.bmm}


class _DeepLift(TorchFunctionMode):
    """Records the background pass into ``refs``, or (``replay=True``) replays it: each nonlinear op of the
    customers' pass (customer-major rows, one per reference row) takes the recorded reference values of the
    same op and applies its rule; every other op runs as usual (linear ops need no rule)."""

    def __init__(self, refs: list[tuple[Tensor, ...]], replay: bool = False) -> None:
        super().__init__()
        self.refs, self.replay, self.pos = refs, replay, 0

    def _reference(self) -> tuple[Tensor, ...]:
        if self.pos >= len(self.refs):
            raise RuntimeError("the network ran different operations for the background and the customers")
        self.pos += 1
        return self.refs[self.pos - 1]

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU:
            if self.replay:
                return _ReluLift.apply(args[0], *self._reference())
            y = torch.relu(args[0])
            self.refs.append((args[0], y))
            return y
        if func in _SOFTMAX:
            z, dim = args[0], kwargs.get("dim", args[1] if len(args) > 1 else -1)
            if self.replay:
                return _SoftmaxLift.apply(z, *self._reference(), dim)
            y = torch.softmax(z, dim)
            self.refs.append((z, y))
            return y
        if func in _BMM:
            if self.replay:
                return _BmmLift.apply(args[0], args[1], *self._reference())
            self.refs.append((args[0], args[1]))
            return torch.bmm(args[0], args[1])
        return func(*args, **kwargs)


# --- the explainer ---------------------------------------------------------------------------------------

def background_rows(frame: pd.DataFrame, n: int = 100, seed: int = 0) -> pd.DataFrame:
    """A reproducible sample of at most ``min(n, MAX_BACKGROUND)`` rows of ``frame`` (in frame order)."""
    n = max(1, min(n, MAX_BACKGROUND, len(frame)))
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), n, replace=False))
    return frame.iloc[rows]


def _customer_ids(frame: pd.DataFrame) -> pd.Index:
    ids = frame["customer_id"] if "customer_id" in frame.columns else frame.index
    return pd.Index(pd.Series(ids).astype("str").to_numpy(), name="customer_id", dtype="str")


class HeadExplainer:
    """Built once per (model, background), then ``explain(frame)`` for any customers, all heads at once.

    ``method='auto'`` probes ``deep`` on a few rows and keeps it when it is additive within ``TOLERANCE``
    for every head, else uses ``permutation``; ``probe_error`` records what the probe measured.
    """

    def __init__(self, bundle: ModelBundle, background_frame: pd.DataFrame, *, n_background: int = 100,
                 seed: int = 0, method: str = "auto", n_permutations: int = 2) -> None:
        if method not in {"auto", "deep", "permutation"}:
            raise ValueError(f"unknown SHAP method {method!r}")
        self.model = copy.deepcopy(bundle.model).to(device="cpu", dtype=torch.float64).eval()
        self.model.requires_grad_(False)  # gradients are taken with respect to the inputs only
        self.preprocessor = bundle.preprocessor
        self.tasks = {task.name: task for task in bundle.tasks}
        self.columns = list(self.preprocessor.output_names)
        self.seed, self.n_permutations = seed, n_permutations
        rows = background_rows(background_frame, n_background, seed)
        self.background_ids = _customer_ids(rows)
        self.background = self._matrix(rows)
        # hybrid heads (nets.Blend): DeepSHAP runs on the net inside, TreeSHAP on each head's trees
        self.net = getattr(self.model, "net", self.model)
        self.trees = dict(getattr(self.model, "trees", {}))
        self._tree_explainers: dict[tuple[str, int], Any] = {}  # (task, output) → TreeSHAP
        with torch.no_grad():
            self.refs: list[tuple[Tensor, ...]] = []
            with _DeepLift(self.refs):
                self._reference_out = {k: v.numpy() for k, v in self.net(self.background).items()}
            if self.trees:
                self._reference_out = self._raw_outputs(self.background)
        self.probe_error: dict[str, float] = {}
        if method == "auto":
            probe = self.background[: min(8, len(self.background))]
            try:
                phi, base, out = self._deep(probe, self._pick(probe, list(self.tasks)), list(self.tasks))
                self.probe_error = {k: float(np.max(np.abs(base[k] + phi[k].sum(1) - out[k]))) for k in phi}
            except RuntimeError:  # e.g. a data-dependent forward pass that cannot be replayed
                self.probe_error = {k: math.inf for k in self.tasks}
            exact = all(err <= (TREE_PROBE_TOLERANCE if k in self.trees else PROBE_TOLERANCE)
                        for k, err in self.probe_error.items())
            method = "deep" if exact else "permutation"
        self.method = method

    def _matrix(self, frame: pd.DataFrame) -> Tensor:
        return torch.from_numpy(self.preprocessor.transform(frame).astype(np.float64))

    def _raw_outputs(self, x: Tensor) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {k: v.numpy() for k, v in self.model(x).items()}

    def _pick(self, x: Tensor, tasks: list[str]) -> dict[str, np.ndarray]:
        """Output column explained per row: the predicted class for multiclass heads, else 0."""
        out = self._raw_outputs(x)
        return {k: out[k].argmax(axis=1) if self.tasks[k].kind == "multiclass" else np.zeros(len(x), np.int64)
                for k in tasks}

    def _deep(self, x: Tensor, pick: dict[str, np.ndarray], tasks: list[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """DeepSHAP values, base values and outputs of the picked logits (model units)."""
        n_ref, n_cols = self.background.shape
        phi = {k: np.zeros((len(x), n_cols)) for k in tasks}
        out = {k: np.zeros(len(x)) for k in tasks}
        # pairs per pass shrink with wide inputs (binned numbers): memory grows with pairs × input columns
        step = max(1, CHUNK_PAIRS * CHUNK_COLUMNS // max(CHUNK_COLUMNS, n_cols) // n_ref)
        for start in range(0, len(x), step):
            xb = x[start:start + step]
            rows = len(xb)
            tiled = xb.repeat_interleave(n_ref, dim=0).requires_grad_(True)
            with _DeepLift(self.refs, replay=True):
                heads = self.net(tiled)
            delta = _against(tiled.detach(), self.background)
            for i, k in enumerate(tasks):
                cls = torch.from_numpy(pick[k][start:start + rows]).repeat_interleave(n_ref)[:, None]
                chosen = heads[k].gather(1, cls)
                (grad,) = torch.autograd.grad(chosen.sum(), tiled, retain_graph=i < len(tasks) - 1)
                phi[k][start:start + rows] = (grad * delta).reshape(rows, n_ref, n_cols).mean(1).numpy()
                out[k][start:start + rows] = chosen.detach().reshape(rows, n_ref)[:, 0].numpy()
        blended = self._raw_outputs(x) if any(k in self.trees for k in tasks) else {}  # one pass, every head
        for k in tasks:
            if k in self.trees:
                phi[k] = self._blend_trees(k, x, pick[k], phi[k])
                out[k] = blended[k][np.arange(len(x)), pick[k]]
        base = {k: self._reference_out[k][:, pick[k]].mean(axis=0) for k in tasks}
        return phi, base, out

    def _blend_trees(self, task: str, x: Tensor, pick: np.ndarray, net_phi: np.ndarray) -> np.ndarray:
        """A hybrid head's SHAP values ``w·net + (1 − w)·trees`` (interventional TreeSHAP against the same
        background, so the base value stays the background's mean output); per picked output, its trees only."""
        import shap

        from profile_core.hybrid import shap_trees

        values = np.zeros_like(net_phi)
        for out in np.unique(pick):
            if (task, out) not in self._tree_explainers:
                self._tree_explainers[task, out] = shap.TreeExplainer(
                    shap_trees(self.trees[task], int(out)), data=self.background.numpy(),
                    feature_perturbation="interventional", model_output="raw")
            rows = pick == out
            values[rows] = np.asarray(self._tree_explainers[task, out].shap_values(
                x[rows].numpy(), check_additivity=False)).reshape(int(rows.sum()), x.shape[1])
        w = float(self.trees[task].weight)
        return w * net_phi + (1 - w) * values

    def _permutation(self, x: Tensor, pick: dict[str, np.ndarray], tasks: list[str]
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
        import shap

        widths = [self.tasks[k].n_classes for k in tasks]
        offsets = np.cumsum([0, *widths])

        def f(a: np.ndarray) -> np.ndarray:
            out = self._raw_outputs(torch.from_numpy(np.asarray(a, dtype=np.float64)))
            return np.hstack([out[k] for k in tasks])

        background = self.background.numpy()
        explainer = shap.PermutationExplainer(f, shap.maskers.Independent(background, max_samples=len(background)),
                                              seed=self.seed)
        n_cols = background.shape[1]
        res = explainer(x.numpy(), max_evals=self.n_permutations * (2 * n_cols + 1), silent=True)
        values, base_all = np.asarray(res.values), np.asarray(res.base_values)
        rows = np.arange(len(x))
        raw = f(x.numpy())
        phi, base, out = {}, {}, {}
        for k, o in zip(tasks, offsets[:-1], strict=True):
            col = o + pick[k]
            phi[k], base[k], out[k] = values[rows, :, col], base_all[rows, col], raw[rows, col]
        return phi, base, out

    def explain(self, frame: pd.DataFrame, tasks: list[str] | None = None) -> Explanation:
        """SHAP values of every (or the named) head for the customers in ``frame`` (a feature frame)."""
        return self.explain_inputs(self.preprocessor.transform(frame), _customer_ids(frame), tasks)

    def explain_inputs(self, inputs: np.ndarray, customer_ids: pd.Index | list[str],
                       tasks: list[str] | None = None) -> Explanation:
        """``explain`` for rows already transformed by the preprocessor (saves the transform per call)."""
        tasks = list(self.tasks) if tasks is None else list(tasks)
        unknown = [k for k in tasks if k not in self.tasks]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown}; the model has {list(self.tasks)}")
        ids = pd.Index(pd.Series(list(customer_ids), dtype="str"), name="customer_id", dtype="str")
        x = torch.from_numpy(np.array(inputs, dtype=np.float64).reshape(len(ids), len(self.columns)))
        pick = self._pick(x, tasks)
        if len(x):
            phi, base, out = (self._deep if self.method == "deep" else self._permutation)(x, pick, tasks)
        else:
            phi = {k: np.zeros((0, len(self.columns))) for k in tasks}
            base, out = {k: np.zeros(0) for k in tasks}, {k: np.zeros(0) for k in tasks}
        values, classes = {}, {}
        for k in tasks:
            spec = self.tasks[k]
            scale, shift = (spec.std, spec.mean) if spec.kind == "regression" else (1.0, 0.0)
            values[k] = pd.DataFrame(phi[k] * scale, index=ids, columns=self.columns)
            base[k], out[k] = base[k] * scale + shift, out[k] * scale + shift
            if spec.kind == "multiclass":
                classes[k] = np.asarray(spec.classes, dtype=object)[pick[k]]
        expl = Explanation(values=values, base_values=base, outputs=out,
                           output_kind={k: OUTPUT_KIND[self.tasks[k].kind] for k in tasks},
                           explained_class=classes, method=self.method,
                           inputs=pd.DataFrame(x.numpy(), index=ids, columns=self.columns),
                           tasks={k: self.tasks[k] for k in tasks})
        expl.additivity_error = additivity_errors(expl)
        return expl


def explain(bundle: ModelBundle, frame: pd.DataFrame, *, background: pd.DataFrame | None = None,
            n_background: int = 100, seed: int = 0, tasks: list[str] | None = None,
            method: str = "auto") -> Explanation:
    """One-off explanation of ``frame``; background: a seeded sample of ``background`` (default: ``frame``)."""
    explainer = HeadExplainer(bundle, frame if background is None else background, n_background=n_background,
                              seed=seed, method=method)
    return explainer.explain(frame, tasks)


# --- attributes people recognise ---------------------------------------------------------------------------

def _info_frame(names: list[str]) -> pd.DataFrame:
    infos = [feature_info(n) for n in names]
    return pd.DataFrame({"zh": [i.zh for i in infos], "en": [i.en for i in infos],
                         "category": [i.category for i in infos], "kind": [i.kind for i in infos],
                         "unit_zh": [i.unit_zh for i in infos], "unit_en": [i.unit_en for i in infos]},
                        index=pd.Index(names, name="attribute", dtype="str"))


def _raw_from_inputs(inputs: pd.DataFrame, preprocessor: Preprocessor) -> pd.DataFrame:
    """Attribute values rebuilt from the model inputs (imputed numbers show as imputed)."""
    raw: dict[str, Any] = {}
    for col in preprocessor.numeric:
        raw[col] = preprocessor.raw_value(col, inputs[col].to_numpy())
    source = preprocessor.source_of
    for col in preprocessor.categorical:
        block = [c for c in inputs.columns if source.get(c) == col and "=" in c]
        hot = inputs[block].to_numpy()
        labels = np.asarray([c.split("=", 1)[1] for c in block], dtype=object)
        raw[col] = np.where(hot.max(axis=1) > 0, labels[hot.argmax(axis=1)], None) if block else None
    return pd.DataFrame(raw, index=inputs.index)


def to_attributes(expl: Explanation, preprocessor: Preprocessor, raw_frame: pd.DataFrame | None = None
                  ) -> Explanation:
    """Sum input-level SHAP values into their source attributes (all one-hot columns of 职业 → 职业, a
    missing-value indicator → its number). Row sums are unchanged, so additivity still holds.

    ``inputs`` of the result holds the attributes' raw values: from ``raw_frame`` (the feature frame, rows
    matched by customer_id) when given, else rebuilt from the model inputs.
    """
    if expl.level == "attribute":
        return expl
    source = preprocessor.source_of
    cols = list(next(iter(expl.values.values())).columns) if expl.values else list(expl.inputs.columns)
    attributes = list(dict.fromkeys(source.get(c, c) for c in cols))
    agg = np.zeros((len(cols), len(attributes)))
    agg[np.arange(len(cols)), [attributes.index(source.get(c, c)) for c in cols]] = 1.0
    values = {k: pd.DataFrame(v.to_numpy() @ agg, index=v.index, columns=attributes)
              for k, v in expl.values.items()}
    if raw_frame is not None:
        raw = raw_frame.set_index(_customer_ids(raw_frame)).reindex(expl.inputs.index)
        raw = raw[[a for a in attributes if a in raw.columns]].reindex(columns=attributes)
    else:
        raw = _raw_from_inputs(expl.inputs, preprocessor).reindex(columns=attributes)
    return replace(expl, values=values, inputs=raw, level="attribute", features=_info_frame(attributes),
                   additivity_error=dict(expl.additivity_error))


# --- values people read ------------------------------------------------------------------------------------

def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _number(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def format_value(value: Any, info: FeatureInfo, lang: str = "zh") -> str:
    """A raw attribute value with its unit: ``45 天``, ``12,300 元``, ``83%``, ``1.25 倍``; categories as is."""
    if _missing(value):
        return t("explain.value.missing", lang)
    if info.kind != "numeric" or isinstance(value, str):
        return str(value)
    x = float(value)
    unit = info.unit_zh if lang == "zh" else info.unit_en
    if unit == "%":
        pct = 100 * x
        return f"{_number(pct, 0 if abs(pct) >= 10 else 1)}%"
    if unit in {"元", "CNY"}:
        text = _number(x, 0 if abs(x) >= 100 else 2)
    elif x.is_integer():
        text = _number(x, 0)
    else:
        text = _number(x, 2 if abs(x) < 10 else 1)
    return f"{text} {unit}" if unit else text


def risk_direction(task: TaskSpec, explained_class: str | None = None) -> int:
    """+1 when a positive SHAP value pushes towards more risk, -1 when it pushes towards less.

    Binary: the positive class is the adverse event (default). Regression: a higher value is riskier unless
    the label is a score (credit_score: higher is better). Multiclass (ordered, A best … E worst): the
    explained logit is the predicted class's, so it points to risk when that class is in the worse half.
    """
    if task.kind == "binary":
        return 1
    if task.kind == "regression":
        return -1 if task.label in HIGHER_IS_BETTER or task.name in HIGHER_IS_BETTER else 1
    if explained_class is None or explained_class not in task.classes:
        return 1
    k = task.classes.index(explained_class)
    return -1 if k < (len(task.classes) - 1) / 2 else 1


@dataclass(frozen=True)
class Reason:
    attribute: str
    name: str  # display name in the requested language
    value: str  # formatted with unit
    raw: Any
    percentile: float | None  # share of the population with a lower value, 0–100 (numbers only)
    shap: float  # contribution to the explained output (output units)
    risk: float  # contribution towards risk (shap × risk direction)
    sentence: str


@dataclass(frozen=True)
class ReasonCodes:
    task: str
    customer_id: str
    up: list[Reason]  # pushing towards risk, strongest first
    down: list[Reason]  # pulling away from risk, strongest first


def _sentence(name: str, value: str, raw: Any, info: FeatureInfo, pop: pd.Series | None, lang: str
              ) -> tuple[str, float | None]:
    if _missing(raw):
        return t("explain.reason.missing", lang, name=name), None
    if info.kind != "numeric" or isinstance(raw, str) or pop is None or not pd.api.types.is_numeric_dtype(pop):
        return t("explain.reason.category", lang, name=name, value=value), None
    vals = pop.to_numpy(dtype=float, na_value=np.nan)
    vals = vals[~np.isnan(vals)]
    if not len(vals):
        return t("explain.reason.category", lang, name=name, value=value), None
    below, above = float(np.mean(vals < float(raw))), float(np.mean(vals > float(raw)))
    pct = 100 * below
    if 1 - below - above >= 0.5:
        return t("explain.reason.common", lang, name=name, value=value), pct
    if below >= above:
        return t("explain.reason.higher", lang, name=name, value=value, pct=math.floor(100 * below)), pct
    return t("explain.reason.lower", lang, name=name, value=value, pct=math.floor(100 * above)), pct


def reason_codes(expl_attr: Explanation, raw_frame: pd.DataFrame | None, customer_id: str, task: str, *,
                 lang: str = "zh", top: int = 4, population: pd.DataFrame | None = None) -> ReasonCodes:
    """The ``top`` attributes pushing ``task`` towards risk (``up``) and away from it (``down``), with plain
    sentences such as "近3个月最大逾期天数 45 天，高于 92% 的客户".

    Values come from ``raw_frame`` (default: the explanation's raw inputs); percentiles compare with
    ``population`` (default: ``raw_frame``, else the explained customers).
    """
    if expl_attr.level != "attribute" or expl_attr.features is None:
        raise ValueError("reason codes need an attribute-level explanation (to_attributes)")
    customer_id = str(customer_id)
    if raw_frame is not None:
        rows = raw_frame.loc[(_customer_ids(raw_frame) == customer_id)]
        raw = rows.iloc[0].to_dict() if len(rows) else {}
    else:
        raw = expl_attr.inputs.loc[customer_id].to_dict()
    pop_frame = population if population is not None else raw_frame if raw_frame is not None else expl_attr.inputs
    shap_row = expl_attr.values[task].loc[customer_id]
    attributes, shap = list(shap_row.index), shap_row.to_numpy(dtype=float)
    classes = expl_attr.explained_class.get(task)
    cls = None if classes is None else str(classes[expl_attr.customer_ids.get_loc(customer_id)])
    risk = shap * risk_direction(expl_attr.tasks[task], cls)
    names = expl_attr.features["zh" if lang == "zh" else "en"]
    order = np.argsort(-risk, kind="stable")
    # a protected attribute is never a reason, even in a model that was given one (an older bundle)
    citable = np.ones(len(attributes), dtype=bool)
    citable[[attributes.index(c) for c in protected_columns(attributes)]] = False
    sides = {"up": [i for i in order if risk[i] > 0 and citable[i]][:top],
             "down": [i for i in order[::-1] if risk[i] < 0 and citable[i]][:top]}
    reasons: dict[str, list[Reason]] = {}
    for side, picked in sides.items():
        reasons[side] = []
        for i in picked:
            attribute = attributes[i]
            info, name = feature_info(attribute), str(names.get(attribute, attribute))
            value_raw = raw.get(attribute)
            value = format_value(value_raw, info, lang)
            pop = pop_frame[attribute] if attribute in pop_frame.columns else None
            sentence, pct = _sentence(name, value, value_raw, info, pop, lang)
            reasons[side].append(Reason(attribute, name, value, value_raw, pct, float(shap[i]), float(risk[i]),
                                        sentence))
    return ReasonCodes(task, customer_id, reasons["up"], reasons["down"])


# --- global views ----------------------------------------------------------------------------------------

def global_importance(expl: Explanation) -> pd.DataFrame:
    """attribute, category, zh, en; per task the mean |SHAP| share (sums to 1 per task) and ``<task>_raw``
    (mean |SHAP| in output units). Sorted by the mean share over tasks."""
    names = list(next(iter(expl.values.values())).columns)
    meta = expl.features if expl.features is not None else _info_frame(names)
    out = pd.DataFrame({"attribute": names, "category": meta.loc[names, "category"].to_numpy(),
                        "zh": meta.loc[names, "zh"].to_numpy(), "en": meta.loc[names, "en"].to_numpy()})
    for task, v in expl.values.items():
        raw = v.abs().mean(axis=0).to_numpy() if len(v) else np.zeros(len(names))
        total = raw.sum()
        out[task] = raw / total if total > 0 else 0.0
        out[f"{task}_raw"] = raw
    out["_order"] = out[list(expl.values)].mean(axis=1)
    return out.sort_values("_order", ascending=False, kind="stable").drop(columns="_order").reset_index(drop=True)


def dependence(expl_attr: Explanation, raw_frame: pd.DataFrame | None, task: str, attribute: str) -> pd.DataFrame:
    """customer_id, value (raw), shap: one attribute's SHAP against its value, for a dependence plot."""
    ids = expl_attr.customer_ids
    if raw_frame is not None and attribute in raw_frame.columns:
        value = raw_frame.set_index(_customer_ids(raw_frame))[attribute].reindex(ids).to_numpy()
    else:
        value = expl_attr.inputs[attribute].to_numpy()
    return pd.DataFrame({"customer_id": ids.to_numpy(), "value": value,
                         "shap": expl_attr.values[task][attribute].to_numpy()})


# --- caching (owned by the caller) -----------------------------------------------------------------------

def model_key(bundle: ModelBundle) -> str:
    """The bundle's weights sha256 (manifest), else a hash of the model's parameters."""
    manifest = getattr(bundle, "manifest", None)
    if isinstance(manifest, dict) and manifest.get("weights_sha256"):
        return str(manifest["weights_sha256"])
    import hashlib

    h = hashlib.sha256()
    for name, tensor in bundle.model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


class ExplanationCache:
    """A few explanations keyed by (model sha256, data fingerprint, background, seed, tasks); the caller
    owns the object (e.g. the app's ``st.cache_resource``), nothing is global. Least recently used goes."""

    def __init__(self, max_items: int = 4) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple, Explanation] = OrderedDict()
        self._explainers: OrderedDict[tuple, HeadExplainer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _put(self, store: OrderedDict, key: tuple, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.max_items:
            store.popitem(last=False)

    def explainer(self, bundle: ModelBundle, background: pd.DataFrame, *, n_background: int = 100,
                  seed: int = 0) -> HeadExplainer:
        from profile_core.pipeline import data_fingerprint

        key = (model_key(bundle), data_fingerprint(background), n_background, seed)
        if key not in self._explainers:
            self._put(self._explainers, key, HeadExplainer(bundle, background, n_background=n_background,
                                                           seed=seed))
        self._explainers.move_to_end(key)
        return self._explainers[key]

    def explain(self, bundle: ModelBundle, frame: pd.DataFrame, *, background: pd.DataFrame | None = None,
                n_background: int = 100, seed: int = 0, tasks: list[str] | None = None) -> Explanation:
        from profile_core.pipeline import data_fingerprint

        bg = frame if background is None else background
        key = (model_key(bundle), data_fingerprint(frame), data_fingerprint(bg), n_background, seed,
               tuple(tasks or ()))
        if key not in self._items:
            explainer = self.explainer(bundle, bg, n_background=n_background, seed=seed)
            self._put(self._items, key, explainer.explain(frame, tasks))
        self._items.move_to_end(key)
        return self._items[key]
