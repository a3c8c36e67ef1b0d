"""The Taiwan file with its own label names, in the app: the card, portfolio and monitoring name the bank's labels
as written and by role, with no renaming."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.test_app import _as, analyst, demo_env, env  # noqa: F401 — fixtures reused
from ui import keys
from ui.keys import PagePath

ROOT = Path(__file__).resolve().parents[1]
TAIWAN = ROOT.parent / "shared" / "datasets" / "taiwan_default" / "UCI_Credit_Card.csv"
OWN_LABELS = ROOT / "profile_core" / "samples" / "mappings" / "taiwan_own_labels.yaml"


@pytest.fixture()
def taiwan_app(analyst, tmp_path):  # noqa: F811
    if not TAIWAN.exists():
        pytest.skip("../shared/datasets/taiwan_default is not here")
    from profile_core.ingest import Mapping, load_into_workspace
    from profile_core.pipeline import train_and_save
    from profile_core.store import Workspace

    csv = tmp_path / "UCI_Credit_Card.csv"
    pd.read_csv(TAIWAN, nrows=2000).to_csv(csv, index=False)
    workspace = os.environ["PROFILE_WORKSPACE"]
    with Workspace(workspace) as ws:
        assert load_into_workspace([(csv.name, csv)], ws, dataset="taiwan",
                                   mapping=Mapping.load(OWN_LABELS)).version == 1
    bundle = Path(os.environ["PROFILE_MODELS"]) / "taiwan"
    train_and_save("workspace:taiwan", bundle, workspace=workspace, epochs=3)
    with Workspace(workspace) as ws:
        ws.set_champion("taiwan", bundle, user=analyst)
    return analyst


def _open(user, page: PagePath):
    at = _as(user)
    at.session_state[keys.DATASET] = "taiwan"
    at.run()
    at.switch_page(str(page)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_card_names_the_banks_labels_by_role(taiwan_app):
    at = _open(taiwan_app, PagePath.CUSTOMERS)
    labels = [m.label for m in at.metric]
    assert "违约概率 PD · default.payment.next.month" in labels and "评分卡分数" in labels
    assert "LIMIT_BAL" in labels and "PAY_0 band" in labels
    assert not any("信用评分" in label for label in labels)  # no credit-score task: nothing is called one
    assert all(m.value not in ("", "—") for m in at.metric)  # no blank headline


def test_portfolio_and_monitoring_follow_roles(taiwan_app):
    at = _open(taiwan_app, PagePath.PORTFOLIO)
    labels = [m.label for m in at.metric]
    assert any("default.payment.next.month" in label for label in labels)
    assert any("LIMIT_BAL" in label for label in labels)
    at = _open(taiwan_app, PagePath.MONITORING)
    assert any("评估范围" in c.value and "300" in c.value for c in at.caption)  # the 15 % held out of 2,000
    metrics = next(df.value for df in at.dataframe if "指标" in df.value.columns)
    assert {"default.payment.next.month", "LIMIT_BAL", "PAY_0 band"} <= set(metrics.iloc[:, 0])
