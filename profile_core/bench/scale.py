"""Out-of-core scale benchmark (issue 19): the whole CLI pipeline at 10⁵ and 10⁶ customers on one machine.

For each size, every step runs as its own fresh ``nice``d subprocess of ``python -m profile_core`` and is
measured by wall time and the peak RSS of that process (``os.wait4`` → ``ru_maxrss``):

1. ``generate``: ``demo-data --partitions`` streams the demo generator into a partitioned Parquet lake
   (≤ 25k customers per partition in memory);
2. ``features``: ``features --data <lake>``: DuckDB over the lake's Parquet files, partition by partition,
   straight to one Parquet file (memory limit 3 GB, 2 threads);
3. ``train``: ``train --data features.parquet --epochs E`` (fixed epochs, CPU, one torch thread): the feature
   table only, never the event tables, held in memory with its float32 model matrix;
   ``train-stream``: the same with ``--stream`` (``profile_core.stream_train``: seeded samples for the
   preprocessor and validation/test, the training rows streamed in 50k-row chunks);
4. ``score``: ``score`` streams the feature file (``scoring.score_file``);
5. ``explain``: ``explain --global --sample S``: global importance of a sample stratified by PD grade;
6. ``card``: ``explain --data <lake> --features features.parquet --customer ID``: one customer's rows by key,
   its feature row and a 10k-row reference sample, the card printed.

Big files go under ``work_dir`` (default ``/tmp/scale``), never the repository. ``--quick`` runs 2,000
customers into a scratch folder and writes no results. ``python -m profile_core bench scale [--sizes …]`` →
``benchmarks/results/scale.json`` and ``scale.md`` (sizes run again replace their rows; others are kept).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
SIZES = (100_000, 1_000_000)
PARTITION_CUSTOMERS = 25_000
EPOCHS = 2
EXPLAIN_SAMPLE = 2_000
MEMORY_TARGET_GB = 8.0
STEPS = ("generate", "features", "train", "train-stream", "score", "explain", "card")


def _run_step(argv: list[str], log: Path) -> dict[str, Any]:
    """One ``python -m profile_core`` command in a fresh, niced process: wall seconds, peak RSS, exit code."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "profile_core", *argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w", encoding="utf-8") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "exit": proc.returncode}


