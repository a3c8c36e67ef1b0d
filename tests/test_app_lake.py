"""The app on a read-only partitioned data set (``PROFILE_LAKE``, ``ui.lake``; issue 19) through AppTest: a
customer's card read by key from the lake (the same card, masked per role, audited), the local explanation,
the pages that need the whole portfolio saying why they are not available (zh and en), and nothing written
into the lake or its feature file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from profile_core.i18n import t
from profile_core.privacy import Policy
from ui import keys
from ui import lake as lake_ui
from ui.keys import PagePath

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
TIMEOUT = 120
N, PARTS, SEED = 300, 3, 7
CID = "C000150"  # in partition 1


@pytest.fixture(scope="module")
def lake_env(tmp_path_factory):
    """A 300-customer lake in 3 partitions, its feature file and a 1-epoch model trained from that file."""
    from profile_core.lake import lake_features, write_demo_lake
    from profile_core.pipeline import train_and_save

    root = tmp_path_factory.mktemp("lakeapp")
    write_demo_lake(root / "lake", N, PARTS, seed=SEED)
    lake_features(root / "lake", root / "features.parquet")
    train_and_save(root / "features.parquet", root / "bundle", epochs=1, seed=1, device="cpu")
    customers = pd.concat([pd.read_parquet(p) for p in sorted((root / "lake" / "customers").glob("part=*/*.parquet"))],
                          ignore_index=True)
    return {"root": root, "lake": root / "lake", "features": root / "features.parquet", "bundle": root / "bundle",
            "customers": customers.set_index("customer_id", drop=False)}


@pytest.fixture()
def env(lake_env, tmp_path, monkeypatch):
    """The app on the lake with a fresh, empty workspace (users, audit) per test."""
    monkeypatch.setenv("PROFILE_WORKSPACE", str(tmp_path / "ws.duckdb"))
    monkeypatch.setenv("PROFILE_DEMO_DATA", str(tmp_path / "no-demo"))
    monkeypatch.setenv("PROFILE_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROFILE_LAKE", str(lake_env["lake"]))
    monkeypatch.setenv("PROFILE_LAKE_FEATURES", str(lake_env["features"]))
    monkeypatch.setenv("PROFILE_LAKE_BUNDLE", str(lake_env["bundle"]))
    monkeypatch.setenv("PROFILE_AUTOLOGIN", "analyst")  # a preset keys.ROLE picks another demo account
    return lake_env


def _app(role: str | None = None, lang: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if role:
        at.session_state[keys.ROLE] = role  # rm → rm01 (RM001), admin → admin (config/users.yaml)
    if lang:
        at.session_state[keys.LANG] = lang
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _open(at: AppTest, page: PagePath, customer: str | None = None) -> AppTest:
    at.run()
    if customer is not None:
        at.query_params["id"] = customer  # a deep link /customers?id=…
    at.switch_page(str(page)).run()
    _ok(at)
    return at


def _card_titles(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader if " · C" in s.value]


def _views(workspace: Path) -> list[tuple[str, str, str]]:
    log = Path(f"{workspace}.audit.jsonl")
    if not log.is_file():
        return []
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(e["user"], e["role"], e["target"]) for e in entries if e["action"] == "view_card"]


def _snapshot(*paths: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*"))
        for f in files:
            st = f.stat()
            out[str(f)] = (st.st_size, st.st_mtime_ns)
    return out


# ------------------------------------------------------------------ the card


def test_card_of_a_lake_customer_reads_only_that_customer(env, monkeypatch, tmp_path):
    import profile_core.lake as lake_module

    seen: list[str] = []
    real = lake_module.read_customer
    monkeypatch.setattr(lake_module, "read_customer", lambda path, cid, *a, **k: seen.append(cid) or real(path, cid))
    at = _open(_app(), PagePath.CUSTOMERS, CID)
    row = env["customers"].loc[CID]
    masked = Policy("analyst").mask_identity(row)["name"]
    assert masked != row["name"]  # an analyst sees identities masked
    assert _card_titles(at) == [f"{masked} · {CID}"]
    assert seen == [CID]  # one customer read by key; nothing portfolio-wide
    facts = " ".join(c.value for c in at.caption)
    assert f"{row['city']}" in facts and f"RM{row['rm_id'][2:]}" in facts
    assert t("lake_app.banner", "zh", name="lake", customers=f"{N:,}", partitions=PARTS) in facts
    assert len(at.get("plotly_chart")) >= 3  # gauge, monthly flows, login heat map
    # the sidebar names the lake as the active data set, read-only, and the lake's model
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "lake（数据湖，只读）" in sidebar and "**bundle**" in sidebar
    assert _views(tmp_path / "ws.duckdb") == [("analyst", "analyst", CID)]  # audited as view_card
    assert [b.proto.label for b in at.get("download_button")] == [t("export.report_button", "zh")]  # as a report
    import logging

    from profile_core.audit import install_log_redaction

    record = logging.makeLogRecord({"msg": f"looked at {row['name']}"})  # the name read is kept out of the logs
    install_log_redaction().filter(record)
    assert row["name"] not in record.getMessage()
    from profile_core.store import Workspace

    with Workspace(os.environ["PROFILE_WORKSPACE"]) as ws:  # no data set loaded into the workspace
        assert ws.list_datasets().empty


def test_search_box_opens_another_customer_and_an_unknown_id_says_so(env, tmp_path):
    at = _open(_app(lang="en"), PagePath.CUSTOMERS)
    sample = at.selectbox(key=lake_ui.SAMPLE_SELECT)
    assert 0 < len(sample.options) <= lake_ui.SAMPLE_IDS and all(o.startswith("C") for o in sample.options)
    at.text_input(key=lake_ui.SEARCH).set_value("C000007").run()
    _ok(at)
    assert _card_titles(at)[0].endswith("· C000007")
    at.text_input(key=lake_ui.SEARCH).set_value("C999999").run()
    _ok(at)
    assert not _card_titles(at)
    assert [w.value for w in at.warning] == [t("lake_app.not_found", "en", customer="C999999", lake="lake")]
    assert ("analyst", "analyst", "C999999") not in _views(tmp_path / "ws.duckdb")


def test_masking_by_role_on_a_lake(env, tmp_path):
    customers = env["customers"]
    own = customers[customers["rm_id"] == "RM001"]["customer_id"].iloc[0]
    other = customers[customers["rm_id"] != "RM001"]["customer_id"].iloc[0]
    # an RM sees their own customer in full, and another RM's customer not at all (the unknown-ID sentence)
    at = _open(_app("rm"), PagePath.CUSTOMERS, own)
    assert _card_titles(at) == [f"{customers.loc[own, 'name']} · {own}"]
    sample = at.selectbox(key=lake_ui.SAMPLE_SELECT).options
    assert set(sample) <= set(customers[customers["rm_id"] == "RM001"]["customer_id"])  # only their own IDs
    at.text_input(key=lake_ui.SEARCH).set_value(other).run()
    _ok(at)
    assert not _card_titles(at)
    assert [w.value for w in at.warning] == [t("lake_app.not_found", "zh", customer=other, lake="lake")]
    # an admin sees names masked until the (audited) reveal switch is on
    admin = _open(_app("admin"), PagePath.CUSTOMERS, other)
    masked = Policy("admin").mask_identity(customers.loc[other])["name"]
    assert _card_titles(admin) == [f"{masked} · {other}"]
    admin.toggle(key=keys.REVEAL_TOGGLE).set_value(True).run()
    _ok(admin)
    assert _card_titles(admin) == [f"{customers.loc[other, 'name']} · {other}"]
    assert [v[2] for v in _views(tmp_path / "ws.duckdb")] == [own, other]  # other RM's lookup: not a view


def test_local_explanation_of_a_lake_customer(env):
    at = _open(_app(lang="en"), PagePath.CUSTOMERS, CID)
    at.switch_page(str(PagePath.EXPLANATIONS)).run()  # the same customer (card.SELECTED)
    _ok(at)
    assert [s.value for s in at.subheader][:1] == [t("explanations.local", "en")]
    subheaders = [s.value for s in at.subheader]
    assert t("explanations.global", "en") in subheaders and t("explanations.beeswarm", "en") in subheaders
    assert t("lake_app.global_sample", "en", n=f"{N:,}", total=f"{N:,}", seed=0) in [c.value for c in at.caption]
    from profile_core.explain import global_importance

    expl = lake_ui.sample_explanation(str(env["lake"]), str(env["features"]), str(env["bundle"]),
                                      lake_ui._sha(env["bundle"]))
    assert len(expl.customer_ids) == N  # a 300-customer lake: the whole lake is the sample
    assert not global_importance(expl).empty


# ------------------------------------------------------------------ what-if, recourse, similar customers


@pytest.fixture()
def demo_env(env, monkeypatch):
    """The lake with the shipped demo model (trained on the demo generator's data, as the lake is): its grades
    spread from A to E, so a better grade is within reach for some customers."""
    bundle = ROOT / "models" / "demo"
    monkeypatch.setenv("PROFILE_LAKE_BUNDLE", str(bundle))
    return {**env, "bundle": bundle}


def _population(env) -> pd.DataFrame:
    """Every feature row of the 300-customer lake: the population a card's what-if and recourse use there (the
    customer's row and the 10,000-row reference sample, which holds the whole lake)."""
    from profile_core.lake import read_feature_rows

    return read_feature_rows(env["features"], [], sample=10_000, seed=0)


def _audited(workspace: Path, action: str) -> list[tuple[str, dict]]:
    log = Path(f"{workspace}.audit.jsonl")
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(e["target"], e) for e in entries if e["action"] == action]


