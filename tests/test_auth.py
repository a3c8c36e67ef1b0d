"""Sign-in and role rules at the profile_core level: the users file (bcrypt hashes only), authentication, demo
accounts, the permission table, and the rules every query obeys whatever the pages show (an RM's query for
another RM's customer returns nothing)."""

from __future__ import annotations

import pandas as pd
import pytest

from profile_core import auth
from profile_core.auth import (
    PERMISSIONS,
    AuthError,
    Forbidden,
    LoginThrottle,
    User,
    UsersFileError,
    allowed,
    authenticate,
    dataset_is_demo,
    demo_mode_enabled,
    hash_password,
    load_users,
    mark_demo,
    policy_for,
    require,
    verify_password,
    workspace_is_demo,
)
from profile_core.privacy import AccessDenied, Policy, mask_frame
from profile_core.store import Workspace

ROOT_USERS = "config/users.yaml"

#: The role rules (README / report table): role → actions it may do; everything else is refused.
RULES = {
    "rm": {"view_customers", "export"},
    "analyst": {"view_customers", "view_monitoring", "load_data", "train", "activate_bundle", "export", "score"},
    "auditor": {"view_monitoring", "view_audit", "export", "repair_audit"},
    "admin": {"view_customers", "view_monitoring", "view_audit", "load_data", "train", "activate_bundle", "export",
              "manage_users", "reveal", "score"},
}


@pytest.fixture(scope="module")
def fast_hash():
    return hash_password("s3cret-pw", rounds=4)


def _users_file(tmp_path, body: str):
    path = tmp_path / "users.yaml"
    path.write_text(body, encoding="utf-8")
    return path


# ------------------------------------------------------------------ users file


def test_shipped_users_are_demo_accounts_with_bcrypt_hashes():
    config = load_users(ROOT_USERS)
    assert {u.role for u in config.users.values()} == {"rm", "analyst", "auditor", "admin"}
    assert all(u.demo for u in config.users.values())
    assert all(u.password_hash.startswith("$2b$") for u in config.users.values())
    assert config.get("rm01").rm_id == "RM001" and config.get("RM01") == config.get("rm01")
    text = open(ROOT_USERS, encoding="utf-8").read()
    assert " password:" not in text.replace("demo_password:", "")  # no plain-text passwords (demo one aside)
    assert verify_password(config.demo_password, config.get("analyst").password_hash)


