"""Your labels, your tasks: declared labels drive training; no declared label, no column tied to a trained label
by derivation and no protected attribute is ever an input; degenerate labels are refused; a model is bound
to its data; the CLI never shows a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profile_core.bundle import check_inputs, load_bundle, require_inputs
from profile_core.pipeline import DataSource, label_lineage, train_and_save, training_plan
from profile_core.tasks import EngineError, declared_tasks, propose_role, task_id
from profile_core.train import feature_columns

ROOT = Path(__file__).resolve().parents[1]
TAIWAN = ROOT.parent / "shared" / "datasets" / "taiwan_default" / "UCI_Credit_Card.csv"
OWN_LABELS = ROOT / "profile_core" / "samples" / "mappings" / "taiwan_own_labels.yaml"

# label names a bank might use: dots, spaces, 中文, punctuation
NAMES = st.text(alphabet=st.sampled_from(list("abcXYZ._- 违约评分等级01")), min_size=1, max_size=12).filter(
    lambda s: s.strip() and s.strip() not in ("customer_id",))


def _frame(n: int, rng: np.random.Generator, labels: list[str], features: int) -> pd.DataFrame:
    data = {"customer_id": [f"C{i:05d}" for i in range(n)]}
    for j in range(features):
        data[f"f{j}"] = rng.normal(size=n)
    for k, name in enumerate(labels):
        data[name] = rng.integers(0, 2, n) if k % 2 else rng.normal(600, 50, n)
    return pd.DataFrame(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(NAMES, min_size=1, max_size=5, unique_by=str.strip), data=st.data())
def test_no_declared_label_or_derivative_is_ever_an_input(names, data) -> None:
    names = list(dict.fromkeys(n.strip() for n in names))
    rng = np.random.default_rng(0)
    frame = _frame(200, rng, names, 3)
    # a mapping that derives columns from labels (a band of a label) and labels from features (f0 → band)
    derived_from_label = {f"{names[0]} band": names[0]}
    frame[f"{names[0]} band"] = pd.cut(frame[names[0]], 3, labels=False)
    label_from_feature = "f0 band"
    frame[label_from_feature] = (frame["f0"] > 0).astype(int)
    labels = {n: "" for n in names} | {label_from_feature: "binary"}
    mapping = {"tables": [{"columns": [{"source": c} for c in frame.columns], "derived": [
        {"name": k, "source": v, "role": "feature"} for k, v in derived_from_label.items()] + [
        {"name": label_from_feature, "source": "f0", "role": "label"}]}]}
    source = DataSource({"customers": frame}, labels, lineage=label_lineage(mapping, labels))
    chosen = data.draw(st.lists(st.sampled_from(list(labels)), min_size=1, unique=True))
    tasks, config = training_plan(source, frame, tasks=chosen)
    numeric, categorical = feature_columns(frame, tasks, None, None, config)
    inputs = set(numeric) | set(categorical)
    assert not inputs & set(labels), "a declared label became an input"
    assert not inputs & set(derived_from_label), "a column derived from a label became an input"
    if label_from_feature in chosen:
        assert "f0" not in inputs  # the source of a trained label would hand the model its answer
    else:
        assert "f0" in inputs  # ... but stays an input while that label is not trained
    assert {t.label for t in tasks} == set(chosen) and len({t.name for t in tasks}) == len(tasks)


def test_any_label_name_gets_a_safe_id_and_keeps_its_name() -> None:
    rng = np.random.default_rng(1)
    names = ["default.payment.next.month", "年 收入", "fico score", "1st.class"]
    frame = _frame(300, rng, names, 2)
    tasks = declared_tasks(frame, {n: "" for n in names})
    assert [t.label for t in tasks] == names  # displayed as written
    assert [t.name for t in tasks] == ["default_payment_next_month", "年_收入", "fico_score", "t_1st_class"]
    assert [t.display("en") for t in tasks] == names
    assert task_id("a.b", taken=["a_b"]) == "a_b_2"
    with pytest.raises(EngineError, match="not a label declared"):
        declared_tasks(frame, {n: "" for n in names}, chosen=["nope"])


@pytest.mark.parametrize(("label", "kind", "role"), [
    ("default.payment.next.month", "binary", "pd"), ("not.fully.paid", "binary", "pd"), ("违约", "binary", "pd"),
    ("y", "binary", "generic"), ("fico", "regression", "score"), ("LIMIT_BAL", "regression", "generic"),
    ("风险等级", "multiclass", "grade"), ("PAY_0 band", "multiclass", "generic"), ("default", "regression", "generic"),
])
def test_roles_are_proposed_from_name_and_kind(label, kind, role) -> None:
    assert propose_role(label, kind) == role


def test_degenerate_labels_are_refused_before_training() -> None:
    rng = np.random.default_rng(2)
    frame = _frame(400, rng, ["x"], 3)
    frame["rare"] = 0
    frame.loc[:2, "rare"] = 1  # 3 positives
    frame["flat"] = 5.0
    source = DataSource({"customers": frame}, {"rare": "binary", "flat": "regression"})
    with pytest.raises(EngineError, match=r"Label rare has too few examples.*0: 397, 1: 3"):
        train_and_save(source, "/tmp/never-written", tasks=["rare"], epochs=1)
    with pytest.raises(EngineError, match="Label flat does not vary"):
        train_and_save(source, "/tmp/never-written", tasks=["flat"], epochs=1)
    assert not Path("/tmp/never-written").exists()


@pytest.fixture(scope="module")
def taiwan_ws(tmp_path_factory):
    if not TAIWAN.exists():
        pytest.skip("../shared/datasets/taiwan_default is not here")
    from profile_core.ingest import Mapping, load_into_workspace
    from profile_core.store import Workspace

    path = tmp_path_factory.mktemp("tw") / "ws.duckdb"
    sample = pd.read_csv(TAIWAN, nrows=3000)
    csv = path.parent / "UCI_Credit_Card.csv"
    sample.to_csv(csv, index=False)
    ws = Workspace(path)
    result = load_into_workspace([(csv.name, csv)], ws, dataset="taiwan", mapping=Mapping.load(OWN_LABELS))
    ws.close()
    assert result.version is not None, result.report.summary("en")
    return path


def test_taiwan_trains_its_own_label_names_with_roles(taiwan_ws, tmp_path) -> None:
    summary = train_and_save("workspace:taiwan", tmp_path / "tw", workspace=taiwan_ws, epochs=3)
    got = {t["label"]: (t["kind"], t["role"]) for t in summary["tasks"]}
    assert got == {"LIMIT_BAL": ("regression", "generic"), "default.payment.next.month": ("binary", "pd"),
                   "PAY_0 band": ("multiclass", "generic")}
    bundle = load_bundle(tmp_path / "tw")
    band = next(t for t in bundle.tasks if t.label == "PAY_0 band")
    assert band.classes == ("≤0", "1", "2", "≥3") and band.ordered  # the mapping's bin order, scored as grades
    assert "qwk" in bundle.metrics["test"][band.name]
    inputs = set(bundle.preprocessor.numeric) | set(bundle.preprocessor.categorical)
    assert not inputs & {"LIMIT_BAL", "default.payment.next.month", "PAY_0 band", "PAY_0", "gender", "age",
                         "marital_status"}
    assert summary["excluded_inputs"]["PAY_0"] == "label" and summary["excluded_inputs"]["gender"] == "protected"
    assert bundle.manifest["data"]["source"] == "taiwan" and len(bundle.manifest["data"]["holdout_ids"]) == 450
    for split in ("val", "test"):  # no NaN metric on success
        for values in bundle.metrics[split].values():
            assert all(v is not None and np.isfinite(v) for v in values.values())


def test_demo_model_is_refused_on_the_taiwan_file(taiwan_ws) -> None:
    from profile_core.features import build_features_from_frames
    from profile_core.pipeline import load_source

    demo = load_bundle(ROOT / "models" / "demo")
    frame = build_features_from_frames(load_source("workspace:taiwan", workspace=taiwan_ws).tables)
    found = check_inputs(demo, frame, source="taiwan")
    assert len(found.missing) > 40 and found.n_inputs == len(demo.preprocessor.numeric) + len(
        demo.preprocessor.categorical)
    with pytest.raises(EngineError, match=r"cannot score this data: it lacks \d+ of the model's \d+ inputs"):
        require_inputs(demo, frame)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profile_core", "--lang", "en", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=300)


def test_cli_train_prints_a_table_and_strict_json(taiwan_ws, tmp_path) -> None:
    out = _cli("train", "--data", "workspace:taiwan", "--workspace", str(taiwan_ws), "--epochs", "2",
               "--task", "default.payment.next.month", "--out", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    assert "default.payment.next.month" in out.stdout and "probability of default" in out.stdout
    assert "protected attribute" in out.stdout and "Traceback" not in out.stderr
    out = _cli("train", "--data", "workspace:taiwan", "--workspace", str(taiwan_ws), "--epochs", "2", "--json",
               "--task", "LIMIT_BAL:regression", "--out", str(tmp_path / "m2"))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)  # valid JSON: no bare NaN
    assert [t["label"] for t in summary["tasks"]] == ["LIMIT_BAL"]


def test_cli_hybrid_heads_on_the_banks_own_labels(taiwan_ws, tmp_path) -> None:
    """`train --hybrid blend` on the Taiwan file's own label names: each head blends with its LightGBM, the
    bundle loads, scores and explains additively; Ray training refuses the option in one sentence."""
    from profile_core.explain import explain
    from profile_core.features import build_features_from_frames
    from profile_core.pipeline import load_source

    out = _cli("train", "--data", "workspace:taiwan", "--workspace", str(taiwan_ws), "--epochs", "3", "--json",
               "--hybrid", "blend", "--task", "default.payment.next.month", "--task", "LIMIT_BAL:regression",
               "--out", str(tmp_path / "hyb"))
    assert out.returncode == 0, out.stderr
    bundle = load_bundle(tmp_path / "hyb")
    shares = {t: v["weight"] for t, v in bundle.manifest["hybrid"].items()}
    assert len(shares) == 2 and all(0.0 <= w <= 1.0 for w in shares.values())
    frame = build_features_from_frames(load_source("workspace:taiwan", workspace=taiwan_ws).tables)
    expl = explain(bundle, frame.iloc[:5], background=frame, n_background=30)
    scale = {t.name: t.std if t.kind == "regression" else 1.0 for t in bundle.tasks}  # errors in label units
    assert all(err < 1e-6 * max(1.0, scale[name]) for name, err in expl.additivity_error.items())
    refused = _cli("train", "--data", "workspace:taiwan", "--workspace", str(taiwan_ws), "--engine", "ray",
                   "--hybrid", "blend", "--out", str(tmp_path / "ray"))
    assert refused.returncode == 2 and "Ray training does not support --hybrid blend" in refused.stderr
    assert "Traceback" not in refused.stderr


BAD_COMMANDS = [
    ("train", "--data", "workspace:nope", "--out", "x"),
    ("train", "--data", "no/such/folder", "--out", "x"),
    ("score", "--bundle", "no/such/bundle", "--data", "data/demo", "--out", "x.csv"),
    ("explain", "--bundle", "README.md", "--customer", "C1"),
    ("report", "--bundle", "no/bundle", "--customer", "C1", "--out", "x.html"),
    ("features", "--data", "no/such/file.csv"),
    ("load", "no/such/file.csv", "--dataset", "x"),
    ("serve", "--bundle", "no/such/bundle", "--port", "1"),
]


@pytest.mark.parametrize("args", BAD_COMMANDS, ids=lambda a: a[0])
def test_cli_errors_are_one_sentence_without_traceback(args, tmp_path) -> None:
    out = _cli(*args, "--workspace", str(tmp_path / "ws.duckdb"))
    # a refused load prints its validation report and exits 1 (a report with errors); everything else 2
    assert out.returncode == (1 if args[0] == "load" else 2), (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.strip() or out.stdout.strip()


def test_reason_codes_never_cite_a_protected_attribute() -> None:
    """Even a model given gender and age (an older bundle: the shipped demo model before this rule) never
    names them as a reason."""
    from profile_core.explain import Explanation, reason_codes
    from profile_core.tasks import TaskSpec

    ids = pd.Index(["C1"])
    values = {"default": pd.DataFrame({"gender": [0.9], "age": [0.5], "income": [0.2], "max_dpd_3m": [-0.1]},
                                      index=ids)}
    names = pd.DataFrame({"zh": ["性别", "年龄", "年收入", "逾期"], "en": ["Gender", "Age", "Income", "DPD"]},
                         index=["gender", "age", "income", "max_dpd_3m"])
    expl = Explanation(values=values, base_values={"default": np.array([0.0])}, outputs={"default": np.array([1.5])},
                       output_kind={"default": "logit"}, explained_class={}, method="deep",
                       inputs=pd.DataFrame({"gender": ["女"], "age": [30], "income": [1e5], "max_dpd_3m": [0]},
                                           index=ids),
                       tasks={"default": TaskSpec("default", "default_flag", "binary")}, level="attribute",
                       features=names)
    codes = reason_codes(expl, None, "C1", "default", lang="en")
    cited = [r.attribute for r in codes.up + codes.down]
    assert cited == ["income", "max_dpd_3m"]


def test_a_flat_loan_file_gets_a_clean_card(taiwan_ws, tmp_path) -> None:
    """No event tables: no event-based tags, no "no events" warning, no flow charts; the headline follows roles
    and names the bank's own labels; generic heads' reasons are not called risk."""
    from profile_core.explain import HeadExplainer
    from profile_core.features import build_features_from_frames
    from profile_core.pipeline import load_source
    from profile_core.privacy import Policy
    from profile_core.profile import CardContext
    from profile_core.report import customer_report
    from profile_core.views import headline_items

    train_and_save("workspace:taiwan", tmp_path / "tw", workspace=taiwan_ws, epochs=2)
    bundle = load_bundle(tmp_path / "tw")
    tables = load_source("workspace:taiwan", workspace=taiwan_ws).tables
    features = build_features_from_frames(tables)
    context = CardContext(tables, features, bundle.predict(features), explainer=HeadExplainer(bundle, features))
    card = context.card("1", policy=Policy("analyst"), lang="en")
    assert not card.has_transactions and not card.has_behaviors
    assert not {t.family for t in card.tags} & {"value", "channel", "engagement", "income", "spending"}
    assert not card.warnings
    items = {i.key: i for i in headline_items(card.outputs, "en")}
    assert items["pd"].label == "Probability of default · default.payment.next.month"
    assert "score" not in items  # no credit score task: nothing is called one
    assert items["task:LIMIT_BAL"].label == "LIMIT_BAL" and "%" in items["task:LIMIT_BAL"].note  # percentile
    assert items["task:PAY_0_band"].label == "PAY_0 band"
    page = customer_report(card, lang="en")
    assert "Pushing the prediction up" in page and "Monthly" not in page and "default_payment_next_month" not in page
