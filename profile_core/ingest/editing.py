"""Editing helpers for the mapping step (pure functions; the UI's widgets call these and nothing else).

Each returns a new :class:`~.mapping.Mapping` (or display text) — the core mapping logic lives in
:mod:`.mapping`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..i18n import t
from ..schema import ACCOUNT_ID, normalize_header
from . import parsers as parsing
from .mapping import (
    CANONICAL_LABELS,
    KEYS,
    LINK_TABLE,
    ColumnMapping,
    JoinSpec,
    Mapping,
    TableMapping,
    propose_mapping,
    required_fields,
    target_table,
)
from .reading import read_table_file
from .report import COLUMNS

IGNORE, FEATURE, LABEL = "__ignore__", "__feature__", "__label__"


def target_options(table: str | None) -> list[str]:
    """Choices of the target box for a column of ``table``: ignore, feature, label, then canonical fields."""
    fields = [c.name for c in target_table(table).columns] if table else []
    return [IGNORE, FEATURE, LABEL, *fields]


def option_label(option: str, table: str | None, lang: str = "zh") -> str:
    if option in (IGNORE, FEATURE, LABEL):
        return t(f"mapping.option.{option.strip('_')}", lang)
    col = COLUMNS.get(option) or (ACCOUNT_ID if option == "account_id" else None)
    if col is None and table:
        try:
            col = target_table(table).column(option)
        except KeyError:
            col = None
    if col is None:
        return option
    req = " *" if option in (required_fields(table) if table else []) else ""
    return f"{col.zh} · {col.name}{req}" if lang == "zh" else f"{col.en} · {col.name}{req}"


def current_option(cm: ColumnMapping, table: str | None) -> str:
    """The target-box value that shows ``cm``."""
    if cm.role == "ignore":
        return IGNORE
    if cm.target and cm.target in target_options(table):
        return cm.target
    return LABEL if cm.role == "label" else FEATURE


def _set(tm: TableMapping, source: str, **changes: object) -> None:
    """Replace column ``source`` of ``tm`` by a validated copy with ``changes`` (all at once)."""
    for j, cm in enumerate(tm.columns):
        if cm.source == source:
            tm.columns[j] = ColumnMapping(**{**dict(cm), **changes})
            return
    raise KeyError(source)


def choose_target(mapping: Mapping, index: int, source: str, option: str) -> Mapping:
    """New Mapping with column ``source`` of table ``index`` sent to ``option`` (see target_options)."""
    m = mapping.model_copy(deep=True)
    tm = m.tables[index]
    cm = tm.column(source)
    user = {"confidence": 1.0, "reason": "mapping.reason.user", "reason_values": {}}
    if option == IGNORE:
        _set(tm, source, role="ignore", target=None, **user)
    elif option == FEATURE:
        _set(tm, source, role="feature", target=None, **user)
    elif option == LABEL:
        _set(tm, source, role="label", target=cm.target if cm.target in CANONICAL_LABELS else None,
             kind=cm.kind or "binary", **user)
    else:
        for other in list(tm.columns):  # a field comes from one column only
            if other.source != source and other.target == option and other.role != "ignore":
                _set(tm, other.source, role="feature", target=None)
        if option in KEYS:
            _set(tm, source, role="key", target=option, **user)
        elif option in CANONICAL_LABELS:
            _set(tm, source, role="label", target=option, kind=CANONICAL_LABELS[option], **user)
        else:
            col = target_table(tm.table).column(option) if tm.table else None
            fmt = cm.date_format
            if col is not None and col.kind in ("date", "datetime") and not fmt:
                fmt = parsing.sniff_date_format(pd.Series(cm.samples, dtype="str"), weak=True)
            _set(tm, source, role="field", target=option, date_format=fmt, **user)
    return m


def update_column(mapping: Mapping, index: int, source: str, **changes: object) -> Mapping:
    """New Mapping with options of one column changed (kind, date_format, decimal_comma, codes, target,
    role), validated together."""
    m = mapping.model_copy(deep=True)
    _set(m.tables[index], source, **changes)
    return m


def set_join(mapping: Mapping, index: int, **changes: object) -> Mapping:
    """New Mapping with the join of attached table ``index`` changed (key, on, via, prefix, several); a table
    without a join gets one keyed by its first column."""
    m = mapping.model_copy(deep=True)
    tm = m.tables[index]
    base = tm.join.model_dump() if tm.join is not None else {"key": tm.columns[0].output if tm.columns else ""}
    tm.join = JoinSpec(**{**base, **{k: (v or None) if k in ("on", "via") else v for k, v in changes.items()}})
    return m


def set_labels(mapping: Mapping, index: int, labels: dict[str, str]) -> Mapping:
    """New Mapping where exactly the columns in ``labels`` (source → kind) of table ``index`` are labels;
    columns that stop being labels become features."""
    m = mapping.model_copy(deep=True)
    tm = m.tables[index]
    for cm in list(tm.columns):
        if cm.source in labels:
            target = cm.target if cm.target in CANONICAL_LABELS or cm.role in ("feature", "label") else None
            _set(tm, cm.source, role="label", target=target, kind=labels[cm.source])
        elif cm.role == "label":
            _set(tm, cm.source, role="feature", kind=None,
                 target=None if cm.target in CANONICAL_LABELS else cm.target)
    return m


def set_table(mapping: Mapping, index: int, table: str, frame: pd.DataFrame | None = None) -> Mapping:
    """New Mapping with table ``index`` re-proposed as ``table`` (from ``frame``, else from the samples)."""
    m = mapping.model_copy(deep=True)
    old = m.tables[index]
    if frame is None:
        frame = pd.DataFrame({c.source: pd.Series(c.samples + [None] * (5 - len(c.samples)), dtype="str")
                              for c in old.columns})
    new = propose_mapping(table, frame, old.file)
    new.format = old.format
    m.tables[index] = new
    return m


def apply_code_tables(mapping: Mapping, code_tables: dict[str, dict[str, str]]) -> Mapping:
    """New Mapping with ``codes`` filled from a code-table file (``parsing.code_tables_from_frame``): for
    each column whose header (normalised) is named in the file; a file without column names fills nothing."""
    m = mapping.model_copy(deep=True)
    named = {normalize_header(k): v for k, v in code_tables.items() if k}
    for tm in m.tables:
        for cm in tm.columns:
            codes = named.get(normalize_header(cm.source))
            if codes:
                cm.codes = {**cm.codes, **codes}
    return m


def proposal_frame(tm: TableMapping, lang: str = "zh") -> pd.DataFrame:
    """One row per source column for display: source, samples, target, role, kind, parse, confidence, reason."""
    rows = []
    for c in tm.columns:
        parse = []
        if c.date_format:
            parse.append(parsing.DATE_FORMATS[c.date_format][0 if lang == "zh" else 1])
        if c.decimal_comma:
            parse.append(t("mapping.option.decimal_comma", lang))
        if c.codes:
            parse.append(parsing.codes_text(c.codes))
        rows.append({
            t("mapping.col.source", lang): c.source,
            t("mapping.col.samples", lang): ", ".join(c.samples[:3]),
            t("mapping.col.target", lang): option_label(current_option(c, tm.table), tm.table, lang),
            t("mapping.col.role", lang): t(f"mapping.role.{c.role}", lang)
            + (f" ({t(f'mapping.kind.{c.kind}', lang)})" if c.kind else ""),
            t("mapping.col.parse", lang): "; ".join(parse),
            t("mapping.col.confidence", lang): round(c.confidence, 2),
            t("mapping.col.reason", lang): c.reason_text(lang),
        })
    return pd.DataFrame(rows)


def derived_notes(tm: TableMapping, lang: str = "zh") -> list[str]:
    """One sentence per derived column of ``tm``."""
    out = []
    for d in tm.derived:
        values = {"name": d.name, "source": d.source, "threshold": d.threshold,
                  "bins": ", ".join(f"{lab}" for lab in d.labels), "edges": ", ".join(f"{e:g}" for e in d.edges),
                  "role": t(f"mapping.role.{d.role}", lang)}
        out.append(t(f"mapping.derived.{d.op}", lang, **values))
    return out


def format_note(tm: TableMapping, lang: str = "zh") -> str:
    """One line on how the file was read: encoding, separator, line endings (text files only)."""
    f = tm.format
    if not f:
        return ""
    sep = {",": ",", ";": ";", "\t": "Tab", "|": "|"}.get(f.get("separator", ""), f.get("separator", ""))
    return t("mapping.format_note", lang, encoding=f.get("encoding", "?"), separator=sep,
             newline=f.get("line_ending", "?"))


def is_plain(mapping: Mapping) -> bool:
    """True when every file loads as it is (recognised by aliases, nothing to parse, nothing ignored): the
    app may skip the mapping step."""
    for tm in mapping.tables:
        if tm.table is None or tm.table == LINK_TABLE or tm.missing_required() or tm.derived:
            return False
        for c in tm.columns:
            if c.role == "ignore" or c.decimal_comma or c.codes or c.date_format not in (
                    None, "YYYY-MM-DD", "YYYY/MM/DD"):
                return False
            if c.role in ("key", "field", "label") and c.reason != "mapping.reason.alias":
                return False
    return True


def problem_texts(mapping: Mapping, lang: str = "zh") -> list[tuple[str, str]]:
    """(severity, message) for every problem of ``mapping``, errors first."""
    issues = mapping.problems()
    return [(i.severity, i.message(lang)) for i in sorted(issues, key=lambda i: i.severity != "error")]


def read_code_tables(name: str, data: bytes | str | Path) -> dict[str, dict[str, str]]:
    """A code-table file (CSV/Excel: column, code, label) → {column header: {code: label}}."""
    return parsing.code_tables_from_frame(read_table_file(name, data))


def merge_saved(current: Mapping, saved: Mapping) -> Mapping:
    """``current`` with every table that ``saved`` covers (same header signature or file) replaced by the
    saved one, and the saved link settings — e.g. after importing a mapping file."""
    tables = []
    for tm in current.tables:
        found = saved.match(tm.file, tm.headers)
        if found is None:
            tables.append(tm)
            continue
        new = found.model_copy(update={"file": tm.file, "format": tm.format, "saved_as": saved.name or ""},
                               deep=True)
        samples = {c.source: c.samples for c in tm.columns}
        for c in new.columns:
            c.samples = samples.get(c.source, [])
            c.confidence, c.reason, c.reason_values = 1.0, "mapping.reason.saved", {}
        tables.append(new)
    settings = {k: getattr(saved, k) for k in ("currency", "observation_date", "bad_rows")}
    return current.model_copy(update={"tables": tables, "link": saved.link, "name": saved.name or current.name,
                                      **settings})


def upload_signature(files: list[tuple[str, bytes | str | Path]]) -> str:
    """A key that changes when the uploaded files change (names and sizes or paths)."""
    parts = [f"{n}:{len(d) if isinstance(d, bytes) else d}" for n, d in files]
    return parsing.header_signature(parts)