def _du_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def run_size(n: int, work: Path, *, epochs: int = EPOCHS, sample: int = EXPLAIN_SAMPLE,
             partition_customers: int = PARTITION_CUSTOMERS, steps: tuple[str, ...] = STEPS,
             keep: bool = False) -> dict[str, Any]:
    """Every step of the pipeline at ``n`` customers in ``work`` (emptied first unless only later steps run)."""
    partitions = max(1, math.ceil(n / partition_customers))
    lake, feats, bundle = work / "lake", work / "features.parquet", work / "bundle"
    if "generate" in steps:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    card_id = f"C{n // 2 + 1:06d}"
    argv = {
        "generate": ["demo-data", "--customers", str(n), "--partitions", str(partitions), "--out", str(lake)],
        "features": ["features", "--data", str(lake), "--out", str(feats), "--memory-limit", "3GB",
                     "--threads", "2"],
        "train": ["train", "--data", str(feats), "--epochs", str(epochs), "--device", "cpu", "--out", str(bundle),
                  "--json", "--no-stream"],
        "train-stream": ["train", "--data", str(feats), "--stream", "--epochs", str(epochs), "--device", "cpu",
                         "--out", str(work / "bundle-stream"), "--json"],
        "score": ["score", "--bundle", str(bundle), "--data", str(feats), "--out", str(work / "scores.parquet")],
        "explain": ["explain", "--bundle", str(bundle), "--data", str(feats), "--global", str(work / "global.csv"),
                    "--sample", str(sample)],
        "card": ["--lang", "en", "explain", "--bundle", str(bundle), "--data", str(lake), "--features", str(feats),
                 "--customer", card_id],
    }
    result: dict[str, Any] = {"customers": n, "partitions": partitions, "epochs": epochs, "explain_sample": sample,
                              "steps": {}}
    for step in steps:
        print(f"[scale] {n:,} customers: {step} …", file=sys.stderr, flush=True)
        m = _run_step(argv[step], work / f"{step}.log")
        result["steps"][step] = m
        print(f"[scale] {n:,} {step}: {m['seconds']} s, {m['peak_rss_mb']} MB peak RSS, exit {m['exit']}",
              file=sys.stderr, flush=True)
        if m["exit"] != 0:
            tail = (work / f"{step}.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            result["steps"][step]["error"] = tail.strip().splitlines()[-1] if tail.strip() else ""
            break
    if (lake / "_lake.json").is_file():
        meta = json.loads((lake / "_lake.json").read_text(encoding="utf-8"))
        result["rows"] = meta.get("rows")
        result["lake_mb"] = _du_mb(lake)
    if feats.is_file():
        result["features_mb"] = _du_mb(feats)
    for step, key in (("train", "test_metrics"), ("train-stream", "stream_test_metrics")):
        if step in result["steps"] and result["steps"][step]["exit"] == 0:
            text = (work / f"{step}.log").read_text(encoding="utf-8")
            summary = json.loads(text[text.index("{"):])
            result[key] = summary["metrics"].get("test")
            if "stream" in summary:
                result["stream"] = summary["stream"]
    sample_file = work / "global.csv.sample.json"
    if sample_file.is_file():
        result["explain_sample_method"] = json.loads(sample_file.read_text(encoding="utf-8"))
    result["peak_rss_mb_max"] = max(s["peak_rss_mb"] for s in result["steps"].values())
    result["within_target"] = result["peak_rss_mb_max"] <= MEMORY_TARGET_GB * 1024
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Out-of-core pipeline at scale (`python -m profile_core bench scale`)", "",
             f"One machine: {result['machine']}. Each step is a fresh `nice -n 10` process; time is wall "
             f"seconds, memory the process's peak RSS (target ≤ {MEMORY_TARGET_GB:g} GB at every step). "
             "Train: fixed epochs, CPU, one torch thread; explain: global importance of a sample stratified by "
             "the PD grade; card: one customer read by key from the lake.", "",
             "| customers | partitions | " + " | ".join(STEPS) + " | max peak |",
             "|---:|---:|" + "---|" * len(STEPS) + "---:|"]
    for size in sorted(result["sizes"], key=int):
        r = result["sizes"][size]
        cells = []
        for step in STEPS:
            m = r["steps"].get(step)
            cells.append("—" if m is None else f"{m['seconds']:,.1f} s · {m['peak_rss_mb'] / 1024:.2f} GB"
                         + ("" if m["exit"] == 0 else " (failed)"))
        lines.append(f"| {int(size):,} | {r['partitions']} | " + " | ".join(cells)
                     + f" | {r['peak_rss_mb_max'] / 1024:.2f} GB |")
    lines += ["", "| customers | transactions | behaviors | lake on disk | feature file | test AUC (default) | "
              "test AUC (default), streamed |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sorted(result["sizes"], key=int):
        r = result["sizes"][size]
        rows = r.get("rows") or {}
        aucs = [((r.get(key) or {}).get("default") or {}).get("auc") for key in ("test_metrics", "stream_test_metrics")]
        lines.append(f"| {int(size):,} | {rows.get('transactions', 0):,} | {rows.get('behaviors', 0):,} | "
                     f"{r.get('lake_mb', 0):,.0f} MB | {r.get('features_mb', 0):,.0f} MB | "
                     + " | ".join(f"{auc:.3f}" if auc is not None else "—" for auc in aucs) + " |")
    if result.get("notes"):
        lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


def run(sizes: str | tuple[int, ...] | None = None, quick: bool = False, *, work_dir: str | Path = "/tmp/scale",
        out: str | Path | None = RESULTS, epochs: int = EPOCHS, steps: tuple[str, ...] = STEPS,
        keep: bool = False) -> dict[str, Any]:
    """Run the benchmark for ``sizes`` (``"100000,1000000"`` or a tuple) and merge the rows into ``out``
    (JSON + markdown beside it). ``quick``: 2,000 customers in a scratch folder, nothing written. ``steps``:
    some steps only (e.g. ``("train", "train-stream")`` on a kept ``work_dir/<n>`` from an earlier run, whose
    other steps' figures stay); ``keep``: leave ``work_dir/<n>`` (lake, features) for such a later run."""
    if isinstance(sizes, str):
        sizes = tuple(int(s.replace("_", "")) for s in sizes.split(",") if s.strip())
    sizes = (2_000,) if quick else tuple(sizes or SIZES)
    scratch = tempfile.mkdtemp(prefix="scale-quick-") if quick else None
    work_root = Path(scratch or work_dir)
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs shared with other work, Python " \
              f"{platform.python_version()}"
    result: dict[str, Any] = {"benchmark": "scale", "machine": machine, "sizes": {}}
    if out is not None and not quick and Path(out).is_file():  # keep the sizes not run this time
        result = json.loads(Path(out).read_text(encoding="utf-8"))
        result["machine"] = machine
    try:
        for n in sizes:
            r = run_size(n, work_root / str(n), epochs=epochs, partition_customers=1_000 if quick else
                         PARTITION_CUSTOMERS, sample=200 if quick else EXPLAIN_SAMPLE, steps=steps, keep=keep)
            r["date"] = time.strftime("%Y-%m-%d")
            old = result["sizes"].get(str(n))
            if old and "generate" not in steps:  # later steps only: keep the other steps' figures
                r = {**old, **r, "steps": {**old["steps"], **r["steps"]}}
                r["peak_rss_mb_max"] = max(m["peak_rss_mb"] for m in r["steps"].values())
                r["within_target"] = r["peak_rss_mb_max"] <= MEMORY_TARGET_GB * 1024
            result["sizes"][str(n)] = r
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if out is not None and not quick:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        Path(out).with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
