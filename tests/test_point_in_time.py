"""Point-in-time features: each customer's windows end at its own observation date (e.g. a loan's grant
date) and events after it never enter its features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profile_core.features import build_features_from_frames

CUSTOMERS = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "age": [30, 40, 50],
                          "granted": pd.to_datetime(["1995-03-31", "1996-06-30", None])})


def _events() -> pd.DataFrame:
    rows = []
    for cid in ("C1", "C2", "C3"):
        for day in pd.date_range("1994-01-05", "1996-12-05", freq="MS") + pd.Timedelta(days=4):
            rows.append((cid, day + pd.Timedelta(hours=10), 100.0, "in"))
            rows.append((cid, day + pd.Timedelta(days=3), 40.0, "out"))
    rows.append(("C1", pd.Timestamp("1995-04-02"), 1_000_000.0, "in"))  # two days after C1's loan: must not leak
    return pd.DataFrame(rows, columns=["customer_id", "txn_time", "amount", "direction"])


def test_events_after_the_observation_date_never_enter_the_features():
    frame = build_features_from_frames({"customers": CUSTOMERS, "transactions": _events()},
                                       observation_date="granted").set_index("customer_id")
    assert frame.attrs["observation_date"] == "granted" and "granted" not in frame.columns
    assert frame.loc["C1", "txn_in_amount_12m"] == pytest.approx(1200.0)  # 12 months of 100, not the million
    assert frame.loc["C1", "days_since_last_txn"] == (pd.Timestamp("1995-03-31") - pd.Timestamp("1995-03-08")).days
    assert frame.loc["C2", "txn_in_count_3m"] == 3 and frame.loc["C2", "days_since_last_txn"] == 22
    # no observation date: the global cut-off (the last event)
    assert frame.loc["C3", "days_since_last_txn"] == 0


@pytest.mark.parametrize("cid", ["C1", "C2"])
def test_each_row_equals_a_global_cut_off_at_its_own_date(cid):
    events = _events()
    per_customer = build_features_from_frames({"customers": CUSTOMERS, "transactions": events},
                                              observation_date="granted").set_index("customer_id")
    obs = CUSTOMERS.set_index("customer_id").loc[cid, "granted"]
    alone = build_features_from_frames(
        {"customers": CUSTOMERS[CUSTOMERS.customer_id == cid].drop(columns="granted"),
         "transactions": events[events.customer_id == cid]}, as_of=str(obs.date())).set_index("customer_id")
    cols = [c for c in alone.columns if c in per_customer.columns and c != "avg_monthly_inflow_12m"
            and c != "avg_monthly_outflow_12m"]
    got, want = per_customer.loc[cid, cols].astype(float), alone.loc[cid, cols].astype(float)
    assert np.allclose(got.to_numpy(), want.to_numpy(), equal_nan=True), (got - want)[got != want]


def test_without_observation_dates_the_global_cut_off_remains():
    plain = build_features_from_frames({"customers": CUSTOMERS.drop(columns="granted"), "transactions": _events()})
    assert "observation_date" not in plain.attrs and plain.attrs["as_of"] == "1996-12-08"
    c1 = plain.set_index("customer_id").loc["C1"]
    assert c1["txn_in_amount_12m"] == pytest.approx(1200.0)  # the 1995 million is outside 1996's window
