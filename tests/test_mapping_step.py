"""AppTest of ui/mapping_step.py: files in, correct a column, choose labels, confirm → a Mapping that loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from profile_core.ingest import Mapping, load_into_workspace
from profile_core.store import Workspace

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "mapping"


def script(files, store, lang):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path.cwd()))
    import streamlit as st

    from ui.mapping_step import render_mapping_step

    result = render_mapping_step(files, lang=lang, key_prefix="m", store=store)
    if result is not None:
        st.session_state["result"] = result


def app(files, store=None, lang="en") -> AppTest:
    at = AppTest.from_function(script, args=(files, store, lang), default_timeout=30)
    return at.run()


def flat_file() -> tuple[str, bytes]:
    rows = ["CUST_NO,SEX,INCOME_EUR,REMARK,BAD,SCORE_BAND,VIP"] + [
        f"K{i:03d},{1 + i % 2},\"{1000 + i},5\",note {i},{i % 2},{'HML'[i % 3]},{'YN'[i % 2]}" for i in range(40)]
    return "applicants.csv", ("\n".join(rows) + "\n").encode()


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_correct_a_column_choose_labels_confirm_and_load(tmp_path) -> None:
    files = [flat_file()]
    at = app(files, store=str(tmp_path / "mappings"))
    assert not at.exception
    assert at.selectbox(key="m-0-table").value == "customers"
    overview = at.dataframe[0].value
    assert overview["Source column"].tolist() == ["CUST_NO", "SEX", "INCOME_EUR", "REMARK", "BAD", "SCORE_BAND", "VIP"]
    assert "Read as: encoding utf-8, separator ," in " ".join(c.value for c in at.caption)

    at.selectbox(key="m-0-column").set_value("VIP").run()  # correct one column: VIP is no feature here
    at.selectbox(key="m-0-6-target").set_value("__ignore__").run()
    assert at.dataframe[0].value.iloc[6]["Role"] == "ignored"

    at.multiselect(key="m-0-labels").set_value(["BAD", "SCORE_BAND"]).run()  # choose labels and kinds
    at.selectbox(key="m-0-5-label-kind").set_value("multiclass").run()
    assert at.selectbox(key="m-0-4-label-kind").value == "binary"

    at.text_input(key="m-save-name").set_value("applicants").run()
    at.button(key="m-confirm").click().run()
    assert not at.exception and not at.error
    result = at.session_state["result"]
    assert isinstance(result, Mapping) and result.name == "applicants"
    assert result.labels() == {"BAD": "binary", "SCORE_BAND": "multiclass"}
    assert (tmp_path / "mappings" / "applicants.yaml").exists()

    with Workspace(":memory:") as ws:
        loaded = load_into_workspace(files, ws, "apps", result)
        assert loaded.report.ok, loaded.report.summary("en")
        flat = ws.read_table("apps", "customers")
        assert loaded.labels == {"BAD": "binary", "SCORE_BAND": "multiclass"}
    assert "VIP" not in flat and "REMARK" not in flat  # REMARK: proposed as free text
    assert flat["gender"].tolist()[:2] == ["男", "女"] and flat["income"].iloc[0] == 1000.5

    again = app(files, store=str(tmp_path / "mappings"))  # the same header next time: the saved mapping
    assert any("applicants" in i.value for i in again.info)
    again.button(key="m-confirm").click().run()
    assert again.session_state["result"].labels() == result.labels()


def test_missing_required_field_blocks_confirm_in_both_languages() -> None:
    rows = "KUNDE;BUCHUNG;BETRAG\r" + "\r".join(f"K{i % 3};2024-01-{i + 1:02d};{i},5" for i in range(12)) + "\r"
    files = [("customers.csv", b"CUST_NO,AGE\nK0,30\nK1,40\nK2,50\n"), ("umsatz.csv", rows.encode())]
    for lang, names in (("zh", "“客户ID”（customer_id）"), ("en", '"customer_id" (客户ID)')):
        at = app(files, lang=lang)
        at.selectbox(key="m-1-table").set_value("transactions").run()
        assert any(names in e.value for e in at.error), [e.value for e in at.error]
        at.button(key="m-confirm").click().run()
        assert "result" not in at.session_state
    at.selectbox(key="m-1-column").set_value("KUNDE").run()
    at.selectbox(key="m-1-0-target").set_value("customer_id").run()
    assert not at.error
    at.button(key="m-confirm").click().run()
    result = at.session_state["result"]
    with Workspace(":memory:") as ws:
        loaded = load_into_workspace(files, ws, "x", result)
        assert loaded.report.ok and ws.read_table("x", "transactions")["amount"].tolist()[:2] == [0.5, 1.5]


def test_account_links_and_code_edit() -> None:
    files = [(n, (FIXTURES / n).read_bytes()) for n in ("customers_coded.csv", "accounts.csv",
                                                         "txn_by_account_semicolon_cr.csv")]
    at = app(files)
    assert [at.selectbox(key=f"m-{i}-table").value for i in range(3)] == ["customers", "account_links",
                                                                          "transactions"]
    assert at.multiselect(key="m-link-roles").value == ["owner"]
    at.selectbox(key="m-0-column").set_value("CITY_CD").run()
    at.text_input(key="m-0-5-codes").set_value("BJ=北京; SH=上海; GZ=广州").run()
    at.button(key="m-confirm").click().run()
    result = at.session_state["result"]
    assert result.tables[0].column("CITY_CD").codes == {"BJ": "北京", "SH": "上海", "GZ": "广州"}
    with Workspace(":memory:") as ws:
        loaded = load_into_workspace(files, ws, "bank", result)
        assert loaded.report.ok
        assert ws.read_table("bank", "customers")["city"].tolist() == ["北京", "上海", "广州", "上海"]
        assert len(ws.read_table("bank", "transactions")) == 4


def test_rename_a_label_to_a_dotted_name_and_a_column_listed_twice_does_not_crash(tmp_path) -> None:
    files = [flat_file()]
    at = app(files)
    at.multiselect(key="m-0-labels").set_value(["BAD"]).run()
    at.text_input(key="m-0-4-label-name").set_value("违约.flag 12m").run()
    assert not at.exception
    at.button(key="m-confirm").click().run()
    result = at.session_state["result"]
    assert result.labels() == {"违约.flag 12m": "binary"}
    with Workspace(":memory:") as ws:
        loaded = load_into_workspace(files, ws, "apps", result)
        assert loaded.report.ok and loaded.labels == {"违约.flag 12m": "binary"}  # dotted names load
    # a mapping listing one column twice (two labels from it) opens in the step without duplicate widgets
    doc = result.to_dict()
    doc["tables"][0]["columns"].append({"source": "SCORE_BAND", "target": "band.again", "role": "label",
                                        "kind": "multiclass"})
    twice = Mapping.model_validate(doc)
    from profile_core.ingest.editing import upload_signature

    at = AppTest.from_function(script, args=(files, None, "en"), default_timeout=30)
    at.session_state["m-state-files"] = upload_signature(files)
    at.session_state["m-state-mapping"] = twice
    at.session_state["m-state-unreadable"] = []
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="m-0-labels").set_value(["BAD", "SCORE_BAND"]).run()
    assert not at.exception, [e.value for e in at.exception]


def test_the_czech_export_through_the_step_with_an_imported_mapping(tmp_path) -> None:
    """The app's path for a multi-table export: upload the files, import the edited mapping (it matches by
    header: the upload names differ), confirm, load — labels, observation date and currency arrive."""
    czech = ROOT / "tests" / "fixtures" / "czech"
    files = [(f.replace(".asc", ".csv"), (czech / f).read_bytes())
             for f in ["client.asc", "disp.asc", "trans.asc", "loan.asc", "district.asc"]]
    at = app(files)
    at.file_uploader(key="m-import").set_value(
        [("mapping.yaml", (czech / "mapping.yaml").read_bytes(), "application/x-yaml")]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="m-3-table").value == "attach"
    at.button(key="m-confirm").click().run()
    assert not at.error, [e.value for e in at.error]
    mapping = at.session_state["result"]
    with Workspace(":memory:") as ws:
        loaded = load_into_workspace(files, ws, "czech", mapping)
        assert loaded.report.ok, loaded.report.summary("en")
        meta = ws.meta("czech")
    assert meta["labels"] == {"loan_status": "multiclass", "loan_default": "binary"}
    assert meta["observation_date"] == "loan_granted" and meta["currency"] == "CZK"
    assert meta["tables"] == ["customers", "transactions"]


def test_join_and_label_role_are_edited_in_the_step() -> None:
    czech = ROOT / "tests" / "fixtures" / "czech"
    files = [(f, (czech / f).read_bytes()) for f in ["client.asc", "disp.asc", "loan.asc", "district.asc"]]
    at = app(files)
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="m-2-join-key").value == "account_id" and at.selectbox(key="m-2-join-via").value == "account"
    assert at.text_input(key="m-3-join-on").value == "district_id"
    at.text_input(key="m-2-join-prefix").set_value("credit_").run()
    at.multiselect(key="m-2-labels").set_value(["status"]).run()
    at.selectbox(key="m-2-6-label-kind").set_value("multiclass").run()
    at.selectbox(key="m-2-6-label-role").set_value("grade").run()
    at.selectbox(key="m-0-column").set_value("district_id").run()
    at.checkbox(key="m-0-2-protected").check().run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="m-confirm").click().run()
    mapping = at.session_state["result"]
    assert mapping.tables[2].join.prefix == "credit_" and mapping.tables[2].join.via == "account"
    assert mapping.labels() == {"credit_status": "multiclass"} and mapping.label_roles() == {"credit_status": "grade"}
    assert mapping.protected() == ["district_id"]
