"""Hostile and damaged uploads (issue 15 items 6, 10, 11 and the smaller ingest ones): decoded-size limits,
header width before parsing, rows cut short or unbalanced quotes named by line, required values present,
header validation, archives."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from profile_core.ingest import IngestError, Limits, load_into_workspace, prepare_tables, read_table_file
from profile_core.store import Workspace

CUSTOMERS = "customer_id,name,age\nC1,Ann,30\nC2,Bob,41\nC3,Cy,52\n"
TXN = "customer_id,txn_time,amount\nC1,2024-01-05,10.5\nC2,2024-01-06,20\nC3,2024-01-07,30\n"


def _problems(report) -> list[tuple[str, int | None, int, str]]:
    return [(i.problem, i.row, i.count, i.severity) for i in report.issues if i.problem.startswith("ingest.r")
            or "required" in i.problem]


# ---- rows cut short, extra fields, unbalanced quotes ------------------------------------------------------
def test_a_row_cut_short_is_an_error_naming_its_line():
    cut = CUSTOMERS + "C4,D"  # the file ends mid-row
    _, report = prepare_tables([("customers.csv", cut.encode())])
    err = report.errors[0]
    assert (err.problem, err.row, err.count) == ("ingest.ragged_row", 5, 1)
    assert "line 5 has 2 field(s) where the header has 3" in err.message_en


def test_rows_cut_short_are_skipped_and_counted_by_choice():
    cut = CUSTOMERS.replace("C2,Bob,41\n", "C2,Bob\n") + "C4,D"
    tables, report = prepare_tables([("customers.csv", cut.encode())], bad_rows="skip")
    assert report.ok
    assert tables["customers"]["customer_id"].tolist() == ["C1", "C3"]
    skipped = next(i for i in report.warnings if i.problem == "ingest.rows_skipped")
    assert (skipped.row, skipped.count) == (3, 2)


def test_an_extra_field_is_named_by_line_and_can_be_skipped():
    bad = CUSTOMERS.replace("C3,Cy,52", "C3,Cy,52,oops")
    _, report = prepare_tables([("customers.csv", bad.encode())])
    assert (report.errors[0].problem, report.errors[0].row) == ("ingest.ragged_row", 4)
    tables, report = prepare_tables([("customers.csv", bad.encode())], bad_rows="skip")
    assert report.ok and tables["customers"]["customer_id"].tolist() == ["C1", "C2"]


def test_an_unbalanced_quote_is_reported_at_its_line_never_row_none():
    bad = CUSTOMERS + 'C4,"Dee,60\nC5,Eve,33\n'
    _, report = prepare_tables([("customers.csv", bad.encode())])
    err = report.errors[0]
    assert err.problem == "ingest.ragged_row" and err.row == 5 and "None" not in err.message_en
    tables, report = prepare_tables([("customers.csv", bad.encode())], bad_rows="skip")
    assert report.ok and tables["customers"]["customer_id"].tolist() == ["C1", "C2", "C3"]


def test_a_trailing_separator_on_every_data_line_keeps_every_column():
    text = "customer_id,name,age\nC1,Ann,30,\nC2,Bob,41,\n"
    raw = read_table_file("customers.csv", text.encode())
    assert raw["customer_id"].tolist() == ["C1", "C2"] and raw["age"].tolist() == ["30", "41"]


# ---- required values ------------------------------------------------------------------------------------
def test_missing_amount_or_time_is_reported_never_silent():
    txn = TXN.replace("C2,2024-01-06,20", "C2,2024-01-06,").replace("C3,2024-01-07,30", "C3,,30")
    files = [("customers.csv", CUSTOMERS.encode()), ("transactions.csv", txn.encode())]
    _, report = prepare_tables(files)
    found = {(i.column, i.row, i.count) for i in report.errors if i.problem == "ingest.missing_required_value"}
    assert found == {("amount", 3, 1), ("txn_time", 4, 1)}
    tables, report = prepare_tables(files, bad_rows="skip")
    assert report.ok and len(tables["transactions"]) == 1
    warn = next(i for i in report.warnings if i.problem == "ingest.rows_missing_required")
    assert (warn.count, warn.row) == (2, 3)


def test_the_mapping_can_choose_to_skip_bad_rows(tmp_path):
    from profile_core.ingest import propose_files

    cut = CUSTOMERS + "C4,D"
    mapping, _ = propose_files([("customers.csv", cut.encode())])
    mapping.bad_rows = "skip"
    assert "bad_rows: skip" in mapping.to_yaml()
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("customers.csv", cut.encode())], ws, "c", mapping=mapping)
        assert result.report.ok and len(result.tables["customers"]) == 3


# ---- header width and header names ------------------------------------------------------------------------
def test_a_million_column_header_is_refused_before_parsing(monkeypatch):
    header = ",".join(f"c{i}" for i in range(1_000_000))
    data = (header + "\n" + ",".join("1" for _ in range(1_000_000)) + "\n").encode()
    called = []
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: called.append(1))
    with pytest.raises(IngestError) as e:
        read_table_file("wide.csv", data)
    assert e.value.issue.problem == "ingest.too_many_columns" and "1000000" in e.value.issue.message_en.replace(",", "")
    assert not called  # pandas never saw the file


@pytest.mark.parametrize("header, why", [("na\x00me", "control character"), ("a\x1b[31m", "control character"),
                                          ("x" * 300, "300 > 256 characters")])
def test_headers_with_control_characters_or_too_long_are_refused(header, why):
    data = f"customer_id,{header}\nC1,1\n".encode()
    _, report = prepare_tables([("customers.csv", data)])
    err = report.errors[0]
    assert err.problem == "ingest.bad_header" and why in err.message_en and "column 2" in err.message_en


def test_a_header_with_quotes_and_sql_loads_as_an_inert_name():
    evil = 'age" AS "x", (SELECT 1) AS "leak'
    data = f'customer_id,"{evil.replace(chr(34), chr(34) * 2)}"\nC1,5\nC2,6\n'.encode()
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("customers.csv", data)], ws, "evil")
        assert result.report.ok
        assert evil in result.tables["customers"].columns
        assert ws.read_table("evil", "customers")[evil].tolist() == [5.0, 6.0]


# ---- decoded size -------------------------------------------------------------------------------------------
def test_a_dictionary_encoded_parquet_is_refused_on_its_decoded_size():
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 200_000
    long = "x" * 2_000  # 400 MB once decoded, a few KB on disk
    table = pa.table({"customer_id": pa.array([f"C{i}" for i in range(n)]),
                      "note": pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([long]))})
    buf = io.BytesIO()
    pq.write_table(table, buf, use_dictionary=True, compression="zstd")
    assert len(buf.getvalue()) < 2_000_000
    with pytest.raises(IngestError) as e:
        read_table_file("big.parquet", buf.getvalue(), Limits(max_decoded_bytes=50 << 20))
    assert e.value.issue.problem == "ingest.decoded_too_large" and "50.0 MB" in e.value.issue.message_en
    small = read_table_file("ok.parquet", buf.getvalue(), Limits(max_decoded_bytes=1 << 30))
    assert len(small) == n and small["note"].iloc[0] == long  # under the limit it reads as plain text


# ---- archives and separators -------------------------------------------------------------------------------
def test_a_zip_of_csv_files_loads_every_member():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("export/customers.csv", CUSTOMERS)
        z.writestr("export/transactions.csv", TXN)
        z.writestr("__MACOSX/._customers.csv", "junk")
    tables, report = prepare_tables([("export.zip", buf.getvalue())])
    assert report.ok, report.summary("en")
    assert len(tables["customers"]) == 3 and len(tables["transactions"]) == 3


def test_a_7z_archive_loads_every_member_and_a_damaged_one_gets_a_message():
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(CUSTOMERS, "export/customers.csv")
        z.writestr(TXN, "export/transactions.csv")
    tables, report = prepare_tables([("export.7z", buf.getvalue())])
    assert report.ok, report.summary("en")
    assert len(tables["customers"]) == 3 and len(tables["transactions"]) == 3
    _, report = prepare_tables([("export.7z", b"7z\xbc\xaf\x27\x1c" + b"\x00" * 50)])
    assert report.errors[0].problem == "ingest.unreadable" and "7z" in report.errors[0].message_en


def test_a_7z_bomb_is_refused_on_its_directory():
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(b"0" * (30 << 20), "zeros.csv")
    _, report = prepare_tables([("bomb.7z", buf.getvalue())])
    assert report.errors[0].problem == "ingest.zip_bomb" and "bomb.7z" in report.errors[0].message_en


def test_space_separated_and_fixed_width_files_are_split_into_columns():
    spaced = "customer_id  name   age\nC1  Ann  30\nC2  Bob  41\n"
    raw = read_table_file("clients.txt", spaced.encode())
    assert list(raw.columns) == ["customer_id", "name", "age"] and raw["age"].tolist() == ["30", "41"]
    assert raw.attrs["format"]["separator"] == "spaces"
    fixed = "customer_id name      age\nC1          Ann Lee   30\nC2          Bob       41\n"
    raw = read_table_file("clients.txt", fixed.encode())
    assert raw.attrs["format"]["separator"] == "fixed-width"
    assert raw["name"].tolist() == ["Ann Lee", "Bob"] and raw["age"].tolist() == ["30", "41"]
