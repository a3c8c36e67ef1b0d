"""Multi-task networks: SharedBottom (the reference design), MMoE and PLE.

Every net maps ``x`` (B, n_features) to ``{task: logits}`` with (B, 1) for regression/binary and (B, K) for
multiclass. Activations are fresh ``nn.ReLU`` modules (never functional, in-place or reused) so that SHAP's
DeepExplainer can hook them; ``net.head(task)`` wraps one head as a single-output module for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class NetConfig:
    input_dim: int
    outputs: dict[str, int]  # task name → output width
    hidden: tuple[int, ...] = (128, 64)  # shared tower (SharedBottom) / each expert (MMoE, PLE)
    head_hidden: tuple[int, ...] = (32,)  # each task tower before its output layer
    n_experts: int = 4  # MMoE
    n_shared_experts: int = 2  # PLE, per level
    n_task_experts: int = 1  # PLE, per task and level
    n_levels: int = 1  # PLE extraction (CGC) layers
    dropout: float = 0.1
    # more than one member: a MemberMean of ``members`` nets of the architecture; ``member_of`` names the members
    # each task averages (a task left out averages all): per-head checkpoints (one epoch's weights per member,
    # each head reading its best) or an ensemble of seeds
    members: int = 1
    member_of: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # hybrid heads (profile_core.hybrid): task → (nodes, trees, depth) of the tree ensemble blended into its
    # logits; empty: the net alone
    trees: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["head_hidden"] = list(self.hidden), list(self.head_hidden)
        d["member_of"] = {t: list(v) for t, v in self.member_of.items()}
        d["trees"] = {t: list(v) for t, v in self.trees.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        return cls(**{**d, "hidden": tuple(d["hidden"]), "head_hidden": tuple(d["head_hidden"]),
                      "member_of": {t: tuple(v) for t, v in d.get("member_of", {}).items()},
                      "trees": {t: tuple(v) for t, v in d.get("trees", {}).items()}})

    def single(self) -> NetConfig:
        """The configuration of one member."""
        return replace(self, members=1, member_of={}, trees={})

    def members_of(self, task: str) -> tuple[int, ...]:
        return self.member_of.get(task) or tuple(range(self.members))


def mlp(in_dim: int, sizes: tuple[int, ...], dropout: float) -> nn.Sequential:
    """Linear → ReLU (→ Dropout) per size; a fresh ReLU module each time."""
    layers: list[nn.Module] = []
    for size in sizes:
        layers += [nn.Linear(in_dim, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = size
    return nn.Sequential(*layers)


def _last_linear(module: nn.Module) -> nn.Linear:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


class Head(nn.Module):
    """A task tower: hidden layers then one Linear to the task's logits."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float) -> None:
        super().__init__()
        self.tower = mlp(in_dim, hidden, dropout)
        self.out = nn.Linear(hidden[-1] if hidden else in_dim, out_dim)

    def forward(self, h: Tensor) -> Tensor:
        return self.out(self.tower(h))


class HeadOutput(nn.Module):
    """``x → net(x)[task]``: one head of a multi-task net as a single-tensor module (for SHAP)."""

    def __init__(self, net: MultiTaskNet, task: str) -> None:
        super().__init__()
        self.net, self.task = net, task

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[self.task]


