"""Ingest: encodings, separators, formats, aliases, coercion, every blocking error, warnings, atomic loads."""

from __future__ import annotations

import gzip

import duckdb
import pandas as pd
import pytest

from profile_core.ingest import (
    IngestError,
    ValidationReport,
    load_into_workspace,
    prepare_tables,
    read_table_file,
)
from profile_core.store import Workspace

# ---- tiny inline portfolio: 3 customers and a few events -----------------------------------------
CUSTOMERS_ZH = [
    ["客户ID", "姓名", "性别", "年龄", "职业", "城市", "年收入", "开户日期"],
    ["C001", "张三", "男", "35", "教师", "北京", "120000", "2019-03-01"],
    ["C002", "李四", "女", "42", "工程师", "上海", "\"250,000\"", "2020/07/15"],
    ["C003", "王五", "男", "28", "个体户", "广州", "", "2021年1月5日"],
]
CUSTOMERS_EN = [
    ["Customer_ID", "name", "GENDER", "age", "occupation", "city", "annual_income", "open_date"],
    ["C001", "张三", "M", "35", "教师", "北京", "120000", "2019-03-01"],
    ["C002", "李四", "female", "42", "工程师", "上海", "250000", "2020-07-15"],
    ["C003", "王五", "1", "28", "个体户", "广州", "", "2021-01-05"],
]
TXN_ZH = [
    ["客户ID", "交易时间", "交易金额", "收支", "渠道", "类别", "交易地点"],
    ["C001", "2024-01-05 10:00:00", "100.5", "收入", "APP", "工资", "北京"],
    ["C001", "2024-01-06 12:30:00", "20", "支出", "柜台", "餐饮", "北京"],
    ["C002", "2024-02-01 09:00:00", "3000", "支出", "网银", "购物", "上海"],
]
TXN_EN = [
    ["customer_id", "TXN_TIME", " Amount ", "direction", "channel", "category", "location"],
    ["C001", "2024-01-05 10:00:00", "100.5", "in", "APP", "工资", "北京"],
    ["C001", "2024-01-06 12:30:00", "20", "OUT", "柜台", "餐饮", "北京"],
    ["C002", "2024-02-01 09:00:00", "3000", "debit", "网银", "购物", "上海"],
]
CREDIT_ZH = [
    ["客户ID", "日期", "信用评分", "是否违约", "风险等级", "逾期天数"],
    ["C001", "2024-01-31", "720", "否", "A", "0"],
    ["C002", "2024-01-31", "580", "是", "D", "45"],
    ["C003", "2024-01-31", "650", "N", "B", "0"],
]
CREDIT_EN = [
    ["customer_id", "as_of", "credit_score", "default", "risk_level", "dpd"],
    ["C001", "2024-01-31", "720", "0", "A", "0"],
    ["C002", "2024-01-31", "580", "Y", "D", "45"],
    ["C003", "2024-01-31", "650", "false", "B", "0"],
]


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8", sep: str = ",") -> bytes:
    return ("\n".join(sep.join(r) for r in rows) + "\n").encode(encoding)


def files_zh() -> list[tuple[str, bytes]]:
    return [("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(TXN_ZH)),
            ("credit.csv", csv_bytes(CREDIT_ZH))]


def only(report: ValidationReport, key: str):
    found = [i for i in report.issues if i.problem == f"ingest.{key}"]
    assert found, f"no {key} in {[i.problem for i in report.issues]}"
    return found[0]


def assert_names(issue, *parts: str) -> None:
    for lang in ("zh", "en"):
        text = issue.message(lang)
        for part in parts:
            assert part in text, (lang, part, text)


# ---- reading --------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_every_encoding_gives_the_same_frame(encoding: str) -> None:
    expected, _ = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH))])
    got, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH, encoding))])
    assert report.ok
    pd.testing.assert_frame_equal(got["customers"], expected["customers"])
    assert got["customers"]["occupation"].tolist() == ["教师", "工程师", "个体户"]


def test_gb18030_only_character() -> None:
    rows = [r[:] for r in CUSTOMERS_ZH]
    rows[1][1] = "龚䶮"  # U+4DAE is in GB18030 but not in GBK
    with pytest.raises(UnicodeEncodeError):
        "䶮".encode("gbk")
    utf8 = read_table_file("c.csv", csv_bytes(rows))
    gb = read_table_file("c.csv", csv_bytes(rows, "gb18030"))
    pd.testing.assert_frame_equal(gb, utf8)
    assert gb.loc[2, "姓名"] == "龚䶮"


