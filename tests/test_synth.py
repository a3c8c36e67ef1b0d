"""The synthetic demo portfolio: deterministic, schema-conformant, realistic and learnable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from profile_core.features import Preprocessor, build_features_from_frames, split_columns
from profile_core.schema import RISK_LEVELS, TABLES
from profile_core.synth import Portfolio, generate_portfolio, write_portfolio


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    return generate_portfolio(3000, seed=11)


@pytest.fixture(scope="module")
def latest(portfolio) -> pd.DataFrame:
    cr = portfolio.credit_records
    return cr[cr["as_of"] == cr["as_of"].max()].set_index("customer_id")


def test_same_seed_same_data_and_files(tmp_path):
    a, b = generate_portfolio(200, seed=5), generate_portfolio(200, seed=5)
    for name, frame in a.tables().items():
        pd.testing.assert_frame_equal(frame, b.tables()[name])
    pd.testing.assert_frame_equal(a.truth, b.truth)
    for fmt in ("parquet", "csv"):
        pa, pb = write_portfolio(a, tmp_path / f"a_{fmt}", fmt), write_portfolio(b, tmp_path / f"b_{fmt}", fmt)
        assert set(pa) == set(TABLES) and pa["customers"].name == f"customers.{fmt}"
        assert all(pa[k].read_bytes() == pb[k].read_bytes() for k in pa)
    back = pd.read_csv(pa["customers"], dtype={"id_number": str, "phone": str})
    assert back["name"].tolist() == a.customers["name"].tolist()  # UTF-8 Chinese survives the CSV
    c = generate_portfolio(200, seed=6)
    assert not c.customers["income"].equals(a.customers["income"])
    assert not c.transactions["amount"].head(50).equals(a.transactions["amount"].head(50))


def test_columns_are_canonical(portfolio):
    for name, frame in portfolio.tables().items():
        assert list(frame.columns) == [c.name for c in TABLES[name].columns], name
    cust = portfolio.customers
    assert cust["customer_id"].is_unique and cust["customer_id"].str.fullmatch(r"C\d{6}").all()
    assert set(cust["gender"]) == {"男", "女"} and cust["age"].between(22, 70).all()
    assert cust["rm_id"].str.fullmatch(r"RM0(0[1-9]|1\d|20)").all()
    assert (cust["income"] > 0).all()
    assert set(portfolio.transactions["direction"]) == {"in", "out"}
    assert {"工资", "餐饮", "购物", "转账", "还款", "理财"} <= set(portfolio.transactions["category"])
    assert {"login", "view", "apply"} <= set(portfolio.behaviors["event_type"])


def test_events_belong_to_customers_and_window(portfolio):
    ids = set(portfolio.customers["customer_id"])
    for name in ("transactions", "behaviors", "credit_records"):
        assert set(portfolio.tables()[name]["customer_id"]) <= ids, name
    tx = portfolio.transactions
    assert tx["txn_time"].min() >= pd.Timestamp("2025-11-01") and tx["txn_time"].max() < pd.Timestamp("2026-11-01")
    assert (portfolio.credit_records.groupby("customer_id").size() == 12).all()
    per_month = len(tx) / len(ids) / 12
    assert 15 <= per_month <= 25 and 5 <= len(portfolio.behaviors) / len(ids) / 12 <= 15


def test_identity_formats(portfolio):
    cust = portfolio.customers
    assert cust["phone"].str.fullmatch(r"1(3\d|5\d|8\d)\d{8}").all()
    ids = cust["id_number"]
    assert ids.str.fullmatch(r"\d{17}[\dX]").all()
    digits = np.array([[int(ch) for ch in s[:17]] for s in ids])
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    assert (np.array(list("10X98765432"))[(digits @ weights) % 11] == ids.str[17].to_numpy()).all()
    birth = pd.to_datetime(ids.str[6:14], format="%Y%m%d")
    end = pd.Timestamp("2026-10-31")
    age = end.year - birth.dt.year - ((birth.dt.month > end.month) | ((birth.dt.month == end.month)
                                                                      & (birth.dt.day > end.day)))
    assert (age == cust["age"]).all()
    assert ((digits[:, 16] % 2 == 1) == (cust["gender"] == "男")).all()


def test_label_rates(latest, portfolio):
    assert 0.05 <= latest["default_flag"].mean() <= 0.10
    shares = latest["risk_level"].value_counts(normalize=True)
    assert set(shares.index) == set(RISK_LEVELS)
    assert shares["A"] > shares["E"] and 0.03 <= shares["E"] <= 0.12
    assert latest["credit_score"].between(350, 850).all() and 550 <= latest["credit_score"].mean() <= 750
    assert latest["credit_score"].notna().all()
    truth = portfolio.truth.set_index("customer_id")
    assert (truth["default_flag"] == latest["default_flag"]).all()


def test_tasks_are_correlated(latest, portfolio):
    by_level = latest.groupby("risk_level").agg(dr=("default_flag", "mean"), score=("credit_score", "mean"))
    assert by_level["dr"].is_monotonic_increasing and by_level["score"].is_monotonic_decreasing
    assert by_level.loc["E", "dr"] > 4 * by_level.loc["A", "dr"]
    assert latest["credit_score"].corr(latest["default_flag"].astype(float)) < -0.2
    z = portfolio.truth.set_index("customer_id")["latent_risk"]
    assert z.corr(latest["credit_score"]) < -0.6


def test_default_is_learnable_but_noisy(portfolio):
    table = build_features_from_frames(portfolio.tables())
    numeric, categorical = split_columns(table)
    y = table["default_flag"].to_numpy()
    train, test = train_test_split(np.arange(len(table)), test_size=0.3, random_state=0, stratify=y)
    pre = Preprocessor().fit(table.iloc[train], numeric, categorical)
    x = pre.transform(table)
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x[train], y[train])
    auc = roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])
    assert 0.65 < auc < 0.97, auc


def test_small_portfolios_without_some_occupations_generate():
    """40 customers may have no teacher or doctor at all: the generator must not fail on the empty group."""
    from profile_core.synth import generate_portfolio

    portfolio = generate_portfolio(40, seed=5)
    assert len(portfolio.customers) == 40 and portfolio.customers["customer_id"].is_unique


def test_marketing_labels_have_realistic_rates_and_share_drivers_with_risk(portfolio, latest):
    cust = portfolio.customers.set_index("customer_id")
    assert set(cust["wm_purchase_3m"].unique()) == {0, 1} and set(cust["churn_3m"].unique()) == {0, 1}
    assert 0.08 <= cust["wm_purchase_3m"].mean() <= 0.15 and 0.05 <= cust["churn_3m"].mean() <= 0.10
    truth = portfolio.truth.set_index("customer_id")
    # affluence raises purchase, risk lowers it; risky customers churn more: the shared drivers
    assert truth["affluence"].corr(truth["purchase_true"]) > 0.2
    by_level = cust.join(latest["risk_level"]).groupby("risk_level")[["wm_purchase_3m", "churn_3m"]].mean()
    assert by_level.loc["A", "wm_purchase_3m"] > 2 * by_level.loc["E", "wm_purchase_3m"]
    assert by_level.loc["E", "churn_3m"] > 2 * by_level.loc["A", "churn_3m"]
    # the labels are draws, not copies of one latent factor or one feature
    assert 0.75 < roc_auc_score(truth["churn_3m"], truth["churn_true"]) < 0.95


def test_marketing_events_are_visible(portfolio):
    cust = portfolio.customers.set_index("customer_id")
    b = portfolio.behaviors
    wealth = b[b["product"].isin(["理财", "基金"])].groupby("customer_id").size().reindex(cust.index, fill_value=0)
    assert wealth[cust["wm_purchase_3m"] == 1].mean() > 1.5 * wealth[cust["wm_purchase_3m"] == 0].mean()
    tx = portfolio.transactions
    other_bank = tx["counterparty"].str.endswith("(本人账户)", na=False) & (tx["txn_time"] >= pd.Timestamp("2026-08-01"))
    moved = other_bank.groupby(tx["customer_id"]).sum().reindex(cust.index, fill_value=0)
    assert moved[cust["churn_3m"] == 1].mean() > 2 * moved[cust["churn_3m"] == 0].mean()
    logins = b[(b["event_type"] == "login")]
    last = logins[logins["event_time"] >= pd.Timestamp("2026-10-01")].groupby("customer_id").size()
    first = logins[logins["event_time"] < pd.Timestamp("2026-08-01")].groupby("customer_id").size() / 9
    ratio = (last / first).reindex(cust.index).fillna(0)
    assert ratio[cust["churn_3m"] == 1].median() < 0.8 * ratio[cust["churn_3m"] == 0].median()


@pytest.mark.parametrize("label", ["wm_purchase_3m", "churn_3m"])
def test_marketing_labels_are_learnable_but_noisy_and_never_inputs(portfolio, label):
    table = build_features_from_frames(portfolio.tables())
    numeric, categorical = split_columns(table)
    assert not {"wm_purchase_3m", "churn_3m"} & set(numeric + categorical)
    y = table[label].to_numpy()
    train, test = train_test_split(np.arange(len(table)), test_size=0.3, random_state=0, stratify=y)
    pre = Preprocessor().fit(table.iloc[train], numeric, categorical)
    x = pre.transform(table)
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x[train], y[train])
    auc = roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])
    assert 0.68 < auc < 0.9, auc


def test_first_id_slices_keep_marketing_labels_deterministic():
    a = generate_portfolio(50, seed=3, first_id=101)
    b = generate_portfolio(50, seed=3, first_id=101)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    assert a.customers["customer_id"].iloc[0] == "C000101"
    assert set(a.transactions["customer_id"]) <= set(a.customers["customer_id"])
