"""The app's trust features through AppTest: sign-in (password, demo accounts and their limits, timeout,
sign-out), the pages each role can open, masks on every page a role sees, the audit log written by the app and
shown to auditors (tampering shows), no customer names in application logs during a card view, exports.

Reuses the small demo portfolio and 1-epoch bundle of ``tests/test_app.py`` (``app_env`` signs in the demo analyst
through ``PROFILE_AUTOLOGIN``; a preset ``keys.ROLE`` picks the demo account of another role).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from profile_core.audit import AuditLog, verify_chain
from profile_core.auth import hash_password
from profile_core.store import Workspace
from tests.test_app import APP, TIMEOUT, demo_env, env  # noqa: F401 — fixtures reused
from ui import auth, keys
from ui.keys import PagePath

PAGES = {"data": PagePath.DATA, "model": PagePath.MODEL, "customers": PagePath.CUSTOMERS,
         "explanations": PagePath.EXPLANATIONS, "portfolio": PagePath.PORTFOLIO, "cohorts": PagePath.COHORTS,
         "monitoring": "app_pages/monitoring.py", "audit": "app_pages/audit.py"}
ROLE_PAGES = {"rm": {"data", "customers", "explanations", "portfolio", "cohorts"},
              "analyst": {"data", "model", "customers", "explanations", "portfolio", "cohorts", "monitoring"},
              "auditor": {"monitoring", "audit"},
              "admin": set(PAGES)}
DEMO_PASSWORD = "demo2024"


def _app(**session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in session.items():
        at.session_state[key] = value
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _log() -> AuditLog:
    return AuditLog(os.environ["PROFILE_WORKSPACE"] + ".audit.jsonl")


def _actions(user: str | None = None) -> list[str]:
    return [e["action"] for e in _log().entries() if user is None or e["user"] == user]


def _pages(at: AppTest) -> set[str]:
    """The pages this session's navigation registered (AppTest keeps them; a page outside them cannot run)."""
    paths = {str(Path(info["script_path"]).resolve()) for info in at._registered_pages.values()
             if info.get("script_path")}
    return {name for name, path in PAGES.items() if str(Path(APP).parent / path) in paths}


def _text(at: AppTest) -> str:
    """Everything a page put on screen: element protos as text, dataframes as CSV, chart specs decoded."""
    from google.protobuf.json_format import MessageToJson

    parts = []
    for root in (at.main, at.sidebar):
        for node in root:
            proto = getattr(node, "proto", None)
            if proto is not None:
                parts.append(MessageToJson(proto, ensure_ascii=False))
            if getattr(node, "type", "") == "plotly_chart":
                parts.append(json.dumps(json.loads(proto.spec), ensure_ascii=False))
            try:
                value = node.value
            except Exception:  # noqa: BLE001 - containers and some widgets have no value
                value = None
            if isinstance(value, pd.DataFrame):
                parts.append(value.to_csv())
    return "\n".join(parts)


def _sign_in(at: AppTest, user: str, password: str) -> AppTest:
    at.text_input(key=auth.LOGIN_USER).input(user)
    at.text_input(key=auth.LOGIN_PASSWORD).input(password)
    at.button(key=auth.LOGIN_SUBMIT).click().run()
    return at


@pytest.fixture()
def app_env(env, monkeypatch):  # noqa: F811 — the fixture imported above
    """``env`` with the demo analyst signed in automatically (a preset ``keys.ROLE`` picks another role)."""
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")
    monkeypatch.setenv("PROFILE_DEMO", "1")
    return env


@pytest.fixture()
def no_autologin(app_env, monkeypatch):
    monkeypatch.delenv("PROFILE_AUTOLOGIN")
    return app_env


@pytest.fixture()
def real_users(tmp_path, monkeypatch):
    """The shipped demo accounts plus a real (non-demo) analyst and admin (fast hashes)."""
    text = Path("config/users.yaml").read_text(encoding="utf-8")
    fast = hash_password("Real-pass-1", rounds=4)
    text += (f"  real_analyst: {{role: analyst, password_hash: \"{fast}\"}}\n"
             f"  real_admin: {{role: admin, password_hash: \"{fast}\"}}\n")
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PROFILE_USERS", str(path))
    return path


