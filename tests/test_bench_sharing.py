"""bench sharing: a quick run trains the 5-head net and each marketing head alone on the same split, and writes
only the git-ignored sharing_quick.* files."""

from __future__ import annotations

import json

from profile_core.bench.sharing import markdown, run, verdict


def test_quick_run_compares_on_one_split_and_never_writes_the_committed_result(tmp_path):
    result = run(quick=True, out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sharing_quick.json", "sharing_quick.md"]
    assert result["quick"] and result["seeds"] == [0] and [s["customers"] for s in result["sizes"]] == [2000]
    assert json.loads((tmp_path / "sharing_quick.json").read_text(encoding="utf-8"))["sizes"] == result["sizes"]
    size = result["sizes"][0]
    run_ = size["runs"][0]
    assert set(size["summary"]) == {"wm_purchase", "churn"}
    for task, s in size["summary"].items():
        assert 0.5 < run_[task]["mtl"] < 1 and 0.5 < run_[task]["single"] < 1
        assert s["diff_mean"] == run_[task]["mtl"] - run_[task]["single"]
        assert s["wins"] + s["ties"] + s["losses"] == 1
    assert 0.08 <= size["base_rates"]["wm_purchase_3m"] <= 0.15 and 0.05 <= size["base_rates"]["churn_3m"] <= 0.1
    assert set(run_["risk"]) == {"credit_score", "default", "risk_level"}
    assert "Quick run" in (tmp_path / "sharing_quick.md").read_text(encoding="utf-8")
    # fewer seeds than a full run, or no 20,000-customer portfolio: still the quick files
    assert run(seeds=1, sizes="1000", out_dir=tmp_path, max_epochs=1)["quick"]


def test_verdict_and_table_say_what_the_numbers_say():
    summary = {"wm_purchase": {"label": "wm_purchase_3m", "base_rate": 0.12, "mtl_mean": 0.75, "mtl_std": 0.01,
                               "single_mean": 0.74, "single_std": 0.01, "diff_mean": 0.01, "diff_std": 0.002,
                               "wins": 3, "ties": 0, "losses": 0},
               "churn": {"label": "churn_3m", "base_rate": 0.08, "mtl_mean": 0.70, "mtl_std": 0.01,
                         "single_mean": 0.70, "single_std": 0.01, "diff_mean": -0.001, "diff_std": 0.004,
                         "wins": 1, "ties": 1, "losses": 1}}
    text = verdict(summary)
    assert text.startswith("wm_purchase: sharing helps (ΔAUC +0.0100") and "churn: no clear difference" in text
    result = {"sizes": [{"customers": 20000, "test_rows": 3000, "summary": summary, "runs": [], "verdict": text}],
              "config": {"arch": "ple", "weighting": "uncertainty", "selection": "total"}, "data_seed": 2026,
              "seeds": [0, 1, 2, 3, 4], "tie": 0.002, "quick": False, "seconds": 100.0}
    table = markdown(result)
    assert "| wm_purchase (`wm_purchase_3m`) | 12.0% | 0.7500 ± 0.0100 | 0.7400 ± 0.0100 | +0.0100 ± 0.0020 | 3 / 0 / 0 |" \
        in table and "## 20,000 customers (3,000 test)" in table and "Quick run" not in table
