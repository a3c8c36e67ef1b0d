"""The card's similar-customers section through AppTest (fixtures of ``tests/test_pages_card.py``): the nearest
customers with their predictions and outcomes, names masked for the analyst, only own customers for an RM,
the number shown follows the selectbox, and the view is audited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from tests.test_app import demo_env, env  # noqa: F401 — fixtures reused
from tests.test_pages_card import _page, signed_in  # noqa: F401
from ui import card, keys, similar
from ui.keys import PagePath


def _similar_table(at) -> pd.DataFrame:
    for df in at.dataframe:
        if "相似度" in df.value.columns:
            return df.value
    raise AssertionError("no similar-customers table on the page")


def test_card_shows_similar_customers_masked_for_the_analyst(signed_in):  # noqa: F811
    at = _page(PagePath.CUSTOMERS)
    assert "相似客户" in [s.value for s in at.subheader]
    cid = at.session_state[card.SELECTED]
    table = _similar_table(at)
    assert len(table) == 5 and list(table["排名"]) == [1, 2, 3, 4, 5]
    assert cid not in set(table["客户编号"])
    assert all("*" in n for n in table["姓名"])  # the analyst sees names masked
    shares = [float(s.rstrip("%")) for s in table["相似度"]]
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] <= 100
    heads = json.loads((signed_in["root"] / "models" / "demo" / "manifest.json").read_text())["tasks"]
    observed = [c for c in table.columns if c.endswith("· 实际")]  # the demo data has every head's label
    assert len(observed) == len(heads) == len([c for c in table.columns if c.endswith("· 预测")])
    assert table[observed].ne("—").all().all()
    assert any("位已知结果的相似客户中" in m.value for m in at.markdown)
    at.selectbox(key=f"{similar.K_SELECT}-{cid}").set_value(10).run()
    assert not at.exception
    assert len(_similar_table(at)) == 10
    log = Path(os.environ["PROFILE_WORKSPACE"] + ".audit.jsonl")
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    seen = [e for e in entries if e["action"] == "view_similar"]
    assert seen and seen[-1]["target"] == cid and seen[-1]["details"]["k"] == 10


def test_rm_sees_only_own_customers_among_the_similar(signed_in):  # noqa: F811
    rm = "RM001"  # the demo account rm01
    customers = signed_in["portfolio"].customers
    own = customers[customers["rm_id"].astype(str) == rm]
    at = _page(PagePath.CUSTOMERS, **{keys.ROLE: "rm", keys.RM_ID: rm})
    table = _similar_table(at)
    assert len(table) == min(5, len(own) - 1)
    assert set(table["客户编号"]) <= set(own["customer_id"])
    names = own.set_index("customer_id")["name"]
    assert table["姓名"].tolist() == names[table["客户编号"]].tolist()  # own customers: names in full
