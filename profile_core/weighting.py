"""Task weightings: how per-task losses become the one loss that is back-propagated.

One interface, no special cases in the trainer:

- ``combine(losses) -> (total, weights)``: the weighted total and the weights it used (for the log);
- ``backward(losses, shared_params) -> (total, weights)``: combine + backward; GradNorm overrides it because it
  needs the gradients on the last shared layer;
- ``end_epoch(train_losses)``: per-epoch hook (DWA reads the loss history here).

``losses`` holds only the tasks that have labels in the batch: an absent task contributes nothing.
A weighting's own parameters (uncertainty log-variances, GradNorm weights) go into an optimizer group
without weight decay: decay would pull them towards 0 for no reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from profile_core.tasks import TaskSpec


class Weighting(nn.Module):
    name: ClassVar[str] = ""

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.tasks = {t.name: t for t in tasks}
        self.index = {t.name: i for i, t in enumerate(tasks)}

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def backward(self, losses: dict[str, Tensor], shared_params: Sequence[Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Back-propagate the combined loss; returns the (detached) total and the weights used."""
        total, weights = self.combine(losses)
        if total.requires_grad:
            total.backward()
        return total.detach(), weights

    def end_epoch(self, train_losses: dict[str, float]) -> None:
        """Called once per epoch with the mean train loss of each task."""


def _sum(terms: list[Tensor]) -> Tensor:
    return torch.stack(terms).sum() if terms else torch.zeros(())


class FixedWeighting(Weighting):
    """L = Σ λᵢ Lᵢ with the user's λ (``TaskSpec.weight``)."""

    name = "fixed"

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        weights = {t: spec.weight for t, spec in self.tasks.items()}
        return _sum([weights[t] * loss for t, loss in losses.items()]), weights


class UncertaintyWeighting(Weighting):
    """Homoscedastic uncertainty (Kendall, Gal & Cipolla 2018) with learnable log-variances sᵢ:
    regression ½·e^(−s)·L + ½·s, classification e^(−s)·L + ½·s. Reported weight: the factor on L."""

    name = "uncertainty"

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def _factor(self, task: str) -> Tensor:
        scale = 0.5 if self.tasks[task].kind == "regression" else 1.0
        return scale * torch.exp(-self.log_vars[self.index[task]])

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        terms = [self._factor(t) * loss + 0.5 * self.log_vars[self.index[t]] for t, loss in losses.items()]
        with torch.no_grad():
            weights = {t: float(self._factor(t)) for t in self.tasks}
        return _sum(terms), weights


class DWAWeighting(Weighting):
    """Dynamic Weight Average (Liu et al. 2019): wᵢ = T·softmax(rᵢ/τ), rᵢ = Lᵢ(e−1)/Lᵢ(e−2) from the mean
    train losses of the last two epochs; all ones for the first two epochs."""

    name = "dwa"

    def __init__(self, tasks: Sequence[TaskSpec], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        self.temperature = temperature
        self.history: list[dict[str, float]] = []
        self.weights = {t: 1.0 for t in self.tasks}

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        return _sum([self.weights[t] * loss for t, loss in losses.items()]), dict(self.weights)

    def end_epoch(self, train_losses: dict[str, float]) -> None:
        self.history = (self.history + [train_losses])[-2:]
        if len(self.history) < 2:
            return
        prev, last = self.history
        ratio = {t: last[t] / prev[t] if prev.get(t, 0) > 0 and t in last else 1.0 for t in self.tasks}
        exp = {t: math.exp(r / self.temperature) for t, r in ratio.items()}
        norm = sum(exp.values())
        self.weights = {t: len(self.tasks) * e / norm for t, e in exp.items()}


class GradNormWeighting(Weighting):
    """GradNorm (Chen et al. 2018): learnable wᵢ pulled so that the gradient norm of wᵢ·Lᵢ on the last
    shared layer tracks mean_norm · (relative inverse training rate)^α; Σ wᵢ is kept at T."""

    name = "gradnorm"

    def __init__(self, tasks: Sequence[TaskSpec], alpha: float = 1.5) -> None:
        super().__init__(tasks)
        self.alpha = alpha
        self.task_weights = nn.Parameter(torch.ones(len(self.tasks)))
        self.initial: dict[str, float] = {}  # Lᵢ(0): first loss seen for each task

    def _w(self, task: str) -> Tensor:
        return self.task_weights[self.index[task]]

    def _weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.task_weights.detach().cpu().tolist(), strict=True))

    def combine(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        return _sum([self._w(t).detach() * loss for t, loss in losses.items()]), self._weights()

    def backward(self, losses: dict[str, Tensor], shared_params: Sequence[Tensor]) -> tuple[Tensor, dict[str, float]]:
        with torch.no_grad():  # renormalise after the last optimizer step: positive, Σ w = T
            w = self.task_weights.clamp_(min=1e-3)
            w.mul_(len(self.tasks) / w.sum())
        params = [p for p in shared_params if p.requires_grad]
        if len(losses) > 1 and params:
            names = list(losses)
            for t in names:
                self.initial.setdefault(t, max(float(losses[t].detach()), 1e-8))
            # ‖∇_W wᵢLᵢ‖ = wᵢ‖∇_W Lᵢ‖: one plain gradient per task, no double backward needed.
            norms = torch.stack([torch.linalg.vector_norm(torch.cat([
                g.reshape(-1) for g in torch.autograd.grad(losses[t], params, retain_graph=True)])) for t in names])
            w = torch.stack([self._w(t) for t in names])
            g = w * norms
            ratio = torch.tensor([float(losses[t].detach()) / self.initial[t] for t in names], device=g.device)
            target = (g.mean() * (ratio / ratio.mean()) ** self.alpha).detach()
            grad_w = torch.autograd.grad((g - target).abs().sum(), self.task_weights)[0]
        else:
            grad_w = torch.zeros_like(self.task_weights)
        total, weights = self.combine(losses)  # weights detached: the model's loss does not move w
        if total.requires_grad:
            total.backward()
        self.task_weights.grad = grad_w
        return total.detach(), weights


WEIGHTINGS: dict[str, type[Weighting]] = {
    cls.name: cls for cls in (FixedWeighting, UncertaintyWeighting, GradNormWeighting, DWAWeighting)}


def build_weighting(name: str, tasks: Sequence[TaskSpec]) -> Weighting:
    if name not in WEIGHTINGS:
        raise KeyError(f"unknown weighting {name!r}; known: {', '.join(WEIGHTINGS)}")
    return WEIGHTINGS[name](tasks)
