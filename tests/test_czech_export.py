"""A Czech-bank-style multi-table export (tests/fixtures/czech, generated values) goes propose → edit →
load → features → train from the CLI with no data file edited: account-keyed transactions through the
client↔account link table, one loan per account attached to its owner with its grant date as the
observation date, a district lookup table, birth numbers that encode sex, two-digit years across two
centuries and an A/B/C/D status feeding two labels."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from profile_core.cli import main
from profile_core.features import build_features_from_frames
from profile_core.store import Workspace

FIX = Path(__file__).parent / "fixtures" / "czech"
FILES = ["client.asc", "disp.asc", "trans.asc", "loan.asc", "district.asc", "card.asc"]


def _table(doc: dict, file: str) -> dict:
    return next(t for t in doc["tables"] if t["file"] == file)


def _col(table: dict, source: str) -> dict:
    return next(c for c in table["columns"] if c["source"] == source)


def edit(doc: dict) -> dict:
    """What a person changes in the proposed YAML (the proposal gets the rest right)."""
    doc["currency"] = "CZK"
    doc["observation_date"] = "loan_granted"
    client = _table(doc, "client.asc")
    _col(client, "birth_number").update(target="birth_date", pivot=-1, birth_number={"female_month_offset": 50,
                                                                                    "sex": "gender"})
    client["derived"] = [{"name": "age", "op": "age", "source": "birth_date", "as_of": "1999-01-01",
                          "role": "field"}]
    card = _table(doc, "card.asc")  # cards are keyed by disposition: the proposal joins them through disp.asc
    _col(card, "card_id")["role"] = "ignore"
    _col(card, "issued").update(date_format="YYMMDD")
    trans = _table(doc, "trans.asc")
    _col(trans, "trans_id")["role"] = "ignore"
    _col(trans, "type").update(target="direction", codes={"PRIJEM": "in", "VYDAJ": "out"})
    loan = _table(doc, "loan.asc")
    loan.update(table="attach", join={"key": "account_id", "via": "account", "prefix": "loan_"})
    loan["columns"] = [
        {"source": "loan_id", "role": "ignore"},
        {"source": "account_id", "target": "account_id", "role": "key"},
        {"source": "date", "target": "granted", "role": "feature", "date_format": "YYMMDD", "pivot": -1},
        {"source": "amount", "role": "feature"}, {"source": "duration", "role": "feature"},
        {"source": "payments", "role": "feature"},
        {"source": "status", "role": "label", "kind": "multiclass", "label_role": "grade",
         "labels": [{"name": "default", "kind": "binary", "role": "pd",
                     "codes": {"A": "0", "B": "1", "C": "0", "D": "1"}}]}]
    district = _table(doc, "district.asc")
    district.update(table="attach", key=None, join={"key": "A1", "on": "district_id", "prefix": "district_"})
    district["columns"] = [{"source": "A1", "role": "feature"}, {"source": "A2", "role": "ignore"},
                           {"source": "A3", "target": "region", "role": "feature"},
                           {"source": "A11", "target": "avg_salary", "role": "feature"},
                           {"source": "A12", "target": "unemployment", "role": "feature"}]
    return doc


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("czech")
    files = [str(FIX / f) for f in FILES]
    proposal = tmp / "mapping.yaml"
    assert main(["--lang", "en", "propose", *files, "--out", str(proposal)]) == 0
    doc = yaml.safe_load(proposal.read_text(encoding="utf-8"))
    # what the proposal already gets right
    assert [t["table"] for t in doc["tables"]] == ["customers", "account_links", "transactions", "attach", "attach",
                                                   "attach"]
    assert _table(doc, "card.asc")["join"] == {"key": "disp_id", "via": "link", "prefix": "card_"}
    assert _table(doc, "loan.asc")["join"] == {"key": "account_id", "via": "account", "prefix": "loan_"}
    assert _table(doc, "district.asc")["join"] == {"key": "A1", "on": "district_id", "prefix": "district_"}
    assert _col(_table(doc, "trans.asc"), "date")["date_format"] == "YYMMDD"
    assert _col(_table(doc, "trans.asc"), "type")["target"] == "direction"  # PRIJEM/VYDAJ read as in/out
    edited = tmp / "edited.yaml"
    edited.write_text(yaml.safe_dump(edit(doc), allow_unicode=True, sort_keys=False), encoding="utf-8")
    ws = tmp / "ws.duckdb"
    assert main(["--lang", "en", "load", *files, "--workspace", str(ws), "--dataset", "czech",
                 "--mapping", str(edited)]) == 0
    with Workspace(ws) as w:
        tables = {t: w.read_table("czech", t) for t in w.tables("czech")}
        meta = w.meta("czech")
    return tmp, ws, tables, meta


def test_the_export_loads_with_labels_dates_sex_and_districts(loaded):
    _, _, tables, meta = loaded
    cust = tables["customers"].set_index("customer_id")
    assert len(cust) == 160 and len(tables["transactions"]) == 19330  # to the owner only
    assert meta["labels"] == {"loan_status": "multiclass", "loan_default": "binary"}
    assert meta["label_roles"] == {"loan_status": "grade", "loan_default": "pd"}
    assert meta["observation_date"] == "loan_granted" and meta["currency"] == "CZK"
    clients = pd.read_csv(FIX / "client.asc", sep=";", dtype=str).set_index("client_id")
    women = clients["birth_number"].str[2:4].astype(int) > 50
    assert (cust.loc[women.index[women], "gender"] == "女").all() and (cust.loc[women.index[~women], "gender"] == "男").all()
    assert cust["age"].between(18, 88).all()  # births 1911–1980: never a negative age
    loans = pd.read_csv(FIX / "loan.asc", sep=";", dtype=str)
    assert cust["loan_default"].notna().sum() == len(loans) == 80
    assert cust["loan_default"].sum() == (loans["status"].isin(["B", "D"])).sum()
    assert cust.loc["2", "loan_granted"] == pd.Timestamp("1998-02-27")
    assert cust.loc["2", "district_region"] and pd.notna(cust.loc["2", "district_avg_salary"])
    cards = pd.read_csv(FIX / "card.asc", sep=";", dtype=str)
    disp = pd.read_csv(FIX / "disp.asc", sep=";", dtype=str).set_index("disp_id")
    holders = cards.assign(client=cards["disp_id"].map(disp["client_id"])).drop_duplicates("client")
    assert cust["card_type"].notna().sum() == len(holders)
    first = holders.iloc[0]
    assert cust.loc[first["client"], "card_type"] == first["type"]
    assert cust.loc[first["client"], "card_issued"] == pd.to_datetime("19" + first["issued"], format="%Y%m%d")


def test_features_honour_each_loans_grant_date(loaded):
    _, _, tables, meta = loaded
    frame = build_features_from_frames(tables, observation_date=meta["observation_date"]).set_index("customer_id")
    txn = tables["transactions"]
    cust = tables["customers"].set_index("customer_id")
    for cid in ["2", "4", "6"]:
        granted = cust.loc[cid, "loan_granted"]
        before = txn[(txn.customer_id == cid) & (txn.txn_time < granted + pd.Timedelta(days=1))]
        last = before["txn_time"].max()
        assert frame.loc[cid, "days_since_last_txn"] == (granted - last.normalize()).days
        window = before[(before.txn_time >= granted + pd.Timedelta(days=1) - pd.DateOffset(months=12))
                        & (before.direction == "in")]
        assert frame.loc[cid, "txn_in_amount_12m"] == pytest.approx(window["amount"].abs().sum())


def test_train_from_the_cli(loaded):
    tmp, ws, _, _ = loaded
    out = tmp / "bundle"
    rc = main(["train", "--data", "workspace:czech", "--workspace", str(ws), "--epochs", "2", "--out", str(out),
               "--json"])
    assert rc == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {t["name"] for t in manifest["tasks"]} == {"loan_status", "loan_default"}


def test_training_reads_the_observation_date_from_the_data_set(loaded):
    from profile_core.pipeline import load_source

    _, ws, tables, meta = loaded
    source = load_source("workspace:czech", workspace=ws)
    frame = build_features_from_frames(source.tables)
    assert frame.attrs.get("observation_date") == "loan_granted"


def test_scoring_and_features_read_the_observation_date_too(loaded):
    """``features`` / ``score`` over ``workspace:NAME`` build the same point-in-time features as training."""
    from profile_core.pipeline import feature_frame, load_source

    _, ws, _, _ = loaded
    scored = feature_frame("workspace:czech", workspace=ws)
    trained = build_features_from_frames(load_source("workspace:czech", workspace=ws).tables)
    assert scored.attrs.get("observation_date") == "loan_granted"
    pd.testing.assert_frame_equal(scored, trained)
