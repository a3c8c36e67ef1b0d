"""Reading files: bytes or a path → raw frames indexed by file row (header = row 1).

The format comes from the content (zip → xlsx, PAR1 → Parquet, gzip is unpacked first, else text); text
encoding and separator are detected. An Excel workbook with several non-empty sheets gives one frame per
sheet. :class:`Limits` bound every read; each breach is one clear message naming the file and the limit.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zipfile
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass
from pathlib import Path

import charset_normalizer
import numpy as np
import pandas as pd

from ..schema import CUSTOMERS, EVENT_TABLES, TABLES, alias_map, guess_table, normalize_header
from .parsers import line_ending
from .report import IngestError, issue, mb

#: Cell texts read as missing (compared lower-case after trimming).
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "nat", "null", "none", "#n/a", "-"})
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



# ---- files --------------------------------------------------------------------------------------
def read_table_file(name: str, data: bytes | str | Path, limits: Limits | None = None) -> pd.DataFrame:
    """Read one CSV/Excel/Parquet file into a raw frame indexed by file row (header = row 1).

    ``data`` is the file content (bytes) or a path (str or Path). The format comes from the content
    (zip → xlsx, PAR1 → Parquet, gzip is unpacked first, else text); text encoding and separator are
    detected.
    Excel: the first non-empty sheet. Raises IngestError for unreadable, empty or too large files."""
    return read_sheets(name, data, limits)[0][2]


def read_sheets(name: str, data: bytes | str | Path,
                 limits: Limits | None = None) -> list[tuple[str, str, pd.DataFrame]]:
    """[(label for messages, name used to guess the table, raw frame)]: one per non-empty Excel sheet."""
    limits = limits or Limits.from_env()
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        try:
            size = Path(data).stat().st_size
            if size > limits.max_file_bytes:  # refused before reading it into memory
                raise IngestError(issue("too_large", name, size=mb(size), limit=mb(limits.max_file_bytes)))
            raw = Path(data).read_bytes()
        except OSError as e:
            raise IngestError(issue("unreadable", name, detail=e.strerror or type(e).__name__)) from e
    if len(raw) > limits.max_file_bytes:
        raise IngestError(issue("too_large", name, size=mb(len(raw)), limit=mb(limits.max_file_bytes)))
    inner = name[:-3] if name.lower().endswith(".gz") else name  # customers.csv.gz holds customers.csv
    try:
        if raw[:2] == _GZIP:
            raw = _gunzip(name, raw, limits)
        if not raw.strip(b"\xef\xbb\xbf \t\r\n"):
            raise IngestError(issue("empty", name))
        suffix = Path(inner).suffix.lower()
        head = raw[:4]
        if head == _XLSX:
            _check_zip(name, raw, limits)
            sheets = _read_xlsx(raw, name, limits)
            multi = len(sheets) > 1
            out = [(f"{name} [{s}]" if multi else name, s if multi else inner, df) for s, df in sheets]
        elif head == _OLE:
            raise IngestError(issue("unsupported_format", name))
        elif head == _PARQUET:
            out = [(name, inner, _read_parquet(raw, name, limits))]
        elif suffix in (".xlsx", ".xlsm", ".parquet"):
            raise IngestError(issue("unreadable", name, detail=f"not a valid {suffix} file"))
        else:  # text; also '.xls' exports that are really tab-separated text
            out = [(name, inner, _read_csv(name, raw, limits))]
        out = [(label, guess, _tidy(df).__finalize__(df)) for label, guess, df in out]
    except IngestError:
        raise
    except Exception as e:  # any parser failure becomes one clear message for the user
        raise IngestError(issue("unreadable", name, detail=f"{type(e).__name__}: {str(e)[:120]}")) from e
    out = [x for x in out if len(x[2]) and len(x[2].columns)]
    if not out:
        raise IngestError(issue("empty", name))
    return out


def _gunzip(name: str, raw: bytes, limits: Limits) -> bytes:
    """gzip content, unpacked at most up to the limit (a gzip bomb stops there)."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        out = f.read(limits.max_unpacked_bytes + 1)
    if len(out) > limits.max_unpacked_bytes:
        raise IngestError(issue("unpacked_too_large", name, limit=mb(limits.max_unpacked_bytes)))
    if len(out) > limits.max_file_bytes:
        raise IngestError(issue("too_large", name, size=mb(len(out)), limit=mb(limits.max_file_bytes)))
    return out


def _check_zip(name: str, raw: bytes, limits: Limits) -> None:
    """Refuse an xlsx whose zip directory announces too much: too many members, too much unpacked content in
    total, or a member that unpacks to more than ``max_zip_ratio`` times its packed size (zip bombs). The
    announced sizes bind: Python's zipfile never returns more than a member's announced size."""
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        raise IngestError(issue("zip_bomb", name, detail=f"{len(infos):,} > {limits.max_zip_members:,} members"))
    total = sum(i.file_size for i in infos)
    if total > limits.max_unpacked_bytes:
        raise IngestError(issue("unpacked_too_large", name, limit=mb(limits.max_unpacked_bytes)))
    for info in infos:
        if info.file_size > _MIB and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise IngestError(issue("zip_bomb", name, detail=f"{info.filename}: {ratio:,.0f}:1 > "
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
        raise IngestError(issue("unreadable", name, detail="unknown text encoding"))
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
        raise IngestError(issue("too_many_rows", name, count=lines - 1, limit=limits.max_rows))
    sep = _sniff_separator(text)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         skip_blank_lines=False)  # blank lines kept so row numbers match the file
    except pd.errors.EmptyDataError as e:
        raise IngestError(issue("empty", name)) from e
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+)", str(e))
        raise IngestError(issue("ragged_row", name, row=int(m.group(1)) if m else None)) from e
    _check_shape(name, df, limits)
    df.index = pd.RangeIndex(2, len(df) + 2)
    df.attrs["format"] = {"encoding": encoding, "separator": sep, "line_ending": line_ending(text)}
    return df


def _check_shape(name: str, df: pd.DataFrame, limits: Limits) -> None:
    if df.shape[1] > limits.max_columns:
        raise IngestError(issue("too_many_columns", name, count=df.shape[1], limit=limits.max_columns))
    if len(df) > limits.max_rows:
        raise IngestError(issue("too_many_rows", name, count=len(df), limit=limits.max_rows))
    if df.size > limits.max_cells:
        raise IngestError(issue("too_many_cells", name, count=df.size, limit=limits.max_cells))


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
                    raise IngestError(issue("too_many_rows", name, count=f"> {limits.max_rows:,}",
                                             limit=limits.max_rows))
                if len(values) > limits.max_columns:
                    raise IngestError(issue("too_many_columns", name, count=len(values), limit=limits.max_columns))
                cells += len(values)
                if cells > limits.max_cells:
                    raise IngestError(issue("too_many_cells", name, count=f"> {limits.max_cells:,}",
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
        raise IngestError(issue("too_many_columns", name, count=meta.num_columns, limit=limits.max_columns))
    if meta.num_rows > limits.max_rows:
        raise IngestError(issue("too_many_rows", name, count=meta.num_rows, limit=limits.max_rows))
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > limits.max_unpacked_bytes:
        raise IngestError(issue("unpacked_too_large", name, limit=mb(limits.max_unpacked_bytes)))
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



def resolve_table(headers: list[str], guess_name: str) -> str | None:
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

