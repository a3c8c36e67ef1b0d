"""The global explanation's stratified sample drawn by streaming a feature file (issue 19): the same customers,
per-stratum sizes and explanation numbers as the in-memory path, reproducible by seed, one batch at a time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import profile_core.scoring as scoring
from profile_core.bundle import load_bundle
from profile_core.cli import main
from profile_core.explain import HeadExplainer, global_importance, to_attributes
from profile_core.explain_sample import (
    allocate,
    background_positions,
    explanation_sample,
    read_positions,
    stream_explanation_sample,
)
from profile_core.features import read_feature_file
from profile_core.lake import lake_features, write_demo_lake
from profile_core.pipeline import scored_frame

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "demo"
N, SAMPLE, BATCH = 900, 120, 170  # batches of 170 rows cross the file's 200-row row groups


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE)


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain-stream")
    write_demo_lake(tmp / "lake", N, 2, seed=11)
    lake_features(tmp / "lake", tmp / "whole.parquet")
    out = tmp / "features.parquet"
    pq.write_table(pq.read_table(tmp / "whole.parquet"), out, row_group_size=200)  # keeps the feature metadata
    return out


@pytest.fixture(scope="module")
def lake(feature_file):
    return feature_file.parent / "lake"


@pytest.fixture(scope="module")
def frame(feature_file):
    return read_feature_file(feature_file)


def test_allocate_is_proportional_by_largest_remainder():
    assert allocate({"A": 5, "B": 3, "C": 2}, 5) == {"A": 3, "B": 1, "C": 1}  # 2.5/1.5/1.0: the tie to A
    assert allocate({"C": 2, "B": 3, "A": 5}, 5) == {"A": 3, "B": 1, "C": 1}  # order of the counts is irrelevant
    assert allocate({"A": 1, "B": 98, "C": 1}, 10) == {"A": 0, "B": 10, "C": 0}
    assert allocate({"A": 60, "B": 30, "C": 10}, 7) == {"A": 4, "B": 2, "C": 1}  # 4.2/2.1/0.7
    assert allocate({"A": 2, "B": 1}, 10) == {"A": 2, "B": 1}  # never more than the population
    assert allocate({}, 3) == {}


def test_streamed_sample_equals_the_in_memory_sample(bundle, feature_file, frame):
    drawn = stream_explanation_sample(bundle, feature_file, SAMPLE, seed=4, batch_rows=BATCH)
    rows, info = explanation_sample(bundle, frame, SAMPLE, seed=4)
    assert drawn.info == info
    assert info["method"] == "stratified by pd_grade (proportional)"
    assert info["sample"] == SAMPLE and info["population"] == N and info["seed"] == 4
    grades = scored_frame(bundle, frame)["pd_grade"].astype(str)
    expected = {k: v for k, v in allocate(grades.value_counts().to_dict(), SAMPLE).items() if v}
    assert info["strata"] == expected and sum(expected.values()) == SAMPLE
    sampled = grades.iloc[rows.index.to_numpy()].value_counts().to_dict()
    assert sampled == expected
    pd.testing.assert_frame_equal(drawn.rows, rows)  # same customers, columns, dtypes, order
    assert drawn.max_batch_rows == BATCH


def test_same_seed_same_customers_other_seed_others(bundle, feature_file):
    ids = [stream_explanation_sample(bundle, feature_file, SAMPLE, seed=s, batch_rows=BATCH).rows["customer_id"]
           .tolist() for s in (7, 7, 8)]
    assert ids[0] == ids[1] and len(set(ids[0])) == SAMPLE
    assert len(set(ids[0]) & set(ids[2])) < SAMPLE // 2
    other = stream_explanation_sample(bundle, feature_file, SAMPLE, seed=7, batch_rows=333).rows["customer_id"]
    assert other.tolist() == ids[0]  # the batch size does not change the sample


def test_explanation_numbers_equal_the_in_memory_explanation(bundle, feature_file, frame):
    drawn = stream_explanation_sample(bundle, feature_file, 40, seed=2, batch_rows=BATCH)
    pd.testing.assert_frame_equal(drawn.background, HeadExplainer_background(frame))
    rows = frame[frame["customer_id"].isin(drawn.rows["customer_id"])]
    whole = HeadExplainer(bundle, frame)
    streamed = HeadExplainer(bundle, drawn.background)
    assert streamed.method == whole.method
    a = to_attributes(whole.explain(rows), bundle.preprocessor, rows)
    b = to_attributes(streamed.explain(drawn.rows), bundle.preprocessor, drawn.rows)
    for task in a.values:
        pd.testing.assert_frame_equal(b.values[task], a.values[task], rtol=1e-12)
    pd.testing.assert_frame_equal(global_importance(b), global_importance(a), rtol=1e-12)


def HeadExplainer_background(frame):  # noqa: N802 - the background HeadExplainer(bundle, frame) takes
    from profile_core.explain import background_rows

    return background_rows(frame, 100, 0)


def test_read_positions_types_rows_as_the_whole_file(feature_file, frame):
    positions = np.array([0, 5, 199, 200, 201, 640, N - 1])
    pd.testing.assert_frame_equal(read_positions(feature_file, positions), frame.iloc[positions])
    assert list(background_positions(N)) == list(HeadExplainer_background(frame).index)


def test_quintile_strata_without_a_pd_head(bundle, feature_file, frame, monkeypatch):
    real = scoring.score_chunk

    def no_pd(b, chunk):  # a model whose first binary head is wm_purchase, without a PD head
        return real(b, chunk)[["customer_id", "wm_purchase_prob"]]

    monkeypatch.setattr(scoring, "score_chunk", no_pd)
    drawn = stream_explanation_sample(bundle, feature_file, SAMPLE, seed=1, batch_rows=BATCH)
    rows, info = explanation_sample(bundle, frame, SAMPLE, seed=1)
    assert drawn.info == info and info["method"] == "stratified by wm_purchase_prob quintile (proportional)"
    codes = pd.qcut(scored_frame(bundle, frame)["wm_purchase_prob"], 5, labels=False)
    assert info["strata"] == {str(k): v for k, v in allocate(codes.value_counts().to_dict(), SAMPLE).items()}
    assert set(info["strata"].values()) == {SAMPLE // 5}
    pd.testing.assert_frame_equal(drawn.rows, rows)


def _cli_global(data, tmp_path, capsys) -> tuple[pd.DataFrame, dict, str]:
    """``explain --global`` of ``data`` with ``--sample SAMPLE``: the importance table, the sample statement
    written beside it and what the command printed."""
    out = tmp_path / "global.csv"
    assert main(["explain", "--bundle", str(BUNDLE), "--data", str(data), "--global", str(out),
                 "--sample", str(SAMPLE)]) == 0
    how = json.loads(Path(f"{out}.sample.json").read_text(encoding="utf-8"))
    return pd.read_csv(out), how, capsys.readouterr().out


def test_cli_global_explanation_streams_a_feature_file(bundle, feature_file, frame, tmp_path, capsys, monkeypatch):
    import profile_core.pipeline as pipeline

    def no_frame(*a, **k):
        raise AssertionError("the global explanation of a feature file read the whole frame")

    monkeypatch.setattr(pipeline, "feature_source", no_frame)
    table, how, printed = _cli_global(feature_file, tmp_path, capsys)
    assert f"customers explained: {SAMPLE} of {N} (stratified by pd_grade (proportional))" in printed
    assert how == explanation_sample(bundle, frame, SAMPLE, seed=0)[1]
    assert len(table) > 10 and set(table.columns) >= {"attribute", "default", "default_raw"}


def test_a_file_no_larger_than_the_sample_is_explained_whole(bundle, feature_file, frame):
    drawn = stream_explanation_sample(bundle, feature_file, N, batch_rows=BATCH)
    assert drawn.info == {"method": "all", "sample": N, "population": N} == explanation_sample(bundle, frame, N)[1]
    pd.testing.assert_frame_equal(drawn.rows, frame)
    pd.testing.assert_frame_equal(drawn.background, HeadExplainer_background(frame))


def test_cli_global_explanation_of_a_lake_streams_its_features(lake, bundle, frame, tmp_path, capsys):
    table, how, printed = _cli_global(lake, tmp_path, capsys)
    assert f"customers explained: {SAMPLE} of {N}" in printed
    assert how == explanation_sample(bundle, frame, SAMPLE, seed=0)[1]
    assert len(table) > 10
