"""REST API: auth, generated request models (422 naming the field), scoring identical to the CLI and
bundle.predict, explanations, masked profiles with RM isolation, and one real uvicorn process."""

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profile_core.bundle import load_bundle
from profile_core.features import build_features_from_frames
from profile_core.local_server import free_port, wait_healthy
from profile_core.pipeline import scored_frame
from profile_core.service import create_app, hash_key, load_keys, new_key
from profile_core.store import Workspace
from profile_core.synth import generate_portfolio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "demo"
KEYS = {"rm-a": ("rm", "RM001"), "rm-b": ("rm", "RM002"), "analyst": ("analyst", None),
        "auditor": ("auditor", None), "admin": ("admin", None), "admin-reveal": ("admin", None)}


def keys_config() -> dict:
    entries = []
    for key, (role, rm_id) in KEYS.items():
        entry = {"sha256": hash_key(key), "role": role, "name": key}
        if rm_id:
            entry["rm_id"] = rm_id
        if key == "admin-reveal":
            entry["reveal"] = True
        entries.append(entry)
    return {"keys": entries}


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tables = generate_portfolio(120, seed=11).tables()
    customers = tables["customers"]
    customers["rm_id"] = np.where(np.arange(len(customers)) % 2 == 0, "RM001", "RM002")
    path = tmp_path_factory.mktemp("ws") / "ws.duckdb"
    with Workspace(path) as ws:
        ws.replace_dataset("main", tables)
    return path, tables, build_features_from_frames(tables)


@pytest.fixture(scope="module")
def client(world):
    path, _, _ = world
    return TestClient(create_app(BUNDLE, workspace=path, dataset="main", keys=keys_config(),
                                 audit=path.with_name("audit.jsonl")))


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(BUNDLE)


def customers_payload(features: pd.DataFrame, bundle) -> list[dict]:
    cols = ["customer_id", *bundle.preprocessor.numeric, *bundle.preprocessor.categorical]
    frame = features[cols].astype(object).where(features[cols].notna(), None)
    return frame.to_dict(orient="records")


# --- auth and keys ------------------------------------------------------------------------------------------

def test_healthz_needs_no_key(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "model": "demo", "dataset": "main"}


@pytest.mark.parametrize("method, url", [("get", "/v1/model"), ("post", "/v1/score"), ("post", "/v1/explain"),
                                         ("get", "/v1/customers/C000001/profile")])
def test_401_without_or_with_a_wrong_key(client, method, url):
    for headers in ({}, h("not-a-key")):
        r = getattr(client, method)(url, headers=headers, **({"json": {"customers": [{}]}} if method == "post" else {}))
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "ApiKey" and "X-API-Key" in r.json()["detail"]


def test_keys_store_hashes_only(tmp_path):
    with pytest.raises(ValueError, match="plain key"):
        load_keys({"keys": [{"key": "secret", "role": "analyst"}]})
    with pytest.raises(ValueError, match="64 hex"):
        load_keys({"keys": [{"sha256": "secret", "role": "analyst"}]})
    with pytest.raises(ValueError, match="rm_id"):
        load_keys({"keys": [{"sha256": hash_key("x"), "role": "rm"}]})
    path = tmp_path / "keys.json"
    key = new_key(path, "rm", rm_id="RM001", name="张三")
    text = path.read_text(encoding="utf-8")
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keys(path)[hash_key(key)].policy.rm_id == "RM001"


def test_openapi_docs_and_generated_schema(client, bundle):
    assert client.get("/docs").status_code == 401  # off by default, and nothing but /healthz without a key
    assert client.get("/openapi.json", headers=h("analyst")).status_code == 404
    with_docs = TestClient(create_app(BUNDLE, keys=keys_config(), docs=True))
    assert with_docs.get("/docs").status_code == 401 and with_docs.get("/openapi.json").status_code == 401
    assert with_docs.get("/docs", headers=h("rm-a")).status_code == 200
    spec = with_docs.get("/openapi.json", headers=h("rm-a")).json()
    schema = spec["components"]["schemas"]["CustomerAttributes"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert set(props) == {"customer_id", *bundle.preprocessor.numeric, *bundle.preprocessor.categorical}
    assert {"type": "number", "minimum": -1e15, "maximum": 1e15} in props["income"]["anyOf"]
    assert {"type": "string", "maxLength": 200} in props["occupation"]["anyOf"]
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]


