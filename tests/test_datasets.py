"""Public-data adapters: decoding, labels on hand-checked rows, no label leaks, full files when present."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_core.datasets import SAMPLE_DATASETS, DatasetError, load_dataset
from profile_core.datasets.base import COLUMN_CATEGORIES, SAMPLES_DIR, shared_candidates
from profile_core.datasets.census import load_census
from profile_core.datasets.taiwan import RISK_CLASSES, load_taiwan, risk_class
from profile_core.tasks import encode_labels

TAIWAN_SAMPLE = SAMPLES_DIR / "taiwan_sample.csv"
CENSUS_SAMPLE = SAMPLES_DIR / "census_sample.csv.gz"
TAIWAN_FULL = next((p for p in shared_candidates("taiwan_default/UCI_Credit_Card.csv") if p.is_file()), None)
CENSUS_FULL = next((p for p in shared_candidates("census_income_kdd/census-income.test.gz") if p.is_file()), None)


@pytest.fixture(scope="module")
def taiwan():
    return load_taiwan(TAIWAN_SAMPLE)


def test_samples_are_small_and_shipped():
    for p in (TAIWAN_SAMPLE, CENSUS_SAMPLE):
        assert p.is_file() and p.stat().st_size < 300_000, p


def test_taiwan_sample_decodes_columns(taiwan):
    f = taiwan.frame
    assert len(f) == 2000 and f["customer_id"].is_unique
    assert set(f["gender"]) == {"男", "女"}
    assert set(f["education"]) <= {"研究生", "大学", "高中", "其他"}
    assert set(f["marital_status"]) <= {"已婚", "单身", "其他"}
    for c in ["age", *[f"pay_status_m{i}" for i in range(2, 7)], *[f"bill_amt_m{i}" for i in range(1, 7)],
              *[f"pay_amt_m{i}" for i in range(1, 7)], "utilisation_m1"]:
        assert pd.api.types.is_numeric_dtype(f[c]), c
    assert not any(c.upper().startswith(("PAY_0", "LIMIT_BAL")) for c in f.columns)


def test_taiwan_hand_checked_rows(taiwan):
    f = taiwan.frame.set_index("customer_id")
    # UCI row ID 1: LIMIT_BAL 20000, SEX 2, EDUCATION 2, MARRIAGE 1, AGE 24, PAY_0 2, PAY_2 2, default 1
    r = f.loc["TW00001"]
    assert (r["gender"], r["education"], r["marital_status"], r["age"]) == ("女", "大学", "已婚", 24)
    assert r["credit_limit"] == 20000 and r["credit_limit_log"] == pytest.approx(np.log(20000))
    assert r["repay_risk"] == "2" and r["default_flag"] == 1 and r["pay_status_m2"] == 2
    assert r["bill_amt_m1"] == 3913 and r["utilisation_m1"] == pytest.approx(3913 / 20000)
    # ID 2: PAY_0 -1 → class ≤0; MARRIAGE 2 → 单身
    r = f.loc["TW00002"]
    assert r["repay_risk"] == "≤0" and r["marital_status"] == "单身" and r["pay_status_m6"] == 2
    y = encode_labels(taiwan.frame.iloc[:2], taiwan.tasks, standardize=False)
    assert y["repay_risk"].tolist() == [2, 0]
    assert y["default"].tolist() == [1.0, 1.0]


def test_risk_class_grouping():
    got = risk_class(pd.Series([-2, -1, 0, 1, 2, 3, 8]))
    assert got.tolist() == ["≤0", "≤0", "≤0", "1", "2", "≥3", "≥3"]
    assert RISK_CLASSES == ("≤0", "1", "2", "≥3")


def test_taiwan_tasks_and_no_label_leaks(taiwan):
    assert [(t.name, t.label, t.kind) for t in taiwan.tasks] == [
        ("credit_limit", "credit_limit_log", "regression"), ("default", "default_flag", "binary"),
        ("repay_risk", "repay_risk", "multiclass")]
    risk = taiwan.tasks[2]
    assert risk.n_classes == 4 and risk.ordered
    features = set(taiwan.features)
    assert not features & {*taiwan.labels, "credit_limit", "utilisation_m1", "customer_id"}
    assert set(taiwan.display_only) == {"credit_limit", "utilisation_m1", "limit_band"}
    assert set(taiwan.numeric).isdisjoint(taiwan.categorical)
    assert set(taiwan.features) <= set(taiwan.frame.columns)
    assert set(taiwan.feature_frame().columns) == {"customer_id", *taiwan.features, *taiwan.labels}


def test_taiwan_limit_band_is_quintiles_of_the_credit_limit(taiwan):
    from profile_core.datasets.taiwan import LIMIT_BAND_TASK, limit_band

    got = limit_band(pd.Series([float(v) for v in range(1, 11)]))
    assert got.tolist() == ["B1", "B1", "B2", "B2", "B3", "B3", "B4", "B4", "B5", "B5"]
    band = taiwan.frame["limit_band"]
    assert set(band) <= set(LIMIT_BAND_TASK.classes) and LIMIT_BAND_TASK.ordered
    limit = taiwan.frame["credit_limit"]
    assert limit[band == "B1"].max() <= limit[band == "B5"].min()  # bands are ordered by the limit
    assert "limit_band" not in taiwan.features


def test_columns_have_names_and_categories(taiwan):
    for bundle in (taiwan, load_census(CENSUS_SAMPLE)):
        for c in bundle.frame.columns:
            zh, en, cat = bundle.columns[c]
            assert zh and en and cat in COLUMN_CATEGORIES, c
        assert bundle.source and bundle.licence == "CC BY 4.0"


def test_census_sample_group1():
    b = load_census(CENSUS_SAMPLE)
    assert len(b.frame) == 2000 and b.frame["income_50k"].sum() == 124
    assert [t.name for t in b.tasks] == ["income_50k", "never_married"]
    assert not set(b.features) & {"marital_stat", "instance_weight", "income_50k", "never_married", "college"}
    assert len(b.features) == 39  # 42 fields less marital_stat, instance_weight and the income label
    assert (b.frame["never_married"] == (b.frame["marital_stat"] == "Never married")).all()
    assert b.frame["income_50k"].isin([0, 1]).all()


def test_census_group2_hides_education():
    b = load_census(CENSUS_SAMPLE, group=2)
    assert [t.name for t in b.tasks] == ["college", "never_married"]
    assert not set(b.features) & {"education", "hs_college", "marital_stat", "income_50k"}
    with pytest.raises(DatasetError):
        load_census(CENSUS_SAMPLE, group=3)


def test_registry_and_errors(tmp_path):
    assert set(SAMPLE_DATASETS) == {"taiwan", "census"}
    with pytest.raises(DatasetError):
        load_dataset("nope")
    with pytest.raises(FileNotFoundError):
        load_taiwan(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="lacks the columns"):
        load_taiwan(bad)


def test_default_path_falls_back_to_sample(monkeypatch, tmp_path):
    import profile_core.datasets.base as base

    monkeypatch.setattr(base, "shared_candidates", lambda rel: [tmp_path / rel])
    b = load_taiwan()
    assert b.is_sample and Path(b.path) == TAIWAN_SAMPLE


@pytest.mark.skipif(TAIWAN_FULL is None, reason="../shared/datasets/taiwan_default absent")
def test_taiwan_full_file():
    b = load_taiwan()
    assert not b.is_sample and len(b.frame) == 30_000
    assert b.frame["default_flag"].mean() == pytest.approx(0.2212, abs=5e-5)
    assert b.frame["repay_risk"].value_counts().to_dict() == {"≤0": 23182, "1": 3688, "2": 2667, "≥3": 463}


@pytest.mark.skipif(CENSUS_FULL is None, reason="../shared/datasets/census_income_kdd absent")
def test_census_full_file():
    b = load_census()
    assert not b.is_sample and len(b.frame) == 99_762
    assert int(b.frame["income_50k"].sum()) == 6_186
    assert int(b.frame["never_married"].sum()) == 43_143
