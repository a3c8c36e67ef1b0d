"""Similar customers: the k customers closest to one customer in the model's shared representation.

**The representation.** Every architecture here ends in one tower per task (``net.heads[task]``); what a head
reads is the customer as the model has learnt to see them. The embedding of a customer is the mean, over the
model's heads, of the vector each head reads:

* SharedBottom: every head reads the shared tower's output, so the embedding *is* the shared-bottom output;
* MMoE: the mean over tasks of the gated mixture of the shared experts (each gate's view of the experts);
* PLE: the mean over tasks of the last extraction layer's task representation (task experts + shared experts
  mixed by the task's gate);
* a net of several members (``nets.MemberMean``): the members' embeddings side by side (each member learnt its
  own space), members no head reads left out.

The vectors are captured with forward pre-hooks on the heads, so no architecture's forward pass is written
twice and a new architecture with ``heads`` works unchanged. Customers are compared by cosine similarity
(``sklearn.neighbors.NearestNeighbors``, metric ``cosine``, brute force: exact), so the scale of a layer does not
matter, only the direction.

**Scope.** A search runs over the customers the caller's ``privacy.Policy`` may see (an RM: own customers
only, the same rule as every other screen), never returns the customer asked about, and masks names as the
policy requires (``privacy.mask_frame``). Asking about a customer the policy may not see raises
``privacy.AccessDenied``.

No I/O, no caching: the caller builds one :class:`SimilarIndex` per (model, data) and keeps it (``ui.similar``,
the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import NearestNeighbors
from torch import Tensor, nn

from profile_core.i18n import t
from profile_core.privacy import Policy, mask_frame
from profile_core.tasks import TaskSpec, encode_label

DEFAULT_K = 5
MAX_K = 50
BATCH_ROWS = 8192  # customers per forward pass while embedding


def _head_modules(net: nn.Module) -> list[tuple[int, nn.Module]]:
    """(member index, head module) for every task head of ``net`` (a member net or a MemberMean)."""
    net = getattr(net, "net", net)  # a hybrid (nets.Blend): the net inside; trees have no representation
    members = list(net.members) if hasattr(net, "members") else [net]  # nets.MemberMean holds members
    heads = []
    for i, member in enumerate(members):
        for head in getattr(member, "heads", {}).values():
            heads.append((i, head))
    if not heads:
        raise ValueError(f"{type(net).__name__} has no task heads to read a representation from")
    return heads


@torch.no_grad()
def representation(net: nn.Module, x: Tensor) -> Tensor:
    """(B, d) embedding of the inputs ``x`` (B, n_inputs): see the module docstring."""
    seen: dict[int, list[Tensor]] = {}
    hooks = [head.register_forward_pre_hook(lambda _m, args, i=i: seen.setdefault(i, []).append(args[0]))
             for i, head in _head_modules(net)]
    try:
        net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat([torch.stack(seen[i]).mean(0) for i in sorted(seen)], dim=1)


def embed(bundle, features: pd.DataFrame, *, batch_rows: int = BATCH_ROWS) -> np.ndarray:
    """(n, d) float32 embeddings of the customers in ``features`` (a feature frame, rows in order), through the
    bundle's preprocessing and net (eval mode: no dropout)."""
    net = bundle.model
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    dtype = next(net.parameters()).dtype
    x_all = bundle.preprocessor.transform(features)
    parts = []
    try:
        for start in range(0, len(x_all), batch_rows):
            x = torch.as_tensor(np.asarray(x_all[start:start + batch_rows]), dtype=dtype, device=device)
            parts.append(representation(net, x).float().cpu().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


@dataclass
class SimilarIndex:
    """Embeddings of a portfolio with what a neighbour list shows: ``customers`` holds ``customer_id``, the
    owner ``rm_id`` and ``name`` when the data has them, the predicted head columns (``<task>_pred`` /
    ``<task>_prob``) and the observed labels (``label:<task>``, NaN when unknown), one row per embedding."""

    customers: pd.DataFrame
    embeddings: np.ndarray
    tasks: list[TaskSpec]
    _searchers: dict[str | None, tuple[NearestNeighbors, np.ndarray]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if len(self.customers) != len(self.embeddings):
            raise ValueError(f"{len(self.customers)} customers but {len(self.embeddings)} embeddings")
        self.customers = self.customers.reset_index(drop=True)
        self._row = {cid: i for i, cid in enumerate(self.customers["customer_id"])}

    def __len__(self) -> int:
        return len(self.embeddings)

    def _scope(self, policy: Policy) -> np.ndarray:
        """Rows ``policy`` may see (an RM: rows whose rm_id is theirs; a row without an owner is nobody's)."""
        if policy.role != "rm":
            return np.arange(len(self))
        owners = self.customers["rm_id"] if "rm_id" in self.customers.columns else pd.Series(None, index=self.customers.index)
        mine = owners.map(lambda v: "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v).strip())
        return np.flatnonzero((mine == str(policy.rm_id).strip()).to_numpy())

    def _searcher(self, policy: Policy) -> tuple[NearestNeighbors, np.ndarray]:
        key = policy.rm_id if policy.role == "rm" else None
        if key not in self._searchers:
            rows = self._scope(policy)
            nn_ = NearestNeighbors(metric="cosine", algorithm="brute")
            nn_.fit(self.embeddings[rows] if len(rows) else np.zeros((1, self.embeddings.shape[1])))
            self._searchers[key] = (nn_, rows)
        return self._searchers[key]

    def neighbours(self, customer_id: str, policy: Policy, k: int = DEFAULT_K) -> pd.DataFrame:
        """The ``k`` customers most similar to ``customer_id`` among those ``policy`` may see, most similar first:
        ``rank``, ``similarity`` (cosine, 1 = same direction), then the columns of ``customers`` with names masked
        as ``policy`` requires. Fewer than ``k`` rows when the scope is smaller. ``KeyError`` for an unknown
        customer, ``privacy.AccessDenied`` for one the policy may not see."""
        k = int(k)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}, not {k}")
        row = self._row.get(str(customer_id))
        if row is None:
            raise KeyError(customer_id)
        policy.check(self.customers.iloc[row])
        searcher, rows = self._searcher(policy)
        if not len(rows):
            return self._frame([], [], policy)
        n = min(k + 1, len(rows))  # one more: the customer themselves is in their own scope
        dist, idx = searcher.kneighbors(self.embeddings[row:row + 1], n_neighbors=n)
        picked = rows[idx[0]]
        keep = picked != row
        return self._frame(picked[keep][:k], 1.0 - dist[0][keep][:k], policy)

    def _frame(self, rows: Sequence[int], similarity: Sequence[float], policy: Policy) -> pd.DataFrame:
        out = self.customers.iloc[list(rows)].reset_index(drop=True)
        out.insert(0, "similarity", np.asarray(similarity, dtype=float).clip(-1.0, 1.0))
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return mask_frame(out, policy).reset_index(drop=True)  # rows are in scope already: this masks names


def head_columns(task: TaskSpec) -> str:
    """The prediction column a task's neighbour list shows: the value, the probability, or the class."""
    return f"{task.name}_prob" if task.kind == "binary" else f"{task.name}_pred"


def build_index(bundle, features: pd.DataFrame, predictions: pd.DataFrame, *,
                customers: pd.DataFrame | None = None) -> SimilarIndex:
    """Embed every customer of ``features`` once (see :func:`embed`) and gather what a neighbour list shows:
    ``predictions`` (``bundle.predict``'s frame, same customers) and the observed labels of the bundle's tasks
    where ``features`` has them; ``customers`` (the customers table) adds ``name`` and ``rm_id`` when the feature
    frame lacks them."""
    ids = features["customer_id"].astype("str").to_numpy()
    out = pd.DataFrame({"customer_id": pd.array(ids, dtype="str")})
    extra = customers.set_index(customers["customer_id"].astype("str")) if customers is not None else None
    for col in ("name", "rm_id"):
        if col in features.columns:
            out[col] = features[col].to_numpy()
        elif extra is not None and col in extra.columns:
            out[col] = extra[col].reindex(ids).to_numpy()
    pred = predictions.set_index(predictions["customer_id"].astype("str")).reindex(ids)
    tasks = list(bundle.tasks)
    for task in tasks:
        col = head_columns(task)
        if col in pred.columns:
            out[col] = pred[col].to_numpy()
        if task.label in features.columns:
            y = encode_label(features.reset_index(drop=True), task, standardize=False)
            if task.kind == "multiclass":
                out[f"label:{task.name}"] = np.where(y >= 0, np.asarray(task.classes, dtype=object)[np.clip(y, 0, None)],
                                                     None)
            else:
                out[f"label:{task.name}"] = y.astype(float)
    return SimilarIndex(out, embed(bundle, features), tasks)


# --- what a screen shows ------------------------------------------------------------------------------------

def _pred_text(task: TaskSpec, value) -> str:
    from profile_core.views import fmt_number, fmt_share

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if task.kind == "binary":
        return fmt_share(float(value))
    if task.kind == "regression":
        return fmt_number(float(value))
    return str(value)


def _label_text(task: TaskSpec, value, lang: str) -> str:
    from profile_core.views import fmt_number

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if task.kind == "binary":
        return t("similar.yes" if float(value) == 1.0 else "similar.no", lang)
    if task.kind == "regression":
        return fmt_number(float(value))
    return str(value)


def neighbours_table(found: pd.DataFrame, tasks: Sequence[TaskSpec], lang: str = "zh") -> pd.DataFrame:
    """The neighbour list for people: rank, customer, (masked) name, similarity as a percentage, then per head
    the prediction and — where the data has the label — the observed outcome, each under the head's own name."""
    cols: dict[str, object] = {t("similar.col.rank", lang): found["rank"].to_numpy(),
                               t("similar.col.customer", lang): found["customer_id"].to_numpy()}
    if "name" in found.columns:
        cols[t("similar.col.name", lang)] = found["name"].to_numpy()
    cols[t("similar.col.similarity", lang)] = [f"{s:.1%}" for s in found["similarity"]]
    for task in tasks:
        col = head_columns(task)
        name = task.display(lang)
        if col in found.columns:
            cols[t("similar.col.predicted", lang, task=name)] = [_pred_text(task, v) for v in found[col]]
        label = f"label:{task.name}"
        if label in found.columns and found[label].notna().any():
            cols[t("similar.col.observed", lang, task=name)] = [_label_text(task, v, lang) for v in found[label]]
    return pd.DataFrame(cols)


def outcome_summary(found: pd.DataFrame, tasks: Sequence[TaskSpec], lang: str = "zh") -> list[str]:
    """One sentence per binary head with known labels among the neighbours: how many of them had the outcome
    (e.g. "2 of the 5 similar customers with a known outcome had default = yes")."""
    lines = []
    for task in tasks:
        label = f"label:{task.name}"
        if task.kind != "binary" or label not in found.columns:
            continue
        y = pd.to_numeric(found[label], errors="coerce").dropna()
        if len(y):
            lines.append(t("similar.summary", lang, task=task.display(lang), bad=int((y == 1).sum()), n=len(y)))
    return lines