def _load_real_data() -> None:
    """A non-demo dataset arrives in the workspace (another session's upload, as far as this one knows)."""
    from profile_core.ingest import load_into_workspace

    ws = Workspace(os.environ["PROFILE_WORKSPACE"])
    try:
        assert load_into_workspace([("real.csv", b"customer_id,age\nK1,30\n")], ws, dataset="real").version
    finally:
        ws.close()


# ------------------------------------------------------------------ signing in


def test_login_page_and_password_sign_in(no_autologin):
    at = _app().run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"]
    assert _pages(at) == set()  # no page runs before signing in
    text = _text(at)
    assert "演示模式" in text and DEMO_PASSWORD in text and "rm01" in text  # the demo banner and accounts
    _sign_in(at, "rm01", "wrong")
    _ok(at)
    assert at.error and "用户名或密码不正确" in at.error[0].value
    _sign_in(at, "nobody", "wrong")
    assert at.error and "用户名或密码不正确" in at.error[0].value  # an unknown name reads the same
    _sign_in(at, "RM01", DEMO_PASSWORD)
    _ok(at)
    assert [t.value for t in at.title] == ["数据"]
    assert _pages(at) == ROLE_PAGES["rm"]
    entries = _log().entries()
    assert [(e["action"], e["user"]) for e in entries] == [("login_failed", "rm01"), ("login_failed", "(anonymous)"),
                                                           ("login", "rm01")]
    assert entries[1]["target"] == "(unknown)" and "nobody" not in json.dumps(entries)
    assert verify_chain(_log().path).ok


def test_sign_out(app_env):
    at = _app().run()
    at.button(key=auth.LOGOUT_BUTTON).click().run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"] and at.info and "已退出" in at.info[0].value
    assert _actions("analyst") == ["login", "logout"]


def test_demo_accounts_refused_when_demo_mode_is_off(no_autologin, monkeypatch):
    monkeypatch.setenv("PROFILE_DEMO", "0")
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")  # ignored too
    at = _app().run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"]
    assert DEMO_PASSWORD not in _text(at)  # no demo accounts on screen
    _sign_in(at, "analyst", DEMO_PASSWORD)
    assert at.error and "演示账号只能用于演示数据" in at.error[0].value
    assert [t.value for t in at.title] == ["登录"]


def test_demo_accounts_refused_on_real_data_real_users_accepted(no_autologin, real_users, monkeypatch):
    _load_real_data()
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")
    at = _app().run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"]  # autologin refused: the workspace holds real data
    assert DEMO_PASSWORD not in _text(at) and "非演示数据" in _text(at)
    _sign_in(at, "admin", DEMO_PASSWORD)
    assert at.error and "演示账号" in at.error[0].value
    _sign_in(at, "real_analyst", "Real-pass-1")
    _ok(at)
    assert [t.value for t in at.title] == ["数据"]
    assert "演示模式" not in _text(at)  # no demo banner for a real account


def test_demo_session_ends_when_real_data_arrives(app_env):
    at = _app().run()
    assert [t.value for t in at.title] == ["数据"]
    _load_real_data()
    at.run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"]
    assert at.info and "演示账号只能用于演示数据" in at.info[0].value
    assert _actions("analyst")[-1] == "logout"


def test_idle_session_times_out(app_env):
    at = _app().run()
    at.session_state[auth.LAST_SEEN] = time.time() - 3 * 3600
    at.run()
    _ok(at)
    assert [t.value for t in at.title] == ["登录"] and "长时间未操作" in at.info[0].value
    assert _actions("analyst")[-1] == "session_expired"


def test_demo_accounts_cannot_upload_files(app_env):
    """Demo accounts work only on demo data: no uploader for them, and the store refuses a file load made
    for a demo account whatever the page does."""
    from profile_core.auth import User
    from profile_core.store import DemoRefused

    at = _app().run()
    _ok(at)
    assert not at.get("file_uploader") and "正式账户" in " ".join(i.value for i in at.info)
    assert at.button(key=keys.DEMO_BUTTON)  # reloading the demo portfolio stays possible
    ws = Workspace(os.environ["PROFILE_WORKSPACE"])
    try:
        with ws.acting(User("analyst", "analyst", demo=True)), pytest.raises(DemoRefused):
            ws.replace_dataset("upload", {"customers": pd.DataFrame({"customer_id": ["K1"]})}, source="flat.csv")
        assert ws.list_datasets()["name"].tolist() == ["demo"]
    finally:
        ws.close()


# ------------------------------------------------------------------ roles: pages and masks


