"""Streamed (bounded-memory) training from a feature Parquet file: profile_core.stream_train."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from profile_core import train as T
from profile_core.bundle import load_bundle, read_manifest
from profile_core.cli import main
from profile_core.features import feature_file_meta, read_feature_file
from profile_core.lake import lake_features, write_demo_lake
from profile_core.pipeline import data_fingerprint, train_and_save
from profile_core.scoring import score_chunk
from profile_core.stream_train import StreamError, stream_wanted, train_streamed
from profile_core.tasks import encode_labels, task_metrics

N, ROW_GROUP = 3_000, 700


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 3,000-customer feature file in row groups of 700 rows, and 2,000 other customers to evaluate on."""
    root = tmp_path_factory.mktemp("stream")
    write_demo_lake(root / "lake", N, 2, seed=5)
    lake_features(root / "lake", root / "duck.parquet", memory_limit="500MB", threads=1)
    feats = root / "features.parquet"
    pq.write_table(pq.read_table(root / "duck.parquet"), feats, row_group_size=ROW_GROUP)  # keeps the metadata
    write_demo_lake(root / "other", 2_000, 1, seed=77)
    lake_features(root / "other", root / "other.parquet", memory_limit="500MB", threads=1)
    return feats, read_feature_file(root / "other.parquet")


def unseen_metrics(bundle_dir, frame) -> dict[str, dict[str, float]]:
    bundle = load_bundle(bundle_dir)
    preds = T.predict(bundle.model, bundle.preprocessor.transform(frame), bundle.tasks)
    return {t.name: task_metrics(t, encode_labels(frame, [t], standardize=False)[t.name], preds[t.name])
            for t in bundle.tasks}


def test_streamed_training_reaches_fit_on_customers_neither_saw(files, tmp_path):
    feats, other = files
    assert feature_file_meta(feats) is not None and pq.ParquetFile(feats).num_row_groups == 5
    streamed = train_streamed(feats, tmp_path / "streamed", epochs=10, seed=1, device="cpu", chunk_rows=512)
    train_and_save(feats, tmp_path / "fit", epochs=10, seed=1, device="cpu")
    s, f = unseen_metrics(tmp_path / "streamed", other), unseen_metrics(tmp_path / "fit", other)
    # measured on 2,000 unseen customers (seed 1): Δ R² +0.004, Δ AUC default +0.006, wm +0.001, churn +0.008,
    # Δ QWK −0.010; seed 2: all within 0.02
    for task, metric, tolerance in (("credit_score", "r2", 0.03), ("default", "auc", 0.03),
                                    ("wm_purchase", "auc", 0.03), ("churn", "auc", 0.03),
                                    ("risk_level", "qwk", 0.04)):
        assert s[task][metric] > f[task][metric] - tolerance, (task, s[task][metric], f[task][metric])
    assert s["default"]["auc"] > 0.75 and s["credit_score"]["r2"] > 0.65

    stats = streamed["stream"]
    assert stats["rows"] == N and stats["train_rows"] + stats["val_rows"] + stats["test_rows"] == N
    assert stats["fit_rows"] == stats["train_rows"]  # a small file: the fit sample is every training row
    manifest = read_manifest(tmp_path / "streamed")
    assert manifest["split_sizes"] == {"train": stats["train_rows"], "val": stats["val_rows"],
                                       "test": stats["test_rows"]}
    assert manifest["metrics"]["test"]["default"]["n"] == stats["test_rows"]
    assert len(manifest["data"]["holdout_ids"]) == stats["test_rows"]
    assert manifest["data"]["reference"]["rows"] == stats["fit_rows"]
    assert manifest["config"]["hybrid"] == "none" and not manifest["hybrid"]  # streamed: the net alone
    # the fingerprint is the in-memory path's, computed batch by batch
    assert manifest["data_fingerprint"] == data_fingerprint(read_feature_file(feats))
    scored = score_chunk(load_bundle(tmp_path / "streamed"), other.head(50))
    assert len(scored) == 50 and scored["default_prob"].between(0, 1).all()
    assert set(scored["pd_grade"]) <= set("ABCDE")