def _table_with(at: AppTest, column: str) -> pd.DataFrame:
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def test_what_if_on_a_lake_card_moves_the_shown_scores(demo_env, tmp_path):
    from profile_core.bundle import load_bundle
    from profile_core.tasks import role_task
    from profile_core.whatif import heads_frame, input_bounds, what_if

    at = _open(_app(lang="en"), PagePath.CUSTOMERS, CID)
    at.multiselect(key=f"customers-whatif-pick-{CID}").set_value(["util_latest", "max_dpd_3m"]).run()
    _ok(at)
    inputs = {n.key.rsplit("-", 1)[1]: n for n in at.number_input if n.key and n.key.startswith("whatif-")}
    assert set(inputs) == {"util_latest", "max_dpd_3m"}
    row = _population(demo_env).pipe(lambda f: f[f["customer_id"] == CID])
    for name, box in inputs.items():  # the customer's own values, bounded as on a workspace card
        assert box.value == pytest.approx(float(row[name].iloc[0]))
        assert (box.min, box.max) == input_bounds(name) == (0.0, None)
    inputs["util_latest"].set_value(1.5)
    inputs["max_dpd_3m"].set_value(90.0)
    at.button(key=f"customers-whatif-button-{CID}").click().run()
    _ok(at)
    shown = _table_with(at, "What-if")
    changes = {"util_latest": 1.5, "max_dpd_3m": 90.0}
    bundle = load_bundle(demo_env["bundle"])
    expected = heads_frame(what_if(bundle, row, changes, lang="en"), "en")
    assert shown.astype(str).to_numpy().tolist() == expected.astype(str).to_numpy().tolist()
    by_head = shown.set_index("Output")
    for role in ("score", "pd"):  # the shown credit score and default probability moved
        moved = by_head.loc[role_task(bundle.tasks, role).display("en")]
        assert moved["Now"] != moved["What-if"] and moved["Changed"] == "●", role
    assert [target for target, _ in _audited(tmp_path / "ws.duckdb", "what_if")] == [CID]


