"""The audit log: append-only, hash-chained JSON lines, with nothing personal in it.

One line per event::

    {"seq": 7, "time": "2026-01-05T08:00:00.123456+00:00", "user": "rm01", "role": "rm",
     "action": "view_card", "target": "C000123", "details": {}, "prev_hash": "…", "hash": "…"}

``hash`` = sha256 of the canonical JSON of every other field (``prev_hash`` included), so changing, inserting
or removing a line breaks the chain from there on; ``prev_hash`` of the first entry is 64 zeros. A head file
(``<log>.head``, rewritten atomically after each append) holds the last ``seq`` and ``hash``, so a deleted
*tail* is caught as well. :func:`verify_chain` checks all of it. There is deliberately no update or delete
function; appends are serialised by ``flock`` (threads and processes alike).

Anchoring (fail closed): before writing, :meth:`AuditLog.append` checks that the log's last line verifies and
equals the head file and the *anchor* — a copy of the head kept outside the file, in the workspace database
(:class:`WorkspaceAnchor`, table ``_audit_anchor``). On any mismatch it refuses (:class:`AuditIntegrityError`,
logged at CRITICAL) instead of re-chaining from a truncated end, so a cut tail is never "healed" by the next
sign-in, and a deleted log + head is caught by the anchor. With ``$PROFILE_AUDIT_KEY`` set, head and anchor
also carry an HMAC-SHA256 of ``seq:hash``: rebuilding a consistent head needs the key.

Repair (:func:`repair_log`, auditor only, ``python -m profile_core audit repair``): moves the lines from the
first bad one to the end into a quarantine file beside the log (mode 0600), cuts the log there and appends an
``audit_repair`` entry that says what was quarantined (lines, sha256, the head and anchor it contradicted),
which starts a new chain segment; head and anchor then follow it. Nothing is ever deleted.

Limits, said plainly: whoever can rewrite the file, its head file *and* the workspace database (and holds the
HMAC key when one is set) can rebuild a consistent chain; ship the log (or its head hash) to write-once
storage for stronger guarantees.

Nothing personal: ``details`` keep scalars only, drop personal keys (name, phone, id_number, …) and replace
anything shaped like a mainland phone number, ID number, bank card or e-mail address with
``[redacted:<8 hex of its sha256>]`` (still linkable, not readable); targets are pseudonymised the same way.
:class:`RedactingFilter` does the same for application logs and also hides the customer names it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .auth import require
from .i18n import MessageError, t
from .privacy import Policy

GENESIS = "0" * 64
#: Known actions (add new ones here: an unknown action is a programming error).
ACTIONS = ("login", "login_failed", "logout", "session_expired", "view_card", "view_explanation", "load_data",
           "train", "activate_bundle", "export", "reveal", "view_audit", "audit_repair",
           "dataset_rename", "dataset_delete", "dataset_default", "model_register", "model_champion", "model_archive",
           "what_if", "view_similar", "cohort_save", "cohort_delete")
FIELDS = ("seq", "time", "user", "role", "action", "target", "details", "prev_hash", "hash")
PERSONAL_KEYS = frozenset({"name", "id_number", "phone", "counterparty", "email", "address", "姓名", "身份证号",
                           "证件号", "手机号", "电话", "对手方", "password", "password_hash"})
_PATTERNS = (
    re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"),  # 18-digit resident ID
    re.compile(r"(?<![0-9A-Za-z])\d{15,19}(?![0-9A-Za-z])"),  # 15-digit ID, bank card numbers
    re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)"),  # mainland mobile
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail
)
_MAX_TEXT = 200
KEY_ENV = "PROFILE_AUDIT_KEY"
_log = logging.getLogger("profile_core.audit")


class AuditIntegrityError(MessageError):
    """The log does not match its head file / anchor, or its last line is damaged: nothing is written until an
    auditor repairs it (``message(lang)`` says where and how)."""


def audit_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key for heads and anchors from ``$PROFILE_AUDIT_KEY`` (None when unset)."""
    value = (environ if environ is not None else os.environ).get(KEY_ENV, "")
    return value.encode("utf-8") if value else None


