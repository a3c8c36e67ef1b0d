"""HTML reports: self-contained (plotly.js inlined once, nothing fetched), masked, bilingual, model card."""

import re
from pathlib import Path

import plotly.graph_objects as go
import pytest

from profile_core.bundle import load_bundle
from profile_core.explain import HeadExplainer, to_attributes
from profile_core.features import build_features_from_frames
from profile_core.privacy import Policy
from profile_core.profile import CardContext
from profile_core.report import customer_report, monitoring_tables, portfolio_report, report_cli
from profile_core.scoring import score_chunk
from profile_core.synth import generate_portfolio, write_portfolio

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "demo"
NOTICE = "模型辅助，人工决策"


@pytest.fixture(scope="module")
def world():
    tables = generate_portfolio(80, seed=3).tables()
    tables["customers"].loc[1, "city"] = "<b>x</b>"  # must come out escaped
    bundle = load_bundle(BUNDLE)
    features = build_features_from_frames(tables)
    scored = score_chunk(bundle, features)
    explainer = HeadExplainer(bundle, features, n_background=20)
    context = CardContext(tables, features, scored, explainer=explainer)
    return tables, bundle, features, scored, explainer, context


def _explanation(world, cid):
    _, bundle, features, _, explainer, _ = world
    rows = features[features["customer_id"] == cid]
    return to_attributes(explainer.explain(rows), bundle.preprocessor, features)


def _self_contained(html: str) -> int:
    """Checks plotly.js appears once and nothing is loaded from elsewhere; returns the number of figures."""
    assert html.count("* plotly.js v") == 1
    head, plotlyjs, page = re.split(r"<script type=\"text/javascript\">(/\*\*\n\* plotly\.js v.*?)</script>", html,
                                    maxsplit=1, flags=re.S)
    page = head + page  # plotly.js itself names its CDN as the default for geo maps, which are never drawn
    assert "cdn.plot.ly" not in page and "cdn.jsdelivr" not in page and "https://" not in page
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=", page)
    figures = len(re.findall(r'<div id="fig-\d+"', html))
    assert html.count("Plotly.newPlot(") == figures
    return figures


def test_customer_report_is_self_contained_and_masked(world):
    tables, *_, context = world
    row = tables["customers"].iloc[0]
    card = context.card(row["customer_id"], policy=Policy("analyst"))
    html = customer_report(card, explanation=_explanation(world, row["customer_id"]))
    figures = _self_contained(html)
    assert figures == 8  # gauge, 5 waterfalls (one per head: 3 risk, 2 marketing), flows, logins
    for col in ("name", "id_number", "phone"):
        assert str(row[col]) not in html, col
    assert card.identity["name"] in html and card.identity["phone"] in html  # the masked forms
    assert NOTICE in html and "SHAP" in html
    sentences = [r.sentence for rc in card.reasons.values() for r in rc.up + rc.down]
    assert sentences and all(s in html for s in sentences)
    best = card.outputs.next_best  # the shipped bundle's propensity head: the next best product line
    assert best is not None and f"<strong>下一步推荐产品</strong> · {best.text}" in html


def test_own_rm_sees_the_full_identity(world):
    tables, *_, context = world
    row = tables["customers"].iloc[0]
    card = context.card(row["customer_id"], policy=Policy("rm", rm_id=row["rm_id"]))
    html = customer_report(card)
    assert str(row["name"]) in html and str(row["phone"]) in html


def test_customer_report_english_without_explanation(world):
    tables, *_, context = world
    cid = tables["customers"]["customer_id"].iloc[1]
    card = context.card(cid, policy=Policy("auditor"), lang="en")
    html = customer_report(card, figures={"Extra chart": go.Figure()})
    assert _self_contained(html) == 4  # gauge, flows, logins, the extra one
    assert "Customer panorama report" in html and "No SHAP explanation" in html and "Extra chart" in html
    assert "基本信息（按角色脱敏）" not in html and 'lang="en"' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    with pytest.raises(ValueError, match="attribute-level"):
        _, bundle, features, _, explainer, _ = world
        customer_report(card, explanation=explainer.explain(features.iloc[:1]))