def test_charset_normalizer_fallback_utf16() -> None:
    df = read_table_file("c.csv", csv_bytes(CUSTOMERS_ZH, "utf-16", sep="\t"))
    assert list(df.columns)[:2] == ["客户ID", "姓名"] and df.loc[3, "姓名"] == "李四"


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_separators_are_sniffed(sep: str) -> None:
    df = read_table_file("c.csv", csv_bytes(CUSTOMERS_ZH, sep=sep))
    assert df.shape == (3, 8) and df.loc[4, "城市"] == "广州"


def test_quoted_separator_and_row_numbers_count_blank_lines() -> None:
    text = '客户ID,姓名,城市\nC001,"张,三",北京\n\nC002,李四,上海\n'
    df = read_table_file("c.csv", text.encode())
    assert df.loc[2, "姓名"] == "张,三"
    assert list(df.index) == [2, 4]  # the blank line is row 3 of the file


def test_gzipped_csv_is_unpacked_and_recognised_by_inner_name() -> None:
    tables, report = prepare_tables([("customers.csv.gz", gzip.compress(csv_bytes(CUSTOMERS_ZH, "gbk")))])
    assert report.ok and len(tables["customers"]) == 3


def test_path_input(tmp_path) -> None:
    path = tmp_path / "customers.csv"
    path.write_bytes(csv_bytes(CUSTOMERS_ZH, "gbk"))
    assert read_table_file("customers.csv", path).shape == (3, 8)
    assert read_table_file("customers.csv", str(path)).shape == (3, 8)


def test_chinese_and_english_headers_give_identical_canonical_frames() -> None:
    zh, rep_zh = prepare_tables(files_zh())
    en, rep_en = prepare_tables([("a.csv", csv_bytes(CUSTOMERS_EN)), ("b.csv", csv_bytes(TXN_EN)),
                                 ("c.csv", csv_bytes(CREDIT_EN))])
    assert rep_zh.ok and rep_en.ok
    assert list(zh) == list(en) == ["customers", "transactions", "credit_records"]
    for name in zh:
        pd.testing.assert_frame_equal(en[name], zh[name])


def test_canonical_types_and_value_mapping() -> None:
    tables, _ = prepare_tables(files_zh())
    c, tx, cr = tables["customers"], tables["transactions"], tables["credit_records"]
    assert list(c.columns) == ["customer_id", "name", "gender", "age", "occupation", "city", "income", "open_date"]
    assert c["gender"].tolist() == ["男", "女", "男"]
    assert c["age"].dtype == "Int64" and c["income"].dtype == "float64"
    assert c["income"].iloc[1] == 250000.0 and pd.isna(c["income"].iloc[2])
    assert c["open_date"].tolist() == [pd.Timestamp("2019-03-01"), pd.Timestamp("2020-07-15"),
                                       pd.Timestamp("2021-01-05")]
    assert pd.api.types.is_string_dtype(c["customer_id"])
    assert tx["direction"].tolist() == ["in", "out", "out"]
    assert pd.api.types.is_datetime64_any_dtype(tx["txn_time"]) and tx["amount"].dtype == "float64"
    assert cr["default_flag"].tolist() == [0, 1, 0] and cr["default_flag"].dtype == "Int64"
    assert cr["dpd"].tolist() == [0, 45, 0]


def test_ids_keep_leading_zeros_and_excel_numbers_lose_dot_zero(tmp_path) -> None:
    rows = [["客户ID", "年龄"], ["007", "30"], ["012", "40"]]
    tables, _ = prepare_tables([("customers.csv", csv_bytes(rows))])
    assert tables["customers"]["customer_id"].tolist() == ["007", "012"]
    path = tmp_path / "customers.xlsx"
    pd.DataFrame({"客户ID": [1001.0, 1002.0], "年龄": [30, 40]}).to_excel(path, index=False)
    tables, _ = prepare_tables([("customers.xlsx", path)])
    assert tables["customers"]["customer_id"].tolist() == ["1001", "1002"]