def head_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"{seq}:{digest}".encode("ascii"), hashlib.sha256).hexdigest()


def _head_record(entry: Mapping[str, Any] | None, key: bytes | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    out: dict[str, Any] = {"seq": entry["seq"], "hash": entry["hash"]}
    if key is not None:
        out["mac"] = head_mac(key, entry["seq"], entry["hash"])
    return out


def _head_ok(head: Any, seq: int, digest: str, key: bytes | None) -> bool:
    """``head`` (a head file's or anchor's content) names entry ``seq`` / ``digest`` (and its MAC verifies)."""
    if not isinstance(head, dict) or head.get("seq") != seq or head.get("hash") != digest:
        return False
    if key is None:
        return True
    mac = head.get("mac")
    return isinstance(mac, str) and hmac.compare_digest(mac, head_mac(key, seq, digest))


class WorkspaceAnchor:
    """The head of one audit log kept in a workspace database (table ``_audit_anchor``, keyed by the log's
    absolute path). ``workspace``: a DuckDB file path (opened per call, retried while another process holds
    it) or a callable returning a context manager that yields a ``store.Workspace`` (the app's shared one)."""

    TABLE = "_audit_anchor"

    def __init__(self, workspace: str | Path | Callable[[], AbstractContextManager[Any]],
                 retry_s: float = 5.0) -> None:
        self.workspace, self.retry_s = workspace, retry_s

    @contextmanager
    def _con(self) -> Iterator[Any]:
        if callable(self.workspace):
            with self.workspace() as ws:
                yield ws.con
            return
        import duckdb

        os.umask(os.umask(0o077) | 0o077)  # the workspace and its WAL stay private (as ``store.Workspace`` does)
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                con = duckdb.connect(str(self.workspace))
                break
            except duckdb.IOException:  # another process holds the file: wait a little, then fail closed
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            yield con
        finally:
            con.close()

    def _table(self, con: Any) -> None:
        con.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (log VARCHAR PRIMARY KEY, seq BIGINT, "
                    "hash VARCHAR, mac VARCHAR, updated_at TIMESTAMP)")

    @contextmanager
    def session(self) -> Iterator[_AnchorSession]:
        """One connection for a read and a write (an append uses one, not two: opening a file costs ms)."""
        with self._con() as con:
            self._table(con)
            yield _AnchorSession(con, self.TABLE)

    def read(self, log_path: Path) -> dict[str, Any] | None:
        if not callable(self.workspace) and not Path(self.workspace).is_file():
            return None  # no workspace yet: nothing anchored (and nothing created by reading)
        with self.session() as s:
            return s.read(log_path)

    def write(self, log_path: Path, head: Mapping[str, Any]) -> None:
        with self.session() as s:
            s.write(log_path, head)


@dataclass
class _AnchorSession:
    con: Any
    table: str

    def read(self, log_path: Path) -> dict[str, Any] | None:
        row = self.con.execute(f"SELECT seq, hash, mac FROM {self.table} WHERE log = ?",
                               [str(log_path.resolve())]).fetchone()
        if row is None:
            return None
        out: dict[str, Any] = {"seq": int(row[0]), "hash": row[1]}
        if row[2]:
            out["mac"] = row[2]
        return out

    def write(self, log_path: Path, head: Mapping[str, Any]) -> None:
        self.con.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?, ?)",
                         [str(log_path.resolve()), int(head["seq"]), head["hash"], head.get("mac"),
                          datetime.now(UTC).replace(tzinfo=None)])


def _pseudonym(text: str) -> str:
    return f"[redacted:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}]"


