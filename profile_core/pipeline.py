"""Plain end-to-end calls shared by the CLI, the app and the benchmarks: data spec → feature frame →
model → bundle → predictions. Each step is one call into the module that owns it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

TABLE_SUFFIXES = (".parquet", ".csv", ".xlsx", ".xls")


def table_files(data: str | Path) -> list[tuple[str, Path]]:
    """The files a data spec names: every table file in a folder, or the one file given."""
    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"no table files (.parquet/.csv/.xlsx) in {path}")
    return [(p.name, p) for p in files]


def read_tables(data: str | Path, *, workspace: str | Path = "workspace.duckdb") -> dict[str, pd.DataFrame]:
    """Canonical tables from ``workspace:NAME`` or from files (validated like an upload)."""
    if str(data).startswith("workspace:"):
        from profile_core.store import Workspace

        ws = Workspace(workspace)
        try:
            name = str(data).split(":", 1)[1]
            return {t: ws.read_table(name, t) for t in ws.tables(name)}
        finally:
            ws.close()
    from profile_core.ingest import prepare_tables

    tables, report = prepare_tables(table_files(data))
    if not report.ok:
        raise ValueError(report.summary("en"))
    return tables


def feature_frame(data: str | Path, *, workspace: str | Path = "workspace.duckdb") -> pd.DataFrame:
    from profile_core.features import build_features_from_frames

    return build_features_from_frames(read_tables(data, workspace=workspace))
