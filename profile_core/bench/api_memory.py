"""Server memory under repeated explanations and profiles: does the API process grow with every request?

A uvicorn subprocess on 127.0.0.1 (one worker, one torch thread) serves the demo bundle over a workspace
holding the seed-7 demo portfolio, with API keys and the audit log on — as in production. After
``warmup`` unmeasured requests per endpoint, ``n_requests`` × ``POST /v1/explain`` (one customer each, its
attributes varied) and then ``profile_requests`` × ``GET /v1/customers/{id}/profile`` (cycling through the
customers; each builds a card with SHAP, checks the data version and writes an audit entry, ~5× the cost of an
explanation) are sent, ``concurrency`` in flight. The server's resident memory (``VmRSS`` from /proc) is read
before each phase and after every ``sample_every`` requests.

Reported per phase: RSS before and after (MiB), the difference, and the slope of a least-squares line
through the samples of the second half of the phase in KiB per request (allocator warm-up happens in the
first half; a leak shows as a slope that stays positive). ``python -m profile_core bench api_memory`` →
``benchmarks/results/api_memory.json`` and ``.md``; ``--quick`` (500 requests) prints and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from profile_core.local_server import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "demo"
RESULTS = ROOT / "benchmarks" / "results" / "api_memory.json"


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


async def _drive(base: str, key: str, requests: list[tuple[str, str, bytes | None]], concurrency: int, pid: int,
                 sample_every: int) -> tuple[list[tuple[int, float]], dict[str, int], float]:
    """Send ``requests`` (method, path, body); RSS samples (requests done, MiB), status counts, seconds."""
    import httpx

    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    statuses: dict[str, int] = {}
    samples = [(0, rss_mb(pid))]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        for start in range(0, len(requests), sample_every):
            chunk = requests[start:start + sample_every]
            it = iter(chunk)

            async def worker(it=it) -> None:
                for method, path, body in it:
                    try:
                        r = await client.request(method, path, content=body, headers=headers)
                        status = str(r.status_code)
                    except httpx.HTTPError as err:
                        status = type(err).__name__
                    statuses[status] = statuses.get(status, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            samples.append((start + len(chunk), rss_mb(pid)))
    return samples, statuses, time.perf_counter() - t0


def _slope_kib(samples: list[tuple[int, float]]) -> float:
    """KiB per request of a least-squares line through the second half of the samples."""
    half = samples[len(samples) // 2:]
    if len(half) < 2:
        return float("nan")
    x = np.array([n for n, _ in half], dtype=float)
    y = np.array([m for _, m in half], dtype=float) * 1024
    return float(np.polyfit(x, y, 1)[0])


def _requests(kind: str, n: int, records: list[dict[str, Any]], ids: list[str], seed: int
              ) -> list[tuple[str, str, bytes | None]]:
    rng = np.random.default_rng(seed)
    if kind == "profile":
        return [("GET", f"/v1/customers/{ids[i % len(ids)]}/profile", None) for i in range(n)]
    out = []
    for i in range(n):
        rec = dict(records[int(rng.integers(len(records)))])
        rec["customer_id"] = f"B{i:06d}"
        out.append(("POST", "/v1/explain", json.dumps({"customers": [rec], "top": 3}).encode("utf-8")))
    return out


def run(n_requests: int = 10_000, *, profile_requests: int = 2_000, warmup: int = 300, concurrency: int = 4,
        sample_every: int = 1000, quick: bool = False, out: str | Path | None = RESULTS) -> dict[str, Any]:
    """Start the server, measure both phases, stop it; write ``out`` (+ ``.md``) unless ``quick``."""
    from profile_core.scoring import input_columns
    from profile_core.service import new_key
    from profile_core.store import Workspace
    from profile_core.synth import generate_portfolio

    if quick:
        n_requests, profile_requests, warmup, sample_every = 500, 200, 50, 100
    from profile_core.bundle import load_bundle
    from profile_core.features import build_features_from_frames

    tmp = tempfile.TemporaryDirectory(prefix="bench_mem_")
    folder = Path(tmp.name)
    tables = generate_portfolio(2000, seed=7).tables()
    with Workspace(folder / "ws.duckdb") as ws:
        ws.replace_dataset("main", tables, source="bench")
    features = build_features_from_frames(tables)
    frame = features[input_columns(load_bundle(BUNDLE))]
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    ids = features["customer_id"].astype(str).tolist()
    key = new_key(folder / "keys.json", "admin", name="bench")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "profile_core.service", "--bundle", str(BUNDLE), "--port", str(port),
           "--workspace", str(folder / "ws.duckdb"), "--keys", str(folder / "keys.json"), "--audit",
           str(folder / "audit.jsonl"), "--log-level", "warning", "--no-access-log"]
    log = open(folder / "server.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    result: dict[str, Any] = {
        "server": "uvicorn, 1 worker, torch 1 thread, 127.0.0.1; workspace (2,000 demo customers), keys and audit "
                  "log on", "bundle": "models/demo", "warmup": warmup,
        "concurrency": concurrency, "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "phases": {}}
    try:
        try:
            wait_healthy(f"{base}/healthz", server, timeout=180)
        except (RuntimeError, TimeoutError) as exc:
            log.seek(0)
            raise RuntimeError(f"the server did not start:\n{log.read()[-3000:]}") from exc
        result["rss_after_start_mb"] = round(rss_mb(server.pid), 1)
        for i, (kind, n) in enumerate((("explain", n_requests), ("profile", profile_requests))):
            reqs = _requests(kind, warmup + n, records, ids, seed=i)
            asyncio.run(_drive(base, key, reqs[:warmup], concurrency, server.pid, warmup))
            every = sample_every if kind == "explain" else max(1, sample_every // 5)
            samples, statuses, seconds = asyncio.run(_drive(base, key, reqs[warmup:], concurrency, server.pid, every))
            before, after = samples[0][1], samples[-1][1]
            result["phases"][kind] = {
                "requests": n, "seconds": round(seconds, 1), "rss_before_mb": round(before, 1),
                "rss_after_mb": round(after, 1), "rss_delta_mb": round(after - before, 1),
                "slope_kib_per_request_second_half": round(_slope_kib(samples), 3),
                "samples": [[n, round(m, 1)] for n, m in samples], "statuses": statuses}
    finally:
        stop(server)
        log.close()
        tmp.cleanup()
    if out is not None and not quick:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = ["# API server memory over repeated requests", "",
             f"{result['server']}; after {result['warmup']} warm-up requests per endpoint, "
             f"{result['concurrency']} in flight.", "",
             "| endpoint | requests | RSS before (MiB) | RSS after (MiB) | Δ (MiB) | slope, 2nd half (KiB/request) | "
             "non-200 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, p in result["phases"].items():
        bad = sum(n for s, n in p["statuses"].items() if s != "200")
        lines.append(f"| {kind} | {p['requests']:,} | {p['rss_before_mb']} | {p['rss_after_mb']} | "
                     f"{p['rss_delta_mb']} | {p['slope_kib_per_request_second_half']} | {bad} |")
    lines += ["", "Before the fix (issue 15) each explain request left ~13 tensors alive (~150–180 KB of RSS per "
              "request, 3,000 requests: 1.45 → 2.0 GB)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