# --- /v1/score -----------------------------------------------------------------------------------------------

def test_422_names_the_field(client):
    r = client.post("/v1/score", headers=h("analyst"), json={"customers": [{"income": 30000}, {"income": "lots"}]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "customers", 1, "income"]
    assert "customers[1].income" in r.json()["message"]
    r = client.post("/v1/score", headers=h("analyst"), json={"customers": [{"agee": 30}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "agee"
    assert r.json()["detail"][0]["type"] == "extra_forbidden"
    r = client.post("/v1/score", headers={**h("analyst"), "Accept-Language": "en"}, json={"customers": []})
    assert r.status_code == 422 and r.json()["message"].startswith("Request field customers")


def test_score_is_identical_to_cli_and_bundle_predict(client, world, bundle):
    _, _, features = world
    r = client.post("/v1/score", headers=h("analyst"), json={"customers": customers_payload(features, bundle)})
    assert r.status_code == 200, r.text
    got = r.json()["customers"]
    cli = scored_frame(bundle, features)  # what `python -m profile_core score` writes
    direct = bundle.predict(features)
    assert [c["customer_id"] for c in got] == cli["customer_id"].tolist()
    np.testing.assert_array_equal([c["tasks"]["credit_score"]["value"] for c in got], cli["credit_score_pred"])
    np.testing.assert_array_equal([c["tasks"]["credit_score"]["value"] for c in got], direct["credit_score_pred"])
    np.testing.assert_array_equal([c["tasks"]["default"]["probability"] for c in got], direct["default_prob"])
    np.testing.assert_array_equal([c["points"] for c in got], cli["points"])
    assert [c["pd_grade"] for c in got] == cli["pd_grade"].tolist()
    assert [c["tasks"]["risk_level"]["label"] for c in got] == direct["risk_level_pred"].tolist()
    for k in "ABCDE":
        np.testing.assert_array_equal([c["tasks"]["risk_level"]["probabilities"][k] for c in got],
                                      direct[f"risk_level_prob_{k}"])


def test_score_one_customer_with_gaps(client, bundle):
    r = client.post("/v1/score", headers=h("admin"), json={"customers": [{"income": 41, "occupation": 7}]})
    assert r.status_code == 200  # missing values are imputed; a number for a category is read as text
    one = r.json()["customers"][0]
    assert "customer_id" not in one and set(one["tasks"]) == {t.name for t in bundle.tasks}
    assert 300 <= one["points"] <= 850 and one["pd_grade"] in "ABCDE"


# --- /v1/explain ----------------------------------------------------------------------------------------------

def test_explain_reason_codes_and_shap(client, world, bundle):
    _, _, features = world
    payload = customers_payload(features.iloc[:3], bundle)
    zh = client.post("/v1/explain", headers=h("analyst"), json={"customers": payload, "top": 3}).json()
    en = client.post("/v1/explain", headers=h("analyst"),
                     json={"customers": payload, "top": 3, "lang": "en", "tasks": ["default"]}).json()
    assert zh["method"] == "deep" and [c["customer_id"] for c in zh["customers"]] == features["customer_id"][:3].tolist()
    first = zh["customers"][0]["tasks"]
    assert set(first) == {t.name for t in bundle.tasks} and set(en["customers"][0]["tasks"]) == {"default"}
    d = first["default"]
    assert d["output_kind"] == "logit" and len(d["top_shap"]) == 3
    assert all(r["risk"] > 0 for r in d["up"]) and all(r["risk"] < 0 for r in d["down"])
    sentences = {lang: [r["sentence"] for c in body["customers"] for side in ("up", "down")
                        for r in c["tasks"]["default"][side]] for lang, body in (("zh", zh), ("en", en))}
    assert all(" is " in s for s in sentences["en"]) and not any(" is " in s for s in sentences["zh"])
    assert en["customers"][0]["tasks"]["default"]["top_shap"] == [  # same SHAP values, names in English
        {**s, "name": en["customers"][0]["tasks"]["default"]["top_shap"][i]["name"]} for i, s in enumerate(d["top_shap"])]
    # the logit explained is the model's own: sigmoid(output) is the default probability
    prob = client.post("/v1/score", headers=h("analyst"), json={"customers": payload}).json()
    assert 1 / (1 + np.exp(-d["output"])) == pytest.approx(prob["customers"][0]["tasks"]["default"]["probability"],
                                                           rel=1e-5)
    r = client.post("/v1/explain", headers=h("analyst"), json={"customers": payload, "tasks": ["nope"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "tasks"]
    r = client.post("/v1/explain", headers=h("analyst"), json={"customers": payload[:1] * 2})
    assert r.status_code == 422


# --- /v1/customers/{id}/profile -----------------------------------------------------------------------------

def _customer(tables, rm_id: str) -> pd.Series:
    c = tables["customers"]
    return c[c["rm_id"] == rm_id].iloc[0]


def test_profile_masked_for_analyst_and_full_for_own_rm(client, world):
    _, tables, _ = world
    row = _customer(tables, "RM001")
    cid = row["customer_id"]
    r = client.get(f"/v1/customers/{cid}/profile", headers=h("analyst"))
    assert r.status_code == 200, r.text
    body, text = r.json(), r.text
    for col in ("name", "phone", "id_number"):
        assert str(row[col]) not in text, col
    assert body["identity"]["name"].startswith(row["name"][0]) and "*" in body["identity"]["name"]
    assert body["outputs"]["grade"] in list("ABCDE") and len(body["login_heatmap"]) == 7
    assert set(body["reasons"]) == {"credit_score", "default", "risk_level", "wm_purchase", "churn"} and body["notice"]
    own = client.get(f"/v1/customers/{cid}/profile", headers=h("rm-a"), params={"lang": "en"}).json()
    assert own["identity"]["name"] == row["name"] and own["identity"]["phone"] == row["phone"]
    assert own["lang"] == "en"
    assert client.get(f"/v1/customers/{cid}/profile", headers=h("admin")).json()["identity"]["name"] != row["name"]
    assert client.get(f"/v1/customers/{cid}/profile", headers=h("admin-reveal")).json()["identity"]["name"] == row["name"]
    for tx in own["recent_transactions"]:
        assert tx["counterparty"] is None or "*" in tx["counterparty"] or len(tx["counterparty"]) <= 1


def test_rm_gets_404_for_another_rms_customer(client, world):
    _, tables, _ = world
    other = _customer(tables, "RM002")["customer_id"]
    denied = client.get(f"/v1/customers/{other}/profile", headers=h("rm-a"))
    unknown = client.get("/v1/customers/C999999/profile", headers=h("rm-a"))
    assert denied.status_code == unknown.status_code == 404
    assert denied.json()["detail"].replace(other, "X") == unknown.json()["detail"].replace("C999999", "X")
    assert client.get(f"/v1/customers/{other}/profile", headers=h("rm-b")).status_code == 200


def test_roles_follow_the_app_permissions(client, world):
    _, tables, _ = world
    cid = _customer(tables, "RM001")["customer_id"]
    r = client.get(f"/v1/customers/{cid}/profile", headers=h("auditor"))  # auditors review logs, not customers
    assert r.status_code == 403 and r.json()["detail"]
    assert client.get("/v1/customers/C999999/profile", headers=h("auditor")).status_code == 403  # same for all ids
    assert client.get("/v1/model", headers=h("rm-a")).status_code == 403  # the model card is monitoring
    for key in ("auditor", "rm-a"):  # scoring and explaining raw attributes needs the 'score' permission
        for url in ("/v1/score", "/v1/explain"):
            r = client.post(url, headers=h(key), json={"customers": [{"income": 30000}]})
            assert r.status_code == 403 and r.json()["detail"], (key, url)
    assert client.post("/v1/score", headers=h("admin"), json={"customers": [{"income": 30000}]}).status_code == 200


def test_profile_and_explanation_views_are_audited(client, world):
    from profile_core.audit import AuditLog, verify_chain

    path, tables, features = world
    row = _customer(tables, "RM002")
    client.get(f"/v1/customers/{row['customer_id']}/profile", headers=h("rm-b"))
    client.get(f"/v1/customers/{row['customer_id']}/profile", headers=h("rm-a"))  # not theirs: 404, recorded
    client.post("/v1/explain", headers=h("analyst"), json={"customers": [{"customer_id": "Z1", "income": 30000}]})
    log_path = path.with_name("audit.jsonl")
    entries = AuditLog(log_path).entries()
    views = [(e["user"], e["action"], e["target"], e["details"].get("found")) for e in entries]
    assert ("rm-b", "view_card", row["customer_id"], True) in views
    assert ("rm-a", "view_card", row["customer_id"], False) in views
    assert ("analyst", "view_explanation", "Z1", None) in views
    assert verify_chain(log_path).ok
    text = log_path.read_text(encoding="utf-8")
    assert row["name"] not in text and row["phone"] not in text


def test_model_endpoint(client, bundle):
    body = client.get("/v1/model", headers=h("auditor")).json()
    assert body["name"] == "demo" and body["metrics"] == bundle.manifest["metrics"]
    assert body["dataset"]["name"] == "main" and body["dataset"]["customers"] == 120
    assert body["features"]["numeric"] == bundle.preprocessor.numeric
    assert "preprocessor" not in json.dumps(body) and "history" not in body


def test_without_dataset_the_reference_is_the_median_customer(bundle):
    from profile_core.service import median_frame

    reference = median_frame(bundle.preprocessor)
    numbers = [bundle.preprocessor.output_names.index(c) for c in bundle.preprocessor.numeric]  # scaled values
    np.testing.assert_allclose(bundle.preprocessor.transform(reference)[0, numbers],
                               (np.asarray(bundle.preprocessor.median) - bundle.preprocessor.mean)
                               / bundle.preprocessor.scale, atol=1e-5)
    c = TestClient(create_app(BUNDLE))
    payload = reference.drop(columns="customer_id").iloc[0].to_dict()
    body = c.post("/v1/explain", json={"customers": [payload], "top": 3}).json()
    for task in body["customers"][0]["tasks"].values():  # explained against itself: nothing to attribute
        assert all(abs(s["shap"]) < 1e-6 for s in task["top_shap"])
        assert task["output"] == pytest.approx(task["base_value"], abs=1e-6)


def test_without_dataset_or_keys():
    c = TestClient(create_app(BUNDLE))  # local use: no keys → analyst; no workspace → no profiles
    assert c.post("/v1/score", json={"customers": [{"income": 30000}]}).status_code == 200
    r = c.get("/v1/customers/C000001/profile")
    assert r.status_code == 404 and "--workspace" in r.json()["detail"]
    r = c.post("/v1/explain", json={"customers": [{"customer_id": "a", "income": 30000}], "lang": "en"})
    assert r.status_code == 200 and r.json()["customers"][0]["customer_id"] == "a"


# --- a real server ----------------------------------------------------------------------------------------------

def test_real_uvicorn_process(tmp_path):
    import httpx

    keys = tmp_path / "keys.json"
    key = new_key(keys, "analyst")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "profile_core.service", "--bundle", str(BUNDLE), "--port", str(port),
                             "--keys", str(keys), "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/healthz", proc, timeout=45)
        r = httpx.post(f"{url}/v1/score", json={"customers": [{"customer_id": "x", "income": 35000}]},
                       headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200 and r.json()["customers"][0]["customer_id"] == "x"
        assert httpx.post(f"{url}/v1/score", json={"customers": [{}]}, timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode in (0, -15)
