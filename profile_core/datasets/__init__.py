"""Adapters for public data sets: each returns a :class:`DatasetBundle` (flat customer table, tasks, leak-free
feature lists, zh/en column names, source and licence).

``SAMPLE_DATASETS`` is the registry the CLI and the data page offer; every loader works without
``../shared`` by falling back to the small sample shipped in ``profile_core/samples``.
"""

from __future__ import annotations

from collections.abc import Callable

from profile_core.datasets.base import DatasetBundle, DatasetError, DatasetNotFound
from profile_core.datasets.census import load_census
from profile_core.datasets.taiwan import load_taiwan

SAMPLE_DATASETS: dict[str, Callable[..., DatasetBundle]] = {"taiwan": load_taiwan, "census": load_census}


def load_dataset(name: str, **kwargs) -> DatasetBundle:
    """``SAMPLE_DATASETS[name](**kwargs)`` with a readable error for an unknown name."""
    if name not in SAMPLE_DATASETS:
        raise DatasetError("datasets.unknown", name=name, known=", ".join(SAMPLE_DATASETS))
    return SAMPLE_DATASETS[name](**kwargs)


__all__ = ["DatasetBundle", "DatasetError", "DatasetNotFound", "SAMPLE_DATASETS", "load_census", "load_dataset",
           "load_taiwan"]
