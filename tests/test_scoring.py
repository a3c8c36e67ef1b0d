"""Streaming batch scoring: same numbers as pipeline.scored_frame, bounded chunks, Parquet/CSV in and out."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from profile_core import scoring
from profile_core.bundle import load_bundle
from profile_core.features import build_features_from_frames
from profile_core.pipeline import scored_frame
from profile_core.scorecard import pd_grade
from profile_core.scoring import ScoringError, is_feature_table, output_schema, score_chunk, score_file
from profile_core.synth import generate_portfolio

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(ROOT / "models" / "demo")


@pytest.fixture(scope="module")
def features():
    return build_features_from_frames(generate_portfolio(200, seed=2).tables())


@pytest.fixture(scope="module")
def expected(bundle, features):
    return scored_frame(bundle, features)


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"customer_id": "str"})


def assert_same(got: pd.DataFrame, want: pd.DataFrame, exact: bool) -> None:
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    for col in want.columns:
        if want[col].dtype.kind == "f":
            if exact:
                np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
            else:  # another batch split changes float32 sums in the last bits
                np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-5, atol=1e-6)
        else:
            assert got[col].astype("str").tolist() == want[col].astype("str").tolist(), col


def test_score_chunk_is_the_cli_scoring(bundle, features, expected):
    pd.testing.assert_frame_equal(score_chunk(bundle, features), expected)
    assert {"points", "pd_grade", "default_prob", "risk_level_pred", "credit_score_pred"} <= set(expected.columns)
    p = np.array([0.0, 0.0099, 0.01, 0.03, 0.0799, 0.08, 0.2, 1.0, np.nan])
    assert pd_grade(p).tolist() == [pd_grade(x) for x in p]  # vectorised == scalar, NaN → None
    empty = score_chunk(bundle, features.iloc[:0])
    assert list(empty.columns) == list(expected.columns) and len(empty) == 0
    assert output_schema(bundle).names == list(expected.columns)


def test_parquet_to_parquet_one_chunk_is_exact(tmp_path, bundle, features, expected):
    src = tmp_path / "features.parquet"
    features.to_parquet(src, index=False)
    assert is_feature_table(bundle, src)
    stats = score_file(bundle, src, tmp_path / "out.parquet", chunk_rows=len(features), progress=False)
    assert stats.rows == len(features) and stats.chunks == 1 and stats.missing == []
    assert stats.rows_per_s > 0 and stats.peak_rss_mb > 0
    assert_same(read(tmp_path / "out.parquet"), expected, exact=True)
    assert pq.read_schema(tmp_path / "out.parquet").names == output_schema(bundle).names


@pytest.mark.parametrize("fmt, encoding", [("csv", "utf-8-sig"), ("csv", "gbk"), ("csv.gz", "utf-8"),
                                           ("parquet", None)])
def test_chunks_stay_bounded(tmp_path, bundle, features, expected, monkeypatch, fmt, encoding):
    src = tmp_path / f"features.{fmt}"
    if fmt == "parquet":
        features.to_parquet(src, index=False, row_group_size=70)
    else:
        features.to_csv(src, index=False, encoding=encoding)
    seen = []
    real = scoring.score_chunk
    monkeypatch.setattr(scoring, "score_chunk", lambda b, frame: seen.append(len(frame)) or real(b, frame))
    out = tmp_path / ("out.csv" if fmt == "parquet" else "out.parquet")
    stats = score_file(bundle, src, out, chunk_rows=64, progress=False)
    assert max(seen) <= 64 and sum(seen) == len(features) == stats.rows and stats.chunks == len(seen)
    assert_same(read(out), expected, exact=False)
    assert not list(tmp_path.glob(".*.part"))


def test_missing_columns_are_imputed_and_listed(tmp_path, bundle, features):
    src = tmp_path / "partial.csv"
    features.drop(columns=["income", "occupation"]).to_csv(src, index=False)
    assert not is_feature_table(bundle, src)
    stats = score_file(bundle, src, tmp_path / "out.csv", progress=False)
    assert stats.missing == ["income", "occupation"]
    want = scored_frame(bundle, features.assign(income=np.nan, occupation=None))
    assert_same(read(tmp_path / "out.csv"), want, exact=False)


def test_errors_name_the_file_and_leave_nothing_behind(tmp_path, bundle, features):
    bad = tmp_path / "bad.csv"
    frame = features.copy().astype({"income": "object"})  # a model input (age is not one: protected)
    frame.loc[150, "income"] = "abc"
    frame.to_csv(bad, index=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(ScoringError, match="bad.csv") as err:
        score_file(bundle, bad, out, chunk_rows=50, progress=False)
    assert "bad.csv" in err.value.message("zh")
    assert not out.exists() and not list(tmp_path.glob(".*.part"))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ScoringError, match="none of the feature columns"):
        score_file(bundle, tmp_path / "other.csv", out, progress=False)
    with pytest.raises(ScoringError, match="xlsx"):
        score_file(bundle, bad, tmp_path / "out.xlsx", progress=False)
    with pytest.raises(ScoringError, match="does not exist"):
        score_file(bundle, tmp_path / "nope.parquet", out, progress=False)


def test_header_only_file_gives_an_empty_output(tmp_path, bundle, features, expected):
    src = tmp_path / "empty.csv"
    features.iloc[:0].to_csv(src, index=False)
    stats = score_file(bundle, src, tmp_path / "out.parquet", progress=False)
    got = read(tmp_path / "out.parquet")
    assert stats.rows == 0 and len(got) == 0 and list(got.columns) == list(expected.columns)


@pytest.mark.slow
def test_ray_data_recipe_matches_score_chunk(tmp_path, bundle, features):
    """docs/scaling.md's Ray Data recipe (skipped where ray is not installed)."""
    ray = pytest.importorskip("ray")
    ray_data = pytest.importorskip("ray.data")

    class ScoreActor:
        def __init__(self, bundle_path: str):
            import torch

            torch.set_num_threads(1)
            self.bundle = load_bundle(bundle_path)

        def __call__(self, batch):
            return score_chunk(self.bundle, batch)

    src = tmp_path / "features.parquet"
    features.to_parquet(src, index=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}})
    try:
        ds = ray_data.read_parquet(str(src)).select_columns(scoring.input_columns(bundle))
        got = ds.map_batches(ScoreActor, fn_constructor_kwargs={"bundle_path": str(ROOT / "models" / "demo")},
                             batch_format="pandas", batch_size=64, compute=ray_data.ActorPoolStrategy(size=2),
                             num_cpus=0.5).to_pandas()
    finally:
        ray.shutdown()
    want = score_chunk(bundle, features)
    got = got.set_index("customer_id").loc[want["customer_id"]].reset_index()
    assert_same(got, want, exact=False)
