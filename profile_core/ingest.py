"""Read uploaded files, map their columns to the canonical schema, validate, and load atomically.

Flow: ``read_table_file`` (bytes → raw frame) → ``prepare_tables`` (which table, rename aliases, coerce
types, row checks, cross-table checks → canonical frames + ValidationReport) → ``load_into_workspace``
(stores only when the report has no errors; a failed load leaves the workspace untouched).

Row numbers always refer to the user's file: raw frames are indexed by file row, header = row 1, the
first data row = row 2 (blank lines count, as in a text editor or spreadsheet; Parquet has no rows on
screen, so it follows the same convention). Returned canonical frames have a plain RangeIndex.
An Excel workbook with several non-empty sheets gives one table per sheet (recognised by sheet name,
then headers), named ``book.xlsx [sheet]`` in messages; files of the same table are concatenated.

Canonical dtypes: id/text/category → ``str``; float → float64; int and flag (0/1) → nullable Int64;
datetime/date → datetime64[us] (dates at midnight). Tables carry only the columns the file had, canonical
columns first in schema order, then unknown extra columns (numeric-looking → float64, else ``str``).

The FLAT form: a file with a customer ID that is not an event table (no time column) is read as the
``customers`` table; it may also carry the label columns (credit_score, default_flag, risk_level) and
customer-level credit columns (dpd, credit_limit, balance, loan_count, inquiries) under their canonical
names, plus any extra columns. Uploads without any event table give ``{"customers": frame}`` and
dataset kind ``"flat"``; with event tables the kind is ``"tables"`` (labels then come from
credit_records, or from label columns on customers if present).

MAPPINGS (:mod:`profile_core.mapping`): ``prepare_tables`` / ``load_into_workspace`` take an optional
``mapping`` (and a ``store`` of saved mappings, matched by header signature). A file a mapping covers is
mapped first (``mapping.apply_mapping``: canonical names, dates, decimal commas, codes, derived columns),
then validated here like any other file but with exact names only. Link tables (``account_links``) are
read first; events keyed by ``account_id`` are resolved to customers through them
(``mapping.resolve_accounts``; unlinked rows dropped and counted). Files no mapping covers load as
before. ``LoadResult.labels`` lists the label columns with their kinds (also stored in the dataset meta).

LIMITS (:class:`Limits`, from the environment unless given): file size, rows, columns and cells per file,
unpacked size of gzip and xlsx content, the compression ratio of xlsx members (zip bombs are refused before
openpyxl reads anything) and the member count. Each breach is one clear message naming the file and the limit.
Any other failure while reading or checking a file becomes a message naming the file, never a traceback;
``load_into_workspace(..., policy=...)`` refuses callers whose role may not load data (``auth.require``).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
import zipfile
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import charset_normalizer
import duckdb
import numpy as np
import pandas as pd
import pandera.pandas as pa

from .i18n import t
from .parsing import line_ending
from .schema import (
    ACCOUNT_LINKS,
    CREDIT_RECORDS,
    CUSTOMERS,
    DIRECTION_VALUES,
    EVENT_TABLES,
    GENDER_VALUES,
    LABELS,
    TABLES,
    Column,
    Table,
    alias_map,
    guess_table,
    normalize_header,
)
from .store import Workspace, check_name

if TYPE_CHECKING:
    from .mapping import Mapping, MappingStore
    from .privacy import Policy

Severity = Literal["error", "warning"]

#: Cell texts read as missing (compared lower-case after trimming).
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "nat", "null", "none", "#n/a", "-"})
FLAG_VALUES = {"1": 1, "1.0": 1, "是": 1, "y": 1, "yes": 1, "true": 1, "t": 1, "违约": 1,
               "0": 0, "0.0": 0, "否": 0, "n": 0, "no": 0, "false": 0, "f": 0, "正常": 0}
#: customers plus the customer-level credit columns a flat file may carry (labels included).
FLAT_CUSTOMERS = Table("customers", CUSTOMERS.zh, CUSTOMERS.en, CUSTOMERS.columns + tuple(
    c for c in CREDIT_RECORDS.columns if c.name not in ("customer_id", "as_of")), category="basic")
_TABLE_ORDER = ("customers", *EVENT_TABLES)
_EXPECTED = {"float": "number", "int": "integer", "datetime": "datetime", "date": "date", "flag": "flag"}
_XLSX, _OLE, _PARQUET, _GZIP = b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"PAR1", b"\x1f\x8b"
_MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Upload limits. Environment (whole numbers): ``PROFILE_MAX_UPLOAD_MB`` (file size, default 200),
    ``PROFILE_MAX_ROWS`` (data rows per file or sheet, 2,000,000), ``PROFILE_MAX_COLUMNS`` (1,000),
    ``PROFILE_MAX_CELLS`` (rows × columns per file, 50,000,000), ``PROFILE_MAX_UNPACKED_MB`` (gzip output / all
    xlsx members together, 1,024), ``PROFILE_MAX_ZIP_RATIO`` (uncompressed ÷ compressed size of an xlsx member
    larger than 1 MiB, 100), ``PROFILE_MAX_ZIP_MEMBERS`` (10,000)."""

    max_file_bytes: int = 200 * _MIB
    max_rows: int = 2_000_000
    max_columns: int = 1_000
    max_cells: int = 50_000_000
    max_unpacked_bytes: int = 1024 * _MIB
    max_zip_ratio: int = 100
    max_zip_members: int = 10_000

    @classmethod
    def from_env(cls, environ: _Mapping[str, str] | None = None) -> Limits:
        env = os.environ if environ is None else environ
        spec = {"max_file_bytes": ("PROFILE_MAX_UPLOAD_MB", _MIB), "max_rows": ("PROFILE_MAX_ROWS", 1),
                "max_columns": ("PROFILE_MAX_COLUMNS", 1), "max_cells": ("PROFILE_MAX_CELLS", 1),
                "max_unpacked_bytes": ("PROFILE_MAX_UNPACKED_MB", _MIB),
                "max_zip_ratio": ("PROFILE_MAX_ZIP_RATIO", 1), "max_zip_members": ("PROFILE_MAX_ZIP_MEMBERS", 1)}
        values = {}
        for attr, (var, unit) in spec.items():
            text = str(env.get(var, "")).strip()
            if text:
                try:
                    number = float(text)
                except ValueError:
                    continue  # a malformed setting keeps the default rather than opening the gates
                if number > 0:
                    values[attr] = int(number * unit)
        return cls(**values)


