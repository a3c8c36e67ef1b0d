"""The customers a global explanation covers: a seeded sample stratified by the PD head's grade.

One implementation for both sources, run over chunks of rows in file order:

- :func:`explanation_sample` draws from a feature frame in memory (its rows in 50k-row chunks);
- :func:`stream_explanation_sample` draws from a feature Parquet file read in record batches (only the
  model's inputs, without pyarrow's ``pre_buffer``, see ``scoring._parquet_chunks``), then reads back only
  the sampled rows and the SHAP background's rows. Its memory is one batch and its scores plus
  ``n`` candidates per stratum, whatever the file's row count.

Each chunk is scored with ``scoring.score_chunk`` (the numbers of ``score``) for its stratum: the PD grade
(A–E); without a PD head the first binary head's probability quintile (the quintile edges need every row's
probability: 16 bytes per customer are then held); with neither, one stratum (simple random). Every row gets
a seeded hash of its customer id (``stream_train.split_keys``: the same number whatever the chunking or the
file's row order); per stratum the rows with the smallest keys (ties: the earlier row) are kept, at most
``n`` while the pass runs. At the end :func:`allocate` splits ``n`` over the strata in proportion to their
sizes (largest remainder) and each stratum keeps its first ``k`` candidates. So the same data, ``n`` and seed
give the same customers from a frame and from the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

EXPLAIN_SAMPLE = 10_000  # customers a global explanation covers at most by default (a stratified sample)
CHUNK_ROWS = 50_000  # rows scored at a time for the strata
MISSING = "none"  # the stratum of a row without a grade (an out-of-range input: no prediction)


def allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """``n`` split over the strata in proportion to ``counts`` (Hamilton's largest remainder: the floor of
    each share, then one more to the largest remainders, ties to the first stratum in sorted order); every
    stratum gets at most its size and the sizes add up to ``min(n, total)``."""
    labels = sorted(counts)
    sizes = np.array([counts[k] for k in labels], dtype=np.int64)
    total = int(sizes.sum())
    n = min(int(n), total)
    if total == 0:
        return dict.fromkeys(labels, 0)
    exact = sizes * n / total
    out = np.floor(exact).astype(np.int64)
    order = np.lexsort((np.arange(len(labels)), -(exact - out)))  # largest remainder first, then label order
    out[order[: n - int(out.sum())]] += 1
    return {k: int(v) for k, v in zip(labels, out, strict=True)}


def _ids(frame: pd.DataFrame, offset: int) -> pd.Series:
    if "customer_id" in frame.columns:
        return frame["customer_id"].reset_index(drop=True)
    return pd.Series(np.arange(offset, offset + len(frame)))


@dataclass
class _Draw:
    """The pass over the chunks: counts per stratum and the ``n`` smallest (key, position) per stratum."""

    n: int
    seed: int
    by: str | None = None
    quintile: bool = False
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    best: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # stratum → (keys, positions)
    held: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # quintile: (probabilities, keys)

    def add(self, chunk: pd.DataFrame, bundle) -> None:
        from profile_core.scoring import score_chunk
        from profile_core.stream_train import split_keys

        if not len(chunk):
            return
        keys = split_keys(_ids(chunk, self.rows), self.seed)
        scores = score_chunk(bundle, chunk)
        if not self.rows:
            prob = next((c for c in scores.columns if c.endswith("_prob")), None)
            self.by = "pd_grade" if "pd_grade" in scores.columns else (f"{prob} quintile" if prob else None)
            self.quintile = self.by is not None and self.by.endswith(" quintile")
        positions = np.arange(self.rows, self.rows + len(chunk), dtype=np.int64)
        self.rows += len(chunk)
        if self.quintile:
            self.held.append((scores[self.by.removesuffix(" quintile")].to_numpy(dtype=float), keys))
        elif self.by:
            self.keep(scores["pd_grade"].astype(object).fillna(MISSING).astype(str).to_numpy(), keys, positions)
        else:
            self.keep(np.full(len(chunk), ""), keys, positions)

    def keep(self, strata: np.ndarray, keys: np.ndarray, positions: np.ndarray) -> None:
        for label in np.unique(strata):
            mask = strata == label
            k, p = keys[mask], positions[mask]
            label = str(label)
            self.counts[label] = self.counts.get(label, 0) + int(mask.sum())
            if label in self.best:
                k, p = np.concatenate([self.best[label][0], k]), np.concatenate([self.best[label][1], p])
            order = np.lexsort((p, k))[: self.n]
            self.best[label] = (k[order], p[order])

    def finish(self) -> tuple[np.ndarray, dict]:
        """The sampled positions (sorted) and how they were drawn (method, sample, population, seed, strata)."""
        if self.quintile:
            probs = np.concatenate([h[0] for h in self.held])
            keys = np.concatenate([h[1] for h in self.held])
            self.held = []
            codes = pd.qcut(probs, 5, labels=False, duplicates="drop")
            strata = np.array([MISSING if np.isnan(c) else str(int(c)) for c in codes], dtype=object)
            self.keep(strata, keys, np.arange(len(probs), dtype=np.int64))
        sizes = allocate(self.counts, self.n)
        rows = np.sort(np.concatenate([self.best[k][1][:m] for k, m in sizes.items()] or [np.array([], int)]))
        info = {"method": f"stratified by {self.by} (proportional)" if self.by else "simple random",
                "sample": int(len(rows)), "population": int(self.rows), "seed": self.seed}
        if self.by:
            info["strata"] = {k: m for k, m in sizes.items() if m}
        return rows, info


def draw(bundle, chunks: Iterable[pd.DataFrame], n: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The positions (in chunk order) of ``n`` rows drawn from ``chunks`` as the module doc says, and the
    statement of how (method, sample, population, seed, strata: sampled rows per stratum)."""
    state = _Draw(int(n), seed)
    for chunk in chunks:
        state.add(chunk, bundle)
    return state.finish()


