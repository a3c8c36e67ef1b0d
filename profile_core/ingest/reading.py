"""Reading files: bytes or a path → raw frames indexed by file row (header = row 1).

The format comes from the content (zip → xlsx, PAR1 → Parquet, gzip is unpacked first, else text); text
encoding and separator are detected. An Excel workbook with several non-empty sheets gives one frame per
sheet. :class:`Limits` bound every read; each breach is one clear message naming the file and the limit.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import charset_normalizer
import numpy as np
import pandas as pd

from ..schema import CUSTOMERS, EVENT_TABLES, TABLES, alias_map, guess_table, normalize_header
from .parsers import line_ending
from .report import IngestError, issue, mb

#: Cell texts read as missing (compared lower-case after trimming).
NA_TOKENS = frozenset({"", "na", "n/a", "nan", "nat", "null", "none", "#n/a", "-"})
_XLSX, _OLE, _PARQUET, _GZIP = b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"PAR1", b"\x1f\x8b"
_7Z = b"7z\xbc\xaf\x27\x1c"
_MIB = 1 << 20
#: Longest column name accepted (characters); longer headers are refused at load.
MAX_HEADER_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
BadRows = Literal["refuse", "skip"]
csv.field_size_limit(2**31 - 1)  # the limits below bound a field; the csv module's own 128 KB cap would not


@dataclass(frozen=True)
class Limits:
    """Upload limits. Environment (whole numbers): ``PROFILE_MAX_UPLOAD_MB`` (file size, default 200),
    ``PROFILE_MAX_ROWS`` (data rows per file or sheet, 2,000,000), ``PROFILE_MAX_COLUMNS`` (1,000),
    ``PROFILE_MAX_CELLS`` (rows × columns per file, 50,000,000), ``PROFILE_MAX_UNPACKED_MB`` (gzip output / all
    xlsx members together, 1,024), ``PROFILE_MAX_ZIP_RATIO`` (uncompressed ÷ compressed size of an xlsx member
    larger than 1 MiB, also the whole gzip stream, 100), ``PROFILE_MAX_ZIP_MEMBERS`` (10,000),
    ``PROFILE_MAX_DECODED_MB`` (bytes the values of one Parquet file decode to, 1,024: a dictionary-encoded
    file is tiny on disk but not in memory)."""

    max_file_bytes: int = 200 * _MIB
    max_rows: int = 2_000_000
    max_columns: int = 1_000
    max_cells: int = 50_000_000
    max_unpacked_bytes: int = 1024 * _MIB
    max_zip_ratio: int = 100
    max_zip_members: int = 10_000
    max_decoded_bytes: int = 1024 * _MIB

    @classmethod
    def from_env(cls, environ: _Mapping[str, str] | None = None) -> Limits:
        env = os.environ if environ is None else environ
        spec = {"max_file_bytes": ("PROFILE_MAX_UPLOAD_MB", _MIB), "max_rows": ("PROFILE_MAX_ROWS", 1),
                "max_columns": ("PROFILE_MAX_COLUMNS", 1), "max_cells": ("PROFILE_MAX_CELLS", 1),
                "max_unpacked_bytes": ("PROFILE_MAX_UNPACKED_MB", _MIB),
                "max_zip_ratio": ("PROFILE_MAX_ZIP_RATIO", 1), "max_zip_members": ("PROFILE_MAX_ZIP_MEMBERS", 1),
                "max_decoded_bytes": ("PROFILE_MAX_DECODED_MB", _MIB)}
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
def read_table_file(name: str, data: bytes | str | Path, limits: Limits | None = None, *,
                    bad_rows: BadRows = "refuse") -> pd.DataFrame:
    """Read one CSV/Excel/Parquet file into a raw frame indexed by file row (header = row 1).

    ``data`` is the file content (bytes) or a path (str or Path). The format comes from the content
    (zip → xlsx, PAR1 → Parquet, gzip is unpacked first, else text); text encoding and separator are
    detected.
    Excel: the first non-empty sheet. Raises IngestError for unreadable, empty or too large files."""
    return read_sheets(name, data, limits, bad_rows=bad_rows)[0][2]


def read_sheets(name: str, data: bytes | str | Path, limits: Limits | None = None, *,
                bad_rows: BadRows = "refuse") -> list[tuple[str, str, pd.DataFrame]]:
    """[(label for messages, name used to guess the table, raw frame)]: one per non-empty Excel sheet or
    per member of a zip archive (``archive.zip [member.csv]``).

    ``bad_rows``: a text line with more or fewer fields than the header (a line cut short, a stray quote)
    is an error naming its line (``"refuse"``), or is left out and counted (``"skip"``: the frame's
    ``attrs["skipped_rows"]`` = [(line, reason)], reported as a warning by the loader). Headers longer than
    :data:`MAX_HEADER_CHARS` or holding control characters are refused."""
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
    try:
        out = _read_content(name, name, raw, limits, bad_rows, depth=0)
        for label, _, df in out:
            _check_headers(label, df)
    except IngestError:
        raise
    except Exception as e:  # any parser failure becomes one clear message for the user
        raise IngestError(issue("unreadable", name, detail=f"{type(e).__name__}: {str(e)[:120]}")) from e
    out = [x for x in out if len(x[2]) and len(x[2].columns)]
    if not out:
        raise IngestError(issue("empty", name))
    return out


def _read_content(name: str, label: str, raw: bytes, limits: Limits, bad_rows: BadRows,
                  depth: int) -> list[tuple[str, str, pd.DataFrame]]:
    """One blob (a file, or a member of an archive) → [(label, name to guess the table by, frame)]."""
    inner = label[:-3] if label.lower().endswith(".gz") else label  # customers.csv.gz holds customers.csv
    if raw[:2] == _GZIP:
        raw = _gunzip(name, raw, limits)
    if not raw.strip(b"\xef\xbb\xbf \t\r\n"):
        raise IngestError(issue("empty", name))
    suffix = Path(inner).suffix.lower()
    head = raw[:4]
    if raw[:6] == _7Z or (head == _XLSX and not _is_xlsx(raw)):
        if depth:
            raise IngestError(issue("unreadable", name, detail="an archive inside an archive"))
        out = []
        members = _7z_members(name, raw, limits) if raw[:6] == _7Z else _zip_members(name, raw, limits)
        for member, content in members:
            out += _read_content(name, f"{label} [{member}]", content, limits, bad_rows, depth + 1)
        return out
    if head == _XLSX:
        _check_zip(name, raw, limits)
        sheets = _read_xlsx(raw, name, limits)
        multi = len(sheets) > 1
        out = [(f"{label} [{s}]" if multi else label, s if multi else inner, df) for s, df in sheets]
    elif head == _OLE:
        raise IngestError(issue("unsupported_format", name))
    elif head == _PARQUET:
        out = [(label, inner, _read_parquet(raw, name, limits))]
    elif suffix in (".xlsx", ".xlsm", ".parquet"):
        raise IngestError(issue("unreadable", name, detail=f"not a valid {suffix} file"))
    else:  # text; also '.xls' exports that are really tab-separated text
        out = [(label, inner, _read_csv(name, raw, limits, bad_rows=bad_rows))]
    if depth:  # a member: guess its table by the member's own name
        out = [(lab, Path(lab.rsplit(" [", 1)[-1].rstrip("]")).name, df) for lab, _, df in out]
    return [(lab, guess, _tidy(df).__finalize__(df)) for lab, guess, df in out]


def _is_xlsx(raw: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = set(zf.namelist())
    except zipfile.BadZipFile:
        return True  # not a readable zip: the xlsx reader says why
    return "[Content_Types].xml" in names or any(n.startswith("xl/") for n in names)


def _zip_members(name: str, raw: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """The data files of a zip archive (folders, hidden files and macOS metadata skipped), each read only
    after the archive's directory passed the same checks as an xlsx (members, unpacked size, ratio)."""
    _check_zip(name, raw, limits)
    out = []
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for info in zf.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if info.is_dir() or not base or base.startswith(".") or info.filename.startswith("__MACOSX/"):
                continue
            if info.file_size > limits.max_file_bytes:
                raise IngestError(issue("too_large", f"{name} [{info.filename}]", size=mb(info.file_size),
                                        limit=mb(limits.max_file_bytes)))
            out.append((info.filename, zf.read(info)))
    if not out:
        raise IngestError(issue("empty", name))
    return out


