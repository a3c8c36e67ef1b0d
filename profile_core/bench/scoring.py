"""Batch-scoring benchmark: throughput (rows/s, one CPU thread) and peak memory against a memory budget.

Inputs are synthetic flat feature tables made by replicating the demo portfolio's feature table (2,000
customers, all 63 columns, customer ids made unique), written in 100k-row row groups:

1. ``rows`` (1M) rows as Parquet, scored by ``scoring.score_file`` → rows/s and peak RSS; the same file
   scored the in-memory way (``pd.read_parquet`` + ``pipeline.scored_frame``) for contrast;
2. ``csv_rows`` (250k) rows as CSV, scored by ``score_file`` (streaming CSV reader);
3. a file whose model columns take ``factor`` × ``budget_mb`` in memory as a pandas frame (10 × 200 MB =
   2 GB, ~4.3M rows), scored with ``memory_chunk_rows`` rows per chunk: the peak RSS above the process's
   baseline (Python + torch + the bundle, measured after a warm-up) must stay within ``budget_mb``.

Each scoring run is a fresh subprocess (``nice``d), so ``ru_maxrss`` is that run's own high-water mark.
Sizes are chosen to finish in about two minutes on 2 shared cores. ``python -m profile_core bench scoring``
→ ``benchmarks/results/scoring.json``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "demo"
RESULTS = ROOT / "benchmarks" / "results" / "scoring.json"
ROW_GROUP = 100_000

_CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
import pandas as pd
from profile_core.bundle import load_bundle
from profile_core.scoring import current_rss_mb, peak_rss_mb, reset_peak_rss, score_chunk, score_file

bundle_path, src, out, chunk_rows, mode = sys.argv[1:6]
bundle = load_bundle(bundle_path)
score_chunk(bundle, pd.DataFrame({"customer_id": ["warm"] * 64}))  # lazy allocations count in the baseline
base_peak = peak_rss_mb()  # imports and loading: their transient peak is not scoring's
reset_peak_rss()
base = current_rss_mb()
t0 = time.perf_counter()
if mode == "stream":
    stats = score_file(bundle, src, out, chunk_rows=int(chunk_rows), progress=False).to_dict()
else:  # the in-memory way: whole file into pandas, then pipeline.scored_frame
    from profile_core.pipeline import scored_frame
    frame = pd.read_parquet(src)
    scored = scored_frame(bundle, frame, chunk_size=int(chunk_rows))
    scored.to_parquet(out, index=False)
    seconds = time.perf_counter() - t0
    stats = {"rows": len(scored), "seconds": round(seconds, 3), "rows_per_s": round(len(scored) / seconds, 1),
             "peak_rss_mb": round(peak_rss_mb(), 1)}
stats.update(baseline_rss_mb=round(base, 1), startup_peak_rss_mb=round(base_peak, 1),
             above_baseline_mb=round(stats["peak_rss_mb"] - base, 1))
print(json.dumps(stats))
"""


def seed_features() -> pd.DataFrame:
    """The demo portfolio's feature table (data/demo when present, else regenerated with seed 7)."""
    from profile_core.features import build_features_from_frames

    demo = ROOT / "data" / "demo"
    if (demo / "customers.parquet").exists():
        from profile_core.pipeline import feature_frame

        return feature_frame(demo)
    from profile_core.synth import generate_portfolio

    return build_features_from_frames(generate_portfolio(2000, seed=7).tables())