def explanation_sample(bundle, frame: pd.DataFrame, n: int | None = EXPLAIN_SAMPLE, seed: int = 0,
                       chunk_rows: int = CHUNK_ROWS) -> tuple[pd.DataFrame, dict]:
    """The customers of ``frame`` a global explanation covers and how they were chosen: every row when ``n``
    is None or the frame is no larger, else ``n`` rows drawn by :func:`draw` (the dict is stated next to the
    result)."""
    if n is None or len(frame) <= n:
        return frame, {"method": "all", "sample": len(frame), "population": len(frame)}
    rows, info = draw(bundle, (frame.iloc[i:i + chunk_rows] for i in range(0, len(frame), chunk_rows)), n, seed)
    return frame.iloc[rows], info


# --- a feature Parquet file, streamed --------------------------------------------------------------------------

def _open(path: str | Path):
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, pre_buffer=False)  # see scoring._parquet_chunks


def _batches(path: str | Path, columns: list[str], batch_rows: int) -> Iterator[pd.DataFrame]:
    from profile_core.features import _plain_dtypes
    from profile_core.scoring import _parquet_chunks

    _, chunks = _parquet_chunks(Path(path), columns, batch_rows)  # scoring's reader: no pre_buffer
    for chunk in chunks:
        yield _plain_dtypes(chunk)


def _null_counts(pf) -> dict[str, int | None]:
    """Nulls per column from the row groups' statistics (None where a row group has none)."""
    meta = pf.metadata
    out: dict[str, int | None] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            col = group.column(c)
            name = col.path_in_schema
            stats = col.statistics
            known = stats is not None and stats.has_null_count and out.get(name, 0) is not None
            out[name] = (out.get(name, 0) + stats.null_count) if known else None
    return out