def _mb(n: int) -> str:
    return f"{n / _MIB:,.1f} MB" if n >= _MIB else f"{n / 1024:,.1f} KB"


# ---- report ---------------------------------------------------------------------------------------
@dataclass
class Issue:
    file: str
    row: int | None
    column: str | None
    problem: str  # message key, e.g. "ingest.bad_value"
    message_zh: str
    message_en: str
    count: int = 1
    severity: Severity = "error"

    def message(self, lang: str = "zh") -> str:
        return self.message_en if lang == "en" else self.message_zh


@dataclass
class ValidationReport:
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_frame(self, lang: str = "zh") -> pd.DataFrame:
        """One row per issue, errors first: file, row, column, problem, count, severity, message."""
        rows = [{"file": i.file, "row": i.row, "column": i.column, "problem": i.problem, "count": i.count,
                 "severity": i.severity, "message": i.message(lang)} for i in self.errors + self.warnings]
        df = pd.DataFrame(rows, columns=["file", "row", "column", "problem", "count", "severity", "message"])
        return df.astype({"row": "Int64", "count": "int64"})

    def summary(self, lang: str = "zh") -> str:
        """One sentence: the first error (plus how many more), or that validation passed."""
        if not self.issues:
            return t("ingest.summary_ok", lang)
        if self.ok:
            return t("ingest.summary_warnings", lang, count=len(self.warnings))
        first, more = self.errors[0].message(lang), len(self.errors) - 1
        if not more:
            return first
        return first[:-1] + t("ingest.more_errors", lang, count=more) + first[-1]


class IngestError(Exception):
    """A file that cannot be read at all; ``issue`` says which and why, in both languages."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message_en)
        self.issue = issue


@dataclass
class LoadResult:
    """What a load did. ``labels``: every label column of the loaded data → kind (regression / binary /
    multiclass): the canonical ones present (credit_score, default_flag, risk_level) plus the label columns
    a mapping marked on the customers table; the same dict is stored as ``Workspace.meta(dataset)["labels"]``.
    ``mapping``: the mapping applied (given, or re-applied from saved mappings), else None."""

    report: ValidationReport
    tables: dict[str, pd.DataFrame]
    version: int | None
    dataset: str
    kind: str = "tables"
    fingerprint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    mapping: Mapping | None = None


@dataclass(frozen=True)
class Msg:
    """A message key filled into another message in the reader's language (e.g. a table name)."""

    key: str


_COLUMNS: dict[str, Column] = {c.name: c for tb in (*TABLES.values(), FLAT_CUSTOMERS, ACCOUNT_LINKS)
                               for c in tb.columns}


def _column_label(column: str | None, lang: str) -> str:
    c = _COLUMNS.get(column or "")
    if c is None:
        return f"“{column}”" if lang == "zh" else f'"{column}"'
    return f"“{c.zh}”（{c.name}）" if lang == "zh" else f'"{c.name}" ({c.zh})'


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _issue(key: str, file: str, *, row: int | None = None, column: str | None = None, count: int = 1,
           severity: Severity = "error", columns: list[str] | None = None, area: str = "ingest",
           **values: object) -> Issue:
    """Build an Issue (message ``{area}.{key}``) with both messages; ``column``/``columns`` are shown as
    “中文”（name）, :class:`Msg` values in the reader's language."""
    def fill(lang: str) -> str:
        extra = {k: t(v.key, lang) if isinstance(v, Msg) else _show(v) for k, v in values.items()}
        if "expected" in values:
            extra["expected"] = t(f"ingest.expected.{values['expected']}", lang)
        listed = ("、" if lang == "zh" else ", ").join(_column_label(c, lang) for c in columns or [])
        return t(f"{area}.{key}", lang, file=file, row=row, count=count, column=_column_label(column, lang),
                 columns=listed, **extra)

    return Issue(file, row, column, f"{area}.{key}", fill("zh"), fill("en"), count, severity)


