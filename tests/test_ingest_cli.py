"""The CLI flow for a bank's own files: propose → edit → load --mapping; mappings match by header."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from profile_core.cli import main
from profile_core.ingest import Mapping, load_into_workspace
from profile_core.store import Workspace

FIXTURES = Path(__file__).parent / "fixtures" / "mapping"
BANK_FILES = ["customers_coded.csv", "accounts.csv", "txn_by_account_semicolon_cr.csv"]


def _files(tmp_path: Path) -> list[str]:
    return [str(FIXTURES / f) for f in BANK_FILES]


def test_propose_writes_an_editable_yaml_with_confidence_and_problems(tmp_path, capsys):
    out = tmp_path / "mapping.yaml"
    assert main(["--lang", "en", "propose", *_files(tmp_path), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    # one commented line per source column: confidence, reason, sample values
    line = next(ln for ln in text.splitlines() if "source: CUST_NO" in ln and "customer_id" in ln)
    assert "# 1.00" in line and "e.g. K0001" in line
    assert "# ---- txn_by_account_semicolon_cr.csv → transactions" in text
    # the comments change nothing: the YAML is the proposal
    assert Mapping.from_text(text).to_dict() == yaml.safe_load(text)
    printed = capsys.readouterr().out
    assert "customers_coded.csv: customers (7 columns)" in printed and "--mapping" in printed


def test_proposed_mapping_loads_and_an_unknown_file_points_to_propose(tmp_path, capsys):
    out, ws = tmp_path / "m.yaml", tmp_path / "ws.duckdb"
    main(["propose", *_files(tmp_path), "--out", str(out)])
    assert main(["load", *_files(tmp_path), "--workspace", str(ws), "--mapping", str(out)]) == 0
    assert "customers=4, transactions=4" in capsys.readouterr().out
    odd = tmp_path / "loan.asc"
    odd.write_text("loan_id,duration,payments\n5314,12,96396\n5316,36,3858\n", encoding="utf-8")
    assert main(["--lang", "en", "load", str(odd), "--workspace", str(ws), "--dataset", "plain"]) == 1
    assert "python -m profile_core propose" in capsys.readouterr().out


def test_load_exits_2_on_an_error_level_problem_and_stores_nothing(tmp_path, capsys):
    out, ws = tmp_path / "m.yaml", tmp_path / "ws.duckdb"
    main(["propose", *_files(tmp_path), "--out", str(out)])
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    cust = next(t for t in data["tables"] if t["table"] == "customers")
    cust["columns"] = [c for c in cust["columns"] if c.get("target") != "customer_id"]  # the key is gone
    out.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["--lang", "en", "load", *_files(tmp_path), "--workspace", str(ws), "--mapping", str(out)]) == 2
    assert "customer_id" in capsys.readouterr().out
    assert not ws.exists()  # refused before the workspace is opened


def test_a_mapping_matching_no_file_exits_2_naming_it(tmp_path, capsys):
    out, ws = tmp_path / "m.yaml", tmp_path / "ws.duckdb"
    main(["propose", *_files(tmp_path), "--out", str(out)])
    only_customers = [str(FIXTURES / "customers_coded.csv")]
    assert main(["--lang", "en", "load", *only_customers, "--workspace", str(ws), "--mapping", str(out)]) == 2
    printed = capsys.readouterr().out
    assert "accounts.csv" in printed and "matches the header of none" in printed


def test_a_mapping_applies_by_header_not_by_file_name(tmp_path):
    mapping, _ = (m := __import__("profile_core.ingest", fromlist=["propose_files"])).propose_files(
        [(f, FIXTURES / f) for f in BANK_FILES])
    renamed = []
    for f in BANK_FILES:  # client.asc instead of client.csv: same header, other name
        target = tmp_path / (Path(f).stem + ".asc")
        shutil.copy(FIXTURES / f, target)
        renamed.append((target.name, target))
    with Workspace(":memory:") as ws:
        result = load_into_workspace(renamed, ws, "bank", mapping=mapping)
        assert result.report.ok, result.report.summary("en")
        assert len(result.tables["customers"]) == 4 and result.mapping is not None
    # a file with another header is not taken for a table of the mapping because of its name
    other = tmp_path / "customers_coded.csv"
    other.write_text("x,y\n1,2\n", encoding="utf-8")
    assert m.Mapping.match(mapping, "customers_coded.csv", ["x", "y"]) is None
