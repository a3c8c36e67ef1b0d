"""bench scale: the committed table is rendered from the JSON (no run here: a run takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

from profile_core.bench.scale import RESULTS, STEPS, markdown


def _step(seconds: float, mb: float, exit_code: int = 0) -> dict:
    return {"seconds": seconds, "peak_rss_mb": mb, "exit": exit_code}


def test_markdown_rows_by_size_with_failures_marked():
    result = {"machine": "Linux x86_64, 2 CPUs", "sizes": {
        "1000000": {"partitions": 40, "steps": {"generate": _step(1306.6, 2971.3), "features": _step(9.0, 100, 1)},
                    "peak_rss_mb_max": 2971.3, "rows": {"transactions": 218, "behaviors": 117}, "lake_mb": 4498.0},
        "100000": {"partitions": 4, "steps": {s: _step(1.0, 1024.0) for s in STEPS}, "peak_rss_mb_max": 1024.0,
                   "test_metrics": {"default": {"auc": 0.8361}}},
    }}
    text = markdown(result)
    rows = [line for line in text.splitlines() if line.startswith("| 1")]
    assert rows[0].startswith("| 100,000 | 4 | 1.0 s · 1.00 GB |") and rows[0].endswith("| 1.00 GB |")
    assert rows[1].startswith("| 1,000,000 | 40 | 1,306.6 s · 2.90 GB | 9.0 s · 0.10 GB (failed) | — |")
    assert rows[2].endswith("| 0.836 | — |") and "| 4,498 MB |" in rows[3]


def test_committed_results_hold_no_machine_paths_and_match_their_table():
    raw = RESULTS.read_text(encoding="utf-8")
    assert "/tmp" not in raw and "/work" not in raw and "/home" not in raw
    result = json.loads(raw)
    assert Path(RESULTS).with_suffix(".md").read_text(encoding="utf-8") == markdown(result)
    for r in result["sizes"].values():
        assert r["within_target"] == (r["peak_rss_mb_max"] <= 8 * 1024)
