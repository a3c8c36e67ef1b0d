"""Architectures: output shapes, SHAP-friendly modules, per-head wrappers, registry."""

import pytest
import torch
from torch import nn

from profile_core.nets import ARCHITECTURES, HeadOutput, NetConfig, build_net

OUTPUTS = {"credit_score": 1, "default": 1, "risk_level": 5}


def config(**kw) -> NetConfig:
    return NetConfig(input_dim=7, outputs=OUTPUTS, hidden=(16, 8), head_hidden=(4,), n_experts=3,
                     dropout=0.1, **kw)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_forward_returns_one_tensor_per_head(arch):
    torch.manual_seed(0)
    net = build_net(arch, config()).eval()
    assert net.name == arch and isinstance(net, ARCHITECTURES[arch])
    out = net(torch.randn(5, 7))
    assert {t: tuple(v.shape) for t, v in out.items()} == {"credit_score": (5, 1), "default": (5, 1),
                                                           "risk_level": (5, 5)}
    out.pop("risk_level").sum().backward()
    assert all(p.grad is not None for p in net.shared_parameters())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_relu_modules_are_fresh_and_not_inplace(arch):
    net = build_net(arch, config(n_levels=2))
    relus = [m for _, m in net.named_modules(remove_duplicate=False) if isinstance(m, nn.ReLU)]
    assert relus and len({id(m) for m in relus}) == len(relus)
    assert not any(m.inplace for m in relus)
    assert any(isinstance(m, nn.Dropout) for m in net.modules())
    assert not any(isinstance(m, nn.Dropout) for m in build_net(arch, NetConfig(7, OUTPUTS, dropout=0)).modules())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_head_wrapper_gives_that_heads_tensor(arch):
    net = build_net(arch, config()).eval()
    x = torch.randn(4, 7)
    head = net.head("risk_level")
    assert isinstance(head, HeadOutput) and isinstance(head, nn.Module)
    torch.testing.assert_close(head(x), net(x)["risk_level"])
    with pytest.raises(KeyError):
        net.head("nope")


def test_ple_levels_and_expert_counts():
    net = build_net("ple", config(n_levels=3, n_shared_experts=2, n_task_experts=2))
    assert len(net.levels) == 3 and net.levels[-1].shared_gate is None and net.levels[0].shared_gate is not None
    assert len(net.levels[0].task_experts["default"]) == 2 and len(net.shared_parameters()) == 2
    assert len(build_net("mmoe", config()).experts) == 3


def test_config_round_trip_and_bad_input():
    c = config()
    assert NetConfig.from_dict(c.to_dict()) == c
    with pytest.raises(KeyError, match="unknown architecture"):
        build_net("transformer", c)
    with pytest.raises(ValueError):
        build_net("mmoe", config(n_levels=0))
