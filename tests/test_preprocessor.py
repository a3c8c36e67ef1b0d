"""The Preprocessor's numeric encodings: piecewise-linear bins (quantiles, or every level of a few-level
column), their names and attribute mapping, the one-hot cap, and round trips (old bundles included)."""

import numpy as np
import pandas as pd
import pytest

from profile_core.features import Preprocessor, piecewise_linear


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 1000
    return pd.DataFrame({"amount": rng.lognormal(8, 1, n), "late": rng.choice([-1, 0, 1, 2, 3], n),
                         "flag": rng.choice([0.0, 1.0], n),
                         "code": rng.choice([f"k{i}" for i in range(40)], n)})


def test_piecewise_linear_values():
    got = piecewise_linear(np.array([-5.0, 0.0, 1.5, 2.0, 3.0, 9.0]), [0.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(got, [[0, 0, 0], [0, 0, 0], [1, 0.5, 0], [1, 1, 0], [1, 1, 0.5], [1, 1, 1]])


def test_ple_columns_edges_and_sources(frame):
    pre = Preprocessor("ple", n_bins=8).fit(frame, ["amount", "late", "flag"], ["code"])
    assert len(pre.edges["amount"]) == 9  # quantile edges of a continuous column
    scaled_late = (np.array([-1, 0, 1, 2, 3]) - pre.mean[1]) / pre.scale[1]
    np.testing.assert_allclose(pre.edges["late"], scaled_late)  # every level of a few-level column
    assert "flag" not in pre.edges  # two levels: the scaled value says it all
    names = pre.output_names
    assert names[:10] == ["amount", *[f"amount#pl{k}" for k in range(8)], "late"]
    assert pre.source_of["late#pl3"] == "late" and "flag#pl0" not in names
    x = pre.transform(frame)
    assert x.shape == (len(frame), len(names))
    late = x[:, [names.index(f"late#pl{k}") for k in range(4)]]
    # a thermometer of the levels (centred on the training means): 2 months late fills the first three bins
    np.testing.assert_allclose(late[frame["late"].to_numpy() == 2][0] + pre.ple_center["late"], [1, 1, 1, 0],
                               atol=1e-6)
    np.testing.assert_allclose(late.mean(axis=0), 0, atol=1e-6)
    back = Preprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(back.transform(frame), x)


def test_standard_is_the_default_and_old_manifests_load(frame):
    pre = Preprocessor().fit(frame, ["amount", "late"], ["code"])
    assert pre.encoding == "standard" and not pre.edges and not any("#pl" in c for c in pre.output_names)
    old = {k: v for k, v in pre.to_dict().items() if k not in {"encoding", "n_bins", "edges", "log"}}
    back = Preprocessor.from_dict(old)
    assert back.encoding == "standard" and back.edges == {}
    with pytest.raises(ValueError, match="numeric encoding"):
        Preprocessor("fourier")


def test_max_categories_widens_the_one_hot(frame):
    narrow = Preprocessor().fit(frame, [], ["code"])
    wide = Preprocessor(max_categories=64).fit(frame, [], ["code"])
    assert len(narrow.output_names) == 20 and len(wide.output_names) == 40
    assert not wide.infrequent["code"]
