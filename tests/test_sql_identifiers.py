"""Hostile column headers are names, never SQL: load → workspace → features → scores keep them inert."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from profile_core.features import build_feature_table, build_features_from_frames
from profile_core.ingest import load_into_workspace
from profile_core.sql import quote_ident, quote_literal
from profile_core.store import Workspace

SECRET = "TOP-SECRET-LINE-4711"
HOSTILE = [
    'age" AS "age2", (SELECT content FROM read_text(\'{path}\')) AS "leak", name AS "leak_name", phone AS "leak_phone',
    'x"; DROP TABLE _datasets; --',
    'plain"quote',
    "comment -- tail",
    "semi;colon",
    "/* block */ score",
    "read_text('{path}')",
]


def test_quote_ident_doubles_quotes_and_refuses_empty() -> None:
    assert quote_ident('a"b') == '"a""b"'
    assert quote_ident("客户") == '"客户"'
    assert quote_literal("it's") == "'it''s'"
    for bad in ("", "a\x00b", None):
        with pytest.raises(ValueError):
            quote_ident(bad)  # type: ignore[arg-type]


def test_every_hostile_name_round_trips_through_duckdb() -> None:
    con = duckdb.connect()
    for name in HOSTILE:
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT 1 AS {quote_ident(name)}")
        assert [d[0] for d in con.execute("SELECT * FROM t").description] == [name]


@pytest.fixture
def hostile_csv(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    headers = [h.format(path=secret) for h in HOSTILE]
    rows = ["customer_id,name,phone,age," + ",".join('"' + h.replace('"', '""') + '"' for h in headers)]
    for i in range(30):
        rows.append(f"C{i:03d},张{i},1380000{i:04d},{20 + i}," + ",".join(str(i + j) for j in range(len(headers))))
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path, headers


def _features_of(ws: Workspace, dataset: str) -> pd.DataFrame:
    return build_feature_table(ws.con, tables=ws.relation_names(dataset))


def test_hostile_headers_load_and_stay_inert(tmp_path, hostile_csv) -> None:
    path, headers = hostile_csv
    ws = Workspace(tmp_path / "ws.duckdb")
    result = load_into_workspace([(path.name, path)], ws, dataset="hostile")
    assert result.version == 1, result.report
    frame = _features_of(ws, "hostile")
    assert len(frame) == 30
    text = frame.astype(str).to_string()
    assert SECRET not in text  # no file content read through a header
    assert "leak" not in frame.columns and "leak_name" not in frame.columns and "leak_phone" not in frame.columns
    assert "name" not in frame.columns and "phone" not in frame.columns  # personal columns never leave as features
    assert not frame.astype(str).apply(lambda s: s.str.contains("张")).any().any()
    # every hostile header is one column of its own with the file's values
    for j, h in enumerate(headers):
        stored = [c for c in frame.columns if c == h]
        assert stored, f"header {h!r} missing from the feature table"
        assert frame[h].astype(float).tolist() == [float(i + j) for i in range(30)]
    assert ws.list_datasets()["name"].tolist() == ["hostile"]  # the catalogue table survived "DROP TABLE"


def test_hostile_relation_and_column_names_in_memory() -> None:
    customers = pd.DataFrame({"customer_id": ["A", "B"], 'evil") AS x, 1 AS ("y': [1.0, 2.0]})
    frame = build_features_from_frames({"customers": customers})
    assert frame['evil") AS x, 1 AS ("y'].tolist() == [1.0, 2.0]
    con = duckdb.connect()
    con.register('cust"; --', customers)
    assert len(build_feature_table(con, {"customers": 'cust"; --'})) == 2
