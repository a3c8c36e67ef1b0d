"""Value parsers for bank exports: date formats, decimal commas, code tables, header signatures.

Pure functions on pandas Series; no I/O. Used by the mapping step (:mod:`.mapping`) and the
loader (:mod:`.loading`), shown in proposals.

Date formats (``DATE_FORMATS``):

* ``YYYY-MM-DD`` (time of day allowed, ISO 8601), ``YYYY/MM/DD``, ``DD.MM.YYYY``;
* ``YYYYMMDD`` — 8 digits, text or integer (``20240105``); 14 digits add ``HHMMSS``;
* ``YYMMDD`` — 6 digits, text or integer; an integer that lost its leading zero (``50102`` = 050102) is
  padded back. **Century rule**: a two-digit year ``yy`` greater than the current two-digit year is
  ``19yy``, otherwise ``20yy`` (in 2026: ``26`` → 2026, ``27`` → 1927);
* ``excel`` — Excel serial day numbers (1900 date system: 45292 = 2024-01-01, fractions are the time of day);
* ``unix`` — seconds since 1970-01-01 UTC (values above 10¹¹ are read as milliseconds).

Unparseable values become NaT; the caller reports them (file, row, value).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from datetime import date

import numpy as np
import pandas as pd

from ..schema import DIRECTION_VALUES, GENDER_VALUES, Column, normalize_header

#: format key → (中文, English) description shown in the mapping step.
DATE_FORMATS: dict[str, tuple[str, str]] = {
    "YYYY-MM-DD": ("年-月-日（2024-01-05）", "year-month-day (2024-01-05)"),
    "YYYY/MM/DD": ("年/月/日（2024/01/05）", "year/month/day (2024/01/05)"),
    "DD.MM.YYYY": ("日.月.年（05.01.2024）", "day.month.year (05.01.2024)"),
    "YYYYMMDD": ("8 位数字（20240105）", "8 digits (20240105)"),
    "YYMMDD": ("6 位数字（240105，两位年份）", "6 digits (240105, two-digit year)"),
    "excel": ("Excel 序列号（45296）", "Excel serial number (45296)"),
    "unix": ("Unix 时间戳（秒）", "Unix timestamp (seconds)"),
}
#: formats only proposed when the column name or the target field says "date": plain numbers are ambiguous.
WEAK_DATE_FORMATS = ("YYMMDD", "excel", "unix")

_EXCEL_ORIGIN = pd.Timestamp("1899-12-30")
_PLAUSIBLE = (pd.Timestamp("1900-01-01"), pd.Timestamp("2100-12-31"))
_DECIMAL_COMMA = re.compile(r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?$")
_DECIMAL_POINT = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_SPACES = re.compile(r"[\s\u00a0\u202f'’]")
SAMPLE = 500  # values looked at when sniffing


# ---- text helpers ------------------------------------------------------------------------------------
def as_text(s: pd.Series) -> pd.Series:
    """Any column → stripped ``str`` values (missing stays missing); whole floats lose their '.0'."""
    if pd.api.types.is_string_dtype(s) and s.dtype != object:
        return s.str.strip()
    if pd.api.types.is_integer_dtype(s) and not s.hasnans:
        return s.astype("str")

    def one(v: object) -> str | None:
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return pd.Series([one(v) for v in s], index=s.index, dtype="str")


def code_key(value: object) -> str:
    """How a code is compared: text, trimmed, lower-case, whole numbers without '.0' (1, 1.0, '1' alike)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().lower()
    return text[:-2] if re.fullmatch(r"-?\d+\.0", text) else text


def _sample(s: pd.Series) -> pd.Series:
    present = s.dropna()
    return present.iloc[:SAMPLE] if len(present) > SAMPLE else present


# ---- dates -------------------------------------------------------------------------------------------
def century_year(yy: pd.Series | np.ndarray, today: date | None = None, pivot: int | None = None) -> np.ndarray:
    """Two-digit years → four digits: ``yy`` > ``pivot`` → 19yy, else 20yy. ``pivot`` defaults to the current
    two-digit year; ``-1`` reads every year as 19yy (an export from the 1990s with births from 1911)."""
    now = (today or date.today()).year % 100 if pivot is None else pivot
    yy = np.asarray(yy, dtype=np.int64)
    return np.where(yy > now, 1900 + yy, 2000 + yy)


