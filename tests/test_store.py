"""The DuckDB workspace: versions, drop, list, fingerprints, name checks, atomic replace."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from profile_core.store import Workspace, fingerprint_tables


def _tables(n: int = 3, amount: float = 10.0) -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({
        "customer_id": pd.Series([f"C{i:03d}" for i in range(n)], dtype="str"),
        "gender": pd.Series(["男", "女", None][:n], dtype="str"),
        "age": pd.Series([30, None, 45][:n], dtype="Int64"),
    })
    transactions = pd.DataFrame({
        "customer_id": pd.Series(["C000", "C000", "C001"], dtype="str"),
        "txn_time": pd.to_datetime(["2024-01-01", "2024-01-02 10:30", "2024-02-01"], format="mixed").astype("datetime64[us]"),
        "amount": [amount, -5.5, 300.0],
    })
    return {"customers": customers, "transactions": transactions}


@pytest.fixture
def ws():
    with Workspace(":memory:") as w:
        yield w


def test_versions_increase_and_list(ws: Workspace) -> None:
    assert ws.list_datasets().empty
    assert [ws.replace_dataset("main", _tables(), source="a.csv") for _ in range(3)] == [1, 2, 3]
    assert ws.replace_dataset("other", _tables(), kind="flat") == 1  # versions are per name
    listing = ws.list_datasets()
    assert list(listing["name"]) == ["main", "other"]
    assert list(listing.columns) == ["name", "version", "loaded_at", "source", "fingerprint", "row_counts", "kind"]
    main = listing.iloc[0]
    assert main["version"] == 3 and main["source"] == "a.csv" and main["kind"] == "tables"
    assert json.loads(main["row_counts"]) == {"customers": 3, "transactions": 3}
    assert listing.iloc[1]["kind"] == "flat"


def test_round_trip_keeps_values_and_dtypes(ws: Workspace) -> None:
    tables = _tables()
    ws.replace_dataset("main", tables)
    assert ws.tables("main") == ["customers", "transactions"]
    for name, df in tables.items():
        pd.testing.assert_frame_equal(ws.read_table("main", name), df)
    with pytest.raises(KeyError):
        ws.read_table("main", "behaviors")


def test_relation_names_work_in_sql(ws: Workspace) -> None:
    ws.replace_dataset("my-data_1", _tables())
    rel = ws.relation_names("my-data_1")
    assert set(rel) == {"customers", "transactions"}
    total = ws.con.execute(f"SELECT sum(amount) FROM {rel['transactions']}").fetchone()[0]
    assert total == pytest.approx(304.5)


def test_drop_and_versions_never_reused(ws: Workspace) -> None:
    ws.replace_dataset("main", _tables())
    ws.replace_dataset("main", _tables())
    ws.drop_dataset("main")
    assert not ws.has_dataset("main") and ws.list_datasets().empty
    with pytest.raises(KeyError):
        ws.tables("main")
    ws.drop_dataset("main")  # dropping twice is harmless
    assert ws.replace_dataset("main", _tables()) == 3


def test_names_are_case_insensitive(ws: Workspace) -> None:
    ws.replace_dataset("Main", _tables())
    assert ws.has_dataset("main") and ws.list_datasets()["name"].tolist() == ["main"]
    assert ws.replace_dataset("MAIN", _tables()) == 2


@pytest.mark.parametrize("bad", ["", "a b", "x;DROP TABLE _datasets", 'q"uote', "数据", "a" * 65, "../x"])
def test_invalid_dataset_names_refused(ws: Workspace, bad: str) -> None:
    with pytest.raises(ValueError):
        ws.replace_dataset(bad, _tables())
    with pytest.raises(ValueError):
        ws.has_dataset(bad)


def test_invalid_table_names_and_kind_refused(ws: Workspace) -> None:
    with pytest.raises(ValueError):
        ws.replace_dataset("main", {"bad name": _tables()["customers"]})
    with pytest.raises(ValueError):
        ws.replace_dataset("main", _tables(), kind="other")
    with pytest.raises(ValueError):
        ws.replace_dataset("main", {})
    assert not ws.has_dataset("main")


def test_fingerprint_stable_and_content_sensitive(ws: Workspace) -> None:
    ws.replace_dataset("a", _tables())
    ws.replace_dataset("b", _tables())
    ws.replace_dataset("c", _tables(amount=10.01))
    assert ws.fingerprint("a") == ws.fingerprint("b") == fingerprint_tables(_tables())
    assert ws.fingerprint("c") != ws.fingerprint("a")
    renamed = {"customers": _tables()["customers"].rename(columns={"age": "years"})}
    assert fingerprint_tables(renamed) != fingerprint_tables({"customers": _tables()["customers"]})
    assert len(ws.fingerprint("a")) == 64


def test_failure_mid_replace_rolls_back(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.replace_dataset("main", _tables())
    before = {t: ws.read_table("main", t) for t in ws.tables("main")}
    listing = ws.list_datasets()
    original = Workspace._write_table
    calls = []

    def flaky(self: Workspace, schema: str, table: str, df: pd.DataFrame) -> None:
        calls.append(table)
        if len(calls) == 2:  # the first table is already written inside the transaction
            raise duckdb.IOException("disk full")
        original(self, schema, table, df)

    monkeypatch.setattr(Workspace, "_write_table", flaky)
    with pytest.raises(duckdb.IOException):
        ws.replace_dataset("main", _tables(n=2, amount=99.0))
    assert calls == ["customers", "transactions"]
    monkeypatch.setattr(Workspace, "_write_table", original)
    pd.testing.assert_frame_equal(ws.list_datasets(), listing)
    for t, df in before.items():
        pd.testing.assert_frame_equal(ws.read_table("main", t), df)
    assert ws.replace_dataset("main", _tables()) == 2  # the failed load took no version


def test_file_workspace_persists(tmp_path) -> None:
    path = tmp_path / "sub" / "ws.duckdb"
    with Workspace(path) as w:
        w.replace_dataset("main", _tables(), source="x")
        fp = w.fingerprint("main")
    assert path.exists()
    with Workspace(path) as w:
        assert w.version("main") == 1 and w.fingerprint("main") == fp and w.kind("main") == "tables"
        pd.testing.assert_frame_equal(w.read_table("main", "customers"), _tables()["customers"])
