"""Hostile requests against the REST API (issue 15): large bodies without a key, bodies over the limit (declared
or streamed), roles calling endpoints they may not, non-finite and huge numbers, a data set replaced under a
running server, a damaged audit log."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from profile_core.local_server import free_port, wait_healthy
from profile_core.service import create_app, hash_key, new_key
from profile_core.store import Workspace
from profile_core.synth import generate_portfolio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "demo"
KEYS = {"keys": [{"sha256": hash_key("an"), "role": "analyst", "name": "an"},
                 {"sha256": hash_key("rm"), "role": "rm", "rm_id": "RM001", "name": "rm"},
                 {"sha256": hash_key("au"), "role": "auditor", "name": "au"}]}


@pytest.fixture(scope="module")
def small():
    return TestClient(create_app(BUNDLE, keys=KEYS, max_body_bytes=64 << 10))


def test_unauthenticated_body_is_refused_before_it_is_read(small):
    big = b'{"customers": [' + b"{}," * 200_000 + b"{}]}"  # 600 KB of empty objects, no key
    r = small.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
    r = small.post("/v1/score", content=big, headers={"content-type": "application/json", "X-API-Key": "rm"})
    assert r.status_code == 403  # the role is checked before the body too: an RM may not score


def test_body_over_the_limit_is_413_declared_or_streamed(small):
    big = b'{"customers": [' + b"{}," * 50_000 + b"{}]}"
    r = small.post("/v1/score", content=big, headers={"content-type": "application/json", "X-API-Key": "an"})
    assert r.status_code == 413 and "64 KiB" not in r.json()["detail"] and "0.0625 MiB" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while it streams in
        yield b'{"customers": ['
        for _ in range(100):
            yield b"{}," * 1000
        yield b"{}]}"

    r = small.post("/v1/score", content=chunks(), headers={"content-type": "application/json", "X-API-Key": "an"})
    assert r.status_code == 413
    ok = small.post("/v1/score", json={"customers": [{"income": 30000}]}, headers={"X-API-Key": "an"})
    assert ok.status_code == 200  # under the limit: served


@pytest.mark.parametrize("value", ["1e308", "-1e308", "1e16", "NaN", "Infinity", "-Infinity"])
def test_non_finite_or_out_of_range_numbers_are_422_naming_the_field(small, value):
    body = '{"customers": [{"income": 30000}, {"income": ' + value + "}]}"
    r = small.post("/v1/score", content=body, headers={"content-type": "application/json", "X-API-Key": "an",
                                                       "Accept-Language": "en"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "customers", 1, "income"]
    assert "customers[1].income" in r.json()["message"]


def test_largest_accepted_number_still_gives_finite_scores(small):
    r = small.post("/v1/score", json={"customers": [{"income": 1e15, "util_latest": -1e15}]}, headers={"X-API-Key": "an"})
    assert r.status_code == 200
    one = r.json()["customers"][0]
    assert np.isfinite(one["points"]) and one["pd_grade"] in "ABCDE"
    shown = {"regression": "value", "binary": "probability", "multiclass": "label"}
    assert all(t.get(shown[t["kind"]]) is not None for t in one["tasks"].values())  # no null prediction


def test_docs_are_off_by_default(small):
    assert small.get("/docs").status_code == 401  # without a key nothing but /healthz answers
    assert small.get("/docs", headers={"X-API-Key": "an"}).status_code == 404
    assert small.get("/openapi.json", headers={"X-API-Key": "an"}).status_code == 404
    assert small.get("/healthz").status_code == 200


def test_data_change_under_serve_answers_409_never_the_removed_customer(tmp_path):
    tables = generate_portfolio(60, seed=3).tables()
    path = tmp_path / "ws.duckdb"
    with Workspace(path) as ws:
        ws.replace_dataset("main", tables)
    client = TestClient(create_app(BUNDLE, workspace=path, keys=KEYS, audit=tmp_path / "audit.jsonl"))
    gone, kept = tables["customers"]["customer_id"].iloc[0], tables["customers"]["customer_id"].iloc[1]
    assert client.get(f"/v1/customers/{gone}/profile", headers={"X-API-Key": "an"}).status_code == 200
    smaller = {name: frame[frame["customer_id"] != gone].reset_index(drop=True) for name, frame in tables.items()}
    with Workspace(path) as ws:  # a new load removes the customer
        ws.replace_dataset("main", smaller)
    for cid in (gone, kept):
        r = client.get(f"/v1/customers/{cid}/profile", headers={"X-API-Key": "an"}, params={"lang": "en"})
        assert r.status_code == 409, r.text
        assert "restart" in r.json()["detail"] and "version 1 then, 2 now" in r.json()["detail"]
    with Workspace(path) as ws:
        ws.drop_dataset("main")
    assert client.get(f"/v1/customers/{kept}/profile", headers={"X-API-Key": "an"}).status_code == 409


def test_damaged_audit_line_gives_a_clear_503_and_repair_restores_views(tmp_path):
    from profile_core.audit import AuditLog, WorkspaceAnchor, repair_log
    from profile_core.privacy import Policy

    tables = generate_portfolio(60, seed=3).tables()
    path = tmp_path / "ws.duckdb"
    with Workspace(path) as ws:
        ws.replace_dataset("main", tables)
    log = tmp_path / "audit.jsonl"
    client = TestClient(create_app(BUNDLE, workspace=path, keys=KEYS, audit=log))
    cid = tables["customers"]["customer_id"].iloc[0]
    headers = {"X-API-Key": "an", "Accept-Language": "en"}
    assert client.get(f"/v1/customers/{cid}/profile", headers=headers).status_code == 200
    with open(log, "ab") as f:
        f.write(b'{"seq": 2, "ti')  # a crash mid-line
    r = client.get(f"/v1/customers/{cid}/profile", headers=headers, params={"lang": "en"})
    assert r.status_code == 503 and "audit repair" in r.json()["detail"]
    r = client.post("/v1/explain", headers=headers, json={"customers": [{"customer_id": "x", "income": 30000}], "lang": "en"})
    assert r.status_code == 503 and "audit repair" in r.json()["detail"]
    result = repair_log(log, Policy("auditor"), "auditor1", anchor=WorkspaceAnchor(path))
    assert result.quarantined == 1
    assert client.get(f"/v1/customers/{cid}/profile", headers=headers).status_code == 200
    assert [e["action"] for e in AuditLog(log).entries()] == ["view_card", "audit_repair", "view_card"]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_real_server_refuses_a_large_unauthenticated_body_without_reading_it(tmp_path):
    import httpx

    keys = tmp_path / "keys.json"
    key = new_key(keys, "analyst")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "profile_core.service", "--bundle", str(BUNDLE), "--port",
                             str(port), "--keys", str(keys), "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/healthz", proc, timeout=60)
        before = _rss_kb(proc.pid)
        body = b'{"customers": [' + b"{}," * (10 << 20) + b"{}]}"  # ~30 MB, no key
        statuses = []
        for headers in ({}, {"X-API-Key": key}):  # no key: 401; with a key: 413 (over 8 MiB)
            try:
                r = httpx.post(f"{url}/v1/score", content=body, timeout=30,
                               headers={"content-type": "application/json", **headers})
                statuses.append(r.status_code)
            except httpx.HTTPError:  # the server may close the connection while the client is still sending
                statuses.append("closed")
        time.sleep(0.5)
        after = _rss_kb(proc.pid)
        assert statuses[0] in (401, "closed") and statuses[1] in (413, "closed"), statuses
        assert after - before < 20_000, (before, after)  # far less than the 30 MB body (kB)
        r = httpx.post(f"{url}/v1/score", json={"customers": [{"income": 35000}]}, headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
