"""REST API load test, bounded and local: a uvicorn subprocess on 127.0.0.1 (one worker, one torch thread)
with the demo bundle, driven by ``httpx.AsyncClient`` from this process.

Phases (each after 100 unmeasured warm-up requests):

1. ``n_requests`` × ``POST /v1/score`` with one customer each, ``concurrency`` requests in flight (and
   ``serial_requests`` one at a time, for the latency without queueing);
2. ``batch_requests`` × ``POST /v1/score`` with ``batch_size`` customers each (8 in flight);
3. ``explain_requests`` × ``POST /v1/explain`` with one customer (8 in flight).

Reported per phase: requests/s, customers/s, latency p50/p90/p99/max (ms), errors (non-200 or transport),
and the server's CPU seconds per request (from /proc). Client and server share the machine's cores, so the
figures are a floor for a dedicated server. Nothing leaves localhost. ``python -m profile_core bench
api_load`` → ``benchmarks/results/api_load.json``.
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
RESULTS = ROOT / "benchmarks" / "results" / "api_load.json"
WARMUP = 100


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _records() -> list[dict[str, Any]]:
    """The demo customers' model columns as JSON-able records."""
    from profile_core.bench.scoring import seed_features
    from profile_core.bundle import load_bundle
    from profile_core.scoring import input_columns

    frame = seed_features()[input_columns(load_bundle(BUNDLE))]
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _bodies(records: list[dict[str, Any]], n: int, per_request: int, seed: int, *, explain: bool = False
            ) -> list[bytes]:
    """JSON bodies of random customers, encoded once up front."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body: dict[str, Any] = {"customers": [records[i] for i in rng.choice(len(records), per_request, replace=False)]}
        if explain:
            body |= {"lang": "zh", "top": 4}
        out.append(json.dumps(body, ensure_ascii=False).encode("utf-8"))
    return out


async def _drive(base: str, key: str, path: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    import httpx

    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    next_index = 0

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal next_index
            while next_index < len(bodies):
                body = bodies[next_index]
                next_index += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, content=body, headers=headers)
                    status = str(r.status_code)
                except httpx.HTTPError as err:
                    status = type(err).__name__
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.asarray(latencies) * 1000
    return {"requests": len(bodies), "concurrency": concurrency, "seconds": round(wall, 2),
            "requests_per_s": round(len(bodies) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
            "errors": sum(n for s, n in statuses.items() if s != "200"), "statuses": statuses}


def _phase(base: str, key: str, pid: int, path: str, bodies: list[bytes], concurrency: int,
           per_request: int) -> dict[str, Any]:
    asyncio.run(_drive(base, key, path, bodies[:WARMUP], concurrency))
    cpu0 = _cpu_seconds(pid)
    res = asyncio.run(_drive(base, key, path, bodies[WARMUP:], concurrency))
    cpu = _cpu_seconds(pid) - cpu0
    res |= {"customers_per_request": per_request,
            "customers_per_s": round(res["requests_per_s"] * per_request, 1),
            "server_cpu_ms_per_request": round(1000 * cpu / res["requests"], 3)}
    return res


def run(n_requests: int = 10_000, concurrency: int = 32, *, serial_requests: int = 500, batch_requests: int = 200,
        batch_size: int = 100, explain_requests: int = 300, quick: bool = False,
        out: str | Path | None = RESULTS, server_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start the server, run the phases, stop it; write ``out`` (JSON) unless ``quick``."""

    from profile_core.service import new_key

    if quick:
        n_requests, serial_requests, batch_requests, explain_requests = 300, 20, 20, 20
    tmp = tempfile.TemporaryDirectory(prefix="bench_api_")
    keys = Path(tmp.name) / "keys.json"
    key = new_key(keys, "analyst", name="load-test")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = ["nice", "-n", "5", sys.executable, "-m", "profile_core.service", "--bundle", str(BUNDLE), "--host",
           "127.0.0.1", "--port", str(port), "--keys", str(keys), "--log-level", "warning", "--no-access-log",
           *server_args]
    log = open(Path(tmp.name) / "server.log", "w+")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    result: dict[str, Any] = {"server": "uvicorn, 1 worker, torch 1 thread, 127.0.0.1", "bundle": "models/demo",
                              "cpu_count": os.cpu_count(), "python": platform.python_version(),
                              "client": "httpx.AsyncClient in the same machine", "phases": {}}
    try:
        t0 = time.perf_counter()
        try:
            wait_healthy(f"{base}/healthz", server, timeout=120)
        except (RuntimeError, TimeoutError) as exc:
            log.seek(0)
            raise RuntimeError(f"the server did not start:\n{log.read()[-3000:]}") from exc
        result["startup_seconds"] = round(time.perf_counter() - t0, 2)
        records = _records()
        result["phases"]["score_1"] = _phase(base, key, server.pid, "/v1/score",
                                             _bodies(records, n_requests + WARMUP, 1, 0), concurrency, 1)
        result["phases"]["score_1_serial"] = _phase(base, key, server.pid, "/v1/score",
                                                    _bodies(records, serial_requests + WARMUP, 1, 3), 1, 1)
        result["phases"][f"score_{batch_size}"] = _phase(base, key, server.pid, "/v1/score",
                                                         _bodies(records, batch_requests + WARMUP, batch_size, 1), 8,
                                                         batch_size)
        result["phases"]["explain_1"] = _phase(base, key, server.pid, "/v1/explain",
                                               _bodies(records, explain_requests + WARMUP, 1, 2, explain=True), 8, 1)
        result["server_max_rss_mb"] = _max_rss_mb(server.pid)
    finally:
        stop(server)
        log.close()
        tmp.cleanup()
    s1 = result["phases"]["score_1"]
    serial = result["phases"]["score_1_serial"]
    result["summary"] = {"requests_per_s": s1["requests_per_s"], "p50_ms": s1["p50_ms"], "p99_ms": s1["p99_ms"],
                         "serial_p50_ms": serial["p50_ms"], "serial_p99_ms": serial["p99_ms"],
                         "errors": sum(p["errors"] for p in result["phases"].values()),
                         "batch_customers_per_s": result["phases"][f"score_{batch_size}"]["customers_per_s"],
                         "explain_requests_per_s": result["phases"]["explain_1"]["requests_per_s"],
                         "explain_p50_ms": result["phases"]["explain_1"]["p50_ms"]}
    if out is not None and not quick:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def _max_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