def _recourse_customer(env) -> tuple[str, object]:
    """A lake customer below grade A for whom a change of up to three attributes reaches the next grade."""
    from profile_core.bundle import load_bundle
    from profile_core.scoring import score_chunk
    from profile_core.whatif import better_grade, recourse

    bundle, frame = load_bundle(env["bundle"]), _population(env)
    grades = score_chunk(bundle, frame).set_index(frame["customer_id"].astype("str"))["pd_grade"]
    for cid in grades[grades.isin(["C", "D"])].index:
        row = frame[frame["customer_id"] == cid]
        result = recourse(bundle, row, frame, target_grade=better_grade(grades[cid]))
        if result.found:
            return cid, result
    pytest.fail("no customer of the demo lake has a path to a better grade")


def test_recourse_on_a_lake_card_lists_a_change(demo_env, tmp_path):
    from profile_core.bundle import load_bundle
    from profile_core.features import feature_info
    from profile_core.whatif import recourse_sentence

    cid, result = _recourse_customer(demo_env)
    at = _open(_app(lang="en"), PagePath.CUSTOMERS, cid)
    assert at.selectbox(key=f"recourse-target-{cid}").value == result.target_grade  # one grade better
    at.button(key=f"recourse-button-{cid}").click().run()
    _ok(at)
    sentence = recourse_sentence(result, load_bundle(demo_env["bundle"]), "en")
    assert sentence in [m.value for m in at.markdown]
    assert all(feature_info(a).en in sentence for a in result.changes)  # each change named on the page
    table = _table_with(at, "What-if")
    assert table.set_index("Output").loc["PD grade", "What-if"] <= result.target_grade
    assert [(t_, e["details"].get("recourse")) for t_, e in _audited(tmp_path / "ws.duckdb", "what_if")] == \
        [(cid, result.target_grade)]


