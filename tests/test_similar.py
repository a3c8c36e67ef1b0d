"""Similar customers: the representation each architecture exposes, exact cosine neighbours, a duplicated
customer found as its own nearest neighbour, the customer never listed, the RM's scope and the masking."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from profile_core.features import build_features_from_frames
from profile_core.nets import NetConfig, build_net
from profile_core.privacy import AccessDenied, Policy
from profile_core.similar import build_index, embed, neighbours_table, outcome_summary, representation
from profile_core.synth import generate_portfolio
from profile_core.tasks import risk_tasks
from profile_core.train import TrainConfig, fit

CONFIG = NetConfig(input_dim=6, outputs={"a": 1, "b": 3}, hidden=(8, 5), head_hidden=(4,), dropout=0.0)


@pytest.fixture(scope="module")
def world():
    portfolio = generate_portfolio(400, seed=3)
    frame = build_features_from_frames(portfolio.tables())
    result = fit(frame, risk_tasks(), TrainConfig(max_epochs=2, seed=3, arch="mmoe", hidden=(32, 16)))
    bundle = SimpleNamespace(model=result.model, preprocessor=result.preprocessor, tasks=result.tasks)
    # customer 0 once more under another id: same attributes, so the same embedding
    dup = frame.iloc[[0]].assign(customer_id="DUP0001")
    frame = pd.concat([frame, dup], ignore_index=True)
    from profile_core.train import predictions_frame

    preds = predictions_frame(result.model, result.preprocessor, result.tasks, frame)
    customers = pd.concat([portfolio.customers, portfolio.customers.iloc[[0]].assign(customer_id="DUP0001")],
                          ignore_index=True)
    return frame, bundle, preds, customers, build_index(bundle, frame, preds, customers=customers)


def test_shared_bottom_representation_is_the_shared_tower_output():
    torch.manual_seed(0)
    net = build_net("shared-bottom", CONFIG).eval()
    x = torch.randn(7, 6)
    assert torch.allclose(representation(net, x), net.bottom(x))


def test_mmoe_representation_is_the_mean_gated_mixture():
    torch.manual_seed(0)
    net = build_net("mmoe", CONFIG).eval()
    x = torch.randn(7, 6)
    experts = torch.stack([e(x) for e in net.experts], dim=1)
    mixed = [torch.bmm(net.gates[t](x).unsqueeze(1), experts).squeeze(1) for t in ("a", "b")]
    assert torch.allclose(representation(net, x), (mixed[0] + mixed[1]) / 2, atol=1e-6)


def test_ple_and_member_nets_have_a_representation_of_the_expected_width():
    from dataclasses import replace

    torch.manual_seed(0)
    x = torch.randn(4, 6)
    assert representation(build_net("ple", CONFIG).eval(), x).shape == (4, 5)
    members = build_net("shared-bottom", replace(CONFIG, members=3, member_of={"a": (0,), "b": (0, 2)})).eval()
    rep = representation(members, x)  # member 1 feeds no head: left out
    assert rep.shape == (4, 10)
    assert torch.allclose(rep[:, :5], members.members[0].bottom(x))
    assert torch.allclose(rep[:, 5:], members.members[2].bottom(x))


def test_neighbours_are_the_exact_cosine_nearest_and_exclude_the_customer(world):
    frame, bundle, preds, customers, index = world
    assert index.embeddings.shape[0] == len(frame) and index.embeddings.shape[1] == 16
    e = index.embeddings.astype(float)
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    target = 5
    cos = unit @ unit[target]
    cos[target] = -np.inf
    expected = np.argsort(-cos, kind="stable")[:6]
    found = index.neighbours(frame["customer_id"].iloc[target], Policy("analyst"), k=6)
    assert list(found["rank"]) == [1, 2, 3, 4, 5, 6]
    assert frame["customer_id"].iloc[target] not in set(found["customer_id"])
    np.testing.assert_allclose(found["similarity"].to_numpy(), cos[expected], atol=1e-5)
    assert (np.diff(found["similarity"].to_numpy()) <= 1e-9).all()  # most similar first


def test_a_duplicated_customer_is_the_nearest_with_similarity_one(world):
    frame, _, _, _, index = world
    first = frame["customer_id"].iloc[0]
    found = index.neighbours(first, Policy("analyst"), k=3)
    assert found["customer_id"].iloc[0] == "DUP0001"
    assert found["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert first not in set(found["customer_id"])
    back = index.neighbours("DUP0001", Policy("analyst"), k=1)
    assert back["customer_id"].tolist() == [first]


def test_rm_sees_only_own_customers_in_full_others_masked(world):
    frame, _, _, customers, index = world
    owner = customers.set_index("customer_id")["rm_id"]
    cid = frame["customer_id"].iloc[3]
    rm = str(owner[cid])
    mine = index.neighbours(cid, Policy("rm", rm_id=rm), k=10)
    assert len(mine) == 10 and set(mine["rm_id"].astype(str)) == {rm}
    names = customers.set_index("customer_id")["name"]
    assert mine["name"].tolist() == names[mine["customer_id"]].tolist()  # own customers: names in full
    other = next(c for c in frame["customer_id"] if str(owner[c]) != rm)
    with pytest.raises(AccessDenied):
        index.neighbours(other, Policy("rm", rm_id=rm))
    n_own = int((owner.astype(str) == rm).sum())
    assert len(index.neighbours(cid, Policy("rm", rm_id=rm), k=50)) == min(50, n_own - 1)
    seen = index.neighbours(cid, Policy("analyst"), k=10)  # every RM's customers, names masked
    assert seen["rm_id"].astype(str).nunique() > 1
    assert all("*" in n for n in seen["name"]) and seen["name"].str[0].tolist() == names[seen["customer_id"]].str[0].tolist()
    with pytest.raises(KeyError):
        index.neighbours("NOBODY", Policy("analyst"))
    with pytest.raises(ValueError):
        index.neighbours(cid, Policy("analyst"), k=0)


def test_predictions_and_observed_outcomes_are_the_customers_own(world):
    frame, bundle, preds, _, index = world
    found = index.neighbours(frame["customer_id"].iloc[8], Policy("admin"), k=5)
    rows = frame.set_index("customer_id").loc[found["customer_id"]]
    p = preds.set_index("customer_id").loc[found["customer_id"]]
    np.testing.assert_allclose(found["default_prob"].to_numpy(dtype=float), p["default_prob"].to_numpy(dtype=float))
    np.testing.assert_allclose(found["label:default"].to_numpy(dtype=float), rows["default_flag"].to_numpy(dtype=float))
    np.testing.assert_allclose(found["label:credit_score"].to_numpy(dtype=float),
                               rows["credit_score"].to_numpy(dtype=float))
    assert found["label:risk_level"].tolist() == rows["risk_level"].astype(str).tolist()
    table = neighbours_table(found, bundle.tasks, "en")
    assert list(table.columns)[:4] == ["Rank", "Customer ID", "Name", "Similarity"]
    pd_name = bundle.tasks[1].display("en")
    assert {f"{pd_name} · predicted", f"{pd_name} · observed"} <= set(table.columns)
    assert table[[c for c in table.columns if c.endswith("· observed")][0]].ne("—").all()
    bad = int(found["label:default"].sum())
    summary = outcome_summary(found, bundle.tasks, "en")
    assert len(summary) == 1 and summary[0].startswith(f"{bad} of the 5 similar customers")


def test_heads_are_named_as_the_bundle_names_them(world):
    frame, bundle, preds, customers, _ = world
    from dataclasses import replace as dc_replace

    renamed = [dc_replace(t, zh=f"头{i}", en=f"Head {i}") for i, t in enumerate(bundle.tasks)]
    other = build_index(SimpleNamespace(model=bundle.model, preprocessor=bundle.preprocessor, tasks=renamed),
                        frame.drop(columns=["default_flag"]), preds, customers=customers)
    found = other.neighbours(frame["customer_id"].iloc[1], Policy("analyst"), k=2)
    table = neighbours_table(found, renamed, "en")
    assert "Head 1 · predicted" in table.columns and "Head 1 · observed" not in table.columns  # no label: no column
    assert "Head 0 · observed" in table.columns
    assert outcome_summary(found, renamed, "en") == []


def test_embed_is_deterministic_and_batched(world):
    frame, bundle, *_ = world
    whole = embed(bundle, frame)
    np.testing.assert_allclose(embed(bundle, frame, batch_rows=50), whole, atol=1e-6)
    bundle.model.train()  # dropout on: embedding still runs in eval mode, then restores the mode
    try:
        np.testing.assert_allclose(embed(bundle, frame), whole, atol=1e-6)
        assert bundle.model.training
    finally:
        bundle.model.eval()