@pytest.mark.parametrize("role", ["rm", "analyst", "auditor", "admin"])
def test_each_role_gets_its_pages(app_env, role):
    at = _app(**{keys.ROLE: role}).run()
    _ok(at)
    assert _pages(at) == ROLE_PAGES[role]
    for name in set(PAGES) - ROLE_PAGES[role]:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(str(PAGES[name]))
    if role in ("rm", "auditor"):
        assert at.session_state[keys.DATASET] == "demo"
        assert not at.get("file_uploader")  # no upload for roles that may not load data


def _portfolio(data) -> pd.DataFrame:
    return data["portfolio"].customers


def _visit(at: AppTest, pages: set[str]) -> dict[str, str]:
    out = {}
    for name in sorted(pages):
        at.switch_page(str(PAGES[name])).run()
        _ok(at)
        out[name] = _text(at)
    return out


@pytest.mark.parametrize("role", ["analyst", "auditor"])
def test_no_identity_on_any_page_for_masked_roles(app_env, role):
    customers = _portfolio(app_env)
    at = _app(**{keys.ROLE: role}).run()
    texts = _visit(at, ROLE_PAGES[role])
    secrets = [*customers["name"], *customers["phone"], *customers["id_number"]]
    for page, text in texts.items():
        leaked = [s for s in secrets if s in text]
        assert not leaked, (page, leaked[:3])
    if role == "analyst":
        assert customers["customer_id"].iloc[0] in texts["customers"]  # the card is there, masked
        assert customers["name"].iloc[0][0] + "*" in texts["customers"]


def test_rm_sees_nothing_of_other_rms_customers_on_any_page(app_env):
    customers = _portfolio(app_env)
    others = customers[customers["rm_id"] != "RM001"]
    own = customers[customers["rm_id"] == "RM001"]
    at = _app(**{keys.ROLE: "rm"}).run()
    texts = _visit(at, ROLE_PAGES["rm"])
    for page, text in texts.items():
        leaked = [s for s in [*others["name"], *others["customer_id"], *others["phone"]] if s in text]
        assert not leaked, (page, leaked[:3])
    assert own["name"].iloc[0] in texts["customers"]  # their own customer, in full


def test_admin_reveal_is_audited(app_env):
    customers = _portfolio(app_env)
    at = _app(**{keys.ROLE: "admin"}).run()
    assert customers["name"].iloc[0] not in _text(at)
    at.toggle(key=keys.REVEAL_TOGGLE).set_value(True).run()
    _ok(at)
    assert "reveal" in _actions("admin")
    at.switch_page(str(PagePath.DATA)).run()
    assert customers["name"].iloc[0] in _text(at)  # revealed on purpose, and on record


# ------------------------------------------------------------------ audit: card views, logs, the auditor's page


def test_card_view_is_audited_and_names_stay_out_of_logs(app_env, caplog):
    customers = _portfolio(app_env)
    at = _app().run()
    with caplog.at_level(logging.DEBUG):
        at.switch_page(str(PagePath.CUSTOMERS)).run()
        _ok(at)
        at.run()  # a rerun of the same card is not a new view
    views = [e for e in _log().entries() if e["action"] == "view_card"]
    assert [v["target"] for v in views] == [customers["customer_id"].iloc[0]]
    assert views[0]["user"] == "analyst" and views[0]["details"] == {}
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    leaked = [n for n in customers["name"] if n in logged]
    assert not leaked, leaked[:3]
    text = _log().path.read_text(encoding="utf-8")
    assert not [n for n in customers["name"] if n in text]


def test_auditor_page_shows_the_chain_and_tampering(app_env):
    at = _app(**{keys.ROLE: "auditor"}).run()
    at.switch_page("app_pages/audit.py").run()
    _ok(at)
    assert at.title[0].value == "审计日志"
    assert at.success and "哈希链校验通过" in at.success[0].value
    table = next(df.value for df in at.dataframe if "操作" in df.value.columns)
    assert set(table["用户"]) == {"auditor"} and "登录" in set(table["操作"])
    # the integrity line counts the rows it shows (this visit's own view_audit entry included)
    assert at.success[0].value == f"审计日志完整：{len(table)} 条记录的哈希链校验通过。"
    assert len(table) == len(_log().entries()) == 2
    assert not at.get("data_editor")  # nothing on the page edits the log: no editor, no button but sign-out
    assert {b.key for b in at.get("button")} <= {auth.LOGOUT_BUTTON}
    assert [a for a in _actions("auditor")] == ["login", "view_audit"]
    at.multiselect(key="audit-action-multiselect").set_value(["view_audit"]).run()
    table = next(df.value for df in at.dataframe if "操作" in df.value.columns)
    assert table["操作"].tolist() == ["查看审计日志"]
    log = _log()  # a manual edit outside the app …
    lines = log.path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["user"] = "someone_else"
    lines[0] = json.dumps(first, ensure_ascii=False)
    log.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    at.run()
    _ok(at)
    assert at.error and "已被修改" in at.error[0].value  # … shows on the page