def _digits(txt: pd.Series) -> pd.Series:
    """'20240105', '20240105.0', 20240105 → '20240105' (other text unchanged)."""
    return txt.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def _to_datetime(txt: pd.Series, **kwargs: object) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pd.to_datetime(txt, errors="coerce", **kwargs)
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        out = out.dt.tz_localize(None)
    return out.astype("datetime64[us]")


def parse_dates(s: pd.Series, fmt: str, *, today: date | None = None, pivot: int | None = None) -> pd.Series:
    """``s`` parsed with ``fmt`` (a key of DATE_FORMATS) → datetime64[us]; unparseable or implausible
    (outside 1900–2100) values → NaT. Already-parsed datetime columns pass through. ``pivot``: the
    two-digit-year rule of :func:`century_year` (YYMMDD)."""
    if fmt not in DATE_FORMATS:
        raise ValueError(f"unknown date format {fmt!r}; use one of {list(DATE_FORMATS)}")
    if pd.api.types.is_datetime64_any_dtype(s):
        return _to_datetime(s)
    if fmt in ("excel", "unix"):
        num = pd.to_numeric(as_text(s).str.replace(",", ".", regex=False), errors="coerce").astype("float64")
        if fmt == "excel":
            num = num.where((num >= 1) & (num < 2958466))
            out = _EXCEL_ORIGIN + pd.to_timedelta(num.round(6) * 86400, unit="s")
        else:
            num = num.where(num.abs() < 1e11, num / 1000)  # milliseconds
            out = pd.to_datetime(num, unit="s", errors="coerce")
        out = pd.Series(out, index=s.index).astype("datetime64[us]")
    else:
        txt = _digits(as_text(s))
        if fmt == "YYYYMMDD":
            long = txt.str.len() == 14
            out = _to_datetime(txt.where(~long), format="%Y%m%d")
            if long.any():
                out = out.where(~long, _to_datetime(txt.where(long), format="%Y%m%d%H%M%S"))
        elif fmt == "YYMMDD":
            ok = txt.str.fullmatch(r"\d{5,6}").fillna(False).astype(bool)
            padded = txt.where(ok).str.zfill(6)
            years = pd.Series(pd.NA, index=s.index, dtype="str")
            if ok.any():
                years[ok] = century_year(padded[ok].str[:2].astype(int).to_numpy(), today, pivot).astype(str)
            out = _to_datetime(years + padded.str[2:], format="%Y%m%d")
        elif fmt == "DD.MM.YYYY":
            out = _to_datetime(txt, format="%d.%m.%Y", exact=False)
        else:  # YYYY-MM-DD, YYYY/MM/DD (times allowed)
            out = _to_datetime(txt.str.replace("/", "-", regex=False), format="ISO8601")
    return out.where((out >= _PLAUSIBLE[0]) & (out <= _PLAUSIBLE[1]))