def test_excel_and_parquet_match_csv(tmp_path) -> None:
    csv_tables, _ = prepare_tables(files_zh())
    raw = {n: pd.DataFrame(rows[1:], columns=rows[0]).replace('"250,000"', "250,000") for n, rows in
           [("customers", CUSTOMERS_ZH), ("transactions", TXN_ZH), ("credit", CREDIT_ZH)]}
    xlsx, parquet = [], []
    for n, df in raw.items():
        df.to_excel(tmp_path / f"{n}.xlsx", index=False)
        df.to_parquet(tmp_path / f"{n}.parquet")
        xlsx.append((f"{n}.xlsx", (tmp_path / f"{n}.xlsx").read_bytes()))
        parquet.append((f"{n}.parquet", tmp_path / f"{n}.parquet"))
    for files in (xlsx, parquet):
        tables, report = prepare_tables(files)
        assert report.ok, report.summary()
        for name in csv_tables:
            pd.testing.assert_frame_equal(tables[name], csv_tables[name])


def test_typed_excel_and_parquet_cells(tmp_path) -> None:
    df = pd.DataFrame({"customer_id": ["C001", "C002", "C003"], "txn_time": pd.to_datetime(["2024-01-05"] * 3),
                       "amount": [1.5, 2.0, 3.0], "direction": ["收入", "支出", "收入"]})
    df.to_excel(tmp_path / "t.xlsx", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    cust = ("customers.csv", csv_bytes(CUSTOMERS_ZH))
    for name in ("t.xlsx", "t.parquet"):
        tables, report = prepare_tables([cust, (f"transactions{name[1:]}", tmp_path / name)])
        assert report.ok, report.summary()
        assert tables["transactions"]["txn_time"].iloc[0] == pd.Timestamp("2024-01-05")
        assert tables["transactions"]["amount"].tolist() == [1.5, 2.0, 3.0]


def test_excel_workbook_with_one_sheet_per_table_and_excel_row_numbers(tmp_path) -> None:
    path = tmp_path / "book.xlsx"
    bad_txn = [r[:] for r in TXN_ZH]
    bad_txn[3][2] = "abc"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame(CUSTOMERS_ZH[1:], columns=CUSTOMERS_ZH[0]).to_excel(writer, sheet_name="客户", index=False)
        pd.DataFrame(bad_txn[1:], columns=bad_txn[0]).to_excel(writer, sheet_name="交易", index=False,
                                                              startrow=2)  # header on Excel row 3
    tables, report = prepare_tables([("book.xlsx", path)])
    issue = only(report, "bad_value")
    assert issue.row == 6 and issue.file == "book.xlsx [交易]"
    assert_names(issue, "book.xlsx [交易]", "6", "amount", "abc")


def test_flat_form_one_row_per_customer_with_labels() -> None:
    rows = [["id", "年龄", "性别", "信用评分", "是否违约", "风险等级", "逾期天数", "loan_purpose", "x1"],
            ["1", "35", "男", "700", "否", "A", "0", "car", "0.5"],
            ["2", "50", "女", "", "是", "E", "90", "house", "1.5"],
            ["3", "41", "女", "610", "", "C", "3", "car", "2"]]
    tables, report = prepare_tables([("german_credit.csv", csv_bytes(rows))])
    assert report.ok and list(tables) == ["customers"]
    flat = tables["customers"]
    assert list(flat.columns) == ["customer_id", "gender", "age", "credit_score", "default_flag", "risk_level",
                                  "dpd", "loan_purpose", "x1"]
    assert flat["default_flag"].tolist()[:2] == [0, 1] and pd.isna(flat["default_flag"].iloc[2])
    assert flat["x1"].dtype == "float64" and pd.api.types.is_string_dtype(flat["loan_purpose"])
    missing = [i for i in report.warnings if i.problem == "ingest.labels_missing"]
    assert {(i.column, i.count) for i in missing} == {("credit_score", 1), ("default_flag", 1)}
    assert_names(only(report, "extra_columns"), "loan_purpose", "x1")


def test_flat_form_kind_in_workspace() -> None:
    rows = [["客户ID", "年龄", "违约"], ["A1", "30", "1"], ["A2", "40", "0"]]
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("credit.csv", csv_bytes(rows))], ws, "flat1")
        assert result.version == 1 and result.kind == "flat" and ws.kind("flat1") == "flat"
        assert ws.read_table("flat1", "customers")["default_flag"].tolist() == [1, 0]


