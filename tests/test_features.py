"""Feature table on a small hand-computed example, and the preprocessing pipeline."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from profile_core.features import (
    CREDIT_LABELS,
    FEATURES,
    LABEL_COLUMNS,
    FeatureError,
    Preprocessor,
    build_feature_table,
    build_features_from_frames,
    feature_info,
    split_columns,
)
from profile_core.schema import CATEGORIES

AS_OF = "2026-10-31"


def _ts(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values))


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3"], "name": ["张伟", "李娜", "王芳"],
        "id_number": ["x", "y", "z"], "phone": ["1", "2", "3"], "gender": ["男", "女", "女"],
        "age": [30, 45, 60], "occupation": ["教师", "医生", "退休"], "city": ["北京", "上海", "北京"],
        "income": [120_000.0, 200_000.0, None],
        "open_date": _ts(["2020-10-31", "2026-01-15", "2010-05-01"]), "rm_id": ["RM001", "RM002", "RM001"],
    })
    tx = [  # customer, time, amount, direction, channel, category
        ("C1", "2026-10-15 10:00", 1000, "in", "网上银行", "工资"),
        ("C1", "2026-10-20 02:30", 200, "out", "手机银行", "餐饮"),  # night
        ("C1", "2026-09-05 14:00", 300, "out", "第三方支付", "购物"),
        ("C1", "2026-06-01 12:00", 500, "out", "手机银行", "转账"),
        ("C1", "2025-12-01 09:00", 2000, "in", "网上银行", "工资"),
        ("C1", "2026-11-02 12:00", 999, "out", "POS", "购物"),  # after as_of: ignored
        ("C2", "2026-08-01 00:00", 100, "out", "ATM", "取现"),  # first second of the 3-month window, night
    ]
    transactions = pd.DataFrame(tx, columns=["customer_id", "txn_time", "amount", "direction", "channel",
                                             "category"])
    transactions["txn_time"] = pd.to_datetime(transactions["txn_time"])
    ev = [  # customer, time, type, product, device
        ("C1", "2026-10-30 03:00", "login", None, "iOS"),
        ("C1", "2026-10-10 12:00", "login", None, "Android"),
        ("C1", "2026-09-15 12:00", "view", "消费贷", "iOS"),
        ("C1", "2026-07-01 12:00", "apply", "信用卡", "iOS"),
        ("C1", "2026-04-01 12:00", "view", "理财", "PC"),
    ]
    behaviors = pd.DataFrame(ev, columns=["customer_id", "event_time", "event_type", "product", "device"])
    behaviors["event_time"] = pd.to_datetime(behaviors["event_time"])
    cr = [  # customer, as_of, score, default, level, dpd, limit, balance, inquiries
        ("C1", "2026-07-31", 650, 0, "C", 40, 10_000, 5000, 1),
        ("C1", "2026-08-31", 660, 0, "C", 0, 10_000, 2000, 0),
        ("C1", "2026-09-30", 680, 0, "B", 5, 10_000, 1000, 2),
        ("C1", "2026-10-31", 700, 0, "B", 0, 20_000, 5000, 1),
        ("C1", "2026-11-30", 300, 1, "E", 90, 20_000, 9000, 9),  # after as_of: ignored
        ("C2", "2026-09-30", 600, 0, "D", 0, 5000, 0, 0),
        ("C2", "2026-10-31", None, 1, "E", 0, 5000, 5000, 0),  # missing label stays missing
    ]
    credit = pd.DataFrame(cr, columns=["customer_id", "as_of", "credit_score", "default_flag", "risk_level",
                                       "dpd", "credit_limit", "balance", "inquiries"])
    credit["as_of"] = pd.to_datetime(credit["as_of"])
    return {"customers": customers, "transactions": transactions, "behaviors": behaviors,
            "credit_records": credit}


@pytest.fixture(scope="module")
def table(frames) -> pd.DataFrame:
    return build_features_from_frames(frames, as_of=AS_OF).set_index("customer_id")


def test_transaction_aggregates(table):
    c1, c2 = table.loc["C1"], table.loc["C2"]
    assert (c1.txn_in_count_1m, c1.txn_out_count_1m, c1.txn_in_amount_1m, c1.txn_out_amount_1m) == (1, 1, 1000, 200)
    assert (c1.txn_out_count_3m, c1.txn_out_amount_3m) == (2, 500)
    assert (c1.txn_in_count_12m, c1.txn_in_amount_12m, c1.txn_out_count_12m, c1.txn_out_amount_12m) == (2, 3000, 3, 1000)
    assert c1.avg_monthly_inflow_12m == pytest.approx(250)
    assert c1.spend_income_ratio_12m == pytest.approx(1000 / 3000)
    assert c1.night_txn_share_12m == pytest.approx(1 / 5)
    assert (c1.share_dining_12m, c1.share_shopping_12m, c1.share_transfer_12m) == pytest.approx((0.2, 0.3, 0.5))
    assert c1.mobile_share_12m == pytest.approx(2 / 5)
    assert c1.days_since_last_txn == 11
    # monthly inflows over 12 months: 1000 (Oct), 2000 (Dec), zeros elsewhere
    monthly = np.array([1000, 2000] + [0] * 10)
    assert c1.inflow_volatility_12m == pytest.approx(monthly.std() / monthly.mean())
    assert (c2.cash_count_3m, c2.cash_share_12m, c2.night_txn_share_12m, c2.days_since_last_txn) == (1, 1.0, 1.0, 91)


def test_behaviour_aggregates(table):
    c1 = table.loc["C1"]
    assert (c1.login_per_month_1m, c1.login_per_month_3m) == pytest.approx((2, 2 / 3))
    assert c1.night_login_share_12m == pytest.approx(0.5)
    assert (c1.product_views_12m, c1.apply_count_3m, c1.apply_count_12m) == (2, 0, 1)
    assert c1.credit_product_share_12m == pytest.approx(2 / 3)
    assert (c1.days_since_last_login, c1.distinct_devices_12m) == (1, 3)


def test_credit_aggregates_and_latest_labels(table):
    c1, c2 = table.loc["C1"], table.loc["C2"]
    assert (c1.max_dpd_3m, c1.max_dpd_12m, c1.dpd_months_12m) == (5, 40, 2)
    assert c1.util_latest == pytest.approx(0.25)
    assert c1.util_mean_3m == pytest.approx((0.2 + 0.1 + 0.25) / 3)
    assert (c1.credit_limit_latest, c1.inquiries_3m, c1.inquiries_12m) == (20_000, 3, 4)
    assert (c1.credit_score, c1.default_flag, c1.risk_level) == (700, 0, "B")
    assert np.isnan(c2.credit_score) and c2.default_flag == 1 and c2.risk_level == "E"
    assert table.loc["C1", "tenure_months"] == 72


def test_customer_without_events(table):
    c3 = table.loc["C3"]
    assert c3.txn_out_count_12m == 0 and c3.login_per_month_12m == 0 and c3.apply_count_12m == 0
    assert np.isnan(c3.spend_income_ratio_12m) and np.isnan(c3.max_dpd_3m) and np.isnan(c3.days_since_last_txn)
    assert pd.isna(c3.credit_score) and pd.isna(c3.risk_level)


def test_table_shape_and_columns(table, frames):
    assert list(table.index) == ["C1", "C2", "C3"]
    assert {"name", "id_number", "phone"}.isdisjoint(table.columns)  # personal columns never leave the store
    assert {"rm_id", "city", *CREDIT_LABELS} <= set(table.columns)
    assert not {"wm_purchase_3m", "churn_3m"} & set(table.columns)  # optional labels: data without them loads
    numeric, categorical = split_columns(table.reset_index())
    used = set(numeric) | set(categorical)
    assert {"customer_id", "rm_id", "city", "open_date", *LABEL_COLUMNS}.isdisjoint(used)
    assert {"age", "income", "max_dpd_3m"} <= set(numeric) and {"gender", "occupation"} <= set(categorical)
    for col in table.reset_index().columns:
        assert feature_info(col).category in CATEGORIES


def test_default_as_of_and_missing_tables(frames):
    full = build_features_from_frames(frames)
    assert full.attrs["as_of"] == "2026-11-30"  # the last date in the data
    only = build_features_from_frames({"customers": frames["customers"], "transactions": frames["transactions"]},
                                      as_of=AS_OF)
    assert "txn_out_count_12m" in only and "login_per_month_1m" not in only and "max_dpd_3m" not in only
    con = duckdb.connect()
    con.register("cust_view", frames["customers"])
    flat = build_feature_table(con, {"customers": "cust_view"}, as_of=AS_OF)
    assert len(flat) == 3 and flat.loc[0, "tenure_months"] == 72
    with pytest.raises(FeatureError):
        build_feature_table(con, {"customers": "nowhere"})


def test_feature_catalogue():
    info = feature_info("max_dpd_3m")
    assert (info.zh, info.category, info.unit_zh, info.unit_en) == ("近3个月最大逾期天数", "credit", "天", "days")
    assert all(f.category in CATEGORIES and f.zh and f.en for f in FEATURES.values())
    assert feature_info("my_extra").category == "basic"
    assert feature_info("occupation=教师").zh == "职业=教师"


@pytest.fixture()
def fitted() -> tuple[Preprocessor, pd.DataFrame]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "x": rng.normal(10, 2, 200), "y": np.where(rng.random(200) < 0.1, np.nan, rng.random(200)),
        "job": rng.choice(["教师", "医生", "工人"], 200),
        "many": [f"v{i % 30}" for i in range(200)],  # more than MAX_CATEGORIES levels
    })
    frame.loc[3, "job"] = None
    return Preprocessor().fit(frame, ["x", "y"], ["job", "many"]), frame


def test_preprocessor_round_trip(fitted):
    pre, frame = fitted
    x = pre.transform(frame)
    assert x.dtype == np.float32 and x.shape == (200, len(pre.output_names))
    assert pre.output_names[:3] == ["x", "y", "y__missing"]  # indicator only where the fit data had gaps
    assert x[:, 0].mean() == pytest.approx(0, abs=1e-5) and x[:, 0].std() == pytest.approx(1, abs=1e-3)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert np.array_equal(again.transform(frame), x)
    assert again.output_names == pre.output_names


def test_preprocessor_unknown_and_missing(fitted):
    pre, frame = fitted
    new = pd.DataFrame({"x": [10.0, np.nan], "job": ["宇航员", None], "extra": [1, 2]})  # no "y", no "many"
    x = pre.transform(new)
    job = [i for i, n in enumerate(pre.output_names) if pre.source_of[n] == "job"]
    assert x[0, job].sum() == 0  # unseen category: all zeros
    assert x[1, job].sum() == 1  # missing: the most frequent category
    assert x[1, pre.output_names.index("y__missing")] == 1


def test_source_of_and_raw_value(fitted):
    pre, frame = fitted
    assert pre.source_of["job=教师"] == "job" and pre.source_of["y__missing"] == "y"
    many = [n for n in pre.output_names if pre.source_of[n] == "many"]
    assert len(many) == 20 and "many=(other)" in many
    assert set(pre.source_of) == set(pre.output_names)
    x = pre.transform(frame)
    assert pre.raw_value("x", float(x[5, 0])) == pytest.approx(frame.loc[5, "x"], rel=1e-5)
    assert pre.raw_value("job=教师", 1.0) == 1.0


def test_heavy_tailed_columns_are_log_scaled_and_invert():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.lognormal(8, 1.5, 500), "age": rng.integers(20, 70, 500).astype(float)})
    pre = Preprocessor().fit(frame, ["amount", "age"], [])
    assert pre.log == ["amount"]  # skewed money, not the near-uniform age
    x = pre.transform(frame)
    assert abs(float(pd.Series(x[:, 0]).skew())) < 1.0  # compressed tail
    np.testing.assert_allclose(pre.raw_value("amount", x[:, 0]), frame["amount"], rtol=1e-4)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(again.transform(frame), x)


def test_marketing_labels_come_from_the_customers_table_and_are_never_inputs(frames):
    customers = frames["customers"].assign(wm_purchase_3m=[1, 0, None], churn_3m=[0, 1, 0])
    table = build_features_from_frames({**frames, "customers": customers}, as_of=AS_OF).set_index("customer_id")
    assert table["wm_purchase_3m"].iloc[:2].tolist() == [1, 0] and np.isnan(table.loc["C3", "wm_purchase_3m"])
    assert table["churn_3m"].tolist() == [0, 1, 0]
    assert (table.loc["C1", "credit_score"], table.loc["C2", "risk_level"]) == (700, "E")  # still the latest record
    numeric, categorical = split_columns(table.reset_index())
    assert set(LABEL_COLUMNS).isdisjoint(numeric + categorical) and "income" in numeric