def test_export_payload_is_masked_and_audited(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PROFILE_AUDIT", str(tmp_path / "exports.jsonl"))
    from profile_core.auth import User, policy_for
    from ui import audit

    frame = _portfolio(app_env)[["customer_id", "name", "phone", "rm_id"]].assign(note="=cmd|'/C calc'!A0")
    user = User("rm01", "rm", rm_id="RM001", demo=True)
    data = audit.export_payload(frame, policy_for(user), user, "demo/customers").decode("utf-8-sig")
    own = frame[frame["rm_id"] == "RM001"]
    assert len(data.strip().splitlines()) == len(own) + 1 and own["name"].iloc[0] in data
    assert "'=cmd" in data and ",=cmd" not in data
    analyst = User("a", "analyst")
    masked = audit.export_payload(frame, policy_for(analyst), analyst, "demo/customers").decode("utf-8-sig")
    assert frame["name"].iloc[0] not in masked and len(masked.strip().splitlines()) == len(frame) + 1
    entries = AuditLog(tmp_path / "exports.jsonl").entries()
    assert [(e["user"], e["action"], e["details"]["rows"]) for e in entries] == [
        ("rm01", "export", len(own)), ("a", "export", len(frame))]


def test_portfolio_and_data_pages_offer_exports(app_env):
    at = _app().run()
    assert at.get("download_button")
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    assert at.get("download_button")


def test_monitoring_page(app_env):
    at = _app().run()
    at.switch_page("app_pages/monitoring.py").run()
    _ok(at)
    assert at.title[0].value == "模型监控"
    metrics = next(df.value for df in at.dataframe if "指标" in df.value.columns)
    assert {"AUC", "KS", "Brier 分数", "RMSE", "二次加权 Kappa"} <= set(metrics["指标"])
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    kinds = [tr.get("type") for f in figures for tr in f.get("data", [])]
    assert kinds.count("heatmap") == 1 and "bar" in kinds  # confusion matrix and PSI bars
    psi = next(df.value for df in at.dataframe if "PSI" in df.value.columns)
    # against the training snapshot in the bundle, never the data against itself: small but not all zero
    assert len(psi) > 10 and (psi["PSI"] < 0.25).all() and (psi["PSI"] > 0).any()
    assert any("训练快照" in c.value for c in at.caption)
    assert any(("留出" in c.value or "全部" in c.value) and "评估范围" in c.value for c in at.caption)
    assert any("模型卡" in s.value for s in at.subheader)


def test_model_actions_are_audited_whichever_page_makes_them(app_env, tmp_path):
    """The router records a new training job (``train``); the registry records a new champion
    (``model_champion``, with the data set) when "set as current model" is clicked."""
    import shutil
    from types import SimpleNamespace

    at = _app().run()
    at.session_state[keys.JOB] = SimpleNamespace(id="job-1")
    at.run()
    at.run()  # the same job is recorded once
    at.session_state[keys.JOB] = None  # (a stand-in job: the model page would draw it)
    copy = shutil.copytree(os.environ["PROFILE_DEMO_BUNDLE"], Path(os.environ["PROFILE_MODELS"]) / "candidate")
    at.switch_page(str(PagePath.MODEL)).run()
    at.selectbox(key=keys.BUNDLE_SELECT).set_value(str(copy)).run()
    at.button(key=keys.BUNDLE_LOAD_BUTTON).click().run()
    _ok(at)
    entries = [e for e in _log().entries() if e["action"] in ("train", "model_register", "model_champion")]
    assert [(e["action"], e["target"]) for e in entries] == [("train", "demo"), ("model_register", "candidate"),
                                                              ("model_champion", "candidate")]
    assert entries[-1]["details"]["dataset"] == "demo" and entries[-1]["user"] == "analyst"
    assert entries[0]["details"] == {"job": "job-1"}