def write_replicated(seed: pd.DataFrame, rows: int, path: Path, fmt: str = "parquet") -> float:
    """``rows`` rows of ``seed`` repeated with unique customer ids, written group by group (bounded memory);
    returns the seconds taken."""
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    base = pa.Table.from_pandas(seed, preserve_index=False)
    copies = max(1, ROW_GROUP // len(seed))
    block = pa.concat_tables([base] * copies)
    ids = block.column("customer_id").cast(pa.string())
    suffix = pa.array(np.repeat([f"-{k:03d}" for k in range(copies)], len(seed)).tolist(), pa.string())
    id_index = block.schema.get_field_index("customer_id")
    writer = None
    written, group = 0, 0
    try:
        while written < rows:
            n = min(len(block), rows - written)
            cid = pc.binary_join_element_wise(pa.scalar(f"G{group:04d}"), ids, suffix, "")
            part = block.set_column(id_index, "customer_id", cid).slice(0, n)
            if fmt == "parquet":
                import pyarrow.parquet as pq

                if writer is None:
                    writer = pq.ParquetWriter(path, part.schema, compression="zstd")
                writer.write_table(part, row_group_size=ROW_GROUP)
            else:
                import pyarrow.csv as pacsv

                if writer is None:
                    writer = pacsv.CSVWriter(path, part.schema)
                writer.write_table(part)
            written += n
            group += 1
    finally:
        if writer is not None:
            writer.close()
    return time.perf_counter() - t0


def _score(src: Path, out: Path, chunk_rows: int, mode: str = "stream") -> dict[str, Any]:
    cmd = ["nice", "-n", "10", sys.executable, "-c", _CHILD, str(BUNDLE), str(src), str(out), str(chunk_rows), mode]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scoring subprocess failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(rows: int = 1_000_000, csv_rows: int = 250_000, budget_mb: int = 200, factor: int = 10,
        chunk_rows: int = 50_000, memory_chunk_rows: int = 10_000, quick: bool = False,
        out: str | Path | None = RESULTS, work_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the benchmark (``quick``: 1/20 of the sizes, for a smoke test) and write ``out`` (JSON)."""
    from profile_core.bundle import load_bundle
    from profile_core.scoring import input_columns

    if quick:
        rows, csv_rows, factor = rows // 20, csv_rows // 20, 1
    bundle = load_bundle(BUNDLE)
    seed = seed_features()
    model_cols = input_columns(bundle)
    per_row = seed[model_cols].memory_usage(deep=True, index=False).sum() / len(seed)
    per_row_all = seed.memory_usage(deep=True, index=False).sum() / len(seed)
    big_rows = int(math.ceil(factor * budget_mb * (1 << 20) / per_row))
    tmp = tempfile.TemporaryDirectory(prefix="bench_scoring_", dir=work_dir)
    work = Path(tmp.name)
    result: dict[str, Any] = {
        "bundle": str(BUNDLE.relative_to(ROOT)), "architecture": bundle.manifest["architecture"]["name"],
        "torch_threads": 1, "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "seed_customers": len(seed), "input_columns_in_file": seed.shape[1],
        "model_columns_read": len(model_cols), "bytes_per_row_model_columns": round(float(per_row), 1),
        "bytes_per_row_all_columns": round(float(per_row_all), 1), "runs": {}}
    try:
        src = work / "features_1m.parquet"
        gen = write_replicated(seed, rows, src)
        result["runs"]["parquet_stream"] = {"rows_in_file": rows, "chunk_rows": chunk_rows,
                                            "file_mb": round(src.stat().st_size / 2**20, 1),
                                            "write_seconds": round(gen, 1),
                                            **_score(src, work / "scores.parquet", chunk_rows)}
        result["runs"]["parquet_in_memory"] = {"rows_in_file": rows, "how": "pd.read_parquet + scored_frame",
                                               **_score(src, work / "scores_mem.parquet", chunk_rows, "memory")}
        src.unlink()
        src = work / "features.csv"
        gen = write_replicated(seed, csv_rows, src, fmt="csv")
        result["runs"]["csv_stream"] = {"rows_in_file": csv_rows, "chunk_rows": chunk_rows,
                                        "file_mb": round(src.stat().st_size / 2**20, 1),
                                        "write_seconds": round(gen, 1),
                                        **_score(src, work / "scores_csv.parquet", chunk_rows)}
        src.unlink()
        src = work / "features_big.parquet"
        gen = write_replicated(seed, big_rows, src)
        run_big = _score(src, work / "scores_big.parquet", memory_chunk_rows)
        result["runs"]["memory_budget"] = {
            "budget_mb": budget_mb, "factor": factor, "rows_in_file": big_rows,
            "in_memory_mb_model_columns": round(big_rows * per_row / 2**20, 1),
            "in_memory_mb_all_columns": round(big_rows * per_row_all / 2**20, 1),
            "file_mb": round(src.stat().st_size / 2**20, 1), "write_seconds": round(gen, 1),
            "chunk_rows": memory_chunk_rows, **run_big,
            "within_budget": bool(run_big["above_baseline_mb"] <= budget_mb)}
    finally:
        tmp.cleanup()
    result["summary"] = {
        "rows_per_s_parquet": result["runs"]["parquet_stream"]["rows_per_s"],
        "rows_per_s_csv": result["runs"]["csv_stream"]["rows_per_s"],
        "rows_per_s_big_file": result["runs"]["memory_budget"]["rows_per_s"],
        "peak_above_baseline_mb": result["runs"]["memory_budget"]["above_baseline_mb"],
        "budget_mb": budget_mb, "file_in_memory_mb": result["runs"]["memory_budget"]["in_memory_mb_model_columns"],
        "in_memory_way_peak_above_baseline_mb": result["runs"]["parquet_in_memory"]["above_baseline_mb"],
        "stream_peak_above_baseline_mb_1m": result["runs"]["parquet_stream"]["above_baseline_mb"]}
    if out is not None and not quick:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
