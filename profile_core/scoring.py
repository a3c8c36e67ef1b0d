"""Batch scoring at scale: a flat feature-table file in, every task's prediction per row out, in bounded memory.

- :func:`score_chunk` is the pure scoring function (one pandas frame in, one out) — the same one the CLI
  (``pipeline.scored_frame``), the REST API and distributed runners (Ray Data ``map_batches``, Spark
  ``mapInPandas``; see ``docs/scaling.md``) apply to their pieces, so every path gives the same numbers.
- :func:`score_file` streams a Parquet file (``ParquetFile.iter_batches``, only the model's columns) or a
  CSV file (pyarrow's streaming CSV reader, explicit column types) in chunks of ``chunk_rows``, scores each
  chunk and appends it to the output (Parquet through one ``ParquetWriter``, or CSV). Memory is bounded by
  the chunk size (and, for Parquet, by the input's row-group size), not by the file size. The output is
  written to a temporary file beside the target and renamed at the end, so a failed run leaves no half file.

The input is a FEATURE TABLE (one row per customer, the columns ``profile_core.features`` builds, e.g. the
output of ``python -m profile_core features``); it is not validated or alias-mapped like an upload. Columns
the model needs but the file lacks are imputed like missing values and listed in ``ScoreStats.missing``.
"""

from __future__ import annotations

import codecs
import os
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from profile_core.exports import safe_frame
from profile_core.i18n import MessageError
from profile_core.scorecard import add_scorecard

ID = "customer_id"
SUFFIXES = (".parquet", ".csv", ".csv.gz")
CSV_BLOCK_BYTES = 4 << 20  # bytes per block of the streaming CSV reader
#: A numeric input beyond ±1e15 (or ±inf) is not an attribute of a customer: the row gets no prediction (the API
#: answers 422 for it). NaN stays a missing value, imputed as in training.
MAX_ABS_INPUT = 1e15


class ScoringError(MessageError):
    """An input that cannot be scored; ``message(lang)`` is the sentence for people."""


@dataclass(frozen=True)
class ScoreStats:
    rows: int
    seconds: float
    rows_per_s: float
    peak_rss_mb: float  # the process's resident-memory high-water mark at the end (see reset_peak_rss)
    start_rss_mb: float = float("nan")  # resident memory when the call began (NaN where /proc is missing)
    chunks: int = 0
    missing: list[str] = field(default_factory=list)  # model inputs the file lacks (imputed)
    out_of_range_rows: int = 0  # rows with a number beyond ±1e15 or infinite: scored as empty (no prediction)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the pure scoring function ------------------------------------------------------------------------------

def input_columns(bundle) -> list[str]:
    """customer_id and the model's raw inputs (the feature-table columns the preprocessor reads)."""
    return [ID, *bundle.preprocessor.numeric, *bundle.preprocessor.categorical]


def out_of_range_rows(bundle, frame: pd.DataFrame) -> np.ndarray:
    """Per row: True when a numeric model input is infinite or beyond ±``MAX_ABS_INPUT`` (NaN is missing)."""
    cols = [c for c in bundle.preprocessor.numeric if c in frame.columns]
    if not cols:
        return np.zeros(len(frame), dtype=bool)
    values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return (np.abs(values) > MAX_ABS_INPUT).any(axis=1)


