"""Hostile inputs against the audit log (issue 15): a cut tail followed by an append, log + head deleted, a
damaged last line, a forged head without the HMAC key — each refused (fail closed) and each repairable by an
auditor only, with what was done recorded in the log and the removed lines kept in a quarantine file."""

from __future__ import annotations

import json
import os
import stat

import pytest

from profile_core.audit import (
    AuditIntegrityError,
    AuditLog,
    WorkspaceAnchor,
    audit_cli,
    repair_log,
    verify_chain,
)
from profile_core.auth import Forbidden, hash_password
from profile_core.privacy import Policy

AUDITOR = Policy("auditor")


@pytest.fixture()
def anchored(tmp_path):
    anchor = WorkspaceAnchor(tmp_path / "ws.duckdb")
    log = AuditLog(tmp_path / "audit.jsonl", anchor=anchor, key=b"")
    for i in range(5):
        log.append(f"user{i}", "analyst", "view_card", f"C{i:06d}")
    return log, anchor


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines()


def test_cut_tail_then_append_is_refused_not_healed(anchored):
    log, anchor = anchored
    lines = _lines(log)
    log.path.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")  # entries 4 and 5 removed
    with pytest.raises(AuditIntegrityError) as err:
        log.append("auditor1", "auditor", "login", "auditor1")  # the auditor's own sign-in
    assert err.value.values["problem"] == "head_mismatch" and "audit repair" in err.value.message("en")
    assert _lines(log) == lines[:3]  # nothing written
    report = verify_chain(log.path, anchor=anchor)
    assert not report.ok and report.problem == "head_mismatch" and report.entries == 3
    assert "audit repair" in report.message("en")


def test_cut_tail_with_rewritten_head_is_caught_by_the_anchor(anchored):
    log, anchor = anchored
    lines = _lines(log)
    log.path.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    third = json.loads(lines[2])
    log.head_path.write_text(json.dumps({"seq": 3, "hash": third["hash"]}))  # a careful forger
    assert verify_chain(log.path).ok  # the file and its head alone agree…
    report = verify_chain(log.path, anchor=anchor)
    assert not report.ok and report.problem == "anchor_mismatch" and report.seq == 5  # …the anchor does not
    with pytest.raises(AuditIntegrityError):
        log.append("x", "analyst", "login")


def test_deleting_log_and_head_is_detected(anchored):
    log, anchor = anchored
    log.path.unlink()
    log.head_path.unlink()
    report = verify_chain(log.path, anchor=anchor)
    assert not report.ok and report.problem == "anchor_mismatch" and report.seq == 5 and report.entries == 0
    with pytest.raises(AuditIntegrityError):  # a fresh chain is not silently started
        log.append("x", "analyst", "login")
    assert not log.path.exists() or log.path.stat().st_size == 0


def test_hmac_key_makes_a_forged_head_detectable(tmp_path):
    key = b"k" * 32
    log = AuditLog(tmp_path / "a.jsonl", key=key)
    for i in range(4):
        log.append("u", "analyst", "login", str(i))
    assert verify_chain(log.path, key=key).ok
    lines = _lines(log)
    log.path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    log.head_path.write_text(json.dumps({"seq": 2, "hash": json.loads(lines[1])["hash"]}))  # no MAC: no key
    report = verify_chain(log.path, key=key)
    assert not report.ok and report.problem == "head_mismatch"
    with pytest.raises(AuditIntegrityError):
        log.append("u", "analyst", "login")


def test_damaged_last_line_refuses_then_auditor_repairs(anchored):
    log, anchor = anchored
    with open(log.path, "ab") as f:  # a crash or a full disk mid-write
        f.write(b'{"seq": 6, "time": "2026-')
    with pytest.raises(AuditIntegrityError) as err:
        log.append("rm01", "rm", "view_card", "C000001")
    assert err.value.values["problem"] == "bad_line"
    with pytest.raises(Forbidden):  # an admin may not restart the log; only an auditor
        repair_log(log.path, Policy("admin"), "admin1", anchor=anchor)
    result = repair_log(log.path, AUDITOR, "auditor1", anchor=anchor)
    assert (result.problem, result.kept, result.quarantined) == ("bad_line", 5, 1)
    assert result.quarantine_file.read_bytes() == b'{"seq": 6, "time": "2026-\n'
    assert stat.S_IMODE(os.stat(result.quarantine_file).st_mode) == 0o600
    details = result.entry["details"]
    assert result.entry["action"] == "audit_repair" and result.entry["seq"] == 6
    assert details["first_bad_line"] == 6 and details["quarantined_lines"] == 1
    assert details["quarantine_file"] == result.quarantine_file.name and len(details["quarantine_sha256"]) == 64
    report = verify_chain(log.path, anchor=anchor)
    assert report.ok and report.entries == 6 and report.repairs == 1 and "1" in report.message("en")
    log.append("rm01", "rm", "view_card", "C000001")  # views work again
    assert verify_chain(log.path, anchor=anchor).ok


def test_repair_after_cut_tail_records_what_the_head_said(anchored):
    log, anchor = anchored
    lines = _lines(log)
    log.path.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    result = repair_log(log.path, AUDITOR, "auditor1", anchor=anchor)
    assert (result.problem, result.kept, result.quarantined, result.quarantine_file) == ("head_mismatch", 3, 0, None)
    assert result.entry["details"]["head_seq"] == 5 and result.entry["details"]["anchor_seq"] == 5
    assert result.entry["prev_hash"] == json.loads(lines[2])["hash"]  # the new segment links to the kept part
    assert verify_chain(log.path, anchor=anchor).ok
    assert repair_log(log.path, AUDITOR, "auditor1", anchor=anchor).problem is None  # intact: untouched
    assert len(_lines(log)) == 4


def test_edited_middle_line_quarantines_from_there(anchored):
    log, anchor = anchored
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["target"] = "C999999"  # edited without recomputing its hash: line 2 is the first bad one
    lines[1] = json.dumps(entry)
    log.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = repair_log(log.path, AUDITOR, "auditor1", anchor=anchor)
    assert (result.problem, result.kept, result.quarantined) == ("hash_mismatch", 1, 4)  # 2..5 moved, none deleted
    assert result.quarantine_file.read_text(encoding="utf-8").splitlines() == lines[1:]
    assert verify_chain(log.path, anchor=anchor).ok


def test_cli_audit_verify_and_repair(anchored, tmp_path, capsys):
    log, _ = anchored
    users = tmp_path / "users.yaml"
    pw = hash_password("s3cret-pass", rounds=4)
    users.write_text(f'users:\n  aud1: {{role: auditor, password_hash: "{pw}"}}\n'
                     f'  adm1: {{role: admin, password_hash: "{pw}"}}\n', encoding="utf-8")
    ws = tmp_path / "ws.duckdb"
    log.path.write_text("\n".join(_lines(log)[:2]) + "\n", encoding="utf-8")
    assert audit_cli("verify", log.path, workspace=ws, lang="en") == 1
    assert "head file" in capsys.readouterr().out
    assert audit_cli("repair", log.path, workspace=ws, users=users, user="adm1", password="s3cret-pass",
                     lang="en") == 2
    assert "repair the audit log" in capsys.readouterr().out  # refused: names the missing permission
    assert audit_cli("repair", log.path, workspace=ws, users=users, user="aud1", password="wrong", lang="en") == 2
    capsys.readouterr()
    assert audit_cli("repair", log.path, workspace=ws, users=users, user="aud1", password="s3cret-pass",
                     lang="en") == 0
    assert "Repaired" in capsys.readouterr().out
    assert audit_cli("verify", log.path, workspace=ws, lang="en") == 0
