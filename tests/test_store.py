"""The DuckDB workspace: versions, drop, list, fingerprints, name checks, atomic replace."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from profile_core.store import Workspace, fingerprint_tables


def _tables(n: int = 3, amount: float = 10.0) -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({
        "customer_id": pd.Series([f"C{i:03d}" for i in range(n)], dtype="str"),
        "gender": pd.Series(["男", "女", None][:n], dtype="str"),
        "age": pd.Series([30, None, 45][:n], dtype="Int64"),
    })
    transactions = pd.DataFrame({
        "customer_id": pd.Series(["C000", "C000", "C001"], dtype="str"),
        "txn_time": pd.to_datetime(["2024-01-01", "2024-01-02 10:30", "2024-02-01"], format="mixed").astype("datetime64[us]"),
        "amount": [amount, -5.5, 300.0],
    })
    return {"customers": customers, "transactions": transactions}


@pytest.fixture
def ws():
    with Workspace(":memory:") as w:
        yield w


def test_versions_increase_and_list(ws: Workspace) -> None:
    assert ws.list_datasets().empty
    assert [ws.replace_dataset("main", _tables(), source="a.csv") for _ in range(3)] == [1, 2, 3]
    assert ws.replace_dataset("other", _tables(), kind="flat") == 1  # versions are per name
    listing = ws.list_datasets()
    assert list(listing["name"]) == ["main", "other"]
    assert list(listing.columns) == ["name", "version", "loaded_at", "source", "fingerprint", "row_counts", "kind"]
    main = listing.iloc[0]
    assert main["version"] == 3 and main["source"] == "a.csv" and main["kind"] == "tables"
    assert json.loads(main["row_counts"]) == {"customers": 3, "transactions": 3}
    assert listing.iloc[1]["kind"] == "flat"


def test_round_trip_keeps_values_and_dtypes(ws: Workspace) -> None:
    tables = _tables()
    ws.replace_dataset("main", tables)
    assert ws.tables("main") == ["customers", "transactions"]
    for name, df in tables.items():
        pd.testing.assert_frame_equal(ws.read_table("main", name), df)
    with pytest.raises(KeyError):
        ws.read_table("main", "behaviors")


def test_relation_names_work_in_sql(ws: Workspace) -> None:
    ws.replace_dataset("my-data_1", _tables())
    rel = ws.relation_names("my-data_1")
    assert set(rel) == {"customers", "transactions"}
    total = ws.con.execute(f"SELECT sum(amount) FROM {rel['transactions']}").fetchone()[0]
    assert total == pytest.approx(304.5)


def test_drop_and_versions_never_reused(ws: Workspace) -> None:
    ws.replace_dataset("main", _tables())
    ws.replace_dataset("main", _tables())
    ws.drop_dataset("main")
    assert not ws.has_dataset("main") and ws.list_datasets().empty
    with pytest.raises(KeyError):
        ws.tables("main")
    ws.drop_dataset("main")  # dropping twice is harmless
    assert ws.replace_dataset("main", _tables()) == 3


def test_names_are_case_insensitive(ws: Workspace) -> None:
    ws.replace_dataset("Main", _tables())
    assert ws.has_dataset("main") and ws.list_datasets()["name"].tolist() == ["main"]
    assert ws.replace_dataset("MAIN", _tables()) == 2


@pytest.mark.parametrize("bad", ["", "a b", "x;DROP TABLE _datasets", 'q"uote', "数据", "a" * 65, "../x"])
def test_invalid_dataset_names_refused(ws: Workspace, bad: str) -> None:
    with pytest.raises(ValueError):
        ws.replace_dataset(bad, _tables())
    with pytest.raises(ValueError):
        ws.has_dataset(bad)


def test_invalid_table_names_and_kind_refused(ws: Workspace) -> None:
    with pytest.raises(ValueError):
        ws.replace_dataset("main", {"bad name": _tables()["customers"]})
    with pytest.raises(ValueError):
        ws.replace_dataset("main", _tables(), kind="other")
    with pytest.raises(ValueError):
        ws.replace_dataset("main", {})
    assert not ws.has_dataset("main")


def test_fingerprint_stable_and_content_sensitive(ws: Workspace) -> None:
    ws.replace_dataset("a", _tables())
    ws.replace_dataset("b", _tables())
    ws.replace_dataset("c", _tables(amount=10.01))
    assert ws.fingerprint("a") == ws.fingerprint("b") == fingerprint_tables(_tables())
    assert ws.fingerprint("c") != ws.fingerprint("a")
    renamed = {"customers": _tables()["customers"].rename(columns={"age": "years"})}
    assert fingerprint_tables(renamed) != fingerprint_tables({"customers": _tables()["customers"]})
    assert len(ws.fingerprint("a")) == 64


def test_failure_mid_replace_rolls_back(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.replace_dataset("main", _tables())
    before = {t: ws.read_table("main", t) for t in ws.tables("main")}
    listing = ws.list_datasets()
    original = Workspace._write_table
    calls = []

    def flaky(self: Workspace, schema: str, table: str, df: pd.DataFrame) -> None:
        calls.append(table)
        if len(calls) == 2:  # the first table is already written inside the transaction
            raise duckdb.IOException("disk full")
        original(self, schema, table, df)

    monkeypatch.setattr(Workspace, "_write_table", flaky)
    with pytest.raises(duckdb.IOException):
        ws.replace_dataset("main", _tables(n=2, amount=99.0))
    assert calls == ["customers", "transactions"]
    monkeypatch.setattr(Workspace, "_write_table", original)
    pd.testing.assert_frame_equal(ws.list_datasets(), listing)
    for t, df in before.items():
        pd.testing.assert_frame_equal(ws.read_table("main", t), df)
    assert ws.replace_dataset("main", _tables()) == 2  # the failed load took no version


def test_file_workspace_persists(tmp_path) -> None:
    path = tmp_path / "sub" / "ws.duckdb"
    with Workspace(path) as w:
        w.replace_dataset("main", _tables(), source="x")
        fp = w.fingerprint("main")
    assert path.exists()
    with Workspace(path) as w:
        assert w.version("main") == 1 and w.fingerprint("main") == fp and w.kind("main") == "tables"
        pd.testing.assert_frame_equal(w.read_table("main", "customers"), _tables()["customers"])


# ------------------------------------------------------------------ registries: data sets and models as assets

from profile_core.audit import AuditLog  # noqa: E402
from profile_core.auth import Forbidden, User  # noqa: E402
from profile_core.store import DemoRefused, RegistryError, WorkspaceBusy, check_demo_use  # noqa: E402

ANALYST = User("ana", "analyst")
ADMIN = User("root", "admin")
RM = User("rm01", "rm", rm_id="RM001")
DEMO_ANALYST = User("analyst", "analyst", demo=True)


def _bundle(folder, name: str = "m1", sha: str = "ab" * 32) -> str:
    folder.mkdir(parents=True)
    manifest = {"name": name, "created_utc": "2026-01-02T03:04:05+00:00", "config": {"arch": "ple"},
                "tasks": [{"name": "default"}, {"name": "credit_score"}], "weights_sha256": sha,
                "metrics": {"val": {"default": {"auc": 0.7}}, "test": {"default": {"auc": 0.81, "n": 300.0}}}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (folder / "weights.safetensors").write_bytes(b"w")
    return str(folder)


@pytest.fixture
def audited(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with Workspace(tmp_path / "ws.duckdb", audit=log) as w:
        yield w, log


def _actions(log: AuditLog) -> list[tuple[str, str, str]]:
    return [(e["user"], e["action"], e["target"]) for e in log.entries()]


def test_rename_moves_tables_models_champion_and_default(audited, tmp_path) -> None:
    ws, log = audited
    ws.replace_dataset("bank", _tables(), source="bank.csv")
    ws.replace_dataset("bank", _tables(amount=11.0), source="bank2.csv")  # version 2
    ws.set_default_dataset("bank", user=ADMIN)
    ws.set_champion("bank", _bundle(tmp_path / "m1"), ANALYST)
    ws.rename_dataset("bank", "bank_2025", user=ADMIN)
    assert ws.list_datasets()["name"].tolist() == ["bank_2025"] and ws.version("bank_2025") == 2
    assert ws.read_table("bank_2025", "transactions")["amount"].iloc[0] == 11.0
    assert ws.default_dataset() == "bank_2025" and ws.champion("bank_2025")["name"] == "m1"
    assert not ws.has_dataset("bank")
    assert ws.replace_dataset("bank_2025", _tables()) == 3  # versions keep increasing under the new name
    ws.replace_dataset("other", _tables())
    with pytest.raises(RegistryError, match="already exists"):
        ws.rename_dataset("other", "bank_2025", user=ADMIN)
    assert ("root", "dataset_rename", "bank_2025") in _actions(log)
    with pytest.raises(Forbidden):
        ws.rename_dataset("bank_2025", "x", user=RM)  # an RM may not manage data sets


def test_delete_needs_confirmation_and_is_audited(audited, tmp_path) -> None:
    ws, log = audited
    ws.replace_dataset("bank", _tables(), source="bank.csv")
    ws.replace_dataset("demo", _tables(), source="demo")
    ws.set_default_dataset("bank", user=ANALYST)
    ws.set_champion("bank", _bundle(tmp_path / "m1"), ANALYST)
    with pytest.raises(RegistryError, match="needs confirmation"):
        ws.delete_dataset("bank", user=ADMIN, confirm="demo")
    assert ws.has_dataset("bank")
    ws.delete_dataset("bank", user=ADMIN, confirm="BANK")
    assert ws.list_datasets()["name"].tolist() == ["demo"]
    assert ws.default_dataset() == "demo"  # the only data set left
    assert ws.champion("bank") is None and bool(ws.models(archived=True)["archived"].iloc[0])
    assert ws.models().empty  # archived models are not offered
    entry = [e for e in log.entries() if e["action"] == "dataset_delete"][0]
    assert entry["user"] == "root" and entry["target"] == "bank" and entry["details"] == {"version": 1,
                                                                                        "source": "bank.csv"}


def test_default_dataset_is_persisted_with_who_and_when(tmp_path) -> None:
    with Workspace(tmp_path / "ws.duckdb") as ws:
        ws.replace_dataset("b", _tables())
        ws.replace_dataset("a", _tables())
        ws.replace_dataset("b", _tables())  # a new version keeps b's place
        assert ws.default_dataset() == "b"  # no choice made: the data set loaded first, not a later upload
        ws.set_default_dataset("a", user=ANALYST)
    with Workspace(tmp_path / "ws.duckdb") as ws:
        assert ws.default_dataset() == "a" and ws.setting("default_dataset")["set_by"] == "ana"
        with pytest.raises(KeyError):
            ws.set_default_dataset("missing", user=ANALYST)


def test_a_persons_load_never_replaces_another_dataset_silently(ws: Workspace) -> None:
    ws.replace_dataset("main", _tables(), source="a.csv")
    with ws.acting(ANALYST), pytest.raises(RegistryError, match="new version of main"):
        ws.replace_dataset("main", _tables(amount=1.0), source="b.csv")
    assert ws.version("main") == 1 and ws.read_table("main", "transactions")["amount"].iloc[0] == 10.0
    with ws.acting(ANALYST, new_version_of="Main"):
        assert ws.replace_dataset("main", _tables(amount=1.0), source="b.csv") == 2
    with ws.acting(ANALYST, new_version_of="main"):  # the intent names main, not this other one
        assert ws.replace_dataset("fresh", _tables(), source="c.csv") == 1
        with pytest.raises(RegistryError):
            ws.replace_dataset("fresh", _tables(), source="c.csv")
    assert ws.actor is None and ws.new_version_of is None  # the block ends the intent
    assert ws.replace_dataset("main", _tables()) == 3  # the operator (CLI) replaces by name, as asked


def test_model_registry_records_metrics_who_when_and_sha(audited, tmp_path) -> None:
    ws, log = audited
    ws.replace_dataset("bank", _tables(), source="bank.csv")
    row = ws.register_model(_bundle(tmp_path / "m1"), dataset="bank", user=ANALYST)
    assert row["name"] == "m1" and row["dataset"] == "bank" and row["dataset_version"] == 1
    assert row["metrics"] == {"default": {"auc": 0.81, "n": 300.0}}  # the held-out (test) rows
    assert row["trained_by"] == "ana" and row["arch"] == "ple" and row["tasks"] == ["default", "credit_score"]
    assert str(row["trained_at"]).startswith("2026-01-02 03:04:05") and row["sha256"] == "ab" * 32
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "manifest.json").write_text("{}", encoding="utf-8")
    (plain / "weights.safetensors").write_bytes(b"abc")
    assert ws.register_model(plain, dataset="bank", user=ANALYST)["sha256"] == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    listing = ws.models("bank")
    assert listing["name"].tolist() == ["plain", "m1"] and not listing["champion"].any()
    assert [a for _, a, _ in _actions(log)] == ["model_register", "model_register"]
    with pytest.raises(RegistryError, match="No model bundle"):
        ws.register_model(tmp_path / "nothing", dataset="bank", user=ANALYST)


def test_one_champion_per_dataset_persisted_and_audited(tmp_path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    path = tmp_path / "ws.duckdb"
    m1, m2 = _bundle(tmp_path / "m1", "m1"), _bundle(tmp_path / "m2", "m2", sha="cd" * 32)
    with Workspace(path, audit=log) as ws:
        ws.replace_dataset("bank", _tables(), source="bank.csv")
        ws.replace_dataset("other", _tables(), source="o.csv")
        assert ws.champion("bank") is None
        ws.set_champion("bank", m1, ANALYST)
        ws.set_champion("other", m1, ANALYST)
        ws.set_champion("bank", m2, ADMIN)
    with Workspace(path) as ws:  # another process, later: the same champion
        champ = ws.champion("bank")
        assert champ["name"] == "m2" and champ["set_by"] == "root" and champ["bundle_path"] == m2
        assert ws.champion("other")["name"] == "m1"
        assert ws.models("bank").set_index("name")["champion"].to_dict() == {"m2": True, "m1": False}
        with pytest.raises(RegistryError, match="current champion"):
            ws.archive_model(m2, user=ADMIN)
        ws.archive_model(m1, user=ADMIN)
        with pytest.raises(RegistryError, match="archived"):
            ws.set_champion("bank", m1, ADMIN)
    champions = [e for e in log.entries() if e["action"] == "model_champion"]
    assert [(e["user"], e["target"], e["details"]["dataset"]) for e in champions] == \
        [("ana", "m1", "bank"), ("ana", "m1", "other"), ("root", "m2", "bank")]
    assert champions[-1]["details"]["previous"] == "m1"
    with pytest.raises(Forbidden, match="may not activate a model bundle"), Workspace(path) as ws:
        ws.set_champion("bank", m1, RM)


def test_demo_rules_enforced_in_the_core(ws: Workspace, tmp_path, monkeypatch) -> None:
    ws.replace_dataset("demo", _tables(), source="demo", meta={"demo": True})
    ws.replace_dataset("bank", _tables(), source="bank.csv")
    with ws.acting(DEMO_ANALYST), pytest.raises(DemoRefused, match="only on demo data"):
        ws.replace_dataset("upload", _tables(), source="real.csv")  # a demo account cannot load a file
    assert not ws.has_dataset("upload")
    with ws.acting(DEMO_ANALYST):
        assert ws.replace_dataset("demo", _tables(), source="demo") == 2  # reloading the demo portfolio is fine
    ws.update_meta("demo", {"demo": True})
    bundle = _bundle(tmp_path / "m1")
    with pytest.raises(DemoRefused, match="only on demo data"):
        ws.register_model(bundle, dataset="bank", user=DEMO_ANALYST)
    with pytest.raises(DemoRefused):
        ws.set_champion("bank", bundle, DEMO_ANALYST)
    with pytest.raises(DemoRefused):
        check_demo_use(DEMO_ANALYST, ws, "bank", action="train")
    assert ws.set_champion("demo", bundle, DEMO_ANALYST)["name"] == "m1"
    check_demo_use(ANALYST, ws, "bank", action="train")  # real accounts: no demo rule
    monkeypatch.setenv("PROFILE_DEMO", "0")
    with pytest.raises(DemoRefused, match="switched off"):
        check_demo_use(DEMO_ANALYST, ws, "demo", action="train")
    with pytest.raises(DemoRefused, match="switched off"):
        ws.replace_dataset("demo", _tables(), source="demo")  # no demo data loaded with PROFILE_DEMO=0


def test_a_workspace_held_by_another_process_names_the_holder(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('ready', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WorkspaceBusy) as err:
            Workspace(path, lock_wait_s=0.3).list_datasets()
        assert f"PID {holder.pid}" in str(err.value) and "held by another process" in str(err.value)
        assert "duckdb.connect" in str(err.value)  # the holder's command line
        assert "占用" in err.value.message("zh")
    finally:
        holder.kill()
        holder.wait()
    with Workspace(path, lock_wait_s=0.3) as ws:  # free again
        assert ws.list_datasets().empty


def test_sign_in_sessions_expire_are_bound_to_the_browser_and_revocable(tmp_path) -> None:
    path = tmp_path / "ws.duckdb"
    with Workspace(path) as ws:
        token = ws.create_session("ana", client="ua-1")
        other = ws.create_session("ana", client="ua-2")
        assert len(token) >= 40 and token not in str(ws.con.execute("SELECT * FROM _sessions").fetchall())
    with Workspace(path) as ws:  # a restart (or another process) resumes it
        assert ws.resume_session(token, "ua-1", idle_s=60) == "ana"
        assert ws.resume_session(token, "ua-other", idle_s=60) is None  # a copied URL in another browser
        assert ws.resume_session("forged", "ua-1", idle_s=60) is None and ws.resume_session(None, idle_s=60) is None
        ws.con.execute("UPDATE _sessions SET last_seen = last_seen - INTERVAL 2 MINUTE")
        assert ws.resume_session(token, "ua-1", idle_s=60) is None  # idle too long: expired and revoked
        assert ws.resume_session(token, "ua-1", idle_s=3600) is None
        fresh = ws.create_session("ana", client="ua-1")
        assert ws.revoke_session(username="ana") == 2  # sign out everywhere: fresh and other
        assert ws.resume_session(fresh, "ua-1", idle_s=60) is None and ws.resume_session(other, "ua-2", idle_s=60) is None


def test_user_preferences_persist(tmp_path) -> None:
    with Workspace(tmp_path / "ws.duckdb") as ws:
        assert ws.user_pref("ana", "lang") is None
        ws.set_user_pref("ana", "lang", "en")
        ws.set_user_pref("ana", "lang", "zh")
        ws.set_user_pref("bo", "lang", "en")
    with Workspace(tmp_path / "ws.duckdb") as ws:
        assert (ws.user_pref("ana", "lang"), ws.user_pref("bo", "lang")) == ("zh", "en")