def score_columns(bundle, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The columns of :func:`score_chunk` as arrays (``frame`` must have at least one row): the model's inputs
    from ``bundle.preprocessor.transform``, its outputs from ``train.predict`` — the computation of
    ``bundle.predict`` — then points and PD grade. The REST API builds its JSON from these. A row with an
    out-of-range number (:func:`out_of_range_rows`) gets no prediction: NaN values, no class, no grade."""
    from profile_core.train import predict, prediction_columns

    preds = predict(bundle.model, bundle.preprocessor.transform(frame), bundle.tasks)
    out: dict[str, np.ndarray] = {}
    if ID in frame.columns:
        out[ID] = frame[ID].to_numpy()
    out |= prediction_columns(preds, bundle.tasks)  # names and order as train.predictions_frame
    bad = out_of_range_rows(bundle, frame)
    if bad.any():
        for key in [k for k in out if k != ID]:
            col = out[key].copy() if out[key].dtype.kind == "f" else out[key].astype(object)
            col[bad] = np.nan if col.dtype.kind == "f" else None
            out[key] = col
    out = add_scorecard(out, bundle.tasks)
    if bad.any() and "pd_grade" in out:
        out["pd_grade"] = out["pd_grade"].astype(object)
        out["pd_grade"][bad] = None
    return out


def score_chunk(bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """customer_id + every task's columns (as ``bundle.predict``) plus ``points`` (scorecard, rounded) and
    ``pd_grade`` (A–E by PD band) when the model has a task whose role is pd. Pure: no I/O, no state; any row count."""
    if not len(frame):  # the model cannot run on zero rows: score one blank row for the columns
        blank = pd.DataFrame({ID: pd.Series(["_"], dtype="str")})
        return score_chunk(bundle, blank).iloc[:0].reset_index(drop=True)
    cols = score_columns(bundle, frame)
    if "pd_grade" in cols:
        cols["pd_grade"] = pd.array(cols["pd_grade"].tolist(), dtype="str")
    return pd.DataFrame(cols)


def output_schema(bundle) -> pa.Schema:
    """The Arrow schema of ``score_chunk``'s output (for Spark's ``mapInPandas`` or a Parquet writer)."""
    return pa.Schema.from_pandas(score_chunk(bundle, pd.DataFrame({ID: pd.Series(["_"], dtype="str")})),
                                 preserve_index=False)


# --- inputs ---------------------------------------------------------------------------------------------------

def _kind(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return "parquet" if suffix == ".parquet" else "csv"
    raise ScoringError("scoring.unsupported", file=path, allowed=", ".join(SUFFIXES))


def _sniff_encoding(path: Path) -> str:
    """utf-8 when the first MiB decodes as UTF-8 (BOM allowed), else gb18030 (a superset of GBK)."""
    if path.name.lower().endswith(".gz"):
        return "utf8"
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf8"
    except UnicodeDecodeError:
        return "gb18030"


def file_columns(path: str | Path) -> list[str]:
    """The column names of a Parquet or CSV file, reading only its schema or header."""
    path = Path(path)
    if _kind(path) == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    import pyarrow.csv as pacsv

    with pacsv.open_csv(path, read_options=pacsv.ReadOptions(encoding=_sniff_encoding(path),
                                                               block_size=1 << 16)) as reader:
        return list(reader.schema.names)


def is_feature_table(bundle, data: str | Path) -> bool:
    """Whether ``data`` is one Parquet/CSV file holding every model input column (so it can be streamed)."""
    path = Path(str(data))
    if str(data).startswith("workspace:") or not path.is_file():
        return False
    try:
        _kind(path)
        columns = set(file_columns(path))
    except (ScoringError, pa.ArrowException, OSError, UnicodeDecodeError):
        return False
    return set(input_columns(bundle)[1:]) <= columns


def _parquet_chunks(path: Path, columns: list[str], chunk_rows: int) -> tuple[int | None, Iterator[pd.DataFrame]]:
    import pyarrow.parquet as pq

    # pre_buffer (pyarrow's default) keeps every range read until the file closes: RSS grew ~0.22 GB per
    # million rows read, whatever the batch size; without it reading stays flat
    pf = pq.ParquetFile(path, pre_buffer=False)

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False):
                yield batch.to_pandas()
        finally:
            pf.close()

    return pf.metadata.num_rows, chunks()


def _csv_chunks(path: Path, columns: list[str], header: list[str], bundle, chunk_rows: int
                ) -> Iterator[pd.DataFrame]:
    import pyarrow.csv as pacsv

    encoding = _sniff_encoding(path)
    types = {c: pa.float64() for c in bundle.preprocessor.numeric if c in columns}
    types |= {c: pa.string() for c in (ID, *bundle.preprocessor.categorical) if c in columns}
    pending: list[pa.RecordBatch] = []
    n = 0
    reader = None
    try:
        reader = pacsv.open_csv(  # reads the first block already: inside the try for its errors
            path, read_options=pacsv.ReadOptions(encoding=encoding, block_size=CSV_BLOCK_BYTES, use_threads=False),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns,
                                                 strings_can_be_null=True))
        for batch in reader:
            pending.append(batch)
            n += batch.num_rows
            while n >= chunk_rows:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, chunk_rows).to_pandas()
                rest = table.slice(chunk_rows)
                pending, n = rest.to_batches(), rest.num_rows
        if n:
            yield pa.Table.from_batches(pending).to_pandas()
    except pa.ArrowInvalid as err:
        raise ScoringError("scoring.bad_csv", file=path, detail=_csv_problem(str(err), header)) from err
    finally:
        if reader is not None:
            reader.close()


def _csv_problem(text: str, header: list[str]) -> str:
    """pyarrow's "In CSV column #2: Row #152: ..." with the column's name (#2 counts from 0; the row is the
    file's line number)."""
    import re

    text = text.splitlines()[0]
    found = re.search(r"CSV column #(\d+)", text)
    if found and int(found.group(1)) < len(header):
        text = text.replace(found.group(0), f"CSV column {header[int(found.group(1))]!r}")
    return text


# --- outputs ---------------------------------------------------------------------------------------------------

class _Writer:
    """Appends scored chunks to a temporary file beside ``out``; ``commit`` renames it into place."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.kind = _kind(out)
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        self._parquet = None
        self._csv = None
        self.schema: pa.Schema | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            if self._parquet is None:
                self.schema = pa.Schema.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
            self._parquet.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        else:
            first = self._csv is None
            if first:
                self._csv = open(self.tmp, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed in close)
            safe_frame(frame).to_csv(self._csv, header=first, index=False)  # formula-safe, like exports

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()

    def commit(self) -> None:
        self.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.close()
        self.tmp.unlink(missing_ok=True)


# --- memory --------------------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MiB: ``VmHWM`` on Linux (follows
    :func:`reset_peak_rss`), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def reset_peak_rss() -> bool:
    """Reset the high-water mark to the current RSS (Linux ``/proc/self/clear_refs``), so a later
    :func:`peak_rss_mb` measures only what follows; False where that is not possible. Benchmarks call it;
    ``score_file`` does not (the mark belongs to the whole process)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    """Resident memory now in MiB (Linux /proc), NaN elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return float("nan")


# --- the file scorer -----------------------------------------------------------------------------------------

def score_file(bundle, in_path: str | Path, out_path: str | Path, *, chunk_rows: int = 50_000,
               progress: bool = True) -> ScoreStats:
    """Score a flat feature-table file (``.parquet``, ``.csv``, ``.csv.gz``; UTF-8 with or without BOM, or
    GBK/GB18030) into ``out_path`` (``.parquet`` or ``.csv``, UTF-8 with BOM) chunk by chunk.

    Output columns: those of :func:`score_chunk` (customer_id first when the input has it). ``progress``
    shows a tqdm bar with rows/s on stderr.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    start_rss, started = current_rss_mb(), time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise ScoringError("scoring.no_file", file=in_path)
    kind = _kind(in_path)
    _kind(out_path)  # fail before reading anything when the output type is unsupported
    header = file_columns(in_path)
    present = set(header)
    wanted = input_columns(bundle)
    columns = [c for c in wanted if c in present]
    missing = [c for c in wanted[1:] if c not in present]
    if len(columns) == int(ID in present):
        raise ScoringError("scoring.no_model_columns", file=in_path, example=", ".join(wanted[1:4]))
    if kind == "parquet":
        total, chunks = _parquet_chunks(in_path, columns, chunk_rows)
    else:
        total, chunks = None, _csv_chunks(in_path, columns, header, bundle, chunk_rows)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="rows", unit_scale=True, desc=f"scoring {in_path.name}", disable=not progress,
               mininterval=0.5, file=sys.stderr)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out_path)
    rows = n_chunks = bad_rows = 0
    try:
        for frame in chunks:
            writer.write(score_chunk(bundle, frame))
            bad_rows += int(out_of_range_rows(bundle, frame).sum())
            rows += len(frame)
            n_chunks += 1
            bar.update(len(frame))
        if n_chunks == 0:  # an empty file still gets an output with the right columns
            writer.write(score_chunk(bundle, pd.DataFrame()))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    return ScoreStats(rows=rows, seconds=round(seconds, 3), rows_per_s=round(rows / seconds, 1) if seconds else 0.0,
                      peak_rss_mb=round(peak_rss_mb(), 1), start_rss_mb=round(start_rss, 1), chunks=n_chunks,
                      missing=missing, out_of_range_rows=bad_rows)
