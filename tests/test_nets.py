"""Architectures: output shapes, SHAP-friendly modules, per-head wrappers, registry."""

import pytest
import torch
from torch import nn

from profile_core.nets import ARCHITECTURES, HeadOutput, MemberMean, NetConfig, build_net, member_mean

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


def test_member_mean_averages_the_members_each_task_reads():
    torch.manual_seed(0)
    single = NetConfig(input_dim=7, outputs=OUTPUTS, hidden=(16, 8), head_hidden=(4,), dropout=0.0)
    states = [build_net("shared-bottom", single).state_dict() for _ in range(3)]
    net = member_mean("shared-bottom", single, states, {"default": (1,), "risk_level": (0, 2)}).eval()
    assert net.name == "shared-bottom" and isinstance(net, MemberMean) and net.running == [0, 1, 2]
    x = torch.randn(6, 7)
    members = [build_net("shared-bottom", single).eval() for _ in range(3)]
    for m, s in zip(members, states, strict=True):
        m.load_state_dict(s)
    outs = [m(x) for m in members]
    got = net(x)
    torch.testing.assert_close(got["default"], outs[1]["default"])
    torch.testing.assert_close(got["risk_level"], (outs[0]["risk_level"] + outs[2]["risk_level"]) / 2)
    torch.testing.assert_close(got["credit_score"], sum(o["credit_score"] for o in outs) / 3)  # not named: all
    rebuilt = build_net("shared-bottom", NetConfig.from_dict(net.config.to_dict()))  # as a bundle loads it
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x)["risk_level"], got["risk_level"])
    one = member_mean("shared-bottom", single, states[:1])
    assert isinstance(one, ARCHITECTURES["shared-bottom"])  # one state: the plain net, bundle unchanged


def test_member_mean_bad_member_index():
    with pytest.raises(ValueError):
        build_net("mmoe", config(members=2, member_of={"default": (2,)}))
    with pytest.raises(ValueError):
        build_net("mmoe", config(members=2, member_of={"nope": (0,)}))
    relus = [m for m in build_net("ple", config(members=2)).modules() if isinstance(m, nn.ReLU)]
    assert len({id(m) for m in relus}) == len(relus) and not any(m.inplace for m in relus)
