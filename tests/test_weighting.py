"""Task weightings: one interface, the weights they used, absent tasks contribute nothing."""

import math
from dataclasses import replace

import pytest
import torch

from profile_core.nets import NetConfig, build_net
from profile_core.tasks import risk_tasks
from profile_core.train import optimizer_groups
from profile_core.weighting import WEIGHTINGS, Weighting, build_weighting

TASKS = risk_tasks()
NAMES = [t.name for t in TASKS]


def losses(values=(1.0, 0.5, 2.0)) -> dict[str, torch.Tensor]:
    return {n: torch.tensor(v, requires_grad=True) for n, v in zip(NAMES, values, strict=True)}


def test_registry_names():
    assert set(WEIGHTINGS) == {"fixed", "uncertainty", "gradnorm", "dwa"}
    assert all(cls.name == name and issubclass(cls, Weighting) for name, cls in WEIGHTINGS.items())
    with pytest.raises(KeyError):
        build_weighting("nope", TASKS)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_each_weighting_returns_its_weights_and_a_finite_total(name):
    w = build_weighting(name, TASKS)
    total, weights = w.combine(losses())
    assert set(weights) == set(NAMES) and all(math.isfinite(v) and v > 0 for v in weights.values())
    assert total.ndim == 0 and torch.isfinite(total)
    partial, _ = w.combine({"default": torch.tensor(0.5, requires_grad=True)})  # other tasks absent
    assert torch.isfinite(partial)
    empty, _ = w.combine({})
    assert float(empty) == 0.0


def test_fixed_uses_lambda():
    tasks = [replace(t, weight=3.0) if t.name == "default" else t for t in TASKS]
    total, weights = build_weighting("fixed", tasks).combine(losses())
    assert weights == {"credit_score": 1.0, "default": 3.0, "risk_level": 1.0}
    assert float(total.detach()) == pytest.approx(1.0 + 1.5 + 2.0)


def test_uncertainty_formula_and_absent_task():
    w = build_weighting("uncertainty", TASKS)
    total, weights = w.combine(losses())
    # s = 0: regression ½·L, classification L
    assert float(total.detach()) == pytest.approx(0.5 * 1.0 + 0.5 + 2.0)
    assert weights == {"credit_score": 0.5, "default": 1.0, "risk_level": 1.0}
    with torch.no_grad():
        w.log_vars.fill_(1.0)
    total, _ = w.combine({"risk_level": torch.tensor(2.0)})
    assert float(total.detach()) == pytest.approx(math.exp(-1) * 2.0 + 0.5)
    total.backward()
    grad = w.log_vars.grad
    assert grad[NAMES.index("risk_level")] != 0 and grad[NAMES.index("default")] == 0  # absent: no noise


def test_learned_weights_are_not_decayed():
    net = build_net("shared-bottom", NetConfig(4, {t.name: t.out_dim for t in TASKS}))
    w = build_weighting("uncertainty", TASKS)
    groups = optimizer_groups(net, w, weight_decay=0.1)
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert groups[1]["params"] == [w.log_vars]
    assert len(optimizer_groups(net, build_weighting("fixed", TASKS), 0.1)) == 1


def test_dwa_follows_loss_ratios():
    w = build_weighting("dwa", TASKS)
    w.end_epoch({"credit_score": 1.0, "default": 1.0, "risk_level": 1.0})
    assert w.combine(losses())[1] == dict.fromkeys(NAMES, 1.0)
    w.end_epoch({"credit_score": 0.5, "default": 1.0, "risk_level": 1.0})  # credit score learns fastest
    weights = w.combine(losses())[1]
    assert sum(weights.values()) == pytest.approx(3.0)
    assert weights["credit_score"] < weights["default"] == pytest.approx(weights["risk_level"])


def test_gradnorm_balances_on_the_shared_layer():
    torch.manual_seed(0)
    net = build_net("shared-bottom", NetConfig(4, {t.name: t.out_dim for t in TASKS}, hidden=(8,), head_hidden=()))
    w = build_weighting("gradnorm", TASKS)
    opt = torch.optim.SGD(optimizer_groups(net, w, 0.0), lr=0.1)
    x = torch.randn(32, 4)
    for _ in range(3):
        opt.zero_grad()
        out = net(x)
        batch = {"credit_score": out["credit_score"].pow(2).mean(),
                 "default": 10 * out["default"].pow(2).mean(),  # a much steeper task
                 "risk_level": out["risk_level"].pow(2).mean()}
        total, weights = w.backward(batch, net.shared_parameters())
        assert torch.isfinite(total) and set(weights) == set(NAMES)
        assert w.task_weights.grad is not None and net.bottom[0].weight.grad is not None
        opt.step()
    w.backward({"default": net(x)["default"].pow(2).mean()}, net.shared_parameters())  # one task: no balancing
    assert float(w.task_weights.detach().sum()) == pytest.approx(3.0)
    assert w.task_weights[NAMES.index("default")] < 1.0  # the steep task is damped