def test_files_of_the_same_table_are_concatenated_and_checked_per_file() -> None:
    later = [TXN_ZH[0], ["C003", "2024-03-01", "8", "收入", "", "", ""], ["C777", "2024-03-02", "9", "收入", "", "", ""]]
    files = [("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("txn_2024_01.csv", csv_bytes(TXN_ZH)),
             ("txn_2024_03.csv", csv_bytes(later))]
    tables, report = prepare_tables(files)
    issue = only(report, "orphan_events")
    assert (issue.file, issue.row, issue.count) == ("txn_2024_03.csv", 3, 1)
    assert len(tables["transactions"]) == 5 and list(tables["transactions"].index) == list(range(5))


def test_invalid_dataset_name_is_refused_before_reading() -> None:
    with Workspace(":memory:") as ws, pytest.raises(ValueError):
        load_into_workspace(files_zh(), ws, "bad name; DROP")


# ---- blocking errors ------------------------------------------------------------------------------
def test_unreadable_file() -> None:
    with pytest.raises(IngestError) as err:
        read_table_file("transactions.xlsx", b"\x00\x01 not a workbook")
    assert err.value.issue.problem == "ingest.unreadable"
    assert_names(err.value.issue, "transactions.xlsx")
    _, report = prepare_tables([("missing.csv", "/nonexistent/missing.csv")])
    assert_names(only(report, "unreadable"), "missing.csv")


def test_old_xls_is_refused_with_a_hint() -> None:
    _, report = prepare_tables([("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)])
    issue = only(report, "unsupported_format")
    assert ".xlsx" in issue.message_zh and "old.xls" in issue.message_en


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf\n\n", "客户ID,姓名\n".encode(), b",,\n,,\n"])
def test_empty_file(content: bytes) -> None:
    _, report = prepare_tables([("customers.csv", content)])
    assert not report.ok
    assert_names(only(report, "empty"), "customers.csv")


def test_ragged_row() -> None:
    _, report = prepare_tables([("customers.csv", "客户ID,姓名\nC001,张三\nC002,李四,多余\n".encode())])
    issue = only(report, "ragged_row")
    assert issue.row == 3
    assert_names(issue, "customers.csv", "3")


def test_table_not_recognised() -> None:
    _, report = prepare_tables([("stuff.csv", b"foo,bar\n1,2\n")])
    assert_names(only(report, "table_unknown"), "stuff.csv")


def test_missing_required_column_named_in_both_languages() -> None:
    rows = [[c for c in r if c != r[2]] for r in TXN_ZH]  # drop 交易金额
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(rows))])
    issue = only(report, "missing_column")
    assert issue.column == "amount" and not report.ok
    assert_names(issue, "transactions.csv", "交易金额", "amount")


def test_missing_customer_id() -> None:
    rows = [r[:] for r in CUSTOMERS_ZH] + [["", "赵六", "男", "30", "", "", "", ""],
                                           ["NULL", "钱七", "女", "31", "", "", "", ""]]
    _, report = prepare_tables([("customers.csv", csv_bytes(rows))])
    issue = only(report, "null_id")
    assert (issue.row, issue.count, issue.column) == (5, 2, "customer_id")
    assert_names(issue, "customers.csv", "5", "2", "客户ID", "customer_id")
    assert [i.problem for i in report.errors] == ["ingest.null_id"]  # not also reported as duplicates


def test_duplicate_customer_id() -> None:
    rows = [r[:] for r in CUSTOMERS_ZH] + [["C002", "李四", "女", "42", "", "", "", ""],
                                           ["C002", "李四", "女", "42", "", "", "", ""]]
    _, report = prepare_tables([("customers.csv", csv_bytes(rows))])
    issue = only(report, "duplicate_id")
    assert (issue.row, issue.count) == (5, 2)
    assert_names(issue, "customers.csv", "5", "C002", "customer_id")


def test_duplicate_customer_across_two_customer_files() -> None:
    more = [CUSTOMERS_ZH[0], ["C004", "孙八", "男", "50", "", "", "", ""], CUSTOMERS_ZH[1]]
    _, report = prepare_tables([("c1.csv", csv_bytes(CUSTOMERS_ZH)), ("c2.csv", csv_bytes(more))])
    issue = only(report, "duplicate_id")
    assert (issue.file, issue.row, issue.count) == ("c2.csv", 3, 1)


def test_orphan_events() -> None:
    rows = TXN_ZH + [["C404", "2024-03-01", "1", "收入", "", "", ""], ["C405", "2024-03-02", "2", "收入", "", "", ""]]
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(rows))])
    issue = only(report, "orphan_events")
    assert (issue.row, issue.count) == (5, 2)
    assert_names(issue, "transactions.csv", "5", "2", "C404", "customer_id")