def _7z_members(name: str, raw: bytes, limits: Limits) -> list[tuple[str, bytes]]:
    """The data files of a 7z archive: its directory is checked like a zip's (members, unpacked size, ratio)
    before anything is unpacked, and each member is unpacked into memory capped at the file-size limit (a
    header that under-announces a member cannot make it larger)."""
    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError as e:  # the optional reader is missing: say how to get the data in
        raise IngestError(issue("archive_7z", name)) from e
    try:
        with py7zr.SevenZipFile(io.BytesIO(raw), "r") as z:
            if z.needs_password():
                raise IngestError(issue("unreadable", name, detail="the archive is encrypted"))
            infos = [i for i in z.list() if not i.is_directory]
            infos = [i for i in infos if not i.filename.rsplit("/", 1)[-1].startswith(".")
                     and not i.filename.startswith("__MACOSX/")]
            if len(infos) > limits.max_zip_members:
                raise IngestError(issue("zip_bomb", name, detail=f"{len(infos):,} > {limits.max_zip_members:,} members"))
            total = sum(int(i.uncompressed or 0) for i in infos)
            if total > limits.max_unpacked_bytes:
                raise IngestError(issue("unpacked_too_large", name, limit=mb(limits.max_unpacked_bytes)))
            if total > _MIB and total > limits.max_zip_ratio * max(len(raw), 1):
                raise IngestError(issue("zip_bomb", name, detail=f"{total / max(len(raw), 1):,.0f}:1 > "
                                                                 f"{limits.max_zip_ratio}:1"))
            factory = BytesIOFactory(limits.max_file_bytes + 1)
            z.extractall(factory=factory)
    except IngestError:
        raise
    except Exception as e:  # noqa: BLE001 — a damaged archive is one message, never a traceback
        raise IngestError(issue("unreadable", name, detail=f"7z: {type(e).__name__}")) from e
    out = []
    for info in infos:
        product = factory.products.get(info.filename)
        if product is None:
            continue
        product.seek(0)
        content = product.read()
        if len(content) > limits.max_file_bytes:
            raise IngestError(issue("too_large", f"{name} [{info.filename}]", size=f"> {mb(limits.max_file_bytes)}",
                                    limit=mb(limits.max_file_bytes)))
        out.append((info.filename, content))
    if not out:
        raise IngestError(issue("empty", name))
    return out


