"""Mapping, round 2: generated keys, honest proposals, one column → several labels with roles, protected
columns, value parsers (birth numbers, two-digit-year pivot, amounts) and the data-set currency."""

from __future__ import annotations

import pandas as pd
import yaml

from profile_core.ingest import Mapping, load_into_workspace, propose_files, propose_mapping, read_table_file
from profile_core.ingest.mapping import ColumnMapping, LabelSpec, TableMapping, binary_codes
from profile_core.store import Workspace


def csv_bytes(rows: list[list[object]]) -> bytes:
    return ("\n".join(",".join(str(v) for v in r) for r in rows) + "\n").encode()


def german_like(n: int = 300) -> bytes:
    """A flat credit file without any ID column, 1 = good / 2 = bad target (as in the Statlog description)."""
    rows = [["status", "duration", "purpose", "amount", "age", "credit_risk"]]
    for i in range(n):
        rows.append([f"A1{i % 4 + 1}", [6, 12, 24, 36, 48][i % 5], f"A4{i % 10}", 500 + 37 * i, 20 + i % 50,
                     2 if i % 10 < 3 else 1])
    return csv_bytes(rows)


# ---- item 2: generated keys; IDs from the whole column ---------------------------------------------------------
def test_a_flat_file_without_an_id_gets_a_generated_key_and_loads():
    mapping, _ = propose_files([("german.data", german_like())])
    tm = mapping.tables[0]
    assert tm.table == "customers" and tm.key == "row"
    assert "mapping.key_generated" in {i.problem for i in mapping.problems()}
    assert not mapping.errors()
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("german.data", german_like())], ws, "german", mapping=mapping)
        assert result.report.ok, result.report.summary("en")
        ids = result.tables["customers"]["customer_id"]
        assert ids.tolist()[:2] == ["row-2", "row-3"] and ids.is_unique and len(ids) == 300


def test_a_key_from_chosen_columns_is_a_stable_hash():
    frame = pd.DataFrame({"name": ["Ann", "Bob"], "born": ["1970-01-01", "1980-02-02"], "x": [1, 2]})
    tm = TableMapping(table="customers", headers=list(frame), key=["name", "born"],
                      columns=[ColumnMapping(source="x", role="feature")])
    from profile_core.ingest.mapping import apply_mapping, generated_key

    out = apply_mapping(frame, tm)
    assert out["customer_id"].str.len().tolist() == [16, 16] and out["customer_id"].is_unique
    assert generated_key(frame.iloc[::-1], ["name", "born"]).tolist() == out["customer_id"].tolist()[::-1]


def test_id_proposals_look_at_the_whole_column_and_skip_codes_and_measures():
    n = 50
    rows = [["flag", "balance", "client"]] + [[i % 2 if i >= 5 else i % 2, 1000.5 + i, f"K{i:04d}"]
                                               for i in range(n)]
    tm = propose_mapping("customers", read_table_file("c.csv", csv_bytes(rows)))
    assert tm.column("client").target == "customer_id"
    assert tm.column("flag").target != "customer_id" and tm.column("balance").target != "customer_id"
    # the first five values differ, the column does not: never the key
    rows = [["seq", "v"]] + [[i if i < 5 else 4, i] for i in range(40)]
    tm = propose_mapping("customers", read_table_file("c.csv", csv_bytes(rows)))
    assert tm.column("seq").target != "customer_id" and tm.key == "row"


# ---- item 8: honest proposals --------------------------------------------------------------------------------
def test_a_1_2_target_is_proposed_with_both_codes_and_keeps_every_bad_loan():
    mapping, _ = propose_files([("german.data", german_like())])
    cm = mapping.tables[0].column("credit_risk")
    assert cm.role == "label" and cm.kind == "binary" and cm.codes == {"1": "0", "2": "1"}
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("german.data", german_like())], ws, "g", mapping=mapping)
        assert result.report.ok
        assert result.tables["customers"]["credit_risk"].sum() == 90  # 30 % bad, none lost
    assert binary_codes(["good", "bad"]) == {"good": "0", "bad": "1"}
    assert binary_codes(["Y", "N"]) == {"Y": "1", "N": "0"} and binary_codes(["0", "1"]) is None


def test_a_load_that_would_lose_label_values_stops_and_asks():
    mapping, _ = propose_files([("german.data", german_like())])
    mapping.tables[0].column("credit_risk").codes = {}  # as before: 1/2 read as a flag
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("german.data", german_like())], ws, "g", mapping=mapping)
    err = next(i for i in result.report.errors if i.problem == "mapping.label_values_lost")
    assert err.count == 90 and "2" in err.message_en and "codes" in err.message_en and result.version is None


