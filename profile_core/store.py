"""The embedded DuckDB workspace: named, versioned datasets of canonical tables.

Layout inside the DuckDB file:

* one schema per dataset, ``ds_<name>``, holding one table per canonical table name
  (``customers``, ``transactions``, …);
* ``_datasets``: one row per live dataset (version, load time, source, fingerprint, row counts, kind);
* ``_dataset_log``: every load ever made, so version numbers keep increasing after a drop;
* ``_dataset_meta``: optional JSON per live dataset (``meta(name)``), e.g. ``{"labels": {column: kind},
  "mapping": {...}}`` written by ``ingest.load_into_workspace``.

``replace_dataset`` runs in one transaction: on any error it rolls back and the previous dataset stays
exactly as it was. Dataset names are case-insensitive (DuckDB identifiers are) and stored lower-case.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from profile_core.settings import current
from profile_core.sql import quote_ident

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_META_COLUMNS = ["name", "version", "loaded_at", "source", "fingerprint", "row_counts", "kind"]
KINDS = ("tables", "flat")


def check_name(name: str) -> str:
    """A valid dataset name (letters, digits, ``_`` and ``-``), lower-cased; ValueError otherwise.

    The pattern is what makes the quoted identifiers below safe from SQL injection."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"invalid dataset name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name.lower()


def fingerprint_tables(tables: dict[str, pd.DataFrame]) -> str:
    """sha256 over table names, column names, row counts and cell values (row order included).

    Uses pandas' fixed-key row hashing, so the same content gives the same digest in every process."""
    h = hashlib.sha256()
    for tname in sorted(tables):
        df = tables[tname]
        h.update(json.dumps([tname, [str(c) for c in df.columns], len(df)], ensure_ascii=False).encode())
        if len(df) and len(df.columns):
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