@pytest.fixture()
def small_sample(monkeypatch):
    """Cards compared with a 120-customer reference sample (of the 300), so "from the sample" can be told
    apart from "from the lake"; the app's cached cards are dropped before and after."""
    import profile_core.lake as lake_module

    monkeypatch.setattr(lake_module, "CARD_SAMPLE", 120)
    lake_ui.cards.clear()
    lake_ui.sample_explanation.clear()
    yield 120
    lake_ui.cards.clear()
    lake_ui.sample_explanation.clear()


def _similar_table(at: AppTest) -> pd.DataFrame:
    return _table_with(at, t("similar.col.similarity", "en"))


def test_similar_customers_on_a_lake_card_come_from_the_reference_sample(demo_env, small_sample, tmp_path):
    from profile_core.bundle import load_bundle
    from profile_core.lake import LakeCards, read_feature_rows

    sample = set(read_feature_rows(demo_env["features"], [], sample=small_sample, seed=0)["customer_id"])
    customers = demo_env["customers"]
    outside = next(c for c in (CID, *customers.index) if c not in sample)  # a customer the sample lacks
    expected = LakeCards(demo_env["lake"], demo_env["features"], load_bundle(demo_env["bundle"]),
                         sample=small_sample).similar(outside, Policy("analyst"), 5)
    at = _open(_app(lang="en"), PagePath.CUSTOMERS, outside)
    assert t("lake_card.similar_sample", "en", n=f"{small_sample:,}", total=f"{N:,}", seed=0) in \
        [c.value for c in at.caption]
    table = _similar_table(at)
    ids = table[t("similar.col.customer", "en")].tolist()
    assert ids == expected["customer_id"].tolist() and len(ids) == 5
    assert set(ids) <= sample and outside not in ids  # neighbours from the sample, never the customer
    masked = [Policy("analyst").mask_identity(customers.loc[c])["name"] for c in ids]
    assert table[t("similar.col.name", "en")].tolist() == masked  # names read by key, masked for the role
    assert all(n != customers.loc[c, "name"] for n, c in zip(masked, ids, strict=True))
    assert [(tg, e["details"]["shown"]) for tg, e in _audited(tmp_path / "ws.duckdb", "view_similar")] == [(outside, 5)]
    # an RM: only their own customers of the sample, names in full
    own = customers[customers["rm_id"] == "RM001"]
    cid = own["customer_id"].iloc[0]
    rm = _open(_app("rm", "en"), PagePath.CUSTOMERS, cid)
    table = _similar_table(rm)
    mine = (set(own["customer_id"]) & sample) - {cid}
    ids = table[t("similar.col.customer", "en")].tolist()
    assert 0 < len(ids) == min(5, len(mine)) and set(ids) <= mine
    assert table[t("similar.col.name", "en")].tolist() == [customers.loc[c, "name"] for c in ids]


# ------------------------------------------------------------------ what a lake cannot do, said


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pages_that_need_the_portfolio_say_why(env, lang):
    at = _app(lang=lang).run()
    _ok(at)
    for page, area in ((PagePath.COHORTS, "cohorts"), (PagePath.MONITORING, "monitoring"),
                       (PagePath.MODEL, "training")):
        at.switch_page(str(page)).run()
        _ok(at)
        assert t(f"lake_app.unavailable.{area}", lang) in [i.value for i in at.info], page
        assert not at.get("plotly_chart") and not at.dataframe
    at.switch_page(str(PagePath.DATA)).run()  # the data page: the lake's own description, no upload
    _ok(at)
    assert not at.get("file_uploader")
    assert [m.value for m in at.metric][:4] == [f"{n:,}" for n in _meta(env)["rows"].values()]
    facts = at.dataframe[0].value
    assert f"{N:,}" in facts.iloc[:, 1].tolist() and str(PARTS) in facts.iloc[:, 1].tolist()