def redact(text: str, names: Iterable[str] | re.Pattern | None = None) -> str:
    """``text`` with phone / ID / card numbers, e-mail addresses and the given ``names`` pseudonymised."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: _pseudonym(m.group(0)), text)
    if names is not None:
        rx = names if isinstance(names, re.Pattern) else names_pattern(names)
        if rx is not None:
            text = rx.sub(lambda m: _pseudonym(m.group(0)), text)
    return text


def names_pattern(names: Iterable[str]) -> re.Pattern | None:
    """One regex matching any of ``names`` (longest first; names shorter than 2 characters are skipped)."""
    unique = sorted({str(n).strip() for n in names if isinstance(n, str) and len(str(n).strip()) >= 2},
                    key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in unique)) if unique else None


def clean_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Scalars only; personal keys dropped (value ``"[removed]"``); text redacted and cut to 200 characters."""
    out: dict[str, Any] = {}
    for key, value in (details or {}).items():
        k = re.sub(r"[^0-9A-Za-z_.-]", "_", str(key))[:40]
        if str(key).strip().lower() in PERSONAL_KEYS:
            out[k] = "[removed]"
        elif value is None or isinstance(value, bool | int):
            out[k] = value
        elif isinstance(value, float):
            out[k] = value if value == value and abs(value) != float("inf") else None
        else:
            out[k] = redact(str(value))[:_MAX_TEXT]
    return out