def test_name_likeness_never_sends_a_number_to_a_category_and_rare_labels_are_not_proposed():
    rows = [["Duration", "default", "id"]] + [[12 * (1 + i % 5), "yes" if i < 3 else "no", f"C{i}"]
                                               for i in range(200)]
    tm = propose_mapping("customers", read_table_file("loans.csv", csv_bytes(rows)))
    assert tm.column("Duration").target is None and tm.column("Duration").role == "feature"
    assert tm.column("default").role == "feature"  # 3 "yes" rows: nothing to learn from


# ---- item 7 + label contract: one column, several labels; roles; protected; currency -----------------------------
def test_one_column_feeds_two_labels_with_roles_and_the_meta_records_them():
    status = ["A", "B", "C", "D"]
    rows = [["loan_id", "status", "sex"]] + [[f"L{i}", status[i % 4], "MF"[i % 2]] for i in range(200)]
    tm = TableMapping(table="customers", headers=rows[0], columns=[
        ColumnMapping(source="loan_id", target="customer_id", role="key"),
        ColumnMapping(source="status", target="loan.status class", role="label", kind="multiclass",
                      label_role="grade",
                      labels=[LabelSpec(name="违约.default", kind="binary", role="pd",
                                        codes={"A": "0", "B": "1", "C": "0", "D": "1"})]),
        ColumnMapping(source="sex", role="feature", protected=True)])
    mapping = Mapping(tables=[tm], currency="CZK")
    text = mapping.to_yaml()
    again = Mapping.from_text(text)
    assert again.to_dict() == mapping.to_dict() and "role: pd" in text and "protected: true" in text
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("loans.csv", csv_bytes(rows))], ws, "loans", mapping=again)
        assert result.report.ok, result.report.summary("en")
        meta = ws.meta("loans")
    df = result.tables["customers"]
    assert df["违约.default"].tolist()[:4] == [0, 1, 0, 1] and df["loan.status class"].tolist()[:2] == ["A", "B"]
    assert meta["labels"] == {"loan.status class": "multiclass", "违约.default": "binary"}
    assert meta["label_roles"] == {"loan.status class": "grade", "违约.default": "pd"}
    assert meta["protected"] == ["sex"] and meta["currency"] == "CZK"


# ---- item 6: value parsers ---------------------------------------------------------------------------------------
def test_birth_numbers_give_sex_and_a_birth_date_and_the_pivot_keeps_old_customers_old():
    rows = [["client_id", "birth_number"], ["1", "706213"], ["2", "450204"], ["3", "115512"], ["4", "260101"]]
    doc = {"format": "profile_core.mapping", "version": 1, "tables": [{
        "table": "customers", "headers": rows[0],
        "columns": [{"source": "client_id", "target": "customer_id", "role": "key"},
                    {"source": "birth_number", "target": "birth_date", "role": "feature", "pivot": -1,
                     "birth_number": {"female_month_offset": 50, "sex": "gender", "female": "女", "male": "男"}}],
        "derived": [{"name": "age", "op": "age", "source": "birth_date", "as_of": "1999-01-01", "role": "field"}]}]}
    mapping = Mapping.from_text(yaml.safe_dump(doc, allow_unicode=True))
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("client.asc", csv_bytes(rows))], ws, "c", mapping=mapping)
    assert result.report.ok, result.report.summary("en")
    df = result.tables["customers"]
    assert df["gender"].tolist() == ["女", "男", "女", "男"]
    assert df["age"].tolist() == [28, 53, 87, 73]  # 1911 and 1926, never 2011 / 2026


def test_amounts_with_thousands_separators_and_currency_symbols():
    rows = [["customer_id", "txn_time", "amount"], ["C1", "2024-01-05", '"CZK 1,234.50"'],
            ["C1", "2024-01-06", '"$2,000"'], ["C1", "2024-01-07", "(15.25)"]]
    doc = {"format": "profile_core.mapping", "version": 1, "tables": [
        {"table": "customers", "headers": ["customer_id"], "columns": [
            {"source": "customer_id", "target": "customer_id", "role": "key"}]},
        {"table": "transactions", "headers": rows[0], "columns": [
            {"source": "customer_id", "target": "customer_id", "role": "key"},
            {"source": "txn_time", "target": "txn_time", "role": "field", "date_format": "YYYY-MM-DD"},
            {"source": "amount", "target": "amount", "role": "field", "thousands": ","}]}]}
    mapping = Mapping.from_text(yaml.safe_dump(doc))
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("c.csv", b"customer_id\nC1\n"), ("t.csv", csv_bytes(rows))], ws, "t",
                                     mapping=mapping)
    assert result.tables["transactions"]["amount"].tolist() == [1234.5, 2000.0, -15.25]