def test_portfolio_on_a_lake_is_estimated_from_the_reference_sample(env):
    from profile_core.bundle import load_bundle
    from profile_core.lake import read_feature_rows
    from profile_core.views import portfolio_frame, portfolio_kpis

    at = _app(lang="en").run()
    at.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(at)
    # a 300-customer lake lies wholly inside the 10,000-customer reference sample
    assert t("lake_app.portfolio_sample", "en", n=f"{N:,}", total=f"{N:,}") in [i.value for i in at.info]
    bundle = load_bundle(env["bundle"])
    sample = read_feature_rows(env["features"], [], sample=10_000, seed=0)
    kpis = portfolio_kpis(portfolio_frame(bundle.predict(sample), sample, bundle.tasks), bundle.tasks, "en")
    assert [m.value for m in at.metric] == [f"{N:,}"] + [k.value for k in kpis[1:]]
    assert len(at.get("plotly_chart")) == 5  # score and PD histograms, grades, grades by group, default by grade
    # an RM's own book is not estimated from a portfolio sample
    rm = _app("rm", "en").run()
    rm.switch_page(str(PagePath.PORTFOLIO)).run()
    _ok(rm)
    assert t("lake_app.unavailable.portfolio", "en") in [i.value for i in rm.info] and not rm.get("plotly_chart")


def _meta(env) -> dict:
    return json.loads((env["lake"] / "_lake.json").read_text(encoding="utf-8"))


def test_a_lake_without_its_feature_file_says_how_to_make_one(env, monkeypatch):
    monkeypatch.delenv("PROFILE_LAKE_FEATURES")
    at = _open(_app(lang="en"), PagePath.CUSTOMERS)
    assert [e.value for e in at.error] == [t("lake_app.no_features", "en", lake=str(env["lake"]))]
    assert not _card_titles(at)


def test_a_folder_that_is_not_a_lake_says_so_on_every_lake_page(env, monkeypatch, tmp_path):
    monkeypatch.setenv("PROFILE_LAKE", str(tmp_path / "nolake"))
    at = _open(_app(lang="en"), PagePath.CUSTOMERS)
    reason = t("lake.not_a_lake", "en", path=str(tmp_path / "nolake"))
    assert [e.value for e in at.error] == [t("lake_app.open_failed", "en", detail=reason)]
    at.switch_page(str(PagePath.DATA)).run()
    _ok(at)
    assert [e.value for e in at.error] == [t("lake_app.open_failed", "en", detail=reason)]
    assert not at.get("file_uploader")  # still the lake's page: no upload into some other data set
    assert not (tmp_path / "nolake").exists()


def test_nothing_is_written_into_the_lake(env):
    before = _snapshot(env["lake"], env["features"])
    at = _open(_app("admin"), PagePath.CUSTOMERS, CID)
    at.button(key=f"customers-whatif-button-{CID}").click().run()  # what-if, recourse, similar: read only
    _ok(at)
    assert any("假设后" in d.value.columns for d in at.dataframe)
    at.button(key=f"recourse-button-{CID}").click().run()
    _ok(at)
    assert any(t("similar.col.similarity", "zh") in d.value.columns for d in at.dataframe)
    for page in PagePath:
        at.switch_page(str(page)).run()
        _ok(at)
    at.switch_page(str(PagePath.CUSTOMERS)).run()
    at.text_input(key=lake_ui.SEARCH).set_value("C000299").run()
    _ok(at)
    assert _card_titles(at)[0].endswith("· C000299")
    assert _snapshot(env["lake"], env["features"]) == before  # no file added, changed or removed


def test_settings_read_the_lake_variables():
    from profile_core.settings import current

    s = current({"PROFILE_LAKE": "/data/lake", "PROFILE_LAKE_FEATURES": "~/f.parquet", "PROFILE_LAKE_BUNDLE": ""})
    assert s.lake == Path("/data/lake") and s.lake_features == Path("~/f.parquet").expanduser()
    assert s.lake_bundle is None and current({}).lake is None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_lake_pages_show_no_raw_message_key(env, lang):
    from tests.test_app_i18n import _texts, raw_keys

    found: dict[str, list[str]] = {}
    for page in PagePath:  # the demo admin: every page, a fresh session each
        at = _app("admin", lang)
        at.run()
        if page is PagePath.CUSTOMERS:
            at.query_params["id"] = CID
        at.switch_page(str(page)).run()
        _ok(at)
        texts = _texts(at)
        assert len(texts) > 5, page
        keys_ = sorted({k for text in texts for k in raw_keys(text)})
        if keys_:
            found[page.name] = keys_
    assert found == {}, f"untranslated message keys on screen ({lang}): {found}"