def test_wrong_type_in_required_numeric_column_reports_file_row() -> None:
    rows = [TXN_ZH[0]] + [["C001", f"2024-01-{d:02d}", str(d), "收入", "", "", ""] for d in range(1, 20)]
    rows[11][2] = "abc"  # the 11th data row: row 12 of the file
    rows[15][2] = "x"
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(rows))])
    issue = only(report, "bad_value")
    assert (issue.row, issue.count, issue.column) == (12, 2, "amount")
    assert issue.message_zh.startswith("文件 transactions.csv 第 12 行 “交易金额”（amount） 列的值 'abc' 不是数字")
    assert_names(issue, "transactions.csv", "12", "abc", "amount")
    assert report.summary("zh") == issue.message_zh


def test_wrong_type_in_required_datetime_column() -> None:
    rows = [r[:] for r in TXN_ZH]
    rows[2][1] = "昨天"
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(rows))])
    issue = only(report, "bad_value")
    assert (issue.row, issue.column) == (3, "txn_time")
    assert "日期时间" in issue.message_zh and "date" in issue.message_en
    assert_names(issue, "transactions.csv", "3", "昨天", "交易时间", "txn_time")


def test_event_tables_without_customers() -> None:
    _, report = prepare_tables([("transactions.csv", csv_bytes(TXN_ZH))])
    assert_names(only(report, "no_customers"), "transactions.csv")


def test_several_broken_files_are_all_reported() -> None:
    bad_txn = [r[:] for r in TXN_ZH]
    bad_txn[1][2] = "abc"
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(bad_txn)),
                                ("stuff.csv", b"foo\n1\n"), ("empty.csv", b"")])
    assert {i.problem for i in report.errors} == {"ingest.bad_value", "ingest.table_unknown", "ingest.empty"}
    frame = report.to_frame("en")
    assert list(frame.columns) == ["file", "row", "column", "problem", "count", "severity", "message"]
    assert frame["severity"].iloc[0] == "error" and set(frame["file"]) >= {"transactions.csv", "stuff.csv", "empty.csv"}
    assert "2 more error(s)" in report.summary("en") and report.summary("zh").count("。") == 1


# ---- warnings -------------------------------------------------------------------------------------
def test_warnings_keep_the_data() -> None:
    cust = [r[:] for r in CUSTOMERS_ZH]
    cust[0].append("会员等级")
    for r, v in zip(cust[1:], ["金", "银", "铜"], strict=True):
        r.append(v)
    cust[2][3] = "150"
    txn = [r[:] for r in TXN_ZH]
    txn[2][2] = "-20"
    txn[3][1] = "2999-01-01 00:00:00"
    txn[3][3] = "???"
    tables, report = prepare_tables([("customers.csv", csv_bytes(cust)), ("transactions.csv", csv_bytes(txn))])
    assert report.ok
    got = {i.problem.removeprefix("ingest."): i for i in report.warnings}
    assert {"age_range", "negative_amount", "future_date", "extra_columns", "missing_optional",
            "unknown_value", "no_labels"} <= set(got)
    assert (got["age_range"].row, got["age_range"].count) == (3, 1)
    assert_names(got["age_range"], "customers.csv", "150", "age")
    assert_names(got["negative_amount"], "transactions.csv", "3", "-20")
    assert_names(got["future_date"], "transactions.csv", "4", "2999")
    assert_names(got["unknown_value"], "transactions.csv", "4", "???", "direction")
    assert_names(got["extra_columns"], "会员等级")
    assert tables["customers"]["会员等级"].tolist() == ["金", "银", "铜"]
    assert tables["customers"]["age"].iloc[1] == 150 and tables["transactions"]["amount"].iloc[1] == -20
    assert "校验通过" in report.summary("zh")


def test_labels_missing_for_customers_without_credit_records() -> None:
    credit = CREDIT_ZH[:3]
    _, report = prepare_tables([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("credit.csv", csv_bytes(credit))])
    assert report.ok
    issues = [i for i in report.warnings if i.problem == "ingest.labels_missing"]
    assert {(i.column, i.count) for i in issues} == {("credit_score", 1), ("default_flag", 1), ("risk_level", 1)}


