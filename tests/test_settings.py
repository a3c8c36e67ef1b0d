"""profile_core.settings: every PROFILE_* setting read in one place and shared by app, CLI and API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from profile_core.settings import Settings, current

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_environment() -> None:
    s = current({})
    assert s.workspace == Path("workspace.duckdb") and s.models == Path("models")
    assert s.demo_data == Path("data/demo") and s.demo_bundle == Path("models/demo")
    assert s.users == Path("config/users.yaml") and s.demo is True and s.session_minutes == 30.0
    assert s.max_upload_mb == 200 and s.audit_path == Path("workspace.duckdb.audit.jsonl")


def test_values_from_environment_only_with_prefix() -> None:
    s = current({"PROFILE_WORKSPACE": "/tmp/w.duckdb", "PROFILE_DEMO": "off", "PROFILE_SESSION_MINUTES": "5",
                 "PROFILE_AUDIT": "~/a.jsonl", "WORKSPACE": "/elsewhere", "PROFILE_UNKNOWN": "x"})
    assert s.workspace == Path("/tmp/w.duckdb") and s.demo is False and s.session_timeout_s == 300.0
    assert s.audit_path == Path("~/a.jsonl").expanduser()
    for off in ("0", "false", "No", " OFF "):
        assert current({"PROFILE_DEMO": off}).demo is False
    assert current({"PROFILE_DEMO": "1"}).demo is True
    assert current({"PROFILE_SESSION_MINUTES": "soon"}).session_minutes == 30.0  # unreadable: the default


def test_settings_are_frozen_and_built_once_per_environment() -> None:
    env = {"PROFILE_MODELS": "/m"}
    assert current(env) is current(dict(env))
    assert current({"PROFILE_MODELS": "/n"}).models == Path("/n")
    with pytest.raises(ValidationError):
        current(env).models = Path("/x")
    with pytest.raises(ValidationError):
        current({"PROFILE_MAX_UPLOAD_MB": "lots"})


def test_class_does_not_read_the_environment_itself(monkeypatch) -> None:
    monkeypatch.setenv("PROFILE_WORKSPACE", "/from/env.duckdb")
    assert Settings().workspace == Path("workspace.duckdb")  # only current() reads the environment
    assert current().workspace == Path("/from/env.duckdb")


def test_workspace_and_cli_default_follow_profile_workspace(monkeypatch, tmp_path) -> None:
    from profile_core.cli import build_parser
    from profile_core.store import Workspace

    monkeypatch.setenv("PROFILE_WORKSPACE", str(tmp_path / "env.duckdb"))
    assert Workspace().path == str(tmp_path / "env.duckdb")
    for argv in (["load", "x.csv"], ["features", "--data", "d"], ["score", "--bundle", "b", "--data", "d", "--out", "o"]):
        assert build_parser().parse_args(argv).workspace == str(tmp_path / "env.duckdb")
    assert build_parser().parse_args(["load", "x.csv", "--workspace", "w.duckdb"]).workspace == "w.duckdb"


def test_cli_process_reads_the_workspace_named_by_the_environment(tmp_path) -> None:
    from profile_core.store import Workspace

    path = tmp_path / "shared.duckdb"
    with Workspace(path) as ws:
        ws.replace_dataset("bank", {"customers": pd.DataFrame({"customer_id": ["C1", "C2"], "age": [30, 40]})},
                       kind="flat", source="bank.csv")
    out = tmp_path / "f.csv"
    env = {"PATH": "/usr/bin:/bin", "PROFILE_WORKSPACE": str(path), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "profile_core", "features", "--data", "workspace:bank", "--out",
                           str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(pd.read_csv(out)["customer_id"]) == ["C1", "C2"]
    assert not (tmp_path / "workspace.duckdb").exists()


def test_app_paths_come_from_the_same_settings(monkeypatch, tmp_path) -> None:
    from ui import state

    monkeypatch.setenv("PROFILE_WORKSPACE", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("PROFILE_MODELS", "relative-models")
    assert state.workspace_path() == tmp_path / "a.duckdb"
    assert state.models_dir() == state.ROOT / "relative-models"  # relative settings: the project root


def test_streamlit_config_matches_the_app() -> None:
    """The shipped Streamlit config: the uploader states the app's own limit; no file watcher over the repo."""
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] == current({}).max_upload_mb == 200
    assert config["server"]["fileWatcherType"] == "none"