def sniff_date_format(s: pd.Series, *, weak: bool = False, today: date | None = None) -> str | None:
    """The date format every sampled value parses with (≥ 98 %), or None. ``weak=True`` also tries the
    ambiguous all-digit formats (YYMMDD, Excel serials, Unix seconds): use it only when the column's name
    or target says it holds dates."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return None
    txt = _digits(as_text(_sample(s)))
    txt = txt[txt.notna() & (txt != "")]
    if txt.empty:
        return None
    candidates = []
    if txt.str.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}([ T].*)?").all():
        candidates.append("YYYY-MM-DD")
    elif txt.str.fullmatch(r"\d{4}/\d{1,2}/\d{1,2}( .*)?").all():
        candidates.append("YYYY/MM/DD")
    elif txt.str.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{4}( .*)?").all():
        candidates.append("DD.MM.YYYY")
    elif txt.str.fullmatch(r"\d{8}|\d{14}").all():
        candidates.append("YYYYMMDD")
    if weak:
        if txt.str.fullmatch(r"\d{5,6}").all():
            candidates.append("YYMMDD")
        if txt.str.fullmatch(r"\d{5}(\.\d+)?").all():
            candidates.append("excel")
        if txt.str.fullmatch(r"\d{9,10}|\d{12,13}").all():
            candidates.append("unix")
    for fmt in candidates:
        parsed = parse_dates(txt, fmt, today=today)
        if parsed.notna().mean() >= 0.98:
            return fmt
    return None


# ---- identity / birth numbers --------------------------------------------------------------------------
def parse_birth_number(s: pd.Series, *, female_month_offset: int = 50, pivot: int | None = None,
                       today: date | None = None) -> tuple[pd.Series, pd.Series]:
    """Birth numbers whose first six digits are ``YYMMDD`` with women's months raised by
    ``female_month_offset`` (Czech/Slovak: 50; ``706213`` = a woman born 1970-12-13) → (birth date
    datetime64[us], sex "F"/"M" as ``str``). Digits after the date (``/1234``) are ignored; unreadable values
    → NaT and missing sex."""
    txt = _digits(as_text(s)).str.replace(r"[/\s-]", "", regex=True)
    head = txt.str.extract(r"^(\d{5,6})", expand=False)
    head = head.where(head.str.len() == 6, head.str.zfill(6))
    month = pd.to_numeric(head.str[2:4], errors="coerce")
    female = month > female_month_offset
    real = month.where(~female, month - female_month_offset)
    fixed = head.str[:2] + real.astype("Int64").astype("str").str.zfill(2) + head.str[4:6]
    born = parse_dates(fixed.where(real.between(1, 12)), "YYMMDD", today=today, pivot=pivot)
    sex = pd.Series(np.where(female, "F", "M"), index=s.index, dtype="str").where(born.notna())
    return born, sex


# ---- numbers -----------------------------------------------------------------------------------------
def parse_decimal_comma(s: pd.Series) -> pd.Series:
    """'1.234,56', '1234,56', '-12,5', '1 234,56' → float64 (dots and spaces group thousands)."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64")
    txt = as_text(s).str.normalize("NFKC").str.replace(_SPACES, "", regex=True)
    txt = txt.str.replace(r"^[¥$€]|元$|EUR$|€$", "", regex=True)
    txt = txt.str.replace(r"\.(?=\d{3}(?:[.,]|$))", "", regex=True).str.replace(",", ".", regex=False)
    return pd.to_numeric(txt, errors="coerce").astype("float64")


_CURRENCY = re.compile(r"^\s*(?:[A-Z]{3}|[^\w\s.,+-]{1,3})\s*|\s*(?:[A-Z]{3}|[^\w\s.,+-]{1,3}|元|Kč)\s*$")


