"""The mapping step: proposals, parsing (dates, decimal comma, codes), account links, derived columns,
saved mappings, flat files with their own labels, and the Taiwan file end to end."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from profile_core.features import build_features_from_frames, split_columns
from profile_core.ingest import load_into_workspace, prepare_tables, read_table_file
from profile_core.ingest import parsers as parsing
from profile_core.ingest.editing import (
    FEATURE,
    IGNORE,
    apply_code_tables,
    choose_target,
    is_plain,
    set_labels,
    update_column,
)
from profile_core.ingest.mapping import (
    DerivedColumn,
    LinkSpec,
    Mapping,
    MappingError,
    MappingStore,
    apply_mapping,
    propose_files,
    propose_mapping,
    store_for,
)
from profile_core.store import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "mapping"
BANK_FILES = ["customers_coded.csv", "accounts.csv", "txn_by_account_semicolon_cr.csv"]
ROOT = Path(__file__).resolve().parents[1]
TAIWAN_FULL = Path("/work/shared/datasets/taiwan_default/UCI_Credit_Card.csv")
TAIWAN_SAMPLE = ROOT / "profile_core" / "samples" / "taiwan_sample.csv"
TAIWAN_MAPPING = ROOT / "profile_core" / "samples" / "mappings" / "taiwan.yaml"


def bank_files() -> list[tuple[str, Path]]:
    return [(n, FIXTURES / n) for n in BANK_FILES]


def text_file(rows: list[list[str]], sep: str = ",", newline: str = "\n", encoding: str = "utf-8") -> bytes:
    return (newline.join(sep.join(r) for r in rows) + newline).encode(encoding)


def problems(report, prefix: str = "") -> dict[str, object]:
    return {i.problem: i for i in report.issues if i.problem.startswith(prefix)}


CUSTOMERS = [["CUST_NO", "SEX", "AGE"], ["K1", "M", "30"], ["K2", "F", "41"], ["K3", "m", "52"]]


# ---- parsing -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "values", "expected"), [
    ("YYYY-MM-DD", ["2024-01-05", "2024-01-05 10:30:00"], ["2024-01-05", "2024-01-05 10:30"]),
    ("YYYYMMDD", ["20240105", 20240105.0], ["2024-01-05", "2024-01-05"]),
    ("YYMMDD", ["240105", 50102], ["2024-01-05", "2005-01-02"]),
    ("YYYY/MM/DD", ["2024/01/05", "2024/1/5"], ["2024-01-05", "2024-01-05"]),
    ("DD.MM.YYYY", ["05.01.2024", "31.12.1999"], ["2024-01-05", "1999-12-31"]),
    ("excel", [45296, "45296.5"], ["2024-01-05", "2024-01-05 12:00"]),
    ("unix", [1704412800, 1704412800000], ["2024-01-05", "2024-01-05"]),
])
def test_date_formats(fmt: str, values: list, expected: list[str]) -> None:
    got = parsing.parse_dates(pd.Series(values, dtype=object), fmt, today=date(2026, 6, 1))
    assert got.tolist() == [pd.Timestamp(e) for e in expected]


def test_yymmdd_century_rule_and_bad_values() -> None:
    s = pd.Series(["260101", "270101", "991231", "000229", "241340", "abc"], dtype="str")
    got = parsing.parse_dates(s, "YYMMDD", today=date(2026, 6, 1))
    assert got.dt.year.tolist()[:4] == [2026, 1927, 1999, 2000]  # yy > 26 → 19yy
    assert got.iloc[4:].isna().all()


def test_sniffing_dates_and_decimal_comma() -> None:
    assert parsing.sniff_date_format(pd.Series(["20240105", "19991231"])) == "YYYYMMDD"
    assert parsing.sniff_date_format(pd.Series(["240105", "991231"])) is None  # ambiguous without a hint
    assert parsing.sniff_date_format(pd.Series(["240105", "991231"]), weak=True) == "YYMMDD"
    assert parsing.sniff_date_format(pd.Series([45296, 45297]), weak=True) == "excel"
    assert parsing.sniff_decimal_comma(pd.Series(["1.234,56", "12,5", "7"], dtype="str"))
    assert not parsing.sniff_decimal_comma(pd.Series(["1,234", "5"], dtype="str"))  # thousands, read as English
    assert not parsing.sniff_decimal_comma(pd.Series(["1.5", "2"], dtype="str"))
    assert parsing.parse_decimal_comma(pd.Series(["1.234,56", "1234,56", "-12,5", "1 234,5"], dtype="str")).tolist() \
        == [1234.56, 1234.56, -12.5, 1234.5]


def test_codes_text_and_code_table_file() -> None:
    assert parsing.parse_codes_text("1=男; 2=女\nM: 男") == {"1": "男", "2": "女", "M": "男"}
    assert parsing.codes_text({"1": "男", "2": "女"}) == "1=男; 2=女"
    frame = read_table_file("codes.csv", "字段,代码,含义\nSEX,1,男\nSEX,2,女\nEDU,1.0,大学\n".encode())
    tables = parsing.code_tables_from_frame(frame)
    assert tables == {"SEX": {"1": "男", "2": "女"}, "EDU": {"1": "大学"}}
    coded, uncoded = parsing.apply_codes(pd.Series([1.0, 2, "3", None], dtype=object), tables["SEX"])
    assert coded.tolist()[:3] == ["男", "女", "3"] and uncoded.tolist() == [False, False, True, False]


def test_header_signature_and_line_endings_detected() -> None:
    assert parsing.header_signature(["CUST_NO", "Sex "]) == parsing.header_signature(["sex", "cust no"])
    for newline, name in (("\n", "LF"), ("\r\n", "CRLF"), ("\r", "CR")):
        for sep in (",", ";", "\t", "|"):
            df = read_table_file("x.csv", text_file(CUSTOMERS, sep, newline))
            assert df.shape == (3, 3) and df.attrs["format"]["line_ending"] == name
            assert df.attrs["format"]["separator"] == sep


# ---- proposals -----------------------------------------------------------------------------------------
def test_proposal_by_alias_similarity_and_content() -> None:
    rows = [["KUNDEN_NR", "TRANS_DATE", "TRANS_AMT", "CHANEL", "MEMO"]] + [
        [f"K{i % 3}", f"2024-01-{i + 1:02d}", f"{i * 10.5:.2f}", "APP" if i % 2 else "ATM", f"free text number {i}"]
        for i in range(20)]
    raw = read_table_file("export.csv", text_file(rows))
    tm = propose_mapping(None, raw, "export.csv")
    assert tm.table == "transactions"
    by = {c.source: c for c in tm.columns}
    assert (by["TRANS_DATE"].target, by["TRANS_DATE"].reason) == ("txn_time", "mapping.reason.alias")
    assert by["TRANS_AMT"].target == "amount" and by["TRANS_AMT"].reason == "mapping.reason.similar"
    assert by["CHANEL"].target == "channel" and 0.5 < by["CHANEL"].confidence < 1  # difflib: a typo
    assert by["MEMO"].role == "ignore" and by["MEMO"].reason == "mapping.reason.free_text"
    assert by["TRANS_DATE"].samples[:2] == ["2024-01-01", "2024-01-02"]
    assert tm.missing_required() == ["customer_id"]  # KUNDEN_NR is not a known name
    text = {p.problem: p for p in Mapping(tables=[tm]).problems()}["mapping.missing_required"]
    assert "“客户ID”（customer_id）" in text.message_zh and '"customer_id" (客户ID)' in text.message_en
    fixed = choose_target(Mapping(tables=[tm]), 0, "KUNDEN_NR", "customer_id")
    assert fixed.tables[0].missing_required() == [] and fixed.tables[0].column("KUNDEN_NR").role == "key"


def test_content_sniffing_without_names() -> None:
    rows = [["c1", "c2", "c3", "c4"]] + [[f"ID{i:03d}", f"2023-0{1 + i % 9}-15", f"{i}.5", "AB"[i % 2]]
                                         for i in range(30)]
    tm = propose_mapping("customers", read_table_file("x.csv", text_file(rows)), "x.csv")
    by = {c.source: c for c in tm.columns}
    assert by["c1"].target == "customer_id" and by["c1"].reason == "mapping.reason.content_id"
    assert by["c2"].role == "feature" and by["c2"].date_format == "YYYY-MM-DD"
    assert by["c3"].role == "feature" and by["c4"].reason == "mapping.reason.category"
    tm = propose_mapping("transactions", read_table_file("x.csv", text_file(rows)), "x.csv")
    by = {c.source: c for c in tm.columns}
    assert by["c2"].target == "txn_time" and by["c3"].target == "amount"


def test_canonical_files_map_to_the_same_frames_as_a_plain_load() -> None:
    files = [("customers.csv", text_file([["客户ID", "姓名", "性别", "年龄", "城市"], ["C1", "张三", "男", "35", "北京"],
                                          ["C2", "李四", "女", "42", "上海"]])),
             ("transactions.csv", text_file([["客户ID", "交易时间", "交易金额", "收支"],
                                             ["C1", "2024-01-05 10:00:00", "100.5", "收入"],
                                             ["C2", "2024-02-01", "3000", "支出"]]))]
    mapping, unreadable = propose_files(files)
    assert not unreadable and is_plain(mapping)
    plain, rep_plain = prepare_tables(files)
    mapped, rep_mapped = prepare_tables(files, mapping)
    assert rep_plain.ok and rep_mapped.ok and list(plain) == list(mapped)
    for name in plain:
        pd.testing.assert_frame_equal(mapped[name], plain[name])


# ---- the fixture variants ------------------------------------------------------------------------------
def test_account_keyed_transactions_with_link_table_owner_default() -> None:
    mapping, _ = propose_files(bank_files())
    assert [tm.table for tm in mapping.tables] == ["customers", "account_links", "transactions"]
    txn = mapping.tables[2]
    assert txn.account_keyed() and txn.format == {"encoding": "utf-8", "separator": ";", "line_ending": "CR"}
    assert not mapping.errors()
    with Workspace(":memory:") as ws:
        result = load_into_workspace(bank_files(), ws, "bank", mapping)
        assert result.report.ok and result.version == 1, result.report.summary("en")
        tx = ws.read_table("bank", "transactions")
    # A100 → owner K0001 (not the disponent K0002); A300 joint owners → the first; A400 has only a
    # disponent and A999 no link at all: 2 unlinked rows, reported with the first row and account
    assert tx["customer_id"].tolist() == ["K0001", "K0001", "K0002", "K0003"]
    issues = problems(result.report, "mapping.")
    unlinked = issues["mapping.unlinked_events"]
    assert (unlinked.count, unlinked.row, unlinked.severity) == (2, 6, "warning")
    assert "A400" in unlinked.message_zh and "2" in unlinked.message_en
    assert issues["mapping.several_holders_first"].count == 1
    # the disponent may be chosen instead; every holder with that role gets the events
    disp = mapping.model_copy(update={"link": LinkSpec(roles=["disponent"])})
    tables, report = prepare_tables(bank_files(), disp)
    assert tables["transactions"]["customer_id"].tolist() == ["K0002", "K0002", "K0004"]
    assert problems(report)["mapping.unlinked_events"].count == 3
    joint = mapping.model_copy(update={"link": LinkSpec(several="all")})  # joint account A300: both owners
    tables, report = prepare_tables(bank_files(), joint)
    assert tables["transactions"]["customer_id"].tolist() == ["K0001", "K0001", "K0002", "K0003", "K0004"]
    assert "mapping.several_holders_all" in problems(report)


def test_account_keyed_events_without_link_table_is_an_error() -> None:
    mapping, _ = propose_files(bank_files())
    no_links = mapping.model_copy(update={"tables": [mapping.tables[0], mapping.tables[2]]})
    assert "mapping.no_link_table" in {i.problem for i in no_links.errors()}
    files = [bank_files()[0], bank_files()[2]]
    _, report = prepare_tables(files, no_links)
    assert not report.ok and "mapping.no_link_table" in problems(report)


def test_semicolon_cr_only_yymmdd_and_decimal_comma() -> None:
    mapping, _ = propose_files(bank_files())
    by = {c.source: c for c in mapping.tables[2].columns}
    assert by["TXN_DT"].date_format == "YYMMDD" and by["AMT"].decimal_comma
    tables, report = prepare_tables(bank_files(), mapping)
    tx = tables["transactions"]
    assert tx["txn_time"].tolist() == [pd.Timestamp(d) for d in ("2024-01-05", "2024-01-06", "1999-12-31",
                                                                 "2005-01-02")]
    assert tx["amount"].tolist() == [1234.56, 12.5, 1234.56, 7.0]
    assert tx["direction"].tolist() == ["out", "in", "out", "in"]  # D/C


def test_unparseable_mapped_date_names_file_row_and_format() -> None:
    data = (FIXTURES / BANK_FILES[2]).read_bytes().replace(b"240106", b"241306")  # month 13: row 3
    files = [bank_files()[0], bank_files()[1], (BANK_FILES[2], data)]
    mapping, _ = propose_files(bank_files())
    _, report = prepare_tables(files, mapping)
    issue = problems(report)["mapping.bad_value"]
    assert (issue.row, issue.column, issue.severity) == (3, "txn_time", "error") and not report.ok
    assert "241306" in issue.message_zh and "YYMMDD" in issue.message_zh and "6-digit" in issue.message_en


def test_coded_gender_birth_date_age_and_free_text() -> None:
    mapping, _ = propose_files(bank_files())
    cust = mapping.tables[0]
    assert cust.column("SEX").codes == {"1": "男", "2": "女"}
    assert cust.column("BIRTH_DT").role == "ignore" and cust.derived[0].op == "age"
    as_of = date(2024, 3, 1)
    cust.derived = [DerivedColumn(name="age", op="age", source="BIRTH_DT", role="field", as_of=as_of)]
    tables, report = prepare_tables(bank_files(), mapping)
    c = tables["customers"]
    assert c["gender"].tolist() == ["男", "女", "男", "女"]
    assert c["age"].tolist() == [38, 31, 54, 24] and "BIRTH_DT" not in c
    # the user may reverse the codes; M/F and 1/2 work without codes too
    swapped = update_column(mapping, 0, "SEX", codes={"1": "女", "2": "男"})
    assert prepare_tables(bank_files(), swapped)[0]["customers"]["gender"].tolist()[:2] == ["女", "男"]
    tm = propose_mapping(None, read_table_file("c.csv", text_file(CUSTOMERS)), "c.csv")
    assert tm.column("SEX").codes == {"M": "男", "F": "女", "m": "男"}


def test_excel_serial_dates(tmp_path) -> None:
    cust = ("customers.csv", text_file([["CUST_NO", "AGE"], ["K1", "30"], ["K2", "40"]]))
    frame = pd.DataFrame({"CUST_NO": ["K1", "K2", "K1"], "BOOKING_DATE": [45296, 45297, 45298.25],
                          "AMOUNT": [10.0, 20.5, 3.0]})
    frame.to_excel(tmp_path / "txn.xlsx", index=False)
    files = [cust, ("txn.xlsx", tmp_path / "txn.xlsx")]
    mapping, _ = propose_files(files)
    assert mapping.tables[1].column("BOOKING_DATE").date_format == "excel"
    tables, report = prepare_tables(files, mapping)
    assert report.ok, report.summary("en")
    assert tables["transactions"]["txn_time"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-06"),
                                                           pd.Timestamp("2024-01-07 06:00")]


def test_derived_threshold_and_bins_labels_on_a_flat_file() -> None:
    rows = [["客户号", "逾期天数", "收入"], ["1", "0", "1000"], ["2", "45", "2000"], ["3", "95", "3000"], ["4", "", "10"]]
    raw = read_table_file("flat.csv", text_file(rows))
    tm = propose_mapping(None, raw, "flat.csv")
    tm.derived = [DerivedColumn(name="default_flag", op="threshold", source="dpd", threshold=90, role="label"),
                  DerivedColumn(name="dpd_class", op="bins", source="dpd", edges=[1, 30, 90], labels=list("ABCD"),
                                role="label")]
    assert tm.labels() == {"default_flag": "binary", "dpd_class": "multiclass"}
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("flat.csv", text_file(rows))], ws, "flat", Mapping(tables=[tm]))
        assert result.report.ok and result.kind == "flat"
        flat = ws.read_table("flat", "customers")
        assert flat["default_flag"].tolist()[:3] == [0, 0, 1] and pd.isna(flat["default_flag"].iloc[3])
        assert flat["dpd_class"].tolist()[:3] == ["A", "C", "D"]
        assert result.labels == ws.meta("flat")["labels"] == {"default_flag": "binary", "dpd_class": "multiclass"}
    with pytest.raises(ValueError):
        DerivedColumn(name="x", op="bins", source="dpd", edges=[1, 30], labels=["A"])


def test_flat_file_with_its_own_label_names() -> None:
    rows = [["cust", "score_band", "bad", "limit_amt", "notes"]] + [
        [f"U{i}", "HML"[i % 3], str(i % 2), str(1000 * i), f"unique note {i}"] for i in range(40)]
    mapping, _ = propose_files([("applicants.csv", text_file(rows))])
    tm = mapping.tables[0]
    assert tm.table == "customers" and tm.column("bad").role == "label" and tm.column("notes").role == "ignore"
    few = [r if j < 22 else r[:2] + ["0"] + r[3:] for j, r in enumerate(rows)]  # only 10 rows of "1"
    assert propose_files([("applicants.csv", text_file(few))])[0].tables[0].column("bad").role == "feature"
    mapping = set_labels(mapping, 0, {"bad": "binary", "score_band": "multiclass"})
    assert mapping.labels() == {"score_band": "multiclass", "bad": "binary"}
    mapping = choose_target(mapping, 0, "cust", "customer_id")
    with Workspace(":memory:") as ws:
        result = load_into_workspace([("applicants.csv", text_file(rows))], ws, "apps", mapping)
        assert result.report.ok, result.report.summary("en")
        assert result.labels == {"score_band": "multiclass", "bad": "binary"} == ws.meta("apps")["labels"]
        assert ws.meta("apps")["mapping"]["tables"][0]["header_signature"] == tm.header_signature
        flat = ws.read_table("apps", "customers")
    assert list(flat.columns) == ["customer_id", "credit_limit", "score_band", "bad"]  # limit_amt: "limit"
    assert flat["bad"].dtype == "int64" and "no_labels" not in str(result.report.to_frame()["problem"].tolist())
    # labels on an event table must be canonical ones
    bad = choose_target(mapping, 0, "cust", FEATURE)
    bad.tables[0].table = "transactions"
    assert "mapping.label_on_events" in {i.problem for i in bad.problems()}


def test_duplicate_targets_and_missing_columns_are_reported() -> None:
    rows = [["CUST_NO", "CUST_ID", "SEX"], ["K1", "K1", "1"]]
    raw = read_table_file("c.csv", text_file(rows))
    tm = propose_mapping("customers", raw, "c.csv")
    tm.columns[1] = tm.columns[1].model_copy(update={"target": "customer_id", "role": "key"})
    issue = {i.problem: i for i in Mapping(tables=[tm]).problems()}["mapping.duplicate_target"]
    assert "CUST_ID" in issue.message_en and "CUST_NO" in issue.message_zh
    report_tm = tm.model_copy(update={"columns": [*tm.columns, tm.columns[2].model_copy(update={
        "source": "GONE", "target": "age"})]})
    from profile_core.ingest import ValidationReport

    report = ValidationReport()
    apply_mapping(raw, report_tm, report)
    assert "mapping.source_missing" in {i.problem for i in report.issues}


# ---- saved mappings ------------------------------------------------------------------------------------
def test_mapping_saved_reloaded_and_reapplied_to_the_same_header(tmp_path) -> None:
    store = MappingStore(tmp_path / "mappings")
    mapping, _ = propose_files(bank_files(), store=store)
    assert all(tm.saved_as is None for tm in mapping.tables)
    mapping = choose_target(mapping, 0, "REMARK", IGNORE)
    path = store.save(mapping, "my-bank")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# 客户全景画像") and "format: profile_core.mapping" in text and "version: 1" in text
    assert "{source: REMARK, role: ignore}" in text and "samples" not in text and "confidence" not in text
    assert Mapping.load(path).model_dump() == store.load("my-bank").model_dump()

    # next month's export: same header in another column order, other rows → the saved mapping comes back
    new_txn = b"AMT;DC_FLAG;TXN_DT;ACCT_NO\r5,5;D;240301;A200\r"
    files = [bank_files()[0], bank_files()[1], ("txn_2024_03.csv", new_txn)]
    again, _ = propose_files(files, store=store)
    assert [tm.saved_as for tm in again.tables] == ["my-bank"] * 3
    assert again.tables[0].column("REMARK").role == "ignore"
    with Workspace(tmp_path / "ws.duckdb") as ws:
        result = load_into_workspace(files, ws, "bank", store=store_for(tmp_path / "ws.duckdb"))
        assert result.report.ok and result.mapping is not None
        assert ws.read_table("bank", "transactions")["amount"].tolist() == [5.5]
        assert "REMARK" not in ws.read_table("bank", "customers")
    # without the store the same files do not load (account-keyed, YYMMDD): the mapping made the difference
    assert not prepare_tables(files)[1].ok


def test_export_import_and_bad_files(tmp_path) -> None:
    store = MappingStore(tmp_path / "a")
    mapping, _ = propose_files(bank_files())
    store.save(mapping, "bank")
    other = MappingStore(tmp_path / "b")
    other.import_(store.export("bank"))
    assert other.names() == ["bank"] and other.find(mapping.tables[2].headers)[0].table == "transactions"
    with pytest.raises(MappingError) as err:
        Mapping.from_text("format: profile_core.mapping\nversion: 99\n", source="new.yaml")
    assert "99" in err.value.message("zh") and "new.yaml" in err.value.message("en")
    with pytest.raises(MappingError):
        Mapping.from_text("just: text\n")
    with pytest.raises(MappingError):
        Mapping.from_text("format: profile_core.mapping\ntables: [{table: nope}]\n")
    with pytest.raises(MappingError):
        store.path("../escape")
    json_text = mapping.model_dump_json()  # JSON is YAML: a JSON mapping file loads too
    assert Mapping.from_text(json_text).tables[2].table == "transactions"


def test_code_table_file_fills_codes() -> None:
    mapping, _ = propose_files(bank_files())
    codes = parsing.code_tables_from_frame(read_table_file("codes.csv", "column,code,label\nCITY_CD,BJ,北京\n"
                                                           "CITY_CD,SH,上海\n".encode()))
    mapping = apply_code_tables(mapping, codes)
    tables, _ = prepare_tables(bank_files(), mapping)
    assert tables["customers"]["city"].tolist() == ["北京", "上海", "GZ", "上海"]
    assert problems(prepare_tables(bank_files(), mapping)[1])["mapping.uncoded_values"].count == 1


# ---- the Taiwan file -----------------------------------------------------------------------------------
def _load_taiwan(path: Path) -> tuple:
    mapping = Mapping.load(TAIWAN_MAPPING)
    ws = Workspace(":memory:")
    result = load_into_workspace([(path.name, path)], ws, "taiwan", mapping)
    return result, ws


@pytest.mark.parametrize("path", [TAIWAN_SAMPLE, TAIWAN_FULL], ids=["sample", "full"])
def test_taiwan_through_the_shipped_mapping(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is absent")
    result, ws = _load_taiwan(path)
    try:
        assert result.report.ok and result.kind == "flat", result.report.summary("en")
        assert result.labels == {"default_flag": "binary"} == ws.meta("taiwan")["labels"]
        flat = ws.read_table("taiwan", "customers")
    finally:
        ws.close()
    raw = pd.read_csv(path)
    assert len(flat) == len(raw) and flat["customer_id"].tolist()[:2] == ["1", "2"]
    assert flat["gender"].tolist() == raw["SEX"].map({1: "男", 2: "女"}).tolist()
    assert set(flat["education"]) <= {"研究生", "大学", "高中", "其他"}
    assert flat["default_flag"].tolist() == raw["default.payment.next.month"].tolist()
    assert flat["credit_limit"].tolist() == raw["LIMIT_BAL"].astype(float).tolist()
    if path == TAIWAN_SAMPLE:  # straight to training: features and the label, no event tables
        frame = build_features_from_frames({"customers": flat}, as_of="2005-10-01")
        numeric, categorical = split_columns(frame)
        assert {"credit_limit", "age", "PAY_0", "BILL_AMT1", "PAY_AMT6"} <= set(numeric)
        assert {"gender", "education", "marital_status"} <= set(categorical)
        assert "default_flag" not in numeric + categorical and frame["default_flag"].notna().all()


def test_taiwan_proposal_matches_the_shipped_mapping_but_for_the_code_tables() -> None:
    raw = read_table_file(TAIWAN_SAMPLE.name, TAIWAN_SAMPLE)
    proposed = propose_mapping(None, raw, "UCI_Credit_Card.csv")
    shipped = Mapping.load(TAIWAN_MAPPING).tables[0]
    assert proposed.header_signature == shipped.header_signature
    for p, s in zip(proposed.columns, shipped.columns, strict=True):
        assert (p.source, p.target, p.role, p.kind) == (s.source, s.target, s.role, s.kind)
    assert {c.source for c in shipped.columns if c.codes} == {"SEX", "EDUCATION", "MARRIAGE"}


def test_mapping_file_is_yaml_readable_by_humans() -> None:
    text = TAIWAN_MAPPING.read_text(encoding="utf-8")
    assert "{source: SEX" not in text or "codes" in text
    assert "'1': 男" in text and "default.payment.next.month" in text
    assert len(text.splitlines()) < 80
    import yaml

    assert yaml.safe_load(io.StringIO(text))["format"] == "profile_core.mapping"
