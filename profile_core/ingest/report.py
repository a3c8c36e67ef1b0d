"""Validation reports: one :class:`Issue` per problem (file, row, column, message in 中文 and English),
collected in a :class:`ValidationReport`; :class:`IngestError` for a file that cannot be read at all.

Row numbers always refer to the user's file: header = row 1, the first data row = row 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from ..i18n import t
from ..schema import ACCOUNT_LINKS, CREDIT_RECORDS, CUSTOMERS, TABLES, Column, Table

Severity = Literal["error", "warning"]

#: customers plus the customer-level credit columns a flat file may carry (labels included).
FLAT_CUSTOMERS = Table("customers", CUSTOMERS.zh, CUSTOMERS.en, CUSTOMERS.columns + tuple(
    c for c in CREDIT_RECORDS.columns if c.name not in ("customer_id", "as_of")), category="basic")
_MIB = 1 << 20


def mb(n: int) -> str:
    """A byte count for messages: '1.5 MB' / '12.0 KB'."""
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


@dataclass(frozen=True)
class Msg:
    """A message key filled into another message in the reader's language (e.g. a table name)."""

    key: str


COLUMNS: dict[str, Column] = {c.name: c for tb in (*TABLES.values(), FLAT_CUSTOMERS, ACCOUNT_LINKS)
                               for c in tb.columns}


def _column_label(column: str | None, lang: str) -> str:
    c = COLUMNS.get(column or "")
    if c is None:
        return f"“{column}”" if lang == "zh" else f'"{column}"'
    return f"“{c.zh}”（{c.name}）" if lang == "zh" else f'"{c.name}" ({c.zh})'


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def issue(key: str, file: str, *, row: int | None = None, column: str | None = None, count: int = 1,
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

