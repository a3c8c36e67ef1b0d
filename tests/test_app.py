"""The Streamlit app through ``streamlit.testing.v1.AppTest``: every page renders on a small demo portfolio,
uploads (good and bad), training in the worker thread to completion and cancellation, saving a bundle,
the language switch.

Everything runs against temporary paths: ``PROFILE_WORKSPACE`` (DuckDB), ``PROFILE_DEMO_DATA`` (a 300-customer
portfolio written once per session), ``PROFILE_DEMO_BUNDLE`` (a 1-epoch model) and ``PROFILE_MODELS``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from profile_core.store import Workspace
from ui import keys, registry
from ui.keys import PagePath

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 90  # the first model-page run imports torch
ENV_VARS = ("PROFILE_WORKSPACE", "PROFILE_DEMO_DATA", "PROFILE_DEMO_BUNDLE", "PROFILE_MODELS")


@pytest.fixture(scope="session")
def demo_env(tmp_path_factory):
    """A small demo portfolio on disk and a 4-epoch demo bundle trained on it."""
    from profile_core.bundle import save_bundle
    from profile_core.features import build_features_from_frames
    from profile_core.pipeline import data_fingerprint, training_snapshot
    from profile_core.synth import generate_portfolio, write_portfolio
    from profile_core.tasks import default_tasks
    from profile_core.train import TrainConfig, fit

    root = tmp_path_factory.mktemp("app")
    portfolio = generate_portfolio(300, seed=7)
    write_portfolio(portfolio, root / "demo")
    frame = build_features_from_frames(portfolio.tables())
    result = fit(frame, default_tasks(), TrainConfig(max_epochs=4, seed=1))  # enough for grades to differ
    holdout = frame["customer_id"].iloc[result.split["test"]].tolist()  # as pipeline.train_and_save records
    save_bundle(result, root / "models" / "demo", name="demo", data_fingerprint=data_fingerprint(frame),
                data={"source": "demo", "holdout_ids": holdout, "reference": training_snapshot(result, frame)})
    return {"root": root, "portfolio": portfolio}


@pytest.fixture()
def env(demo_env, tmp_path, monkeypatch):
    """A fresh, empty workspace per test; the demo data and bundle are shared."""
    monkeypatch.setenv("PROFILE_WORKSPACE", str(tmp_path / "ws.duckdb"))
    monkeypatch.setenv("PROFILE_DEMO_DATA", str(demo_env["root"] / "demo"))
    monkeypatch.setenv("PROFILE_DEMO_BUNDLE", str(demo_env["root"] / "models" / "demo"))
    monkeypatch.setenv("PROFILE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")  # demo sign-in (ui.auth); a preset keys.ROLE picks another
    return demo_env


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


@pytest.fixture()
def analyst(env, tmp_path, monkeypatch):
    """A real (non-demo) analyst — demo accounts may not upload files — signed in by presetting the session
    user (``ui.auth.gate`` re-checks it against the users file every run)."""
    from profile_core.auth import hash_password, load_users

    text = Path(ROOT / "config" / "users.yaml").read_text(encoding="utf-8")
    text += f"  ana: {{role: analyst, name: Ana, password_hash: \"{hash_password('Real-pass-1', rounds=4)}\"}}\n"
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PROFILE_USERS", str(path))
    return load_users(path).get("ana")


def _as(user) -> AppTest:
    at = _app()
    at.session_state["auth-user"] = user  # ui.auth.USER
    return at


def _upload(at: AppTest, files: list, name: str = "main") -> AppTest:
    """Choose the files and a new data set name on the data page (the button is pressed by the caller)."""
    at.file_uploader(key=keys.UPLOAD).set_value(files)
    at.run()
    at.text_input(key=registry.TARGET_NAME).set_value(name).run()
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _frame_with(at: AppTest, column: str) -> pd.DataFrame:
    """The first st.dataframe holding ``column`` (AppTest does not expose a dataframe's key)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no dataframe with column {column!r}")


def _titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


# ------------------------------------------------------------------ shell and pages


def test_first_start_loads_demo_data_and_bundle(env):
    at = _app().run()
    _ok(at)
    assert _titles(at) == ["数据"]
    assert at.session_state[keys.DATASET] == "demo"
    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:  # no champion chosen: demo data uses the demo bundle
        assert ws.champion("demo") is None and ws.default_dataset() == "demo"
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "**demo**" in captions.split("·")[-1] and captions.count("**demo**") == 2  # data set and model
    assert any("模型辅助，人工决策" in i.value for i in at.sidebar.info)
    assert [m.value for m in at.metric][:4] == ["300", f"{len(env['portfolio'].transactions):,}",
                                                 f"{len(env['portfolio'].behaviors):,}",
                                                 f"{len(env['portfolio'].credit_records):,}"]


def test_first_start_generates_missing_demo_data(env, monkeypatch, tmp_path):
    import ui.loading

    monkeypatch.setattr(ui.loading, "DEMO_CUSTOMERS", 60)
    monkeypatch.setenv("PROFILE_DEMO_DATA", str(tmp_path / "no-demo-yet"))
    at = _app().run()
    _ok(at)
    assert at.metric[0].value == "60"
    assert sorted(p.name for p in (tmp_path / "no-demo-yet").iterdir())[0] == "behaviors.parquet"


@pytest.mark.parametrize(("page", "title"), [
    (PagePath.DATA, "数据"), (PagePath.MODEL, "模型"), (PagePath.CUSTOMERS, "客户全景"),
    (PagePath.EXPLANATIONS, "模型解释"), (PagePath.PORTFOLIO, "组合概览"),
])
def test_each_page_renders(env, page, title):
    at = _app().run()
    at.switch_page(str(page)).run()
    _ok(at)
    assert _titles(at)[0] == title
    assert not at.error, [e.value for e in at.error]


def test_portfolio_shows_predictions_grades_and_monotonic_badge(env):
    at = _app().run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    assert at.metric[0].value == "300"
    # score, PD, the two marketing heads' probabilities, grade counts, grades by group, default rate by grade
    assert len(at.get("plotly_chart")) == 7
    badges = [m.value for m in at.markdown if "-badge[" in m.value]  # st.badge renders as markdown
    assert len(badges) == 1
    table = _frame_with(at, "n")
    assert table["n"].sum() == 300  # every customer has a grade
    at.selectbox(key=keys.GROUP_BY).set_value("city").run()
    _ok(at)


def test_portfolio_without_bundle_points_to_model_page(env, monkeypatch, tmp_path):
    monkeypatch.setenv("PROFILE_DEMO_BUNDLE", str(tmp_path / "no-bundle"))
    at = _app().run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    assert at.button(key=keys.GO_MODEL_BUTTON)
    assert not at.get("plotly_chart")


def test_rm_role_sees_only_own_customers(env):
    at = _app()
    at.session_state[keys.ROLE] = "rm"  # signs in the demo RM rm01 (RM001 in config/users.yaml)
    at.run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    customers = env["portfolio"].customers
    own = (customers["rm_id"].astype(str) == "RM001").sum()
    assert at.metric[0].value == f"{own:,}"


def test_language_switch_changes_titles(env):
    at = _app().run()
    at.radio(key=keys.LANG_RADIO).set_value("en").run()
    _ok(at)
    assert _titles(at) == ["Data"]
    at.switch_page(str(PagePath.MODEL)).run()  # the choice survives page switches
    _ok(at)
    assert _titles(at) == ["Model"]


# ------------------------------------------------------------------ data page uploads


def _flat_csv(portfolio, n: int = 40) -> bytes:
    """A flat customer file with Chinese headers and the latest labels: the public-data shape."""
    credit = portfolio.credit_records.sort_values("as_of").groupby("customer_id").tail(1)
    flat = portfolio.customers.merge(credit[["customer_id", "credit_score", "default_flag", "risk_level"]],
                                     on="customer_id").head(n)
    flat = flat.rename(columns={"customer_id": "客户ID", "age": "年龄", "income": "年收入",
                                "credit_score": "信用评分", "default_flag": "违约", "risk_level": "风险等级"})
    buf = io.StringIO()
    flat.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8-sig")


def test_upload_good_flat_file_becomes_active(env, analyst):
    at = _upload(_as(analyst).run(), [("flat_customers.csv", _flat_csv(env["portfolio"]), "text/csv")])
    at.button(key=keys.UPLOAD_BUTTON).click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.session_state[keys.DATASET] == "main"
    assert at.success or at.warning  # label warnings are allowed
    assert at.metric[0].value == "40"
    # masked for the default (analyst) role
    preview = _frame_with(at, "name")
    assert preview["name"].str.contains(r"\*").all()


def test_upload_bad_file_keeps_previous_data(env, analyst):
    at = _as(analyst).run()
    before = at.session_state[keys.DATASET]
    bad = b"customer_id,age\nC1,30\nC1,40\n"
    at = _upload(at, [("customers.csv", bad, "text/csv")])
    at.button(key=keys.UPLOAD_BUTTON).click().run()
    _ok(at)
    assert at.error and "customers.csv" in at.error[0].value
    report = _frame_with(at, "文件")
    assert len(report) >= 1 and "customers.csv" in set(report["文件"])
    assert at.session_state[keys.DATASET] == before
    assert at.metric[0].value == "300"  # the demo data is still shown


def test_mapping_step_declares_labels_for_the_model_page(env, analyst):
    """A bank export in its own layout: confirm the proposed mapping with a label → the model page offers it."""
    rows = ["CUST_NO,SEX,AGE,INCOME,BAD"] + [f"K{i:03d},{1 + i % 2},{20 + i},{1000 + 37 * i},{i % 2}"
                                             for i in range(60)]
    at = _upload(_as(analyst).run(), [("applicants.csv", ("\n".join(rows) + "\n").encode(), "text/csv")])
    _ok(at)
    at.toggle(key=keys.MAPPING_TOGGLE).set_value(True).run()
    _ok(at)
    p = keys.MAPPING_PREFIX
    at.multiselect(key=f"{p}-0-labels").set_value(["BAD"]).run()
    before = at.session_state[keys.DATASET]
    at.button(key=f"{p}-confirm").click().run()  # confirming keeps the mapping; it does not load yet
    _ok(at)
    assert at.session_state[keys.DATASET] == before and any("BAD" in s.value for s in at.success)
    at.button(key=keys.UPLOAD_BUTTON).click().run()  # the one load button loads with the confirmed mapping
    _ok(at)
    assert at.session_state[keys.DATASET] == "main", [e.value for e in at.error]
    at.switch_page(str(PagePath.MODEL)).run()
    _ok(at)
    assert at.multiselect(key=keys.TASKS).value == ["BAD"]
    assert at.selectbox(key=keys.TASK_KIND.format(label="BAD")).value == "binary"
    at.number_input(key=keys.EPOCHS).set_value(2)  # and the mapped data trains, on the chosen label only
    at.button(key=keys.TRAIN_BUTTON).click().run()
    _ok(at)
    job = at.session_state[keys.JOB]
    assert job.join(timeout=120) and job.status == "done", job.error_trace
    result = job.result.result
    assert [t.label for t in result.tasks] == ["BAD"] and "BAD" not in result.preprocessor.numeric


def test_load_demo_button(env):
    at = _app().run()
    at.button(key=keys.DEMO_BUTTON).click().run()
    _ok(at)
    assert at.session_state[keys.DATASET] == "demo"
    assert "demo" in at.session_state[keys.LAST_LOAD].summary("en")


# ------------------------------------------------------------------ model page: training in the worker


def _start_training(at: AppTest, epochs: int) -> None:
    at.switch_page(str(PagePath.MODEL)).run()
    _ok(at)
    at.number_input(key=keys.EPOCHS).set_value(epochs)
    at.button(key=keys.TRAIN_BUTTON).click().run()
    _ok(at)


def test_train_tiny_model_to_completion_and_save(env):
    at = _app().run()
    _start_training(at, epochs=2)
    job = at.session_state[keys.JOB]
    first_id = job.id
    at.run()  # a rerun must neither restart nor kill the job
    assert at.session_state[keys.JOB].id == first_id
    assert job.join(timeout=120), "training did not finish"
    assert job.status == "done", job.error_trace
    assert len(job.reports()) == 2
    at.run()
    _ok(at)
    assert any("2" in s.value for s in at.success)
    shown = _frame_with(at, "角色")  # views.metrics_table: tasks as named, roles, one row per metric
    assert list(dict.fromkeys(shown["任务"])) == ["信用评分", "违约概率", "风险等级", "理财购买倾向", "流失概率"]
    assert set(shown["角色"]) == {"信用评分", "违约概率", "风险等级", "购买倾向", "流失概率"}
    assert len(at.get("plotly_chart")) >= 2  # loss and metric curves
    at.text_input(key=keys.SAVE_NAME).set_value("tiny-test").run()
    at.button(key=keys.SAVE_BUTTON).click().run()
    _ok(at)
    saved = Path(os.environ["PROFILE_MODELS"]) / "tiny-test"
    assert (saved / "manifest.json").is_file()
    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:  # registered, not yet everybody's model
        row = ws.model(saved)
        assert row["dataset"] == "demo" and row["trained_by"] == "analyst" and ws.champion("demo") is None
        assert set(row["metrics"]) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    assert at.selectbox(key=registry.MODEL_SELECT).value == str(saved.resolve())  # newest first
    at.button(key=registry.MODEL_CHAMPION).click().run()
    _ok(at)
    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:
        assert ws.champion("demo")["name"] == "tiny-test" and ws.champion("demo")["set_by"] == "analyst"
    assert "**tiny-test**" in " ".join(c.value for c in at.sidebar.caption)
    fresh = _app().run()  # another session (any user) gets the champion, not the demo bundle
    assert "**tiny-test**" in " ".join(c.value for c in fresh.sidebar.caption)


def test_train_with_hybrid_heads_after_a_tuning_search(env):
    at = _app().run()
    at.switch_page(str(PagePath.MODEL)).run()
    _ok(at)
    at.number_input(key=keys.EPOCHS).set_value(2)
    assert at.checkbox(key=keys.HYBRID).value  # hybrid heads are the default
    at.number_input(key=keys.TUNE).set_value(1)  # one trial at least: the settings as given
    at.button(key=keys.TRAIN_BUTTON).click().run()
    _ok(at)
    job = at.session_state[keys.JOB]
    assert job.join(timeout=240), "training did not finish"
    assert job.status == "done", job.error_trace
    result = job.result.result
    assert result.config.hybrid == "blend" and result.config.tuned["trials"] >= 1
    assert set(result.hybrid) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    assert job.meta["config"] is result.config or job.meta["config"] == result.config
    at.run()
    _ok(at)
    shown = _frame_with(at, "LightGBM 权重")
    # 300 customers: ~45 validation rows per head, too few to choose a share, so every head keeps the net alone
    assert all(chosen["skipped"] and chosen["trees"] == 0 for chosen in result.hybrid.values())
    assert len(shown) == 5 and set(shown["网络权重"]) == {"100%"} and set(shown["树的数量"].astype(int)) == {0}
    assert all("验证集中该任务的标签太少" in note for note in shown["说明"])
    assert any("调参" in c.value for c in at.caption)


def test_cancel_training_keeps_best_model(env):
    at = _app().run()
    _start_training(at, epochs=400)
    job = at.session_state[keys.JOB]
    at.button(key=keys.CANCEL_BUTTON).click().run()
    assert job.cancel_event.is_set()
    assert job.join(timeout=120)
    assert job.status == "cancelled", job.error_trace
    assert job.result.result.cancelled and len(job.reports()) < 400
    at.run()
    _ok(at)
    assert at.warning  # "training was cancelled: kept the best …"


def test_load_demo_bundle_shows_manifest(env):
    at = _app().run()
    at.switch_page(str(PagePath.MODEL)).run()
    at.button(key=keys.DEMO_BUNDLE_BUTTON).click().run()
    _ok(at)
    text = " ".join(m.value for m in at.markdown)
    assert "demo" in text and "shared-bottom" in text
    shown = _frame_with(at, "角色")  # views.metrics_table: tasks as named, roles, one row per metric
    assert list(dict.fromkeys(shown["任务"])) == ["信用评分", "违约概率", "风险等级", "理财购买倾向", "流失概率"]
    assert set(shown["角色"]) == {"信用评分", "违约概率", "风险等级", "购买倾向", "流失概率"}


def test_flat_dataset_trains(env, analyst):
    """A flat upload (labels on the customer row) feeds the same model page."""
    frame = pd.read_csv(io.BytesIO(_flat_csv(env["portfolio"], n=300)))
    assert len(frame) == 300  # enough defaults (≥ 20) for a binary label to be trained and evaluated
    at = _upload(_as(analyst).run(), [("flat.csv", _flat_csv(env["portfolio"], n=300), "text/csv")])
    at.button(key=keys.UPLOAD_BUTTON).click().run()
    _start_training(at, epochs=1)
    job = at.session_state[keys.JOB]
    assert job.join(timeout=120) and job.status == "done", job.error_trace


def test_heavy_work_is_warmed_in_the_background_once_per_model_and_data(env):
    """The router starts one background job per (data set fingerprint, model weights sha) that fills the shared
    caches (predictions, portfolio, card context, portfolio explanation) the heavy pages read."""
    from ui import cache

    at = _app().run()
    _ok(at)
    jobs = [j for k, j in cache._WARMING.items() if k[0] == os.environ["PROFILE_WORKSPACE"]]
    assert len(jobs) == 1
    job = jobs[0]
    assert job.join(timeout=300) and job.status == "done", job.error_trace
    assert job.phase == "explanations" and job.meta["keys"][1] == "demo"
    at.run()  # the next run (and any other session) reuses it
    assert [j for k, j in cache._WARMING.items() if k[0] == os.environ["PROFILE_WORKSPACE"]] == [job]
    expl = cache.portfolio_explanation(*job.meta["keys"])  # served from the cache the job filled
    assert set(expl.values) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"}
    assert len(expl.customer_ids) == 300