def test_bad_optional_value_is_a_warning() -> None:
    rows = [r[:] for r in CUSTOMERS_ZH]
    rows[3][3] = "二十八"
    tables, report = prepare_tables([("customers.csv", csv_bytes(rows))])
    assert report.ok
    issue = only(report, "bad_value_optional")
    assert issue.row == 4 and pd.isna(tables["customers"]["age"].iloc[2])


def test_clean_report_summary() -> None:
    assert ValidationReport().summary("zh") == "校验通过，没有发现问题，可以载入。"
    assert ValidationReport().to_frame().empty


# ---- atomic loads ---------------------------------------------------------------------------------
def _snapshot(ws: Workspace) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    return ws.list_datasets(), {t: ws.read_table("main", t) for t in ws.tables("main")}


def _assert_unchanged(ws: Workspace, before: tuple[pd.DataFrame, dict[str, pd.DataFrame]]) -> None:
    listing, frames = _snapshot(ws)
    pd.testing.assert_frame_equal(listing, before[0])
    assert frames.keys() == before[1].keys()
    for t in frames:
        pd.testing.assert_frame_equal(frames[t], before[1][t])


def test_good_load_then_bad_batches_leave_workspace_untouched(tmp_path) -> None:
    with Workspace(tmp_path / "ws.duckdb") as ws:
        first = load_into_workspace(files_zh(), ws)
        assert first.report.ok and first.version == 1 and first.kind == "tables"
        assert first.fingerprint == ws.fingerprint("main")
        before = _snapshot(ws)
        orphan = TXN_ZH + [["C999", "2024-03-01", "5", "收入", "", "", ""]]
        for batch in ([("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.csv", csv_bytes(orphan))],
                      [("customers.csv", csv_bytes(CUSTOMERS_ZH)), ("transactions.xlsx", b"broken")]):
            result = load_into_workspace(batch, ws)
            assert not result.report.ok and result.version is None
            _assert_unchanged(ws, before)
        again = load_into_workspace(files_zh(), ws)
        assert again.version == 2 and again.fingerprint == first.fingerprint


def test_store_failure_mid_load_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(":memory:") as ws:
        load_into_workspace(files_zh(), ws)
        before = _snapshot(ws)
        original = Workspace._write_table

        def fail_after_first(self: Workspace, schema: str, table: str, df: pd.DataFrame) -> None:
            if table != "customers":
                raise duckdb.IOException("disk full")
            original(self, schema, table, df)

        monkeypatch.setattr(Workspace, "_write_table", fail_after_first)
        result = load_into_workspace([("customers.csv", csv_bytes(CUSTOMERS_EN))] + files_zh()[1:], ws)
        assert result.version is None and not result.report.ok
        assert_names(only(result.report, "store_failed"), "IOException")
        monkeypatch.setattr(Workspace, "_write_table", original)
        _assert_unchanged(ws, before)


def test_read_table_file_returns_raw_frame_indexed_by_file_row() -> None:
    df = read_table_file("x.csv", csv_bytes(CUSTOMERS_ZH))
    assert list(df.index) == [2, 3, 4] and df.columns[0] == "客户ID"


# ---- package shape: layered, no import cycle ------------------------------------------------------
def test_ingest_package_is_layered_without_cycles():
    """Each module of profile_core.ingest imports only modules of the layers above it (no lazy imports)."""
    import ast
    from pathlib import Path

    import profile_core.ingest as pkg

    layers = ["report", "parsers", "reading", "mapping", "editing", "loading"]
    root = Path(pkg.__file__).parent
    for i, name in enumerate(layers):
        tree = ast.parse((root / f"{name}.py").read_text(encoding="utf-8"))
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                used.update([node.module] if node.module else [a.name for a in node.names])
        assert used <= set(layers[:i]), (name, used - set(layers[:i]))


def test_old_import_paths_still_work():
    from profile_core import mapping, parsing
    from profile_core.ingest import editing
    from profile_core.ingest import mapping as new_mapping

    assert mapping.Mapping is new_mapping.Mapping and mapping.choose_target is editing.choose_target
    assert parsing.DATE_FORMATS["YYMMDD"][1].startswith("6 digits")