class MultiTaskNet(nn.Module):
    name: ClassVar[str] = ""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.task_names = list(config.outputs)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def head(self, task: str) -> HeadOutput:
        if task not in self.config.outputs:
            raise KeyError(task)
        return HeadOutput(self, task)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Weights of the last shared layer(s): what GradNorm balances gradient norms on."""
        raise NotImplementedError

    def _heads(self, in_dim: int) -> nn.ModuleDict:
        c = self.config
        return nn.ModuleDict({t: Head(in_dim, c.head_hidden, k, c.dropout) for t, k in c.outputs.items()})


class SharedBottom(MultiTaskNet):
    """Hard parameter sharing: one shared FC tower, one head tower per task."""

    name = "shared-bottom"

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        self.bottom = mlp(config.input_dim, config.hidden, config.dropout)
        self.heads = self._heads(config.hidden[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.bottom(x)
        return {t: head(h) for t, head in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [_last_linear(self.bottom).weight]


def _gate(in_dim: int, n: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, n), nn.Softmax(dim=-1))


def _mix(gate: Tensor, experts: Tensor) -> Tensor:
    """Gate (B, n) weighted sum of expert outputs (B, n, H) → (B, H)."""
    return torch.bmm(gate.unsqueeze(1), experts).squeeze(1)


class MMoE(MultiTaskNet):
    """Multi-gate mixture of experts (Ma et al. 2018): shared experts, one softmax gate per task."""

    name = "mmoe"

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        c = config
        self.experts = nn.ModuleList(mlp(c.input_dim, c.hidden, c.dropout) for _ in range(c.n_experts))
        self.gates = nn.ModuleDict({t: _gate(c.input_dim, c.n_experts) for t in c.outputs})
        self.heads = self._heads(c.hidden[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)
        return {t: self.heads[t](_mix(self.gates[t](x), experts)) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [_last_linear(e).weight for e in self.experts]


class CGC(nn.Module):
    """One PLE extraction layer: shared experts + per-task experts, a gate per task (and one for the shared
    path when another layer follows)."""

    def __init__(self, in_dim: int, config: NetConfig, last: bool) -> None:
        super().__init__()
        c, tasks = config, list(config.outputs)
        self.shared = nn.ModuleList(mlp(in_dim, c.hidden, c.dropout) for _ in range(c.n_shared_experts))
        self.task_experts = nn.ModuleDict({
            t: nn.ModuleList(mlp(in_dim, c.hidden, c.dropout) for _ in range(c.n_task_experts)) for t in tasks})
        self.task_gates = nn.ModuleDict({t: _gate(in_dim, c.n_task_experts + c.n_shared_experts) for t in tasks})
        n_all = c.n_shared_experts + len(tasks) * c.n_task_experts
        self.shared_gate = None if last else _gate(in_dim, n_all)

    def forward(self, task_in: dict[str, Tensor], shared_in: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        shared = [e(shared_in) for e in self.shared]
        own = {t: [e(task_in[t]) for e in experts] for t, experts in self.task_experts.items()}
        task_out = {t: _mix(self.task_gates[t](task_in[t]), torch.stack(own[t] + shared, dim=1)) for t in own}
        if self.shared_gate is None:
            return task_out, None
        every = shared + [h for t in own for h in own[t]]
        return task_out, _mix(self.shared_gate(shared_in), torch.stack(every, dim=1))


class PLE(MultiTaskNet):
    """Progressive layered extraction (Tang et al. 2020): ``n_levels`` CGC layers, then task heads."""

    name = "ple"

    def __init__(self, config: NetConfig) -> None:
        super().__init__(config)
        c = config
        dims = [c.input_dim] + [c.hidden[-1]] * (c.n_levels - 1)
        self.levels = nn.ModuleList(CGC(d, c, last=i == c.n_levels - 1) for i, d in enumerate(dims))
        self.heads = self._heads(c.hidden[-1])

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        task_h, shared_h = {t: x for t in self.task_names}, x
        for level in self.levels:
            task_h, shared_h = level(task_h, shared_h)
        return {t: self.heads[t](task_h[t]) for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [_last_linear(e).weight for e in self.levels[-1].shared]


ARCHITECTURES: dict[str, type[MultiTaskNet]] = {cls.name: cls for cls in (SharedBottom, MMoE, PLE)}


class MemberMean(MultiTaskNet):
    """``config.members`` nets of one architecture; task t's logits are the mean of its members' logits for t
    (``config.member_of``). A mean is linear, so SHAP stays exact and additive. Only the members some task reads
    run. ``name`` is the members' architecture, so a bundle rebuilds it with ``build_net``."""

    def __init__(self, arch: str, config: NetConfig) -> None:
        super().__init__(config)
        self.name = ARCHITECTURES[arch].name  # type: ignore[misc]
        self.members = nn.ModuleList(ARCHITECTURES[arch](config.single()) for _ in range(config.members))
        self.use = {t: config.members_of(t) for t in self.task_names}
        self.running = sorted({i for used in self.use.values() for i in used})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        outs = {i: self.members[i](x) for i in self.running}
        return {t: outs[used[0]][t] if len(used) == 1 else torch.stack([outs[i][t] for i in used]).mean(0)
                for t, used in self.use.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.members for p in m.shared_parameters()]


