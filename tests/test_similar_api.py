"""GET /v1/customers/{id}/similar: the same neighbours as the core, the caller's scope (an RM: own customers
only; another RM's customer is the same 404 as an unknown one), names masked per role, audited."""

from profile_core.audit import AuditLog
from tests.test_service import client, h, world  # noqa: F401 — fixtures reused


def _customer(tables, rm_id: str):
    c = tables["customers"]
    return c[c["rm_id"] == rm_id].iloc[0]


def test_similar_within_scope_masked_and_audited(client, world):  # noqa: F811
    path, tables, features = world
    row = _customer(tables, "RM001")
    cid = row["customer_id"]
    r = client.get(f"/v1/customers/{cid}/similar", headers=h("analyst"), params={"k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    found = body["customers"]
    assert body["k"] == 7 and len(found) == 7 and [f["rank"] for f in found] == list(range(1, 8))
    assert cid not in {f["customer_id"] for f in found}
    sims = [f["similarity"] for f in found]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    names = tables["customers"].set_index("customer_id")["name"]
    assert all("*" in f["name"] and f["name"][0] == names[f["customer_id"]][0] for f in found)
    labels = features.set_index("customer_id")
    for f in found:  # observed outcomes are the customers' own labels
        assert f["observed"]["default"] == labels.loc[f["customer_id"], "default_flag"]
        assert 0 <= f["predictions"]["default_prob"] <= 1
    owners = tables["customers"].set_index("customer_id")["rm_id"]
    mine = client.get(f"/v1/customers/{cid}/similar", headers=h("rm-a"), params={"k": 50}).json()["customers"]
    assert len(mine) == min(50, int((owners == "RM001").sum()) - 1)  # own customers only, never the one asked about
    assert {owners[f["customer_id"]] for f in mine} == {"RM001"}
    assert all(f["name"] == names[f["customer_id"]] for f in mine)  # own customers: names in full
    other = _customer(tables, "RM002")["customer_id"]
    denied = client.get(f"/v1/customers/{other}/similar", headers=h("rm-a"))
    unknown = client.get("/v1/customers/C999999/similar", headers=h("rm-a"))
    assert denied.status_code == unknown.status_code == 404
    assert client.get(f"/v1/customers/{cid}/similar", headers=h("auditor")).status_code == 403
    assert client.get(f"/v1/customers/{cid}/similar", headers=h("analyst"), params={"k": 0}).status_code == 422
    entries = [(e["user"], e["action"], e["target"], e["details"].get("found"))
               for e in AuditLog(path.with_name("audit.jsonl")).entries()]
    assert ("analyst", "view_similar", cid, True) in entries and ("rm-a", "view_similar", other, False) in entries