# ---- reading --------------------------------------------------------------------------------------
def read_table_file(name: str, data: bytes | str | Path, limits: Limits | None = None) -> pd.DataFrame:
    """Read one CSV/Excel/Parquet file into a raw frame indexed by file row (header = row 1).

    ``data`` is the file content (bytes) or a path (str or Path). The format comes from the content
    (zip → xlsx, PAR1 → Parquet, gzip is unpacked first, else text); text encoding and separator are
    detected.
    Excel: the first non-empty sheet. Raises IngestError for unreadable, empty or too large files."""
    return _read_sheets(name, data, limits)[0][2]


def _read_sheets(name: str, data: bytes | str | Path,
                 limits: Limits | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """[(label for messages, name used to guess the table, raw frame)]: one per non-empty Excel sheet."""
    limits = limits or Limits.from_env()
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        try:
            size = Path(data).stat().st_size
            if size > limits.max_file_bytes:  # refused before reading it into memory
                raise IngestError(_issue("too_large", name, size=_mb(size), limit=_mb(limits.max_file_bytes)))
            raw = Path(data).read_bytes()
        except OSError as e:
            raise IngestError(_issue("unreadable", name, detail=e.strerror or type(e).__name__)) from e
    if len(raw) > limits.max_file_bytes:
        raise IngestError(_issue("too_large", name, size=_mb(len(raw)), limit=_mb(limits.max_file_bytes)))
    inner = name[:-3] if name.lower().endswith(".gz") else name  # customers.csv.gz holds customers.csv
    try:
        if raw[:2] == _GZIP:
            raw = _gunzip(name, raw, limits)
        if not raw.strip(b"\xef\xbb\xbf \t\r\n"):
            raise IngestError(_issue("empty", name))
        suffix = Path(inner).suffix.lower()
        head = raw[:4]
        if head == _XLSX:
            _check_zip(name, raw, limits)
            sheets = _read_xlsx(raw, name, limits)
            multi = len(sheets) > 1
            out = [(f"{name} [{s}]" if multi else name, s if multi else inner, df) for s, df in sheets]
        elif head == _OLE:
            raise IngestError(_issue("unsupported_format", name))
        elif head == _PARQUET:
            out = [(name, inner, _read_parquet(raw, name, limits))]
        elif suffix in (".xlsx", ".xlsm", ".parquet"):
            raise IngestError(_issue("unreadable", name, detail=f"not a valid {suffix} file"))
        else:  # text; also '.xls' exports that are really tab-separated text
            out = [(name, inner, _read_csv(name, raw, limits))]
        out = [(label, guess, _tidy(df).__finalize__(df)) for label, guess, df in out]
    except IngestError:
        raise
    except Exception as e:  # any parser failure becomes one clear message for the user
        raise IngestError(_issue("unreadable", name, detail=f"{type(e).__name__}: {str(e)[:120]}")) from e
    out = [x for x in out if len(x[2]) and len(x[2].columns)]
    if not out:
        raise IngestError(_issue("empty", name))
    return out


def _gunzip(name: str, raw: bytes, limits: Limits) -> bytes:
    """gzip content, unpacked at most up to the limit (a gzip bomb stops there)."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        out = f.read(limits.max_unpacked_bytes + 1)
    if len(out) > limits.max_unpacked_bytes:
        raise IngestError(_issue("unpacked_too_large", name, limit=_mb(limits.max_unpacked_bytes)))
    if len(out) > limits.max_file_bytes:
        raise IngestError(_issue("too_large", name, size=_mb(len(out)), limit=_mb(limits.max_file_bytes)))
    return out


def _check_zip(name: str, raw: bytes, limits: Limits) -> None:
    """Refuse an xlsx whose zip directory announces too much: too many members, too much unpacked content in
    total, or a member that unpacks to more than ``max_zip_ratio`` times its packed size (zip bombs). The
    announced sizes bind: Python's zipfile never returns more than a member's announced size."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        raise IngestError(_issue("zip_bomb", name, detail=f"{len(infos):,} > {limits.max_zip_members:,} members"))
    total = sum(i.file_size for i in infos)
    if total > limits.max_unpacked_bytes:
        raise IngestError(_issue("unpacked_too_large", name, limit=_mb(limits.max_unpacked_bytes)))
    for info in infos:
        if info.file_size > _MIB and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise IngestError(_issue("zip_bomb", name, detail=f"{info.filename}: {ratio:,.0f}:1 > "
                                                              f"{limits.max_zip_ratio}:1"))


def _decode(name: str, raw: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without BOM) strictly, then GB18030 (a superset of GBK), then
    charset-normalizer."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export
        return raw.decode("utf-16"), "utf-16"
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text, ("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8") if encoding == "utf-8-sig" \
            else encoding
    best = charset_normalizer.from_bytes(raw).best()
    if best is None:
        raise IngestError(_issue("unreadable", name, detail="unknown text encoding"))
    return str(best), str(best.encoding)


def _sniff_separator(text: str) -> str:
    """The separator among , tab ; | that splits the first lines into the same number (> 1) of fields."""
    head = text[:65536]
    lines = head.splitlines()[: -1 if len(text) > len(head) else None]  # drop a line cut in half
    lines = [ln for ln in lines if ln.strip()][:50]
    best, best_fields = ",", 1
    for sep in (",", "\t", ";", "|"):
        counts = [len(r) for r in csv.reader(lines, delimiter=sep)]
        if counts and counts[0] > best_fields and all(n == counts[0] for n in counts):
            best, best_fields = sep, counts[0]
    if best_fields == 1:  # no consistent split: take the one that splits the header most
        best = max((",", "\t", ";", "|"), key=lambda s: lines[0].count(s) if lines else 0)
    return best


def _read_csv(name: str, raw: bytes, limits: Limits | None = None) -> pd.DataFrame:
    """Text: encoding and separator (, ; tab |) detected; line endings LF, CRLF and CR-only (old Mac) all
    work. ``df.attrs["format"]`` records what was detected (shown in the mapping step)."""
    limits = limits or Limits.from_env()
    text, encoding = _decode(name, raw)
    lines = max(text.count("\n"), text.count("\r"))
    if lines > limits.max_rows + 1:  # header + rows (quoted line breaks make this an upper bound)
        raise IngestError(_issue("too_many_rows", name, count=lines - 1, limit=limits.max_rows))
    sep = _sniff_separator(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         skip_blank_lines=False)  # blank lines kept so row numbers match the file
    except pd.errors.EmptyDataError as e:
        raise IngestError(_issue("empty", name)) from e
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        raise IngestError(_issue("ragged_row", name, row=int(m.group(1)) if m else None)) from e
    _check_shape(name, df, limits)
    df.index = pd.RangeIndex(2, len(df) + 2)
    df.attrs["format"] = {"encoding": encoding, "separator": sep, "line_ending": line_ending(text)}
    return df


def _check_shape(name: str, df: pd.DataFrame, limits: Limits) -> None:
    if df.shape[1] > limits.max_columns:
        raise IngestError(_issue("too_many_columns", name, count=df.shape[1], limit=limits.max_columns))
    if len(df) > limits.max_rows:
        raise IngestError(_issue("too_many_rows", name, count=len(df), limit=limits.max_rows))
    if df.size > limits.max_cells:
        raise IngestError(_issue("too_many_cells", name, count=df.size, limit=limits.max_cells))


def _read_xlsx(raw: bytes, name: str = "", limits: Limits | None = None) -> list[tuple[str, pd.DataFrame]]:
    """Every sheet, read cell by cell so that each row keeps its Excel row number. The sheet's declared
    dimensions are ignored (a forged ``A1:XFD1048576`` would pad every row); rows, columns and cells are
    counted against the limits as they are read."""
    import openpyxl

    limits = limits or Limits.from_env()
    wb = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    sheets = []
    cells = 0
    try:
        for ws in wb.worksheets:
            header: list | None = None
            records, rows = [], []
            if hasattr(ws, "reset_dimensions"):
                ws.reset_dimensions()
            for n, values in enumerate(ws.iter_rows(values_only=True), start=1):
                if n > limits.max_rows + 1:
                    raise IngestError(_issue("too_many_rows", name, count=f"> {limits.max_rows:,}",
                                             limit=limits.max_rows))
                if len(values) > limits.max_columns:
                    raise IngestError(_issue("too_many_columns", name, count=len(values), limit=limits.max_columns))
                cells += len(values)
                if cells > limits.max_cells:
                    raise IngestError(_issue("too_many_cells", name, count=f"> {limits.max_cells:,}",
                                             limit=limits.max_cells))
                if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                    continue
                if header is None:
                    header = list(values)
                else:
                    records.append(values)
                    rows.append(n)
            if header is None:
                continue
            width = max([len(header), *(len(r) for r in records)])
            names = [str(h) if h is not None else f"unnamed_{j + 1}" for j, h in
                     enumerate(header + [None] * (width - len(header)))]
            records = [tuple(r) + (None,) * (width - len(r)) for r in records]
            sheets.append((ws.title, pd.DataFrame(records, columns=_dedupe(names), index=rows, dtype=object)))
    finally:
        wb.close()
    return sheets


def _read_parquet(raw: bytes, name: str = "", limits: Limits | None = None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    limits = limits or Limits.from_env()
    meta = pq.ParquetFile(io.BytesIO(raw)).metadata  # the footer: sizes are checked before any data is read
    if meta.num_columns > limits.max_columns:
        raise IngestError(_issue("too_many_columns", name, count=meta.num_columns, limit=limits.max_columns))
    if meta.num_rows > limits.max_rows:
        raise IngestError(_issue("too_many_rows", name, count=meta.num_rows, limit=limits.max_rows))
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > limits.max_unpacked_bytes:
        raise IngestError(_issue("unpacked_too_large", name, limit=_mb(limits.max_unpacked_bytes)))
    df = pd.read_parquet(io.BytesIO(raw))
    _check_shape(name, df, limits)
    if any(n is not None for n in df.index.names):  # a named index (e.g. customer_id) is data
        df = df.reset_index()
    df.index = pd.RangeIndex(2, len(df) + 2)
    return df


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0)
        out.append(n if k == 0 else f"{n}.{k}")
        seen[n] = k + 1
    return out


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Trim headers and text cells, NA tokens → missing, drop empty rows and empty unnamed columns."""
    df = df.rename(columns=lambda h: str(h).replace("\ufeff", "").strip())
    df = df.copy()
    for col in df.columns:
        s = df[col]
        if s.dtype == object:  # Excel cells: mixed Python values
            df[col] = s.map(_clean_cell, na_action="ignore")
        elif pd.api.types.is_string_dtype(s):
            s = s.str.strip()
            df[col] = s.mask(s.str.lower().isin(NA_TOKENS))
    df = df.loc[df.notna().any(axis=1)]
    unnamed = [c for c in df.columns if (not c or c.startswith(("Unnamed:", "unnamed_"))) and df[c].isna().all()]
    return df.drop(columns=unnamed)


def _clean_cell(v: object) -> object:
    if isinstance(v, str):
        v = v.strip()
        return np.nan if v.lower() in NA_TOKENS else v
    return v


# ---- type coercion --------------------------------------------------------------------------------
def _text(s: pd.Series) -> pd.Series:
    """Any column → ``str`` dtype; whole floats lose their '.0' (IDs read from Excel)."""
    if s.dtype != object and pd.api.types.is_string_dtype(s):
        return s
    if pd.api.types.is_integer_dtype(s) and not s.hasnans:
        return s.astype("str")

    def one(v: object) -> str | None:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return pd.Series([one(v) for v in s], index=s.index, dtype="str")


def _number(s: pd.Series) -> pd.Series:
    """Numbers as float64; infinite values (``inf``, ``1e999``) count as not a number."""
    num = _number_raw(s)
    return num.where(np.isfinite(num.to_numpy(dtype="float64", na_value=np.nan)))


def _number_raw(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    txt = _text(s)
    num = pd.to_numeric(txt, errors="coerce").astype("float64")
    rest = num.isna() & txt.notna()
    if rest.any():  # the slow clean-up only for what plain parsing missed: ¥1,234 元, full-width digits
        alt = txt[rest].str.normalize("NFKC").str.replace(r"^[¥$]\s*|\s*元$", "", regex=True)
        alt = alt.str.replace(r"(?<=\d),(?=\d{3}(?!\d))", "", regex=True)
        num.loc[rest] = pd.to_numeric(alt, errors="coerce").astype("float64")
    return num


def _parse_datetime(txt: pd.Series, **kwargs: object) -> pd.Series:
    with warnings.catch_warnings():  # "could not infer format" is expected for mixed columns
        warnings.simplefilter("ignore")
        try:
            out = pd.to_datetime(txt, errors="coerce", **kwargs)
        except (ValueError, TypeError):  # mixed UTC offsets: compare them in UTC
            out = pd.to_datetime(txt, errors="coerce", utc=True, **kwargs)
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        out = out.dt.tz_localize(None)  # keep the wall time shown in the file
    return out.astype("datetime64[us]")


def _datetime(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return _parse_datetime(s)
    txt = _text(s)
    out = _parse_datetime(txt)  # fast path: one format inferred from the first value
    rest = out.isna() & txt.notna()
    if rest.any():  # per-value parsing for the rest, after 2024年1月5日 → 2024-1-5
        alt = txt[rest].str.normalize("NFKC").str.replace(r"(\d)\s*[年月]\s*(?=\d)", r"\1-", regex=True)
        out.loc[rest] = _parse_datetime(alt.str.replace(r"(\d)\s*日", r"\1", regex=True), format="mixed")
    return out


def _flag(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        num = s.astype("float64")
        return num.where(num.isin([0, 1])).astype("Int64")
    return _text(s).str.lower().map(FLAG_VALUES).astype("Int64")


def _coerce(s: pd.Series, col: Column) -> tuple[pd.Series, pd.Series]:
    """(converted column, mask of present values that could not be converted)."""
    if col.kind in ("id", "text", "category"):
        out = _text(s)
        if col.name == "gender":  # codes → 男/女; other values kept as written
            coded = out.str.lower().map(GENDER_VALUES)
            out = out.where(coded.isna(), coded).astype("str")
        elif col.values:  # a closed set: synonyms mapped, anything else missing (reported as unknown)
            lookup = {k.lower(): v for k, v in DIRECTION_VALUES.items()} if col.name == "direction" else {}
            lookup.update({v.lower(): v for v in col.values})
            out = out.str.lower().map(lookup).astype("str")
    elif col.kind == "float":
        out = _number(s)
    elif col.kind == "int":
        num = _number(s)
        out = num.where((num % 1 == 0) & (num.abs() < 2.0 ** 53)).astype("Int64")  # whole and exact in int64
    elif col.kind in ("datetime", "date"):
        out = _datetime(s)
        if col.kind == "date":
            out = out.dt.normalize()
    else:  # flag
        out = _flag(s)
    return out, s.notna() & out.isna()


def _extra(s: pd.Series) -> pd.Series:
    """Unknown columns: numbers when every value is numeric (leading zeros stay text), else ``str``."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s):
        return s
    txt = _text(s)
    num = pd.to_numeric(txt, errors="coerce")
    present = txt.notna()
    if present.any() and num[present].notna().all() and not txt.str.match(r"^-?0\d", na=False).any():
        return num.astype("float64")
    return txt


# ---- one file -------------------------------------------------------------------------------------
def _resolve_table(headers: list[str], guess_name: str) -> str | None:
    """Which canonical table a file holds; a customer-level file without event columns is customers."""
    guess = guess_table(headers, guess_name)
    has_id = "customer_id" in {alias_map(CUSTOMERS).get(normalize_header(h)) for h in headers}
    if guess in EVENT_TABLES:
        amap = alias_map(TABLES[guess])
        mapped = {amap.get(normalize_header(h)) for h in headers}
        needed = set(TABLES[guess].required) - {"customer_id"}
        if has_id and not needed & mapped:  # no time/event column at all: the flat customer form
            return "customers"
    if guess is None and has_id:
        return "customers"
    return guess


def _conform(label: str, table_name: str, raw: pd.DataFrame, report: ValidationReport, *,
             exact: bool = False) -> pd.DataFrame:
    """Rename aliases, coerce types and run the row checks of one file; issues go to ``report``.

    ``exact``: the frame comes from a mapping — only exact canonical names are fields, every other column
    is an extra the user chose to keep (no alias guessing, no "unrecognised columns" warning)."""
    table = {"customers": FLAT_CUSTOMERS, "account_links": ACCOUNT_LINKS}.get(table_name) or TABLES[table_name]
    amap = alias_map(table)
    names = {c.name for c in table.columns}
    rename: dict[str, str] = {}
    extras: list[str] = []
    for h in raw.columns:
        canon = (h if h in names else None) if exact else amap.get(normalize_header(h))
        if canon is None:
            extras.append(h)
        elif canon in rename.values():
            report.issues.append(_issue("duplicate_column", label, column=canon, header=h, severity="warning"))
        else:
            rename[h] = canon
    present = set(rename.values())
    for name in table.required:
        if name not in present:
            report.issues.append(_issue("missing_column", label, column=name))
    base = CUSTOMERS if table_name == "customers" else table
    optional = [c.name for c in base.columns if not (c.required or c.personal or c.name in present)]
    if optional:
        report.issues.append(_issue("missing_optional", label, columns=optional, severity="warning"))
    if extras and not exact:
        report.issues.append(_issue("extra_columns", label, columns=extras, severity="warning"))

    out = pd.DataFrame(index=raw.index)
    order = [c.name for c in table.columns]
    for h, name in sorted(rename.items(), key=lambda kv: order.index(kv[1])):
        col = table.column(name)
        converted, bad = _coerce(raw[h], col)
        out[name] = converted
        if bad.any():
            key = "unknown_value" if col.values else ("bad_value" if col.required else "bad_value_optional")
            first = bad[bad].index[0]
            report.issues.append(_issue(key, label, row=int(first), column=name, count=int(bad.sum()),
                                        value=raw.at[first, h], expected=_EXPECTED.get(col.kind, "number"),
                                        severity="error" if key == "bad_value" else "warning"))
    for h in extras:
        out[h] = _extra(raw[h])
    _row_checks(label, table_name, out[list(present)], report)
    return out


def _row_checks(label: str, table_name: str, df: pd.DataFrame, report: ValidationReport) -> None:
    """Declarative row checks (pandera) on the canonical columns of one file: null/duplicate IDs block;
    odd ages, negative amounts and future dates warn."""
    future = pd.Timestamp.now() + pd.Timedelta(days=1)
    checks: dict[str, pa.Column] = {}
    if "customer_id" in df:
        checks["customer_id"] = pa.Column(nullable=False, unique=table_name == "customers",
                                          report_duplicates="exclude_first")
    if "age" in df:
        checks["age"] = pa.Column(nullable=True, checks=pa.Check(lambda s: (s >= 0) & (s <= 120), name="age_range"))
    if "amount" in df:
        checks["amount"] = pa.Column(nullable=True, checks=pa.Check(lambda s: s >= 0, name="negative_amount"))
    for c in df.columns:
        if c in _COLUMNS and _COLUMNS[c].kind in ("datetime", "date") and pd.api.types.is_datetime64_any_dtype(df[c]):
            checks[c] = pa.Column(nullable=True, checks=pa.Check(lambda s: s <= future, name="future_date"))
    if not checks:
        return
    try:
        # pandera reports positions correctly only on a RangeIndex, so validate a reset copy
        pa.DataFrameSchema(checks).validate(df[list(checks)].reset_index(drop=True), lazy=True)
        return
    except pa.errors.SchemaErrors as e:
        failures = e.failure_cases
    keys = {"not_nullable": ("null_id", "error"), "field_uniqueness": ("duplicate_id", "error"),
            "age_range": ("age_range", "warning"), "negative_amount": ("negative_amount", "warning"),
            "future_date": ("future_date", "warning")}
    rows = df.index.to_numpy()
    for (column, check), group in failures.groupby(["column", "check"], sort=False):
        if check != "not_nullable":  # a missing ID is reported once, as null_id, not as a duplicate
            group = group[group["failure_case"].notna()]
        if check not in keys or group.empty:
            continue
        key, severity = keys[check]
        first = group.loc[group["index"].idxmin()]
        report.issues.append(_issue(key, label, row=int(rows[int(first["index"])]), column=str(column),
                                    count=len(group), value=first["failure_case"], severity=severity))


# ---- all files ------------------------------------------------------------------------------------
def dataset_kind(tables: dict[str, pd.DataFrame]) -> str:
    """``"tables"`` when any event table is present, else ``"flat"`` (one row per customer)."""
    return "tables" if any(t in tables for t in EVENT_TABLES) else "flat"


def prepare_tables(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None = None, *,
                   store: MappingStore | str | Path | None = None,
                   limits: Limits | None = None) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Read, recognise, map, coerce and validate every file; collects every issue before stopping.

    ``mapping`` (see :mod:`profile_core.mapping`): files it covers (same header signature, else same file
    name) are mapped with it before validation; ``store``: files with the header of a saved mapping get that
    one. Other files load as before (aliases). Returns canonical frames per table (files of the same table
    are concatenated) and the report. The frames are only fit to store when ``report.ok``."""
    prepared = _prepare(files, mapping, store, limits)
    return prepared.tables, prepared.report


@dataclass
class _Prepared:
    tables: dict[str, pd.DataFrame]
    report: ValidationReport
    labels: dict[str, str]
    mapping: Mapping | None


def _prepare(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None,
             store: MappingStore | str | Path | None, limits: Limits | None = None) -> _Prepared:
    """:func:`_prepare_files` with a safety net: an unexpected failure anywhere becomes one error naming the
    files (and nothing to store), never a traceback."""
    try:
        return _prepare_files(files, mapping, store, limits or Limits.from_env())
    except Exception as e:  # noqa: BLE001
        report = ValidationReport()
        names = ", ".join(str(n) for n, _ in files) if isinstance(files, list | tuple) else ""
        report.issues.append(_issue("unexpected", names, detail=type(e).__name__))
        return _Prepared({}, report, {}, None)


def _prepare_files(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None,
                   store: MappingStore | str | Path | None, limits: Limits) -> _Prepared:
    report = ValidationReport()
    if not files:
        report.issues.append(_issue("no_files", ""))
        return _Prepared({}, report, {}, None)
    mp = None
    if mapping is not None or store is not None:
        from . import mapping as mp  # the mapping layer sits on top of this module

        store = mp._as_store(store)
    used: list = []  # TableMappings applied, for the LoadResult
    link_spec = mapping.link if mapping is not None else None
    staged: list[tuple[str, str, pd.DataFrame, bool]] = []  # (label, table, frame, mapped)
    unresolved = 0
    for name, data in files:
        try:
            sheets = _read_sheets(name, data, limits)
        except IngestError as e:
            report.issues.append(e.issue)
            unresolved += 1
            continue
        for label, guess_name, raw in sheets:
            headers = [str(h) for h in raw.columns]
            tm = mapping.match(label, headers) if mapping is not None else None
            if tm is None and store is not None:
                found = store.find(headers)
                if found is not None:
                    tm, saved = found
                    link_spec = link_spec or saved.link
            if tm is not None:
                if tm.table is None:
                    report.issues.append(_issue("no_table", label, area="mapping"))
                    unresolved += 1
                    continue
                used.append(tm.model_copy(update={"file": label}))
                staged.append((label, tm.table, mp.apply_mapping(raw, tm, report, file=label), True))
                continue
            table = _resolve_table(headers, guess_name)
            if table is None:
                report.issues.append(_issue("table_unknown", label))
                unresolved += 1
                continue
            staged.append((label, table, raw, False))
    link_frames = [_conform(label, "account_links", frame, report, exact=mapped)
                   for label, tb, frame, mapped in staged if tb == "account_links"]
    links = pd.concat(link_frames) if link_frames else None
    parts: list[tuple[str, str, pd.DataFrame]] = []  # (label, table, frame indexed by file row)
    for label, tb, frame, mapped in staged:
        if tb == "account_links":
            continue
        if mapped and tb in EVENT_TABLES and "account_id" in frame and "customer_id" not in frame:
            if links is None:
                report.issues.append(_issue("no_link_table", label, area="mapping"))
                unresolved += 1
                continue
            frame = mp.resolve_accounts(frame, links, link_spec or mp.LinkSpec(), label, report)
        parts.append((label, tb, _conform(label, tb, frame, report, exact=mapped)))
    applied = mp.Mapping(tables=used, link=link_spec or mp.LinkSpec()) if used else None
    custom = {k: v for k, v in applied.labels().items() if v} if applied is not None else {}
    _cross_checks(parts, report, unresolved, custom)
    tables = {}
    for name in _TABLE_ORDER:
        frames = [df for _, tb, df in parts if tb == name]
        if frames:
            tables[name] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return _Prepared(tables, report, label_columns(tables, custom), applied)


def label_columns(tables: dict[str, pd.DataFrame], custom: dict[str, str] | None = None) -> dict[str, str]:
    """Label column → kind: canonical labels present on customers or credit_records, plus ``custom`` labels
    (from a mapping) present on customers."""
    kinds = {"credit_score": "regression", "default_flag": "binary", "risk_level": "multiclass"}
    out: dict[str, str] = {}
    for name in ("customers", "credit_records"):
        df = tables.get(name)
        if df is None:
            continue
        out.update({c: k for c, k in kinds.items() if c in df})
        if name == "customers":
            out.update({c: k for c, k in (custom or {}).items() if c in df and c not in out})
    return out


def _cross_checks(parts: list[tuple[str, str, pd.DataFrame]], report: ValidationReport, unresolved: int,
                  custom_labels: dict[str, str] | None = None) -> None:
    customers = [(label, df) for label, tb, df in parts if tb == "customers" and "customer_id" in df]
    events = [(label, tb, df) for label, tb, df in parts if tb in EVENT_TABLES]
    if events and not customers:
        if not unresolved and not any(tb == "customers" for _, tb, _ in parts):
            report.issues.append(_issue("no_customers", events[0][0]))
        return
    seen: set[str] = set()
    for label, df in customers:  # the same customer in two customers files
        ids = df["customer_id"].dropna()
        dup = ids[ids.isin(seen)]
        if len(dup):
            report.issues.append(_issue("duplicate_id", label, row=int(dup.index[0]), column="customer_id",
                                        count=len(dup), value=dup.iloc[0]))
        seen.update(ids)
    for label, _, df in events:
        if "customer_id" not in df:
            continue
        ids = df["customer_id"].dropna()
        orphans = ids[~ids.isin(seen)]
        if len(orphans):
            report.issues.append(_issue("orphan_events", label, row=int(orphans.index[0]), column="customer_id",
                                        count=len(orphans), value=orphans.iloc[0]))
    _label_checks(customers, events, seen, report, custom_labels or {})


def _label_checks(customers: list[tuple[str, pd.DataFrame]], events: list[tuple[str, str, pd.DataFrame]],
                  ids: set[str], report: ValidationReport, custom: dict[str, str]) -> None:
    found = False
    for label, df in customers:  # labels carried by the customers table (the flat form)
        for name in [*LABELS, *(c for c in custom if c not in LABELS)]:
            if name in df:
                found = True
                if missing := int(df[name].isna().sum()):
                    report.issues.append(_issue("labels_missing", label, column=name, count=missing,
                                                severity="warning"))
    for label, tb, df in events:  # labels from credit records: customers with no value at all
        if tb != "credit_records" or "customer_id" not in df:
            continue
        for name in LABELS:
            if name in df:
                found = True
                missing = len(ids - set(df.loc[df[name].notna(), "customer_id"]))
                if missing:
                    report.issues.append(_issue("labels_missing", label, column=name, count=missing,
                                                severity="warning"))
    if customers and not found:
        report.issues.append(_issue("no_labels", customers[0][0], severity="warning"))


def load_into_workspace(files: list[tuple[str, bytes | str | Path]], workspace: Workspace,
                        dataset: str = "main", mapping: Mapping | None = None, *, source: str | None = None,
                        store: MappingStore | str | Path | None = None, limits: Limits | None = None,
                        policy: Policy | None = None) -> LoadResult:
    """prepare_tables (with ``mapping`` / saved mappings in ``store`` applied before validation), then —
    only when the report has no errors — replace ``dataset`` atomically. The dataset's meta records the
    label columns with their kinds and the mapping applied.

    ``policy``: the person loading; a role without the ``load_data`` permission gets ``auth.Forbidden`` before
    anything is read (callers acting for a person pass it; the CLI and first-start demo load act for the
    operator)."""
    if policy is not None:
        from .auth import require

        require(policy, "load_data")
    dataset = check_name(dataset)
    prepared = _prepare(files, mapping, store, limits)
    tables, report = prepared.tables, prepared.report
    kind = dataset_kind(tables)
    result = LoadResult(report, tables, None, dataset, kind, labels=prepared.labels, mapping=prepared.mapping)
    if not report.ok:
        return result
    meta = {"labels": prepared.labels}
    if prepared.mapping is not None:
        meta["mapping"] = prepared.mapping.to_dict()
    try:
        result.version = workspace.replace_dataset(dataset, tables, source=source or ", ".join(n for n, _ in files),
                                                   kind=kind, meta=meta)
    except (duckdb.Error, ValueError, TypeError, OverflowError) as e:  # rolled back: the previous data is intact
        report.issues.append(_issue("store_failed", dataset, detail=type(e).__name__))
        result.version = None
        return result
    result.fingerprint = workspace.fingerprint(dataset)
    return result