MAX_TREE_DEPTH = 64  # traversal steps per tree; LightGBM trees here are capped far below


@lru_cache(maxsize=1)
def _walk_trees():
    """The compiled tree walk (imported and compiled on first use: numba costs ~1 s to start)."""
    import numba

    @numba.njit(nogil=True, cache=False)
    def walk(x, feature, threshold, left, right, value, roots, depth, out):  # pragma: no cover - compiled
        for i in range(x.shape[0]):
            for root in roots:
                node = root
                for _ in range(depth):
                    if left[node] == node:
                        break
                    node = left[node] if x[i, feature[node]] <= threshold[node] else right[node]
                for k in range(value.shape[1]):
                    out[i, k] += value[node, k]

    return walk


class TreeEnsemble(nn.Module):
    """A gradient-boosted tree ensemble as tensors (``profile_core.hybrid.tree_arrays``): x (B, n_inputs) →
    (B, out_dim) raw scores, the sum of each tree's leaf. Nodes are stored tree by tree in pre-order (a leaf
    points to itself); splits are ``x[feature] <= threshold`` in float64, as LightGBM compares. ``weight`` is
    the net's share of the blended logits, ``1 - weight`` the trees'.

    On CPU each row walks each tree in compiled code (numba). On a GPU every (row, tree) pair walks down one
    level per step as tensors, and pairs that reached a leaf drop out: the work follows the leaves' mean depth,
    not the deepest tree's (LightGBM's leaf-wise trees are lopsided)."""

    CHUNK_PAIRS = 4_000_000  # (row, tree) pairs walked at a time

    def __init__(self, n_nodes: int, n_trees: int, depth: int, out_dim: int) -> None:
        super().__init__()
        self.depth = depth
        self.register_buffer("feature", torch.zeros(n_nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(n_nodes, dtype=torch.float64))
        self.register_buffer("left", torch.zeros(n_nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(n_nodes, dtype=torch.long))
        self.register_buffer("value", torch.zeros(n_nodes, out_dim))
        self.register_buffer("count", torch.zeros(n_nodes, dtype=torch.float64))  # training rows per node
        self.register_buffer("roots", torch.zeros(n_trees, dtype=torch.long))
        self.register_buffer("weight", torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        n_trees = len(self.roots)
        if not len(x) or not n_trees:
            return x.new_zeros((len(x), self.value.shape[1]))
        if x.device.type == "cpu":  # trees have no gradient: the compiled walk; on a GPU the tensor walk
            return self._walk_compiled(x)
        return self._walk(x)

    def _walk(self, x: Tensor) -> Tensor:
        n_trees = len(self.roots)
        split = self.left != torch.arange(len(self.left), device=self.left.device)
        step = max(1, self.CHUNK_PAIRS // n_trees)
        parts = []
        for start in range(0, len(x), step):
            xb = x[start:start + step].to(torch.float64)
            node = self.roots.repeat(len(xb))
            row = torch.arange(len(xb), device=x.device).repeat_interleave(n_trees)
            walking = torch.arange(len(node), device=x.device)
            for _ in range(self.depth):
                at = node[walking]
                going = split[at]
                walking, at = walking[going], at[going]
                if not len(walking):
                    break
                go_left = xb[row[walking], self.feature[at]] <= self.threshold[at]
                node[walking] = torch.where(go_left, self.left[at], self.right[at])
            parts.append(self.value[node].reshape(len(xb), n_trees, -1).sum(1))
        return torch.cat(parts)

    def _walk_compiled(self, x: Tensor) -> Tensor:
        """The same walk, row by row and tree by tree in machine code (numba, which SHAP already brings):
        ~40× faster than the tensor walk on CPU."""
        out = np.zeros((len(x), self.value.shape[1]), np.float64)
        _walk_trees()(x.detach().to(torch.float64).numpy(), self.feature.numpy(), self.threshold.numpy(),
                      self.left.numpy(), self.right.numpy(), self.value.detach().to(torch.float64).numpy(),
                      self.roots.numpy(), self.depth, out)
        return torch.from_numpy(out).to(self.value.dtype)

    def validate(self, input_dim: int) -> None:
        """Refuse a bundle's trees that point outside the inputs or their own tree, or back up it (the nodes
        must be each tree's pre-order: a child after its parent)."""
        n = len(self.feature)
        for name, values, limit in (("feature", self.feature, input_dim), ("left", self.left, n),
                                    ("right", self.right, n), ("roots", self.roots, n)):
            if len(values) and (int(values.min()) < 0 or int(values.max()) >= limit):
                raise ValueError(f"tree {name} index outside 0..{limit - 1}")
        roots = self.roots.cpu()
        if len(roots) and (int(roots[0]) != 0 or bool((roots[1:] <= roots[:-1]).any())):
            raise ValueError("tree roots out of order")
        idx = torch.arange(n)
        tree_of = torch.searchsorted(roots, idx, right=True) - 1
        left, right = self.left.cpu(), self.right.cpu()
        split = left != idx
        for child in (left, right):
            if bool((child[split] <= idx[split]).any()) or bool((tree_of[child] != tree_of).any()):
                raise ValueError("a tree node points back up or into another tree")
        if bool((right[~split] != idx[~split]).any()):
            raise ValueError("a tree leaf has a child")
        if not 0.0 <= float(self.weight) <= 1.0:
            raise ValueError(f"blend weight {float(self.weight)} outside 0..1")


class Blend(MultiTaskNet):
    """A net whose heads named in ``config.trees`` blend their logits with a tree ensemble's:
    ``w·net(x) + (1 − w)·trees(x)``. The blend is linear in the logits, so a head's SHAP values are the same
    blend of the net's (DeepSHAP) and the trees' (TreeSHAP) against the same background."""

    def __init__(self, arch: str, config: NetConfig) -> None:
        super().__init__(config)
        self.name = ARCHITECTURES[arch].name  # type: ignore[misc]
        self.net = build_net(arch, replace(config, trees={}))
        self.trees = nn.ModuleDict({t: TreeEnsemble(*shape, config.outputs[t]) for t, shape in config.trees.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.net(x)
        for t, trees in self.trees.items():
            w = trees.weight.to(out[t].dtype)
            out[t] = w * out[t] + (1 - w) * trees(x).to(out[t].dtype)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.net.shared_parameters()


def build_net(arch: str, config: NetConfig) -> MultiTaskNet:
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    c = config
    if not c.hidden or min(c.hidden) < 1 or c.n_experts < 1 or c.n_shared_experts < 1 or c.n_task_experts < 1 \
            or c.n_levels < 1 or not 0 <= c.dropout < 1 or c.members < 1 \
            or any(not v or min(v) < 0 or max(v) >= c.members for v in c.member_of.values()) \
            or not set(c.member_of) <= set(c.outputs) or not set(c.trees) <= set(c.outputs) \
            or any(len(v) != 3 or min(v) < 1 or v[2] > MAX_TREE_DEPTH for v in c.trees.values()):
        raise ValueError(f"bad network configuration: {c}")
    if c.trees:
        return Blend(arch, config)
    return MemberMean(arch, config) if c.members > 1 else ARCHITECTURES[arch](config)


def member_mean(arch: str, config: NetConfig, states: list[dict[str, Tensor]],
                member_of: dict[str, tuple[int, ...]] | None = None) -> MultiTaskNet:
    """One net from several state dicts of ``build_net(arch, config)`` (e.g. checkpoints of one run): the net
    itself for one state, else a MemberMean whose members carry the states."""
    if len(states) == 1:
        net = build_net(arch, config)
        net.load_state_dict(states[0])
        return net
    net = build_net(arch, replace(config, members=len(states), member_of=dict(member_of or {})))
    for member, state in zip(net.members, states, strict=True):  # type: ignore[arg-type]
        member.load_state_dict(state)
    return net
