"""The partitioned Parquet lake (issue 19): layout, determinism, reads by key, features over the lake equal to
the in-memory features, training from the feature file equal to training from the tables, CLI paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from profile_core.cli import main
from profile_core.features import build_features_from_frames, feature_file_meta, read_feature_file
from profile_core.lake import (
    LakeError,
    is_lake,
    lake_features,
    partition_of,
    partition_sizes,
    read_customer,
    read_feature_rows,
    read_lake_meta,
    write_demo_lake,
)
from profile_core.synth import generate_portfolio

N, PARTS, SEED = 420, 3, 5


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    path = tmp_path_factory.mktemp("lake") / "demo"
    write_demo_lake(path, N, PARTS, seed=SEED)
    return path


@pytest.fixture(scope="module")
def parts():
    """The partitions as the generator makes them in memory: partition k = generate_portfolio(n_k, seed + k)."""
    first, out = 1, []
    for k, n_k in enumerate(partition_sizes(N, PARTS)):
        out.append(generate_portfolio(n_k, seed=SEED + k, first_id=first).tables())
        first += n_k
    return out


@pytest.fixture(scope="module")
def flat(parts):
    """The same portfolio as one set of in-memory tables."""
    return {t: pd.concat([p[t] for p in parts], ignore_index=True) for t in parts[0]}


@pytest.fixture(scope="module")
def feature_file(lake, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "features.parquet"
    lake_features(lake, out)
    return out


def test_layout_meta_and_partition_contents(lake, parts):
    meta = read_lake_meta(lake)
    assert is_lake(lake) and not is_lake(lake / "customers")
    assert meta["n_customers"] == N and meta["partitions"] == PARTS and meta["seed"] == SEED
    assert meta["months"] == 12 and meta["end"] == "2026-10-31"
    assert meta["tables"] == ["customers", "transactions", "behaviors", "credit_records"]
    assert meta["ranges"] == [[1, 140], [141, 280], [281, 420]]
    for table in meta["tables"]:
        files = sorted(p.relative_to(lake).as_posix() for p in (lake / table).rglob("*.parquet"))
        assert files == [f"{table}/part={k:05d}/data.parquet" for k in range(PARTS)]
        assert meta["rows"][table] == sum(len(p[table]) for p in parts)
    for k, part in enumerate(parts):  # partition k is exactly the generator's slice k, every table
        for table, frame in part.items():
            got = pd.read_parquet(lake / table / f"part={k:05d}" / "data.parquet")
            pd.testing.assert_frame_equal(got, frame)
        ids = set(part["customers"]["customer_id"])
        assert all(set(part[t]["customer_id"]) <= ids for t in ("transactions", "behaviors", "credit_records"))
    md = pq.ParquetFile(lake / "transactions" / "part=00000" / "data.parquet").metadata
    assert md.row_group(0).column(0).compression == "ZSTD"
    assert not list(lake.rglob("*.tmp"))


def test_same_arguments_give_the_same_lake(lake, tmp_path):
    again = tmp_path / "again"
    assert write_demo_lake(again, N, PARTS, seed=SEED) == read_lake_meta(lake)
    for table in ("customers", "credit_records"):
        for k in range(PARTS):
            rel = f"{table}/part={k:05d}/data.parquet"
            assert (again / rel).read_bytes() == (lake / rel).read_bytes()


def test_refuses_a_used_folder_and_impossible_partitions(lake, tmp_path):
    with pytest.raises(LakeError, match="not empty"):
        write_demo_lake(lake, 10, 2)
    with pytest.raises(LakeError, match="5 partitions"):
        write_demo_lake(tmp_path / "x", 4, 5)
    with pytest.raises(LakeError, match="no _lake.json"):
        read_lake_meta(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "_lake.json").write_text("{", encoding="utf-8")
    with pytest.raises(LakeError, match="cannot be read"):
        read_lake_meta(tmp_path / "bad")
    assert partition_sizes(10, 3) == [4, 3, 3]


def test_partition_of_uses_the_id_ranges(lake):
    meta = read_lake_meta(lake)
    assert [partition_of(meta, c) for c in ("C000001", "C000140", "C000141", "C000420")] == [0, 0, 1, 2]
    assert partition_of(meta, "C000421") is None and partition_of(meta, "abc") is None
    assert partition_of({**meta, "ranges": None}, "C000001") is None


@pytest.mark.parametrize("customer_id", ["C000007", "C000300"])
def test_one_customer_by_key_equals_the_flat_rows(lake, flat, customer_id):
    got = read_customer(lake, customer_id)
    assert list(got) == ["customers", "transactions", "behaviors", "credit_records"]
    for table, frame in got.items():
        expected = flat[table][flat[table]["customer_id"] == customer_id].reset_index(drop=True)
        assert len(expected) > 0
        pd.testing.assert_frame_equal(frame, expected)


def test_unknown_customer_gives_empty_tables(lake, flat):
    got = read_customer(lake, "C999999", ("customers", "transactions"))
    assert [len(f) for f in got.values()] == [0, 0]
    assert list(got["transactions"].columns) == list(flat["transactions"].columns)


@pytest.mark.parametrize("per_partition", [True, False])
def test_lake_features_equal_the_in_memory_features(lake, flat, tmp_path, per_partition):
    out = tmp_path / "f.parquet"
    summary = lake_features(lake, out, per_partition=per_partition, memory_limit="500MB", threads=1)
    expected = build_features_from_frames(flat)
    assert summary["rows"] == N and summary["columns"] == expected.shape[1] and summary["as_of"] == "2026-10-31"
    got = read_feature_file(out)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected)  # exact: values, dtypes, order by customer id
    assert got.attrs == expected.attrs == {"as_of": "2026-10-31"}
    assert feature_file_meta(out)["as_of"] == "2026-10-31"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]  # no scratch, spill or temporary left


def test_feature_rows_by_key_with_a_reference_sample(feature_file):
    full = read_feature_file(feature_file)
    got = read_feature_rows(feature_file, ["C000200"], sample=50, seed=1)
    assert len(got) == 51 and got["customer_id"].iloc[0] == "C000200"
    assert got["customer_id"].is_unique and set(got["customer_id"]) <= set(full["customer_id"])
    pd.testing.assert_frame_equal(got.iloc[:1].reset_index(drop=True),
                                  full[full["customer_id"] == "C000200"].reset_index(drop=True))
    again = read_feature_rows(feature_file, ["C000200"], sample=50, seed=1)
    assert again["customer_id"].tolist() == got["customer_id"].tolist()  # seeded
    with pytest.raises(LakeError, match="not a feature table"):
        read_feature_rows(feature_file.parent / "nope.parquet", ["C000001"])


def test_training_from_the_feature_file_equals_training_from_the_tables(flat, feature_file, tmp_path):
    import torch
    from safetensors.torch import load_file

    from profile_core.bundle import load_bundle, read_manifest
    from profile_core.pipeline import train_and_save
    from profile_core.scoring import score_chunk

    tables = tmp_path / "tables"
    tables.mkdir()
    for name, frame in flat.items():
        frame.to_parquet(tables / f"{name}.parquet", index=False)
    a = train_and_save(tables, tmp_path / "from_tables", epochs=2, seed=3, device="cpu")
    b = train_and_save(feature_file, tmp_path / "from_features", epochs=2, seed=3, device="cpu")
    assert a["metrics"] == b["metrics"] and a["tasks"] == b["tasks"]
    ma, mb = read_manifest(tmp_path / "from_tables"), read_manifest(tmp_path / "from_features")
    wa, wb = load_file(tmp_path / "from_tables" / "weights.safetensors"), \
        load_file(tmp_path / "from_features" / "weights.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert ma["features"] == mb["features"]  # names and the fitted preprocessor
    assert ma["data"]["as_of"] == mb["data"]["as_of"] == "2026-10-31"
    assert ma["data"]["holdout_ids"] == mb["data"]["holdout_ids"]
    features = read_feature_file(feature_file)
    pd.testing.assert_frame_equal(score_chunk(load_bundle(tmp_path / "from_tables"), features),
                                  score_chunk(load_bundle(tmp_path / "from_features"), features))


def test_chunked_training_matrix_equals_one_transform(flat):
    from profile_core.features import Preprocessor, split_columns
    from profile_core.train import transform_rows

    frame = build_features_from_frames(flat)
    numeric, categorical = split_columns(frame)
    pre = Preprocessor("ple", 8).fit(frame, numeric, categorical)
    whole = pre.transform(frame)
    chunked = transform_rows(pre, frame, chunk_rows=100)
    assert chunked.dtype == np.float32 and chunked.shape == whole.shape
    np.testing.assert_array_equal(chunked, whole)


def test_cli_lake_features_train_explain_and_card(tmp_path, capsys):
    lake, feats, bundle = tmp_path / "lake", tmp_path / "features.parquet", tmp_path / "bundle"
    assert main(["demo-data", "--customers", "300", "--partitions", "2", "--seed", "9", "--out", str(lake)]) == 0
    assert read_lake_meta(lake)["ranges"] == [[1, 150], [151, 300]]
    assert "300 customers in 2 partitions" in capsys.readouterr().out
    assert main(["features", "--data", str(lake), "--out", str(feats), "--memory-limit", "500MB"]) == 0
    assert "300 customers × " in capsys.readouterr().out
    assert len(read_feature_file(feats)) == 300
    assert main(["features", "--data", str(lake), "--out", str(tmp_path / "f.csv")]) == 2
    assert main(["train", "--data", str(feats), "--epochs", "1", "--device", "cpu", "--out", str(bundle),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["metrics"]["test"]["default"]["n"] == 45
    assert main(["train", "--data", str(lake), "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "b2"),
                 "--json"]) == 0  # a lake: its features built into a scratch file first, the same model
    assert json.loads(capsys.readouterr().out)["metrics"] == summary["metrics"]
    out = tmp_path / "global.csv"
    assert main(["explain", "--bundle", str(bundle), "--data", str(feats), "--global", str(out),
                 "--sample", "100"]) == 0
    printed = capsys.readouterr().out
    assert "customers explained: 100 of 300 (stratified by pd_grade (proportional))" in printed
    how = json.loads((tmp_path / "global.csv.sample.json").read_text(encoding="utf-8"))
    assert how["sample"] == 100 and how["population"] == 300 and sum(how["strata"].values()) == 100
    assert len(pd.read_csv(out)) > 10
    assert main(["--lang", "en", "explain", "--bundle", str(bundle), "--data", str(lake), "--features", str(feats),
                 "--customer", "C000200"]) == 0
    card = capsys.readouterr().out
    assert card.startswith("== C000200") and "Scorecard points" in card
    assert main(["--lang", "en", "explain", "--bundle", str(bundle), "--data", str(lake), "--customer",
                 "C000200"]) == 2
    assert "is not a feature table" in capsys.readouterr().err


def test_api_profiles_from_a_lake_read_one_customer(lake, flat, feature_file, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    import profile_core.lake as lake_module
    from profile_core.pipeline import train_and_save
    from profile_core.service import create_app

    train_and_save(feature_file, tmp_path / "bundle", epochs=1, seed=1, device="cpu")
    seen = []
    real = lake_module.read_customer
    monkeypatch.setattr(lake_module, "read_customer", lambda path, cid, *a, **k: seen.append(cid) or real(path, cid))
    client = TestClient(create_app(tmp_path / "bundle", lake=lake, features=feature_file))
    assert client.get("/healthz").json()["dataset"] == "demo"
    r = client.get("/v1/customers/C000150/profile", params={"lang": "en"})
    assert r.status_code == 200, r.text
    body = r.json()
    txns = flat["transactions"][flat["transactions"]["customer_id"] == "C000150"]
    assert body["customer_id"] == "C000150" and body["as_of"].startswith("2026-10-31")
    flows = pd.DataFrame(body["monthly_flows"])
    assert len(flows) == 12  # the customer's own 12 months, read from the lake
    assert flows["inflow"].sum() + flows["outflow"].sum() == pytest.approx(txns["amount"].abs().sum())
    assert seen == ["C000150"]  # one customer read by key, nothing else
    assert client.get("/v1/customers/C009999/profile").status_code == 404
