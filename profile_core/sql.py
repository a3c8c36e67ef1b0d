"""The one place that turns a name into SQL: every identifier that may come from data (a column header, a
data set or table name) is quoted here, never spliced into a statement as it is."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """``name`` as a DuckDB quoted identifier: inside double quotes, each ``"`` doubled, so any text —
    quotes, semicolons, comments, ``read_text(...)`` — is a name and nothing else."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal (single quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"
