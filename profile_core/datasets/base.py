"""What a public-data adapter returns, and where the data files are found.

A :class:`DatasetBundle` is a flat customer table (one row per customer: ``customer_id``, readable feature
columns, display-only columns and label columns) plus everything needed to train on it without leaks: the
task list and the explicit numeric / categorical feature lists (never a task's own label or its source).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from profile_core.i18n import MessageError
from profile_core.tasks import TaskSpec

#: Attribute categories a column may belong to (as in ``schema.CATEGORIES``).
COLUMN_CATEGORIES = ("basic", "transaction", "behavior", "credit")
#: Environment variable naming the folder that holds ``taiwan_default/`` and ``census_income_kdd/``.
DATASETS_ENV = "PROFILE_DATASETS_DIR"
SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"


class DatasetError(MessageError):
    """A data file is malformed (or missing): one sentence from the catalogue (``datasets.toml``)."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """No data file where it was looked for."""


@dataclass
class DatasetBundle:
    name: str
    zh: str  # title
    en: str
    frame: pd.DataFrame  # customer_id + feature columns + display-only columns + label columns
    tasks: list[TaskSpec]
    numeric: list[str]  # features only: no label, no label source, no identifier
    categorical: list[str]
    #: column → (中文名, English name, category in basic/transaction/behavior/credit)
    columns: dict[str, tuple[str, str, str]]
    source: str = ""  # origin and licence, one paragraph
    licence: str = ""
    path: str = ""  # the file read
    is_sample: bool = False  # True when the shipped sample stood in for the full file
    #: columns of ``frame`` that must never be features because they reveal a label (other non-feature
    #: columns, e.g. raw amounts beside their log-scale features, are simply not in ``numeric``)
    display_only: list[str] = field(default_factory=list)
    #: stratify splits on this label column (None: random)
    stratify: str | None = None

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def labels(self) -> list[str]:
        return [task.label for task in self.tasks]

    def title(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en

    def display_name(self, column: str, lang: str = "zh") -> str:
        entry = self.columns.get(column)
        if entry is None:
            return column
        return entry[0] if lang == "zh" else entry[1]

    def category(self, column: str) -> str:
        entry = self.columns.get(column)
        return entry[2] if entry else "basic"

    def feature_frame(self) -> pd.DataFrame:
        """``customer_id`` + features + labels only (every other column dropped): safe for any consumer
        that picks features with ``features.split_columns``."""
        keep = ["customer_id", *self.features, *[c for c in self.labels if c not in self.features]]
        return self.frame[keep]

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "rows": len(self.frame), "features": len(self.features),
                "tasks": [task.name for task in self.tasks], "path": self.path, "is_sample": self.is_sample}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def shared_candidates(relative: str) -> list[Path]:
    """Where a public data file may live: $PROFILE_DATASETS_DIR, then ../shared/datasets beside the repo,
    then ../shared/datasets beside the working directory."""
    out: list[Path] = []
    env = os.environ.get(DATASETS_ENV)
    if env:
        out.append(Path(env) / relative)
    out.append(repo_root().parent / "shared" / "datasets" / relative)
    out.append(Path.cwd().resolve().parent / "shared" / "datasets" / relative)
    return out


def resolve(path: str | Path | None, relative: str, sample: str | None) -> tuple[Path, bool]:
    """The file to read and whether it is the shipped sample. An explicit ``path`` must exist."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DatasetNotFound("datasets.missing_file", path=str(p))
        return p, False
    for p in shared_candidates(relative):
        if p.is_file():
            return p, False
    if sample is not None and (SAMPLES_DIR / sample).is_file():
        return SAMPLES_DIR / sample, True
    raise DatasetNotFound("datasets.not_found", path=str(shared_candidates(relative)[1]))


def check_columns(frame: pd.DataFrame, expected: list[str], path: Path) -> None:
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DatasetError("datasets.bad_columns", path=str(path), columns=", ".join(missing[:5]))