def test_chunk_size_bounds_what_is_read_and_trained_at_once(files, tmp_path, monkeypatch):
    feats, _ = files
    handed: list[int] = []
    real = T._train_epoch

    def spy(model, weighting, optimizer, X, Y, order, *args, **kwargs):
        handed.append(len(X))
        assert len(order) == len(X)
        return real(model, weighting, optimizer, X, Y, order, *args, **kwargs)

    reads: list[int] = []
    real_iter = pq.ParquetFile.iter_batches

    def iter_spy(self, *args, **kwargs):
        for batch in real_iter(self, *args, **kwargs):
            reads.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(T, "_train_epoch", spy)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", iter_spy)
    summary = train_streamed(feats, tmp_path / "b", epochs=2, seed=3, device="cpu", chunk_rows=300,
                             fit_rows=800, eval_rows=200, settings={"patience": 5})
    stats = summary["stream"]
    assert max(reads) == 300 and stats["max_read_rows"] == 300  # no read of more than chunk_rows rows
    assert max(handed) == 256 == stats["max_chunk_rows"]  # 300 rounded down to whole 256-row batches
    per_epoch = len(handed) // 2
    assert sum(handed[:per_epoch]) == sum(handed[per_epoch:]) == stats["train_rows"]  # every row once per epoch
    assert stats["chunks_per_epoch"] == per_epoch == -(-stats["train_rows"] // 256)
    # the samples are capped, the training rows are not
    assert 150 <= stats["val_rows"] <= 250 and 150 <= stats["test_rows"] <= 250
    assert 700 <= stats["fit_rows"] <= 900 and stats["train_rows"] > 2_400
    assert read_manifest(tmp_path / "b")["data"]["reference"]["rows"] == stats["fit_rows"]


def test_a_seeded_run_is_reproducible(files, tmp_path):
    feats, _ = files
    runs = [train_streamed(feats, tmp_path / name, epochs=2, seed=seed, device="cpu", chunk_rows=512)
            for name, seed in (("a", 4), ("b", 4), ("c", 5))]
    a, b, c = (read_manifest(tmp_path / n) for n in "abc")
    # the tensors, not the file's sha256: safetensors writes its two metadata keys in either order
    wa, wb, wc = (load_file(tmp_path / n / "weights.safetensors") for n in "abc")
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert json.dumps(runs[0]["metrics"], sort_keys=True) == json.dumps(runs[1]["metrics"], sort_keys=True)
    assert a["data"]["holdout_ids"] == b["data"]["holdout_ids"] != c["data"]["holdout_ids"]


def test_labels_missing_on_some_rows(files, tmp_path):
    feats, _ = files
    table = pq.read_table(feats)
    rng = np.random.default_rng(0)
    gone = {"default_flag": rng.random(N) < 0.3, "credit_score": rng.random(N) < 0.2}
    for col, mask in gone.items():
        i = table.schema.get_field_index(col)
        table = table.set_column(i, col, pa.array(table[col].to_pandas().mask(mask), type=table.schema.field(col).type))
    holes = tmp_path / "holes.parquet"
    pq.write_table(table, holes, row_group_size=ROW_GROUP)
    summary = train_streamed(holes, tmp_path / "b", epochs=3, seed=1, device="cpu", chunk_rows=512)
    frame = read_feature_file(holes)
    test_ids = set(read_manifest(tmp_path / "b")["data"]["holdout_ids"])
    in_test = frame["customer_id"].isin(test_ids)
    test = summary["metrics"]["test"]
    assert test["default"]["n"] == int((in_test & frame["default_flag"].notna()).sum()) < summary["stream"]["test_rows"]
    assert test["credit_score"]["n"] == int((in_test & frame["credit_score"].notna()).sum())
    assert test["churn"]["n"] == summary["stream"]["test_rows"]
    assert 0.6 < test["default"]["auc"] <= 1 and np.isfinite(test["credit_score"]["rmse"])
    history = read_manifest(tmp_path / "b")["history"]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in history)


def test_cli_stream_flag_errors_and_the_automatic_switch(files, tmp_path, capsys):
    feats, _ = files
    assert not stream_wanted(feats)  # 3,000 rows: the in-memory path unless --stream
    assert main(["train", "--data", str(feats), "--stream", "--chunk-rows", "1000", "--epochs", "1", "--device",
                 "cpu", "--out", str(tmp_path / "b"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stream"]["max_chunk_rows"] == 768  # 1,000 rounded down to whole 256-row batches
    assert summary["stream"]["max_read_rows"] == 1_000  # the first pass reads 1,000-row batches across row groups
    assert load_bundle(tmp_path / "b").predict(read_feature_file(feats).head(5)).shape[0] == 5
    assert main(["--lang", "en", "train", "--data", str(feats), "--stream", "--baselines", "--out",
                 str(tmp_path / "c")]) == 2
    assert "Streamed training (--stream) does not support --baselines" in capsys.readouterr().err
    plain = tmp_path / "plain.parquet"
    pq.write_table(pq.read_table(feats).replace_schema_metadata(None), plain)
    with pytest.raises(StreamError, match="is not a feature table: streamed training"):
        train_streamed(plain, tmp_path / "d")
    with pytest.raises(StreamError, match="chunk_rows = 0 is not possible"):
        train_streamed(feats, tmp_path / "d", chunk_rows=0)