class Workspace:
    """A DuckDB file (or ``":memory:"``) holding named datasets; the connection opens on first use."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path if path is not None else current().workspace)  # $PROFILE_WORKSPACE
        self._con: duckdb.DuckDBPyConnection | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(self.path)
            con.execute(
                "CREATE TABLE IF NOT EXISTS _datasets (name VARCHAR PRIMARY KEY, version INTEGER, "
                "loaded_at TIMESTAMP, source VARCHAR, fingerprint VARCHAR, row_counts VARCHAR, kind VARCHAR)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS _dataset_log (name VARCHAR, version INTEGER, loaded_at TIMESTAMP, "
                "source VARCHAR, fingerprint VARCHAR, kind VARCHAR)"
            )
            con.execute("CREATE TABLE IF NOT EXISTS _dataset_meta (name VARCHAR PRIMARY KEY, meta VARCHAR)")
            self._con = con
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------
    def list_datasets(self) -> pd.DataFrame:
        """One row per dataset: name, version, loaded_at, source, fingerprint, row_counts (JSON), kind."""
        return self.con.execute(f"SELECT {', '.join(_META_COLUMNS)} FROM _datasets ORDER BY name").df()

    def has_dataset(self, name: str) -> bool:
        return self._meta(check_name(name)) is not None

    def tables(self, name: str) -> list[str]:
        """Table names of a dataset, in load order."""
        return list(json.loads(self._require(name)["row_counts"]))

    def read_table(self, name: str, table: str) -> pd.DataFrame:
        if table not in self.tables(name):
            raise KeyError(f"dataset {name!r} has no table {table!r}")
        return self.con.execute(f"SELECT * FROM {self._qualified(name, table)}").df()

    def relation_names(self, name: str) -> dict[str, str]:
        """Canonical table → qualified SQL name, e.g. ``{"customers": '"ds_main"."customers"'}``."""
        return {t: self._qualified(name, t) for t in self.tables(name)}

    def fingerprint(self, name: str) -> str:
        return str(self._require(name)["fingerprint"])

    def version(self, name: str) -> int:
        return int(self._require(name)["version"])

    def kind(self, name: str) -> str:
        return str(self._require(name)["kind"])

    def meta(self, name: str) -> dict:
        """The JSON metadata stored with the dataset's current version ({} when none)."""
        name = check_name(name)
        self._require(name)
        row = self.con.execute("SELECT meta FROM _dataset_meta WHERE name = ?", [name]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    # -- changes ----------------------------------------------------------------------------------
    def replace_dataset(self, name: str, tables: dict[str, pd.DataFrame], *, source: str = "",
                        kind: str = "tables", meta: dict | None = None) -> int:
        """Replace dataset ``name`` with ``tables`` (and its ``meta``, JSON-able) in one transaction;
        returns the new version number."""
        name = check_name(name)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if not tables:
            raise ValueError("a dataset needs at least one table")
        for t in tables:
            if not _TABLE.fullmatch(t):
                raise ValueError(f"invalid table name {t!r}")
        fp = fingerprint_tables(tables)
        counts = json.dumps({t: len(df) for t, df in tables.items()})
        meta_json = json.dumps(meta, ensure_ascii=False, default=str) if meta else None
        con = self.con
        con.begin()
        try:
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM _dataset_log WHERE name = ?",
                                  [name]).fetchone()[0]
            schema = quote_ident(f"ds_{name}")
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            con.execute(f"CREATE SCHEMA {schema}")
            for t, df in tables.items():
                self._write_table(schema, t, df)
            now = datetime.now()
            con.execute("DELETE FROM _datasets WHERE name = ?", [name])
            con.execute("INSERT INTO _datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [name, version, now, source, fp, counts, kind])
            con.execute("INSERT INTO _dataset_log VALUES (?, ?, ?, ?, ?, ?)", [name, version, now, source, fp, kind])
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            if meta_json is not None:
                con.execute("INSERT INTO _dataset_meta VALUES (?, ?)", [name, meta_json])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return int(version)

    def update_meta(self, name: str, values: dict) -> dict:
        """Merge ``values`` (JSON-able) into the meta of dataset ``name``'s current version; returns the new meta.
        The next load of ``name`` replaces the meta as a whole (tags do not outlive the data they describe)."""
        name = check_name(name)
        self._require(name)
        meta = {**self.meta(name), **values}
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            con.execute("INSERT INTO _dataset_meta VALUES (?, ?)",
                        [name, json.dumps(meta, ensure_ascii=False, default=str)])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return meta

    def drop_dataset(self, name: str) -> None:
        """Remove a dataset and its tables (its load history stays, so versions are never reused)."""
        name = check_name(name)
        con = self.con
        con.begin()
        try:
            con.execute(f"DROP SCHEMA IF EXISTS {quote_ident(f'ds_{name}')} CASCADE")
            con.execute("DELETE FROM _datasets WHERE name = ?", [name])
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            con.commit()
        except BaseException:
            con.rollback()
            raise

    # -- internals --------------------------------------------------------------------------------
    def _write_table(self, schema: str, table: str, df: pd.DataFrame) -> None:
        view = "_incoming_frame"
        self.con.register(view, df)
        try:
            self.con.execute(f"CREATE TABLE {schema}.{quote_ident(table)} AS SELECT * FROM {view}")
        finally:
            self.con.unregister(view)

    def _meta(self, name: str) -> dict | None:
        cur = self.con.execute(f"SELECT {', '.join(_META_COLUMNS)} FROM _datasets WHERE name = ?", [name])
        row = cur.fetchone()
        return dict(zip(_META_COLUMNS, row, strict=True)) if row else None

    def _require(self, name: str) -> dict:
        meta = self._meta(check_name(name))
        if meta is None:
            raise KeyError(f"no dataset named {name!r}")
        return meta

    def _qualified(self, name: str, table: str) -> str:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"invalid table name {table!r}")
        return f"{quote_ident('ds_' + check_name(name))}.{quote_ident(table)}"