def test_portfolio_report_and_model_card(world):
    tables, bundle, features, scored, *_ = world
    monitoring = monitoring_tables(scored, features, bundle.tasks, "zh")
    metrics = next(iter(monitoring.values()))
    assert {"auc", "ks", "brier", "rmse", "accuracy"} <= set(metrics["metric"])
    html = portfolio_report(scored.drop(columns=["points", "pd_grade"]), features, bundle.manifest,
                            monitoring=monitoring, lang="zh")
    assert _self_contained(html) >= 5
    for text in ("模型卡", "预期用途", NOTICE, "局限性", "各 PD 等级的观测违约率", "PD 校准", "ple", "uncertainty",
                 f"{bundle.manifest['metrics']['test']['default']['auc']:.4f}"):
        assert text in html, text
    assert not any(str(n) in html for n in tables["customers"]["name"])  # aggregates only
    en = portfolio_report(scored, None, bundle.manifest, lang="en")
    assert "Model card" in en and "Intended use" in en and "no default labels" in en


def test_report_cli(tmp_path, capsys):
    data = tmp_path / "data"
    tables = generate_portfolio(60, seed=4)
    write_portfolio(tables, data)
    cid = tables.tables()["customers"]["customer_id"].iloc[0]
    out = tmp_path / "c.html"
    assert report_cli(BUNDLE, data, out=out, customer=cid, lang="en") == 0
    html = out.read_text(encoding="utf-8")
    assert _self_contained(html) == 8 and cid in html
    assert report_cli(BUNDLE, data, out=tmp_path / "p.html", portfolio=True) == 0
    assert "模型卡" in (tmp_path / "p.html").read_text(encoding="utf-8")
    assert report_cli(BUNDLE, data, out=tmp_path / "x.html", customer="C999999") == 1
    customers = tables.tables()["customers"]
    rm = customers["rm_id"].iloc[0]
    other = customers.loc[customers["rm_id"] != rm, "customer_id"].iloc[0]
    assert report_cli(BUNDLE, data, out=tmp_path / "y.html", customer=other, role="rm", rm_id=rm) == 1
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "y.html").exists()
    # the app's permissions: auditors see no customer cards, RMs no model card / monitoring
    assert report_cli(BUNDLE, data, out=tmp_path / "z.html", customer=cid, role="auditor") == 2
    assert report_cli(BUNDLE, data, out=tmp_path / "z.html", portfolio=True, role="rm", rm_id=rm) == 2
    assert not (tmp_path / "z.html").exists()


def test_customer_report_shows_the_path_to_a_better_grade(world):
    from profile_core.whatif import next_grade_recourse

    _, bundle, features, scored, _, context = world
    worse = scored[scored["pd_grade"].isin(["C", "D", "E"])]["customer_id"].astype(str).tolist()
    views = [(cid, next_grade_recourse(bundle, features, cid, "en")) for cid in worse[:6]]
    cid, view = next(((c, v) for c, v in views if v.table is not None), views[0])
    grade_now = scored.set_index("customer_id").at[cid, "pd_grade"]
    assert view.target_grade == "ABCDE"["ABCDE".index(grade_now) - 1]
    html = customer_report(context.card(cid, policy=Policy("analyst"), lang="en"), recourse=view)
    assert f"Path to grade {view.target_grade}" in html and view.sentence.split(" would ")[0][:30] in html
    if view.table is not None:
        assert "What-if" in html and "→" in view.sentence
    best = scored[scored["pd_grade"] == "A"]["customer_id"].astype(str)
    if len(best):
        assert next_grade_recourse(bundle, features, best.iloc[0], "en") is None  # nothing to improve
    assert next_grade_recourse(bundle, features, "nobody", "en") is None
