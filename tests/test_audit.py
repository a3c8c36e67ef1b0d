"""The audit log: append-only, hash-chained, nothing personal; ``verify_chain`` catches edits, insertions,
deletions (also of the last entry) and reordering; application logs are redacted."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from profile_core.audit import (
    ACTIONS,
    FIELDS,
    GENESIS,
    AuditLog,
    RedactingFilter,
    clean_details,
    entry_hash,
    install_log_redaction,
    redact,
    verify_chain,
)
from profile_core.privacy import Policy

AUDITOR = Policy("auditor")


@pytest.fixture()
def log(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("rm01", "rm", "login", "rm01", {"method": "password"})
    log.append("rm01", "rm", "view_card", "C000123")
    log.append("analyst", "analyst", "load_data", "main", {"ok": True, "files": 2})
    log.append("admin", "admin", "train", "main", {"job": "abc"})
    log.append("admin", "admin", "activate_bundle", "demo")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_entries_are_chained(log):
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == GENESIS
    for before, after in zip(entries, entries[1:], strict=False):
        assert after["prev_hash"] == before["hash"]
    assert all(entry_hash(e) == e["hash"] for e in entries)
    assert all(set(e) == set(FIELDS) for e in entries)
    stamp = datetime.fromisoformat(entries[0]["time"])
    assert stamp.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    report = verify_chain(log.path)
    assert report.ok and report.entries == 5 and "5" in report.message("zh")


def test_no_update_or_delete_api():
    public = {n for n in dir(AuditLog) if not n.startswith("_")}
    assert public == {"append", "entries", "query", "head_path"}
    with pytest.raises(ValueError):
        AuditLog("/tmp/never-written.jsonl").append("x", "rm", "drop_table")  # only known actions


def test_log_file_is_private(log):
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log.head_path).st_mode) == 0o600


@pytest.mark.parametrize("tamper", ["edit_details", "edit_and_rehash", "delete_middle", "delete_last", "insert",
                                    "swap", "garbage", "edit_head", "delete_head"])
def test_verify_chain_detects_manual_edits(log, tamper):
    lines = _lines(log)
    if tamper == "edit_details":
        entry = json.loads(lines[2])
        entry["details"]["files"] = 99
        lines[2] = json.dumps(entry, ensure_ascii=False)
    elif tamper == "edit_and_rehash":  # a careful forger recomputes the edited entry's hash: the next link breaks
        entry = json.loads(lines[1])
        entry["target"] = "C999999"
        entry["hash"] = entry_hash(entry)
        lines[1] = json.dumps(entry, ensure_ascii=False)
    elif tamper == "delete_middle":
        del lines[1]
    elif tamper == "delete_last":
        del lines[-1]
    elif tamper == "insert":
        lines.insert(2, lines[2])
    elif tamper == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    elif tamper == "garbage":
        lines[3] = lines[3][:-5]
    if tamper == "edit_head":
        log.head_path.write_text(json.dumps({"seq": 4, "hash": json.loads(lines[3])["hash"]}))
    elif tamper == "delete_head":
        log.head_path.unlink()
    else:
        _write(log, lines)
    report = verify_chain(log.path)
    assert not report.ok, tamper
    assert report.problem in {"bad_line", "seq_gap", "broken_link", "hash_mismatch", "head_mismatch"}
    assert report.message("zh") and report.message("en")


def test_appending_after_tampering_does_not_heal_it(log):
    lines = _lines(log)
    entry = json.loads(lines[0])
    entry["user"] = "someone_else"
    lines[0] = json.dumps(entry)
    _write(log, lines)
    log.append("admin", "admin", "login")
    assert not verify_chain(log.path).ok


def test_details_and_targets_hold_nothing_personal(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    entry = log.append("analyst", "analyst", "export", "13812345678", {
        "name": "张三丰", "phone": "13812345678", "note": "call 138-1234-5678 or mail zs@example.com",
        "id": "110105199001011234", "card": "6222020200112233445", "rows": 5, "ok": True, "nested": {"a": 1},
        "ratio": float("nan")})
    text = log.path.read_text(encoding="utf-8")
    for secret in ("张三丰", "13812345678", "138-1234-5678", "zs@example.com", "110105199001011234",
                   "6222020200112233445"):
        assert secret not in text, secret
    assert entry["details"]["name"] == "[removed]" and entry["details"]["phone"] == "[removed]"
    assert entry["details"]["rows"] == 5 and entry["details"]["ok"] is True and entry["details"]["ratio"] is None
    assert entry["target"].startswith("[redacted:")
    assert redact("13812345678") == redact("13812345678")  # the same value maps to the same pseudonym
    assert clean_details({"k" * 80: "v"}) == {"k" * 40: "v"}
    assert verify_chain(log.path).ok


def test_query_filters(log):
    everything = log.query(AUDITOR)
    assert everything["seq"].tolist() == [5, 4, 3, 2, 1]  # newest first
    assert log.query(AUDITOR, user="rm01")["action"].tolist() == ["view_card", "login"]
    assert log.query(AUDITOR, action=["train", "load_data"])["seq"].tolist() == [4, 3]
    today = datetime.now(UTC).date()
    assert len(log.query(AUDITOR, since=today, until=today)) == 5
    assert log.query(AUDITOR, until=today - timedelta(days=1)).empty
    assert log.query(AUDITOR, since=date(2000, 1, 1), until=date(2000, 1, 2)).empty
    assert json.loads(everything.iloc[-1]["details"]) == {"method": "password"}


def test_empty_log(tmp_path):
    log = AuditLog(tmp_path / "none.jsonl")
    assert verify_chain(log.path).ok and log.entries() == []
    assert log.query(AUDITOR).empty


def test_concurrent_appends_keep_one_chain(tmp_path):
    path = tmp_path / "c.jsonl"

    def work(i: int) -> None:
        log = AuditLog(path)  # separate instances, as separate sessions / processes would have
        for _ in range(20):
            log.append(f"user{i}", "analyst", "view_card", f"C{i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    report = verify_chain(path)
    assert report.ok and report.entries == 80


def test_every_action_has_a_label():
    from profile_core.i18n import has

    assert all(has(f"audit.action.{a}") for a in ACTIONS)


# ------------------------------------------------------------------ application logs


@pytest.fixture()
def redaction():
    factory = logging.getLogRecordFactory()
    filt = install_log_redaction(RedactingFilter())
    yield filt
    logging.setLogRecordFactory(factory)  # leave the process as it was
    for handler in logging.getLogger().handlers:
        handler.removeFilter(filt)
    del logging._profile_redacting_filter


def test_application_logs_are_redacted(redaction, caplog):
    redaction.set_names(["张三丰", "李四"], key="fp1")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("profile_core.test").info("card for %s (%s) phone %s", "张三丰", "C1", "13812345678")
        try:
            raise ValueError("bad value 李四 110105199001011234")
        except ValueError:
            logging.getLogger("ui.test").exception("failed")
    text = caplog.text + "".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for secret in ("张三丰", "李四", "13812345678", "110105199001011234"):
        assert secret not in text, secret
    assert "C1" in text and "[redacted:" in text
    assert install_log_redaction() is redaction  # idempotent