def read_positions(path: str | Path, positions: np.ndarray) -> pd.DataFrame:
    """The rows of a feature file at ``positions`` (sorted), all columns, typed as
    ``features.read_feature_file`` types the whole file (a whole number column with a missing value anywhere
    in the file is float64), row group by row group. The index is the positions."""
    import pyarrow as pa

    from profile_core.features import _plain_dtypes, feature_file_meta

    pf = _open(path)
    try:
        meta = pf.metadata
        sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        parts = []
        for g in range(meta.num_row_groups):
            lo, hi = np.searchsorted(positions, [starts[g], starts[g + 1]])
            if hi > lo:
                parts.append(pf.read_row_group(g, use_threads=False).take(pa.array(positions[lo:hi] - starts[g])))
        table = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table()
        nulls = _null_counts(pf)
        schema = pf.schema_arrow
    finally:
        pf.close()
    frame = _plain_dtypes(table.to_pandas())
    for name in frame.columns:
        if pa.types.is_integer(schema.field(name).type) and nulls.get(name, 1) != 0:
            frame[name] = frame[name].astype(np.float64)
    frame.index = pd.Index(np.asarray(positions, dtype=np.int64))
    file_meta = feature_file_meta(path) or {}
    frame.attrs["as_of"] = file_meta.get("as_of")
    if file_meta.get("observation_date"):
        frame.attrs["observation_date"] = file_meta["observation_date"]
    return frame


def file_input_check(bundle, path: str | Path):
    """``bundle.require_inputs`` for a feature file without reading it: a model input is missing when the
    file lacks the column or its statistics count a null in every row."""
    from profile_core.bundle import require_inputs

    pf = _open(path)
    try:
        rows, nulls, names = pf.metadata.num_rows, _null_counts(pf), pf.schema_arrow.names
    finally:
        pf.close()
    present = pd.DataFrame({c: [np.nan if nulls.get(c) == rows and rows else 0.0] for c in names})
    return require_inputs(bundle, present)


def background_positions(rows: int, n_background: int = 100, seed: int = 0) -> np.ndarray:
    """The positions ``explain.background_rows`` picks from a frame of ``rows`` rows (the SHAP background
    ``explain.HeadExplainer`` draws from the whole feature frame)."""
    from profile_core.explain import background_rows

    return background_rows(pd.DataFrame(index=pd.RangeIndex(rows)), n_background, seed).index.to_numpy()


@dataclass
class StreamedSample:
    rows: pd.DataFrame  # the sampled customers, every column (index: their positions in the file)
    info: dict  # how they were drawn (:func:`draw`)
    background: pd.DataFrame  # the rows ``HeadExplainer(bundle, <whole file>)`` would take as its background
    max_batch_rows: int = 0


def stream_explanation_sample(bundle, path: str | Path, n: int | None = EXPLAIN_SAMPLE, seed: int = 0, *,
                              batch_rows: int = CHUNK_ROWS, n_background: int = 100,
                              background_seed: int = 0) -> StreamedSample:
    """:func:`explanation_sample` of a feature Parquet file without holding it: one pass in record batches of
    ``batch_rows`` (the model's inputs and customer_id only) for the strata and the keys, then the sampled
    rows and the explainer's background rows read back by position."""
    from profile_core.scoring import input_columns

    pf = _open(path)
    try:
        population, names = pf.metadata.num_rows, set(pf.schema_arrow.names)
    finally:
        pf.close()
    back = background_positions(population, n_background, background_seed)
    if n is None or population <= n:
        rows = read_positions(path, np.arange(population, dtype=np.int64))
        return StreamedSample(rows, {"method": "all", "sample": population, "population": population},
                              rows.loc[back])
    columns = [c for c in input_columns(bundle) if c in names]
    largest = 0

    def batches() -> Iterator[pd.DataFrame]:
        nonlocal largest
        for batch in _batches(path, columns, batch_rows):
            largest = max(largest, len(batch))
            yield batch

    positions, info = draw(bundle, batches(), n, seed)
    both = read_positions(path, np.union1d(positions, back))  # one more pass over the row groups, not two
    return StreamedSample(both.loc[positions], info, both.loc[back], largest)