def _gunzip(name: str, raw: bytes, limits: Limits) -> bytes:
    """gzip content, unpacked in 1 MiB steps that stop as soon as a cap is passed: the unpacked limit, the
    file-size limit, or (beyond 1 MiB) ``max_zip_ratio`` × the packed size — a gzip bomb is refused after
    at most that much output, never after unpacking it whole. Concatenated gzip members are read too."""
    cap = min(limits.max_unpacked_bytes, limits.max_file_bytes)
    ratio_cap = max(_MIB, limits.max_zip_ratio * len(raw))
    parts, total, data = [], 0, raw
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            chunk = d.decompress(data, _MIB)
            total += len(chunk)
            parts.append(chunk)
            if total > ratio_cap and ratio_cap < cap:
                raise IngestError(issue("zip_bomb", name, detail=f"gzip > {limits.max_zip_ratio}:1"))
            if total > cap:
                key = "unpacked_too_large" if cap == limits.max_unpacked_bytes else "too_large"
                raise IngestError(issue(key, name, size=f"> {mb(cap)}", limit=mb(cap)))
            data = d.unconsumed_tail
            if d.eof or not data:
                break
        if not d.eof:
            raise IngestError(issue("unreadable", name, detail="gzip stream cut short"))
        data = d.unused_data.lstrip(b"\x00")
    return b"".join(parts)


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


WHITESPACE, FIXED_WIDTH = "whitespace", "fixed-width"


def _sniff_separator(text: str) -> str:
    """The separator among , tab ; | that splits the first lines into the same number (> 1) of fields; else
    runs of spaces (:data:`WHITESPACE`) when they do, else :data:`FIXED_WIDTH` when the lines are aligned
    columns of one width; else the one that splits the header most."""
    head = text[:65536]
    lines = head.splitlines()[: -1 if len(text) > len(head) else None]  # drop a line cut in half
    lines = [ln for ln in lines if ln.strip()][:50]
    best, best_fields = ",", 1
    for sep in (",", "\t", ";", "|"):
        counts = [len(r) for r in csv.reader(lines, delimiter=sep)]
        if counts and counts[0] > best_fields and all(n == counts[0] for n in counts):
            best, best_fields = sep, counts[0]
    if best_fields > 1 or not lines:
        return best
    words = [len(ln.split()) for ln in lines]
    if words[0] > 1 and all(n == words[0] for n in words) and '"' not in head:
        return WHITESPACE
    widths = {len(ln.rstrip("\r\n")) for ln in lines[1:]}
    if words[0] > 1 and len(lines) > 1 and len(widths) == 1:
        return FIXED_WIDTH
    return max((",", "\t", ";", "|"), key=lambda s: lines[0].count(s))


