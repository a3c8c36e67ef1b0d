"""The audit log: append-only, hash-chained JSON lines, with nothing personal in it.

One line per event::

    {"seq": 7, "time": "2026-01-05T08:00:00.123456+00:00", "user": "rm01", "role": "rm",
     "action": "view_card", "target": "C000123", "details": {}, "prev_hash": "…", "hash": "…"}

``hash`` = sha256 of the canonical JSON of every other field (``prev_hash`` included), so changing, inserting
or removing a line breaks the chain from there on; ``prev_hash`` of the first entry is 64 zeros. A head file
(``<log>.head``, rewritten atomically after each append) holds the last ``seq`` and ``hash``, so a deleted
*tail* is caught as well. :func:`verify_chain` checks all of it. There is deliberately no update or delete
function; appends are serialised by ``flock`` (threads and processes alike).

Limits, said plainly: whoever can rewrite the file *and* its head file can rebuild a consistent chain; ship
the log (or its head hash) to write-once storage for stronger guarantees.

Nothing personal: ``details`` keep scalars only, drop personal keys (name, phone, id_number, …) and replace
anything shaped like a mainland phone number, ID number, bank card or e-mail address with
``[redacted:<8 hex of its sha256>]`` (still linkable, not readable); targets are pseudonymised the same way.
:class:`RedactingFilter` does the same for application logs and also hides the customer names it is given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .auth import require
from .i18n import t
from .privacy import Policy

GENESIS = "0" * 64
#: Known actions (add new ones here: an unknown action is a programming error).
ACTIONS = ("login", "login_failed", "logout", "session_expired", "view_card", "view_explanation", "load_data",
           "train", "activate_bundle", "export", "reveal", "view_audit")
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

    def message(self, lang: str = "zh") -> str:
        if self.ok:
            return t("audit.chain.ok", lang, count=self.entries)
        return t(f"audit.chain.{self.problem}", lang, seq=self.seq, count=self.entries)


class AuditLog:
    """An audit log file (created with mode 0600 on first append). Only :meth:`append` writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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
            last = _last_entry(fd)
            entry = {"seq": (last["seq"] + 1) if last else 1,
                     "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                     "user": redact(str(user))[:64], "role": str(role)[:16], "action": action,
                     "target": redact(str(target or ""))[:_MAX_TEXT], "details": clean_details(details),
                     "prev_hash": last["hash"] if last else GENESIS}
            entry["hash"] = entry_hash(entry)
            os.write(fd, json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
            os.fsync(fd)
            self._write_head(entry)
        finally:
            os.close(fd)  # releases the flock
        return entry

    def _write_head(self, entry: Mapping[str, Any]) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"seq": entry["seq"], "hash": entry["hash"]}).encode("ascii"))
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)

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


def verify_chain(path: str | Path) -> ChainReport:
    """Check every line: valid JSON with the expected fields, ``seq`` 1, 2, 3 …, each ``prev_hash`` the hash
    of the line before, each ``hash`` recomputed; then the head file against the last entry."""
    log = AuditLog(path)
    prev, count = GENESIS, 0
    if log.path.is_file():
        with open(log.path, encoding="utf-8", errors="strict") as f:
            try:
                lines = f.read().split("\n")
            except UnicodeDecodeError:
                return ChainReport(False, 0, "bad_line", 1)
        if lines and lines[-1] == "":
            lines.pop()
        for n, line in enumerate(lines, start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return ChainReport(False, count, "bad_line", n)
            if not isinstance(entry, dict) or set(entry) != set(FIELDS):
                return ChainReport(False, count, "bad_line", n)
            if entry["seq"] != n:
                return ChainReport(False, count, "seq_gap", n)
            if entry["prev_hash"] != prev:
                return ChainReport(False, count, "broken_link", n)
            if entry_hash(entry) != entry["hash"]:
                return ChainReport(False, count, "hash_mismatch", n)
            prev, count = entry["hash"], n
    head = None
    if log.head_path.is_file():
        try:
            head = json.loads(log.head_path.read_text(encoding="ascii"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return ChainReport(False, count, "head_mismatch", count)
    if count == 0 and head is None:
        return ChainReport(True, 0)
    if not isinstance(head, dict) or head.get("seq") != count or head.get("hash") != prev:
        return ChainReport(False, count, "head_mismatch", (head or {}).get("seq") if isinstance(head, dict) else None)
    return ChainReport(True, count)


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