def _canonical(entry: Mapping[str, Any]) -> bytes:
    body = {k: entry[k] for k in FIELDS if k != "hash"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


@dataclass
class ChainReport:
    ok: bool
    entries: int
    problem: str | None = None  # a trust.toml key: audit.chain.<problem>
    seq: int | None = None  # the first entry (or line) found wrong
    repairs: int = 0  # audit_repair entries in the chain (each starts a new segment)
    good_lines: int = 0  # lines before the first bad one (what a repair keeps)

    def message(self, lang: str = "zh") -> str:
        if self.ok:
            if self.repairs:
                return t("audit.chain.ok_repaired", lang, count=self.entries, repairs=self.repairs)
            return t("audit.chain.ok", lang, count=self.entries)
        return t(f"audit.chain.{self.problem}", lang, seq=self.seq, count=self.entries) + " " + t(
            "audit.chain.repair_hint", lang)


class AuditLog:
    """An audit log file (created with mode 0600 on first append). Only :meth:`append` writes.

    ``anchor``: where a copy of the head is kept outside the file (:class:`WorkspaceAnchor`); ``key``: the
    HMAC key for head and anchor (default: ``$PROFILE_AUDIT_KEY``; ``b""`` for none)."""

    def __init__(self, path: str | Path, *, anchor: WorkspaceAnchor | None = None, key: bytes | None = None) -> None:
        self.path = Path(path)
        self._anchor = anchor
        self._key = audit_key() if key is None else (key or None)

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    # -- writing ----------------------------------------------------------------------------------
    def append(self, user: str, role: str, action: str, target: str = "",
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Add one event; returns the stored entry."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; known: {', '.join(ACTIONS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # flock locks the open file description: separate opens exclude each other across threads and processes
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _flock(fd)
            with self._anchor.session() if self._anchor is not None else nullcontext() as anchor:
                return self._append_locked(fd, anchor, user, role, action, target, details)
        finally:
            os.close(fd)  # releases the flock

    def _append_locked(self, fd: int, anchor: _AnchorSession | None, user: str, role: str, action: str,
                       target: str, details: Mapping[str, Any] | None) -> dict[str, Any]:
        last = self._checked_end(fd, anchor)
        entry = {"seq": (last["seq"] + 1) if last else 1,
                 "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                 "user": redact(str(user))[:64], "role": str(role)[:16], "action": action,
                 "target": redact(str(target or ""))[:_MAX_TEXT], "details": clean_details(details),
                 "prev_hash": last["hash"] if last else GENESIS}
        entry["hash"] = entry_hash(entry)
        os.write(fd, json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        os.fsync(fd)
        self._write_head(entry, anchor)
        return entry

    def _checked_end(self, fd: int, anchor_session: _AnchorSession | None = None) -> dict[str, Any] | None:
        """The last entry, after checking it against its own hash, the head file and the anchor; raises
        :class:`AuditIntegrityError` (and logs CRITICAL) on any mismatch: never re-chain a cut or edited end."""
        try:
            last = _last_entry(fd)
        except ValueError:
            last, problem = None, "bad_line"
        else:
            problem = None
            if last is not None and (not isinstance(last, dict) or set(last) != set(FIELDS)
                                     or entry_hash(last) != last.get("hash")):
                problem = "bad_line"
        if problem is None:
            head = _read_head(self.head_path)
            anchor = (anchor_session.read(self.path) if anchor_session is not None
                      else self._anchor.read(self.path) if self._anchor is not None else None)
            if last is None:
                if head is not None or anchor is not None:  # the log is gone (or emptied) but was written before
                    problem = "head_mismatch"
            else:
                seq, digest = last["seq"], last["hash"]
                if not _head_ok(head, seq, digest, self._key):
                    problem = "head_mismatch"
                elif anchor is not None and not _head_ok(anchor, seq, digest, self._key):
                    problem = "anchor_mismatch"
        if problem is not None:
            _log.critical("audit log %s failed its integrity check (%s): appends refused until an auditor runs "
                          "`python -m profile_core audit repair`", self.path.name, problem)
            raise AuditIntegrityError("audit.refused", file=str(self.path), problem=problem)
        return last

    def _write_head(self, entry: Mapping[str, Any], anchor_session: _AnchorSession | None = None) -> None:
        record = _head_record(entry, self._key)
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(record).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        if anchor_session is not None:
            anchor_session.write(self.path, record)
        elif self._anchor is not None:
            self._anchor.write(self.path, record)

    # -- reading ----------------------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Every parseable entry, oldest first (use :func:`verify_chain` to know whether to trust them)."""
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict):
                    out.append(entry)
        return out

    def query(self, policy: Policy, *, user: str | None = None, action: str | Iterable[str] | None = None,
              since: date | datetime | None = None, until: date | datetime | None = None) -> pd.DataFrame:
        """Entries as a frame (newest first), filtered; needs the ``view_audit`` permission.
        ``since`` / ``until`` are inclusive UTC days (a ``date``) or instants."""
        require(policy, "view_audit")
        frame = pd.DataFrame(self.entries(), columns=list(FIELDS))
        if frame.empty:
            return frame.assign(time=pd.to_datetime(frame["time"], utc=True))
        frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
        frame["details"] = frame["details"].map(lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True))
        keep = pd.Series(True, index=frame.index)
        if user:
            keep &= frame["user"] == user
        if action:
            keep &= frame["action"].isin([action] if isinstance(action, str) else list(action))
        if since is not None:
            keep &= frame["time"] >= _instant(since, end=False)
        if until is not None:
            keep &= frame["time"] <= _instant(until, end=True)
        return frame.loc[keep].sort_values("seq", ascending=False).reset_index(drop=True)


def _instant(value: date | datetime, *, end: bool) -> pd.Timestamp:
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    ts = pd.Timestamp(value).tz_localize("UTC")
    return ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if end else ts


def _flock(fd: int) -> None:
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - not POSIX: the thread lock still serialises this process
        pass


def _last_entry(fd: int) -> dict[str, Any] | None:
    """The last complete line of the file behind ``fd``, parsed (None for an empty file)."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return None
    chunk, pos, data = 8192, size, b""
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        data = os.pread(fd, step, pos) + data
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            try:
                entry = json.loads(lines[-1])
            except json.JSONDecodeError as e:
                raise ValueError("the audit log's last line is damaged; run verify_chain") from e
            return entry
    return None


def _read_head(path: Path) -> Any:
    """The head file's content (None when missing; ``"bad"`` when unreadable)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="ascii"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return "bad"


def _scan(data: bytes) -> tuple[list[bytes], int, str | None, int, str, int]:
    """Lines of ``data``; (lines, good lines, problem, entries verified, last good hash, repairs)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    prev, repairs = GENESIS, 0
    for n, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return lines, n - 1, "bad_line", n - 1, prev, repairs
        if not isinstance(entry, dict) or set(entry) != set(FIELDS):
            return lines, n - 1, "bad_line", n - 1, prev, repairs
        if entry["seq"] != n:
            return lines, n - 1, "seq_gap", n - 1, prev, repairs
        if entry["prev_hash"] != prev:
            return lines, n - 1, "broken_link", n - 1, prev, repairs
        if entry_hash(entry) != entry["hash"]:
            return lines, n - 1, "hash_mismatch", n - 1, prev, repairs
        prev = entry["hash"]
        repairs += entry["action"] == "audit_repair"
    return lines, len(lines), None, len(lines), prev, repairs


def verify_chain(path: str | Path, *, anchor: WorkspaceAnchor | None = None, key: bytes | None = None
                 ) -> ChainReport:
    """Check every line: valid JSON with the expected fields, ``seq`` 1, 2, 3 …, each ``prev_hash`` the hash
    of the line before, each ``hash`` recomputed; then the head file (and its HMAC when ``key``, default
    ``$PROFILE_AUDIT_KEY``, is set) and the ``anchor`` against the last entry."""
    log = AuditLog(path)
    key = audit_key() if key is None else (key or None)
    data = log.path.read_bytes() if log.path.is_file() else b""
    _, good, problem, count, prev, repairs = _scan(data)
    if problem is not None:
        return ChainReport(False, count, problem, good + 1, repairs, good)
    head = _read_head(log.head_path)
    stored = anchor.read(log.path) if anchor is not None else None
    if count == 0 and head is None:  # no log, no head: fine unless the anchor remembers entries (all deleted)
        if stored is None:
            return ChainReport(True, 0)
        return ChainReport(False, 0, "anchor_mismatch", stored.get("seq"))
    if not _head_ok(head, count, prev, key):
        seq = head.get("seq") if isinstance(head, dict) else None
        return ChainReport(False, count, "head_mismatch", seq, repairs, good)
    if anchor is not None and stored is not None and not _head_ok(stored, count, prev, key):
        return ChainReport(False, count, "anchor_mismatch", stored.get("seq"), repairs, good)
    return ChainReport(True, count, repairs=repairs, good_lines=good)


@dataclass
class RepairResult:
    """What :func:`repair_log` did: ``problem`` found, lines kept and moved, the quarantine file (None when
    nothing had to be moved) and the ``audit_repair`` entry that starts the new segment (None when the log was
    intact and nothing was done)."""

    problem: str | None
    kept: int
    quarantined: int
    quarantine_file: Path | None = None
    entry: dict[str, Any] | None = field(default=None)


def repair_log(path: str | Path, policy: Policy, user: str, *, anchor: WorkspaceAnchor | None = None,
               key: bytes | None = None) -> RepairResult:
    """Auditor only (``repair_audit``): quarantine the damaged tail of the log at ``path`` and start a new
    chain segment with an ``audit_repair`` entry recording what was done. An intact log is left untouched.

    The lines from the first bad one to the end go to ``<log>.quarantine-<UTC time>.jsonl`` (mode 0600, never
    deleted); the log is cut before them; the repair entry (user ``user``) links to the last good entry and
    records the problem, the line numbers, how many lines were moved and their sha256, and the head / anchor
    it contradicted (e.g. after a cut tail or a deleted log). Head file and anchor then follow it."""
    require(policy, "repair_audit")
    log = AuditLog(path, anchor=anchor, key=key)
    report = verify_chain(log.path, anchor=anchor, key=key)
    if report.ok:
        return RepairResult(None, report.entries, 0)
    log.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log.path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _flock(fd)
        size = os.lseek(fd, 0, os.SEEK_END)
        data = os.pread(fd, size, 0) if size else b""
        lines, good, problem, _, prev, _ = _scan(data)
        problem = problem or report.problem
        tail = lines[good:]
        keep = b"".join(line + b"\n" for line in lines[:good])
        quarantine = None
        if tail:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            quarantine = log.path.with_name(f"{log.path.name}.quarantine-{stamp}.jsonl")
            qfd = os.open(quarantine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(qfd, b"".join(line + b"\n" for line in tail))
                os.fsync(qfd)
            finally:
                os.close(qfd)
        head = _read_head(log.head_path)
        stored = anchor.read(log.path) if anchor is not None else None
        os.ftruncate(fd, len(keep))
        os.fsync(fd)
        details = {"problem": problem, "kept_lines": good, "quarantined_lines": len(tail),
                   "first_bad_line": good + 1 if tail else None,
                   "quarantine_file": quarantine.name if quarantine else None,
                   "quarantine_sha256": hashlib.sha256(b"".join(line + b"\n" for line in tail)).hexdigest()
                   if tail else None,
                   "head_seq": head.get("seq") if isinstance(head, dict) else None,
                   "anchor_seq": stored.get("seq") if isinstance(stored, dict) else None}
        entry = {"seq": good + 1, "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                 "user": redact(str(user))[:64], "role": str(policy.role)[:16], "action": "audit_repair",
                 "target": log.path.name[:_MAX_TEXT], "details": clean_details(details), "prev_hash": prev}
        entry["hash"] = entry_hash(entry)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        os.fsync(fd)
        log._write_head(entry)
    finally:
        os.close(fd)
    _log.warning("audit log %s repaired: %d line(s) quarantined (%s)", log.path.name, len(tail), problem)
    return RepairResult(problem, good, len(tail), quarantine, entry)


def audit_cli(action: str, log_path: str | Path, *, workspace: str | Path | None = None,
              users: str | Path | None = None, user: str | None = None, password: str | None = None,
              lang: str = "zh") -> int:
    """``python -m profile_core audit verify|repair``: print the chain check (exit 0 intact, 1 not); ``repair``
    signs the auditor in (``users`` file, ``user``, ``password`` — asked for when not given, or
    ``$PROFILE_PASSWORD``) and runs :func:`repair_log` (exit 0 repaired or intact, 2 refused)."""
    from .auth import AuthError, Forbidden, UsersFileError, authenticate, load_users, policy_for

    anchor = WorkspaceAnchor(workspace) if workspace else None
    if action == "verify":
        report = verify_chain(log_path, anchor=anchor)
        print(report.message(lang))
        return 0 if report.ok else 1
    try:
        config = load_users(users or "config/users.yaml")
        if password is None:
            password = os.environ.get("PROFILE_PASSWORD")
        if password is None:
            import getpass

            password = getpass.getpass("password: ")
        who = authenticate(config, user or "", password, demo_allowed=False)
        result = repair_log(log_path, policy_for(who), who.username, anchor=anchor)
    except (AuthError, UsersFileError, Forbidden) as err:
        print(err.message(lang))
        return 2
    if result.problem is None:
        print(t("audit.repair.intact", lang, file=str(log_path), count=result.kept))
    else:
        print(t("audit.repair.done", lang, file=str(log_path), kept=result.kept, quarantined=result.quarantined,
                quarantine=result.quarantine_file.name if result.quarantine_file else "-", problem=result.problem))
    return 0


# ------------------------------------------------------------------ application logs


class RedactingFilter(logging.Filter):
    """Pseudonymises personal data in every record it sees (message and exception text): phone / ID / card
    numbers and e-mail addresses always, plus the customer names set with :meth:`set_names`."""

    MAX_SETS = 8  # datasets whose names are kept (the most recent ones)

    def __init__(self) -> None:
        super().__init__()
        self._names: re.Pattern | None = None
        self._sets: dict[str, frozenset[str]] = {}

    def set_names(self, names: Iterable[str], key: str = "") -> None:
        """Hide ``names`` (e.g. the customers of one dataset, ``key`` its fingerprint) from now on, besides
        those of the other recent keys. Setting the same key again costs nothing."""
        if key in self._sets and key:
            return
        self._sets[key] = frozenset(str(n) for n in names)
        while len(self._sets) > self.MAX_SETS:
            self._sets.pop(next(iter(self._sets)))
        self._names = names_pattern(set().union(*self._sets.values()))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = redact(message, self._names), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._names)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._names)
        return True


def install_log_redaction(filt: RedactingFilter | None = None) -> RedactingFilter:
    """Attach one :class:`RedactingFilter` to every handler of the root and ``streamlit`` loggers and wrap the
    record factory, so that records are redacted wherever they are emitted. Idempotent."""
    existing = getattr(logging, "_profile_redacting_filter", None)
    filt = existing or filt or RedactingFilter()
    if existing is None:
        base = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            filt.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        logging._profile_redacting_filter = filt  # type: ignore[attr-defined]
    for logger in (logging.getLogger(), logging.getLogger("streamlit")):
        for handler in logger.handlers:
            if filt not in handler.filters:
                handler.addFilter(filt)
    return filt