def _first_record(text: str) -> str:
    m = re.search(r"\r\n|\n|\r", text)
    return text[:m.start()] if m else text


def _header_width(text: str, sep: str) -> int:
    """Fields of the header line, counted before anything else is parsed (an upper bound first, cheap)."""
    first = _first_record(text)
    if sep in (WHITESPACE, FIXED_WIDTH):
        return len(first.split())
    if first.count(sep) + 1 <= 1_000:
        return len(next(csv.reader([first], delimiter=sep), []))
    return first.count(sep) + 1  # over the limit anyway: quoted separators would only lower it a little


def _bad_records(text: str, sep: str, width: int) -> list[tuple[int, int, int]]:
    """(record number after the header, its first line, fields) of every non-blank record whose field count
    is not ``width`` — the same quoting rules as the parser (a stray quote swallows the lines after it)."""
    bad = []
    if sep == FIXED_WIDTH:
        return bad
    if sep == WHITESPACE:
        for i, line in enumerate(io.StringIO(text, newline=None)):
            n = len(line.split())
            if i and n and n != width:
                bad.append((i - 1, i + 1, n))
        return bad
    reader = csv.reader(io.StringIO(text, newline=None), delimiter=sep)
    start = 1
    for i, rec in enumerate(reader):
        if i and rec and len(rec) != width and not (len(rec) == width + 1 and rec[-1] == ""):
            bad.append((i - 1, start, len(rec)))
        start = reader.line_num + 1
    return bad


def _parse_exact(text: str, sep: str, width: int) -> pd.DataFrame | None:
    """The fast path: an LF text without quotes that pandas parses with no complaint and whose separator
    count is exactly (header width − 1) per non-empty line has every record at the header's width — no
    per-line scan needed. None when that is not proven (the caller then finds the odd lines)."""
    if sep in (WHITESPACE, FIXED_WIDTH) or '"' in text or "\r" in text:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
                             index_col=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError):
            return None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        return None
    empty = len(re.findall(r"(?m)^$", text)) - (1 if text.endswith("\n") else 0)
    return df if text.count(sep) == (width - 1) * (len(df) + 1 - empty) else None


