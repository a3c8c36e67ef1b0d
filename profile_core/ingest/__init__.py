"""Ingest: bank exports → validated canonical tables in the workspace.

One package, layered without cycles (each module imports only those above it):

* :mod:`.report` — :class:`Issue`, :class:`ValidationReport`, :class:`IngestError` (messages in 中文/English);
* :mod:`.parsers` — value parsers: dates (formats, two-digit-year pivot), numbers, codes, flags, and the
  coercion of a column to a canonical kind;
* :mod:`.reading` — files → raw frames (encodings, separators, Excel, Parquet, gzip) under :class:`Limits`;
* :mod:`.mapping` — the mapping model (YAML), proposals, applying a mapping, saved mappings;
* :mod:`.editing` — pure helpers the mapping step's widgets call;
* :mod:`.loading` — validate and store atomically (:func:`load_into_workspace`).

``from profile_core.ingest import load_into_workspace`` (and the other names below) is the public surface.
"""

from __future__ import annotations

from .loading import (
    LoadResult,
    dataset_kind,
    dataset_meta,
    label_columns,
    load_into_workspace,
    prepare_load,
    prepare_tables,
    store_prepared,
)
from .mapping import Mapping, MappingError, MappingStore, propose_files, propose_mapping, store_for
from .parsers import FLAG_VALUES
from .reading import NA_TOKENS, Limits, read_sheets, read_table_file
from .report import FLAT_CUSTOMERS, IngestError, Issue, Msg, ValidationReport

__all__ = [
    "FLAG_VALUES", "FLAT_CUSTOMERS", "NA_TOKENS", "IngestError", "Issue", "Limits", "LoadResult", "Mapping",
    "MappingError", "MappingStore", "Msg", "ValidationReport", "dataset_kind", "dataset_meta", "label_columns",
    "load_into_workspace", "prepare_load", "prepare_tables", "store_prepared", "propose_files", "propose_mapping", "read_sheets", "read_table_file",
    "store_for",
]