@pytest.mark.parametrize(("body", "fragment"), [
    ("users: {bob: {role: analyst, password: hunter2}}", "plain-text"),
    ("users: {bob: {role: boss, password_hash: x}}", "role"),
    ("users: {bob: {role: rm, password_hash: '$2b$04$abcdefghijklmnopqrstuuKx6R8M0iF9Q9JzO1m3Zl6yP4x8uK1S2'}}", "rm_id"),
    ("users: {bob: {role: analyst, password_hash: 'md5:abc'}}", "bcrypt"),
    ("users: [1, 2]", "users"),
    ("users: {'bad name!': {role: analyst}}", "names"),
    (": : :", "YAML"),
])
def test_bad_users_files_are_refused_with_the_file_named(tmp_path, body, fragment):
    path = _users_file(tmp_path, body)
    with pytest.raises(UsersFileError) as err:
        load_users(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert str(path) in err.value.message("zh")


def test_missing_users_file(tmp_path):
    with pytest.raises(UsersFileError, match="nowhere.yaml"):
        load_users(tmp_path / "nowhere.yaml")


# ------------------------------------------------------------------ passwords and sign-in


def test_hash_and_verify(fast_hash):
    assert verify_password("s3cret-pw", fast_hash)
    assert not verify_password("s3cret-pW", fast_hash)
    long_hash = hash_password("x" * 72, rounds=4)
    assert verify_password("x" * 72, long_hash)
    assert not verify_password("x" * 100, long_hash)  # > 72 bytes: refused, not silently cut to the first 72
    with pytest.raises(ValueError):
        hash_password("x" * 73)
    assert not verify_password("s3cret-pw", "not a hash")
    assert hash_password("s3cret-pw", rounds=4) != fast_hash  # salted


def test_authenticate(tmp_path, fast_hash):
    path = _users_file(tmp_path, f"users:\n  real: {{role: analyst, password_hash: '{fast_hash}'}}\n"
                                 f"  demo1: {{role: rm, rm_id: RM001, demo: true, password_hash: '{fast_hash}'}}\n")
    config = load_users(path)
    assert authenticate(config, "REAL ", "s3cret-pw", demo_allowed=False).username == "real"
    for name, password in (("real", "wrong"), ("nobody", "s3cret-pw"), ("", "")):
        with pytest.raises(AuthError) as err:
            authenticate(config, name, password, demo_allowed=True)
        assert err.value.key == "auth.bad_credentials"  # an unknown name reads like a wrong password
    assert authenticate(config, "demo1", "s3cret-pw", demo_allowed=True).demo
    with pytest.raises(AuthError) as err:
        authenticate(config, "demo1", "s3cret-pw", demo_allowed=False)
    assert err.value.key == "auth.demo_refused" and "演示" in err.value.message("zh")


def test_demo_mode_switch():
    assert demo_mode_enabled({})
    assert demo_mode_enabled({"PROFILE_DEMO": "1"})
    for off in ("0", "false", "No", " off "):
        assert not demo_mode_enabled({"PROFILE_DEMO": off})
    assert auth.demo_allowed({"PROFILE_DEMO": "1"}, True) and not auth.demo_allowed({"PROFILE_DEMO": "1"}, False)
    assert not auth.demo_allowed({"PROFILE_DEMO": "0"}, True)


def test_demo_data_is_the_demo_load_or_tagged_uploads():
    from profile_core.ingest import load_into_workspace

    csv = b"customer_id,age\nC1,30\nC2,40\n"
    with Workspace(":memory:") as ws:
        assert workspace_is_demo(ws)  # empty
        load_into_workspace([("customers.csv", csv)], ws, dataset="demo", source="demo")
        assert not workspace_is_demo(ws)  # a source (file) named "demo" is not demo data
        mark_demo(ws, "demo")  # what the demo loader writes
        assert workspace_is_demo(ws) and ws.meta("demo")["demo_generator"] == "profile_core.synth"
        load_into_workspace([("customers.csv", csv)], ws, dataset="main")
        assert not workspace_is_demo(ws)  # an untagged upload is real data
        ws.update_meta("main", {"demo": True, "loaded_by": "analyst"})
        assert workspace_is_demo(ws) and ws.meta("main")["labels"] == {}
        load_into_workspace([("customers.csv", csv)], ws, dataset="main")  # a later load drops the tag
        assert not workspace_is_demo(ws)
    assert not dataset_is_demo("demo", None) and not dataset_is_demo("demo.csv", {"demo": "yes"})
    assert dataset_is_demo("anything.csv", {"demo": True})


def test_login_throttle():
    gate = LoginThrottle(max_failures=3, window_s=60, lockout_s=30)
    for i in range(3):
        assert gate.locked("bob", now=100 + i) == 0
        gate.failed("Bob", now=100 + i)
    assert gate.locked("bob", now=103) > 0
    assert gate.locked("alice", now=103) == 0
    assert gate.locked("bob", now=140) == 0  # the lockout has passed
    gate.failed("bob", now=141)
    gate.succeeded("bob")
    assert gate.locked("bob", now=142) == 0


def test_login_throttle_is_keyed_by_client_and_bounded():
    gate = LoginThrottle(max_failures=3, window_s=60, lockout_s=30, max_client_failures=10, max_keys=100)
    for i in range(3):  # an attacker at 10.0.0.9 fails three times for bob
        gate.failed("bob", "10.0.0.9", now=100 + i)
    assert gate.locked("bob", "10.0.0.9", now=103) > 0
    assert gate.locked("bob", "192.168.1.5", now=103) == 0  # bob himself, from his own client, is not locked out
    for i in range(10):  # spraying names from one client locks that client for every name
        gate.failed(f"user{i}", "10.0.0.66", now=200 + i)
    assert gate.locked("alice", "10.0.0.66", now=210) > 0 and gate.locked("alice", "10.0.0.1", now=210) == 0
    for i in range(5000):  # many names from many clients: memory stays bounded
        gate.failed(f"name{i}", f"c{i}", now=300)
    assert len(gate) <= 100


# ------------------------------------------------------------------ permissions


@pytest.mark.parametrize("role", sorted(RULES))
def test_permission_table(role):
    policy = Policy(role, rm_id="RM001" if role == "rm" else None)
    assert PERMISSIONS[role] == RULES[role]
    for action in sorted(auth.ACTIONS):
        assert allowed(policy, action) == (action in RULES[role]), (role, action)
        if action in RULES[role]:
            require(policy, action)
        else:
            with pytest.raises(Forbidden) as err:
                require(policy, action)
            assert err.value.action == action and err.value.message("en")


def test_require_refuses_no_policy_and_unknown_actions():
    with pytest.raises(Forbidden):
        require(None, "export")
    with pytest.raises(ValueError):
        allowed(Policy("admin"), "launch_rockets")


def test_policy_for_binds_the_rm_and_reveals_for_admins_only():
    rm = User("rm01", "rm", rm_id="RM001")
    assert policy_for(rm) == Policy("rm", rm_id="RM001")
    assert policy_for(rm, reveal=True) == Policy("rm", rm_id="RM001")
    assert policy_for(User("a", "analyst"), reveal=True) == Policy("analyst")
    assert policy_for(User("root", "admin"), reveal=True).reveal
    assert not policy_for(User("aud", "auditor"), reveal=True).reveal


# ------------------------------------------------------------------ the rules hold in profile_core queries


@pytest.fixture(scope="module")
def portfolio():
    from profile_core.synth import generate_portfolio

    return generate_portfolio(80, seed=3)


def test_rm_query_for_another_rms_customer_returns_nothing(portfolio):
    from profile_core.features import build_features_from_frames
    from profile_core.profile import CardContext

    customers = portfolio.customers
    mine = policy_for(User("rm01", "rm", rm_id="RM001"))
    other = customers[customers["rm_id"] != "RM001"].iloc[0]
    own = customers[customers["rm_id"] == "RM001"]
    assert len(own) and len(other)
    seen = mask_frame(customers, mine)
    assert set(seen["customer_id"]) == set(own["customer_id"])
    assert mask_frame(customers[customers["customer_id"] == other["customer_id"]], mine).empty
    tx = portfolio.transactions  # event tables follow their customers' RM
    owners = dict(zip(customers["customer_id"], customers["rm_id"], strict=True))
    assert set(mask_frame(tx, mine, owners=owners)["customer_id"]) <= set(own["customer_id"])
    context = CardContext(portfolio.tables(), build_features_from_frames(portfolio.tables()))
    with pytest.raises(AccessDenied):
        context.card(other["customer_id"], policy=mine)
    card = context.card(own.iloc[0]["customer_id"], policy=mine)
    assert card.identity["name"] == own.iloc[0]["name"]  # own customers in full
    analyst = context.card(other["customer_id"], policy=policy_for(User("a", "analyst")))
    assert analyst.identity["name"] == other["name"][0] + "*" * (len(other["name"]) - 1)


def test_loading_data_needs_the_permission():
    from profile_core.ingest import load_into_workspace

    csv = b"customer_id,age\nC1,30\n"
    with Workspace(":memory:") as ws:
        for role in ("rm", "auditor"):
            with pytest.raises(Forbidden):
                load_into_workspace([("customers.csv", csv)], ws, policy=Policy(role, rm_id="RM001"))
        assert ws.list_datasets().empty  # refused before anything was read or written
        for role in ("analyst", "admin"):
            assert load_into_workspace([("customers.csv", csv)], ws, dataset=role, policy=Policy(role)).version == 1


def test_audit_log_needs_the_permission(tmp_path):
    from profile_core.audit import AuditLog

    log = AuditLog(tmp_path / "a.jsonl")
    log.append("x", "analyst", "login")
    for role in ("rm", "analyst"):
        with pytest.raises(Forbidden):
            log.query(Policy(role, rm_id="RM001"))
    assert len(log.query(Policy("auditor"))) == 1 and len(log.query(Policy("admin"))) == 1


def test_masks_by_role_on_identity_columns():
    frame = pd.DataFrame({"customer_id": ["C1", "C2"], "name": ["张三丰", "李四"], "rm_id": ["RM001", "RM002"],
                          "phone": ["13812345678", "13900001111"], "id_number": ["110105199001011234"] * 2})
    analyst = mask_frame(frame, Policy("analyst"))
    assert analyst["name"].tolist() == ["张**", "李*"]
    assert analyst["phone"].tolist() == ["138****5678", "139****1111"]
    assert analyst["id_number"].iloc[0] == "110***********1234"
    assert mask_frame(frame, Policy("auditor"))["name"].tolist() == ["张**", "李*"]
    rm = mask_frame(frame, Policy("rm", rm_id="RM002"))
    assert rm["name"].tolist() == ["李四"] and rm["phone"].tolist() == ["13900001111"]
    assert mask_frame(frame, Policy("admin", reveal=True))["name"].tolist() == ["张三丰", "李四"]
    assert mask_frame(frame, Policy("admin"))["name"].tolist() == ["张**", "李*"]