def _read_csv(name: str, raw: bytes, limits: Limits | None = None, *, bad_rows: BadRows = "refuse") -> pd.DataFrame:
    """Text: encoding and separator (, ; tab | spaces, or fixed-width columns) detected; line endings LF,
    CRLF and CR-only (old Mac) all work. The header's width is checked before the file is parsed. A record
    with another number of fields than the header (a line cut short, an unbalanced quote, an extra
    separator) is refused naming its line, or with ``bad_rows="skip"`` left out and listed in
    ``df.attrs["skipped_rows"]`` [(line, fields)]. ``df.attrs["format"]`` records what was detected."""
    limits = limits or Limits.from_env()
    text, encoding = _decode(name, raw)
    lines = max(text.count("\n"), text.count("\r"))
    if lines > limits.max_rows + 1:  # header + rows (quoted line breaks make this an upper bound)
        raise IngestError(issue("too_many_rows", name, count=lines - 1, limit=limits.max_rows))
    sep = _sniff_separator(text)
    width = _header_width(text, sep)
    if width > limits.max_columns:  # refused before pandas sees the file
        raise IngestError(issue("too_many_columns", name, count=width, limit=limits.max_columns))
    df, bad = _parse_exact(text, sep, width), []
    if df is None:  # some record may be cut short, too long or quoted oddly: find each one by its line
        bad = _bad_records(text, sep, width)
        if bad and bad_rows != "skip":
            rec, line, n = bad[0]
            raise IngestError(issue("ragged_row", name, row=line, count=len(bad), fields=n, width=width))
        keep_text = text
        if bad and '"' in text and bad[-1][2] < width:  # an unbalanced quote runs to the end: cut it there
            keep_text = "".join(io.StringIO(text, newline=None).readlines()[: bad[-1][1] - 1])
        with warnings.catch_warnings():
            try:
                if sep == FIXED_WIDTH:
                    df = pd.read_fwf(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
                else:  # only empty trailing fields are dropped here (checked above): the warning says nothing new
                    warnings.filterwarnings("ignore", "Length of header", pd.errors.ParserWarning)
                    df = pd.read_csv(io.StringIO(keep_text, newline=None),
                                     sep=r"\s+" if sep == WHITESPACE else sep, dtype=str, keep_default_na=False,
                                     skip_blank_lines=False, index_col=False,
                                     on_bad_lines="skip" if bad else "error")
            except pd.errors.EmptyDataError as e:
                raise IngestError(issue("empty", name)) from e
            except pd.errors.ParserError as e:
                m = re.search(r"(line|row) (\d+)", str(e))
                row = (int(m.group(2)) + (m.group(1) == "row")) if m else None
                raise IngestError(issue("ragged_row", name, row=row, count=1, fields="?", width=width)) from e
    rows = np.arange(2, len(df) + 2)
    if bad:  # positions of the kept records → their record numbers (+ 2 = row in the file)
        long = {rec for rec, _, n in bad if n > width}
        short = {rec for rec, _, n in bad if n < width}
        records = [r for r in range(len(df) + len(long) + len(short)) if r not in long]
        keep = [j for j, r in enumerate(records[:len(df)]) if r not in short]
        df = df.iloc[keep]
        rows = np.asarray([records[j] + 2 for j in keep])
    _check_shape(name, df, limits)
    df.index = pd.Index(rows)
    label = {WHITESPACE: "spaces", FIXED_WIDTH: "fixed-width"}.get(sep, sep)
    df.attrs["format"] = {"encoding": encoding, "separator": label, "line_ending": line_ending(text)}
    if bad:
        df.attrs["skipped_rows"] = [(line, n) for _, line, n in bad]
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
    """A Parquet file, refused on its footer (columns, rows, unpacked pages) and then on its DECODED size:
    text columns are read dictionary-encoded (each distinct value once) and the bytes they would take as
    plain values are summed before any value is expanded — a small file of one long value repeated a
    million times is refused at ``max_decoded_bytes``, not after it filled the memory."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    limits = limits or Limits.from_env()
    pf = pq.ParquetFile(io.BytesIO(raw))
    meta = pf.metadata  # the footer: sizes are checked before any data is read
    if meta.num_columns > limits.max_columns:
        raise IngestError(issue("too_many_columns", name, count=meta.num_columns, limit=limits.max_columns))
    if meta.num_rows > limits.max_rows:
        raise IngestError(issue("too_many_rows", name, count=meta.num_rows, limit=limits.max_rows))
    if meta.num_rows * max(meta.num_columns, 1) > limits.max_cells:
        raise IngestError(issue("too_many_cells", name, count=meta.num_rows * meta.num_columns,
                                limit=limits.max_cells))
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > limits.max_unpacked_bytes:
        raise IngestError(issue("unpacked_too_large", name, limit=mb(limits.max_unpacked_bytes)))
    text = [f.name for f in pf.schema_arrow
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_binary(f.type)
            or pa.types.is_large_binary(f.type)]
    table = pq.read_table(io.BytesIO(raw), read_dictionary=text)
    decoded = 0
    for col in table.columns:
        for chunk in col.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary).cast(pa.int64())
                decoded += (pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0) + 16 * len(chunk)
            else:
                decoded += chunk.nbytes
            if decoded > limits.max_decoded_bytes:
                raise IngestError(issue("decoded_too_large", name, limit=mb(limits.max_decoded_bytes)))
    df = table.to_pandas()
    del table
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    _check_shape(name, df, limits)
    if any(n is not None for n in df.index.names):  # a named index (e.g. customer_id) is data
        df = df.reset_index()
    df.index = pd.RangeIndex(2, len(df) + 2)
    return df


def _check_headers(label: str, df: pd.DataFrame) -> None:
    """Column names are names, never instructions: longer than :data:`MAX_HEADER_CHARS` or holding a control
    character (line breaks, NUL, escape …) → refused naming the column's position. Quotes, semicolons and
    SQL words are allowed and stay inert (every identifier is quoted where it is used)."""
    for j, h in enumerate(df.columns, start=1):
        h = str(h)
        if len(h) > MAX_HEADER_CHARS:
            raise IngestError(issue("bad_header", label, column=h[:40] + "…", position=j,
                                    detail=f"{len(h):,} > {MAX_HEADER_CHARS} characters"))
        if _CONTROL.search(h):
            raise IngestError(issue("bad_header", label, column=_CONTROL.sub("?", h), position=j,
                                    detail="control character"))


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

