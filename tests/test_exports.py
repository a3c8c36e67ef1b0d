"""Exports follow the screen's rules: the role's rows and masks, and no cell a spreadsheet would run as a
formula (=, +, -, @, tab, CR get a leading apostrophe)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profile_core.exports import FORMULA_PREFIXES, export_csv, export_frame, neutralise, safe_frame
from profile_core.privacy import Policy

FRAME = pd.DataFrame({
    "customer_id": ["C1", "C2", "C3"],
    "name": ["张三丰", "李四", "王五"],
    "phone": ["13812345678", "13900001111", "13700002222"],
    "id_number": ["110105199001011234", "110105199202022345", "110105199303033456"],
    "counterparty": ["北京某某科技有限公司", "赵六", "=HYPERLINK(\"http://x\",\"y\")"],
    "rm_id": ["RM001", "RM002", "RM001"],
    "note": ["=1+1", "+SUM(A1:A9)", "-2+3"],
    "amount": [-5.0, 10.0, 0.5],
})


def _read(data: bytes) -> pd.DataFrame:
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads the Chinese right
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_neutralise():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(text) == "'" + text
    for value in ("plain", "1-2", " =x", "", 5, -5.0, None):
        assert neutralise(value) == value


def test_formulas_are_neutralised_in_cells_and_headers():
    frame = pd.DataFrame({"=cmd|' /C calc'!A0": ["=2*3", "ok"], "n": [-1, 2]})
    out = safe_frame(frame)
    assert list(out.columns) == ["'=cmd|' /C calc'!A0", "n"]
    assert out.iloc[:, 0].tolist() == ["'=2*3", "ok"] and out["n"].tolist() == [-1, 2]  # numbers stay numbers


def test_analyst_export_is_masked_and_safe():
    rows = _read(export_csv(FRAME, Policy("analyst")))
    assert rows["customer_id"].tolist() == ["C1", "C2", "C3"]
    assert rows["name"].tolist() == ["张**", "李*", "王*"]
    assert rows["phone"].tolist() == ["138****5678", "139****1111", "137****2222"]
    assert rows["id_number"].iloc[0] == "110***********1234"
    assert rows["counterparty"].iloc[0] == "北京******公司" and rows["counterparty"].iloc[1] == "赵*"
    assert rows["note"].tolist() == ["'=1+1", "'+SUM(A1:A9)", "'-2+3"]
    assert rows["amount"].tolist() == ["-5.0", "10.0", "0.5"]
    text = export_csv(FRAME, Policy("analyst")).decode("utf-8-sig")
    for secret in ("张三丰", "李四", "13812345678", "110105199001011234", "北京某某科技有限公司"):
        assert secret not in text


def test_rm_export_holds_only_own_customers_in_full():
    rows = _read(export_csv(FRAME, Policy("rm", rm_id="RM001")))
    assert rows["customer_id"].tolist() == ["C1", "C3"]
    assert rows["name"].tolist() == ["张三丰", "王五"]  # their own customers: in full
    assert rows["counterparty"].iloc[0] == "北京******公司"  # third parties: always masked
    assert "李四" not in export_csv(FRAME, Policy("rm", rm_id="RM001")).decode("utf-8-sig")
    # without rm_id (or owners) nothing is known to be theirs: nothing is exported
    assert export_frame(FRAME.drop(columns="rm_id"), Policy("rm", rm_id="RM001")).empty
    owners = dict(zip(FRAME["customer_id"], FRAME["rm_id"], strict=True))
    assert export_frame(FRAME.drop(columns="rm_id"), Policy("rm", rm_id="RM002"), owners=owners)["customer_id"].tolist() \
        == ["C2"]


def test_auditor_and_admin_exports():
    assert _read(export_csv(FRAME, Policy("auditor")))["name"].tolist() == ["张**", "李*", "王*"]
    assert _read(export_csv(FRAME, Policy("admin")))["name"].tolist() == ["张**", "李*", "王*"]
    assert _read(export_csv(FRAME, Policy("admin", reveal=True)))["name"].tolist() == ["张三丰", "李四", "王五"]


def test_export_does_not_change_the_input():
    before = FRAME.copy()
    export_csv(FRAME, Policy("analyst"))
    pd.testing.assert_frame_equal(FRAME, before)


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(st.one_of(st.text(max_size=12), st.sampled_from(["=", "+", "-", "@", "\t", "\r"]).flatmap(
    lambda p: st.text(max_size=8).map(lambda s: p + s))), min_size=1, max_size=8),
       header=st.text(min_size=1, max_size=8))
def test_no_exported_cell_starts_a_formula(cells, header):
    frame = pd.DataFrame({header: cells, "rm_id": ["RM001"] * len(cells)})
    out = export_frame(frame, Policy("analyst"))
    for value in [*out.iloc[:, 0].tolist(), *out.columns]:
        assert not (isinstance(value, str) and value.startswith(FORMULA_PREFIXES)), value
    assert len(export_csv(frame, Policy("analyst"))) > 0


@pytest.mark.parametrize("role", ["rm", "analyst", "auditor", "admin"])
def test_every_role_may_export_its_own_view(role):
    assert export_csv(FRAME, Policy(role, rm_id="RM001" if role == "rm" else None))