def parse_amount(s: pd.Series, *, decimal: str = ".", thousands: str | None = None) -> pd.Series:
    """Amounts as written in exports → float64: currency symbols and ISO codes before or after the number
    dropped ('$1,234.50', '1 234,50 Kč', 'CZK 12.5', '¥3,000 元'), ``thousands`` removed, ``decimal`` read
    as the decimal point; a trailing minus or parentheses mean negative. Unreadable values → NaN."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64")
    txt = as_text(s).str.normalize("NFKC").str.strip()
    neg = txt.str.fullmatch(r"[^(]*\(.*\)[^)]*|.*\d\s*-").fillna(False).astype(bool)
    txt = txt.str.replace(r"[()]|(?<=\d)\s*-$", "", regex=True)
    txt = txt.str.replace(_CURRENCY, "", regex=True).str.replace(_CURRENCY, "", regex=True)
    if thousands:
        txt = txt.str.replace(" " if thousands == " " else thousands, "", regex=False)
    txt = txt.str.replace(_SPACES, "", regex=True)
    if decimal == ",":
        txt = txt.str.replace(",", ".", regex=False)
    num = pd.to_numeric(txt, errors="coerce").astype("float64")
    return num.where(~neg, -num.abs())


def sniff_decimal_comma(s: pd.Series) -> bool:
    """True when every sampled value is a number written with a decimal comma and at least one could not
    be read the English way ('12,5', '1.234,56'); '1,234' alone is ambiguous and reads as English."""
    if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
        return False
    txt = as_text(_sample(s)).str.replace(_SPACES, "", regex=True)
    txt = txt[txt.notna() & (txt != "")]
    if txt.empty or not txt.str.contains(",", regex=False).any():
        return False
    return bool(txt.str.fullmatch(_DECIMAL_COMMA).all() and not txt.str.fullmatch(_DECIMAL_POINT).all())


# ---- codes -------------------------------------------------------------------------------------------
def apply_codes(s: pd.Series, codes: dict[str, str]) -> tuple[pd.Series, pd.Series]:
    """(values replaced by their labels as ``str``, mask of present values with no entry in ``codes``).

    Codes compare as :func:`code_key` (1, 1.0 and '1' alike; 'M' and 'm' alike); values without a code
    are kept as written."""
    lookup = {code_key(k): str(v) for k, v in codes.items()}
    txt = as_text(s)
    keys = txt.map(code_key, na_action="ignore")
    mapped = keys.map(lookup)
    out = txt.where(mapped.isna(), mapped).astype("str")
    return out, txt.notna() & mapped.isna()


def parse_codes_text(text: str) -> dict[str, str]:
    """'1=男; 2=女' (also ',' / newline separated, ':' or '→' instead of '=') → {'1': '男', '2': '女'}."""
    out: dict[str, str] = {}
    for part in re.split(r"[;\n,，；]+", text or ""):
        m = re.match(r"\s*([^=:→]+?)\s*(?:=|:|→|->)\s*(.+?)\s*$", part)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def codes_text(codes: dict[str, str]) -> str:
    """Inverse of :func:`parse_codes_text`."""
    return "; ".join(f"{k}={v}" for k, v in codes.items())


def code_tables_from_frame(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """A code-table file → {column header (or "" when the file names none): {code: label}}.

    Columns are found by name: column/field/字段/列名, code/value/代码/编码/值, label/meaning/description/
    含义/说明/名称; without such names the first two columns (or the last three) are taken."""
    norm = {normalize_header(c): c for c in frame.columns}

    def pick(*names: str) -> str | None:
        return next((norm[n] for n in names if n in norm), None)

    col = pick("column", "field", "variable", "字段", "列名", "列", "变量")
    code = pick("code", "value", "代码", "编码", "值", "取值", "代码值")
    label = pick("label", "meaning", "description", "desc", "name", "含义", "说明", "名称", "标签", "中文")
    cols = list(frame.columns)
    if code is None or label is None:
        if len(cols) >= 3:
            col, code, label = cols[-3], cols[-2], cols[-1]
        elif len(cols) == 2:
            code, label = cols
        else:
            raise ValueError("a code table needs a code column and a label column")
    out: dict[str, dict[str, str]] = {}
    for _, row in frame.iterrows():
        if pd.isna(row[code]) or pd.isna(row[label]):
            continue
        key = str(row[col]).strip() if col is not None and pd.notna(row[col]) else ""
        out.setdefault(key, {})[code_key(row[code])] = str(row[label]).strip()
    return out


# ---- derived columns ---------------------------------------------------------------------------------
def age_in_years(birth: pd.Series, as_of: date | None = None) -> pd.Series:
    """Completed years between ``birth`` (datetime) and ``as_of`` (default today) → Int64."""
    ref = pd.Timestamp(as_of or date.today())
    b = pd.to_datetime(birth, errors="coerce")
    before = (b.dt.month * 100 + b.dt.day) > (ref.month * 100 + ref.day)
    years = ref.year - b.dt.year - before.astype("float64")
    return years.astype("Int64")


def threshold(values: pd.Series, at: float) -> pd.Series:
    """1 where ``values`` ≥ ``at``, 0 below, missing stays missing (Int64)."""
    num = pd.to_numeric(values, errors="coerce").astype("float64")
    return (num >= at).astype("Int64").where(num.notna())


def bins(values: pd.Series, edges: list[float], labels: list[str]) -> pd.Series:
    """Right-open bins: below edges[0] → labels[0], [edges[i-1], edges[i]) → labels[i], ≥ last → labels[-1]."""
    if len(labels) != len(edges) + 1 or list(edges) != sorted(edges):
        raise ValueError("bins need increasing edges and one label more than edges")
    num = pd.to_numeric(values, errors="coerce").astype("float64")
    idx = np.searchsorted(np.asarray(edges, dtype=float), num.fillna(0).to_numpy(), side="right")
    out = pd.Series(np.asarray(labels, dtype=object)[idx], index=values.index, dtype="str")
    return out.where(num.notna())


# ---- headers and text format ------------------------------------------------------------------------
def header_signature(headers: list[str]) -> str:
    """16 hex digits identifying a file layout: sha256 of the normalised headers, sorted (so the same
    columns in another order match too)."""
    names = sorted(normalize_header(h) for h in headers)
    return hashlib.sha256("\x1f".join(names).encode("utf-8")).hexdigest()[:16]


def line_ending(text: str) -> str:
    """'CRLF', 'LF', 'CR' (old Mac) or 'none' for the first line break of ``text``."""
    m = re.search(r"\r\n|\n|\r", text)
    return {"\r\n": "CRLF", "\n": "LF", "\r": "CR"}[m.group(0)] if m else "none"


FLAG_VALUES = {"1": 1, "1.0": 1, "是": 1, "y": 1, "yes": 1, "true": 1, "t": 1, "违约": 1,
               "0": 0, "0.0": 0, "否": 0, "n": 0, "no": 0, "false": 0, "f": 0, "正常": 0}
#: customers plus the customer-level credit columns a flat file may carry (labels included).


# ---- canonical kinds --------------------------------------------------------------------------------
def to_number(s: pd.Series) -> pd.Series:
    """Numbers as float64; infinite values (``inf``, ``1e999``) count as not a number."""
    num = _number_raw(s)
    return num.where(np.isfinite(num.to_numpy(dtype="float64", na_value=np.nan)))


def _number_raw(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    txt = as_text(s)
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


def to_datetime(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return _parse_datetime(s)
    txt = as_text(s)
    out = _parse_datetime(txt)  # fast path: one format inferred from the first value
    rest = out.isna() & txt.notna()
    if rest.any():  # per-value parsing for the rest, after 2024年1月5日 → 2024-1-5
        alt = txt[rest].str.normalize("NFKC").str.replace(r"(\d)\s*[年月]\s*(?=\d)", r"\1-", regex=True)
        out.loc[rest] = _parse_datetime(alt.str.replace(r"(\d)\s*日", r"\1", regex=True), format="mixed")
    return out


def to_flag(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        num = s.astype("float64")
        return num.where(num.isin([0, 1])).astype("Int64")
    return as_text(s).str.lower().map(FLAG_VALUES).astype("Int64")


def coerce(s: pd.Series, col: Column) -> tuple[pd.Series, pd.Series]:
    """(converted column, mask of present values that could not be converted)."""
    if col.kind in ("id", "text", "category"):
        out = as_text(s)
        if col.name == "gender":  # codes → 男/女; other values kept as written
            coded = out.str.lower().map(GENDER_VALUES)
            out = out.where(coded.isna(), coded).astype("str")
        elif col.values:  # a closed set: synonyms mapped, anything else missing (reported as unknown)
            lookup = {k.lower(): v for k, v in DIRECTION_VALUES.items()} if col.name == "direction" else {}
            lookup.update({v.lower(): v for v in col.values})
            out = out.str.lower().map(lookup).astype("str")
    elif col.kind == "float":
        out = to_number(s)
    elif col.kind == "int":
        num = to_number(s)
        out = num.where((num % 1 == 0) & (num.abs() < 2.0 ** 53)).astype("Int64")  # whole and exact in int64
    elif col.kind in ("datetime", "date"):
        out = to_datetime(s)
        if col.kind == "date":
            out = out.dt.normalize()
    else:  # flag
        out = to_flag(s)
    return out, s.notna() & out.isna()


def extra_values(s: pd.Series) -> pd.Series:
    """Unknown columns: numbers when every value is numeric (leading zeros stay text), else ``str``."""
    if s.dtype != object and not pd.api.types.is_string_dtype(s):
        return s
    txt = as_text(s)
    num = pd.to_numeric(txt, errors="coerce")
    present = txt.notna()
    if present.any() and num[present].notna().all() and not txt.str.match(r"^-?0\d", na=False).any():
        return num.astype("float64")
    return txt

