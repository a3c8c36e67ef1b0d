"""The app on a partitioned data set (a "lake", issue 19; ``profile_core.lake``), read-only.

``PROFILE_LAKE=<lake folder>`` with ``PROFILE_LAKE_FEATURES=<its feature file>`` (``features --data LAKE --out``)
and optionally ``PROFILE_LAKE_BUNDLE`` (default: the demo bundle) make the lake the app's active data set. Every
card is read by key (``lake.LakeCards``: the customer's rows of every table from their own partition, their
feature row, a seeded 10k-row reference sample for percentiles and the SHAP background): the portfolio is never
loaded. Nothing here writes into the lake; the workspace keeps only what it always keeps (users, audit anchor).

Pages: customers (look a customer up by ID, or pick from a sample of IDs the role may see; the card with its
what-if, its path to a better grade and similar customers searched within the reference sample) and the customer's
explanation (its own waterfall, the global views over the reference sample) work; the portfolio page shows estimates from the reference sample (said so; not for an RM);
the data page shows the lake's own description; pages that need every customer (cohorts, monitoring, training,
uploads) say why they are not available and which CLI command does the same work out of core.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from profile_core.privacy import AccessDenied
from ui import audit, card, state, widgets
from ui.state import tr

SEARCH = "lake-customer-id-text-input"
SAMPLE_SELECT = "lake-sample-selectbox"
EXPLAIN_SEARCH = "lake-explain-id-text-input"
EXPLAIN_SAMPLE = "lake-explain-sample-selectbox"
SAMPLE_IDS = 200  # customer IDs offered in the sample list (a seeded reservoir sample, never every customer)
SAMPLE_SEED = 0


# ------------------------------------------------------------------ setting


def active() -> bool:
    """Whether the app runs on a lake (``PROFILE_LAKE`` is set): then every page follows this module."""
    return state.settings().lake is not None


def lake_path() -> Path | None:
    value = state.settings().lake
    return None if value is None else state._rooted(value)


def features_path() -> Path | None:
    value = state.settings().lake_features
    return None if value is None else state._rooted(value)


def bundle_path() -> Path:
    """``PROFILE_LAKE_BUNDLE``, else the demo bundle (made for the demo generator's data, as is a demo lake)."""
    value = state.settings().lake_bundle
    return state._rooted(value) if value is not None else state.demo_bundle_dir()


def name() -> str:
    path = lake_path()
    return path.name if path is not None else ""


# ------------------------------------------------------------------ cached readers


@st.cache_data(show_spinner=False, max_entries=4)
def meta(lake: str) -> dict:
    """The lake's ``_lake.json`` (raises ``lake.LakeError``: not a lake, unreadable)."""
    from profile_core.lake import read_lake_meta

    return read_lake_meta(lake)


@st.cache_data(show_spinner=False, max_entries=4)
def feature_summary(features: str) -> dict:
    """Rows, columns and cut-off of the feature file, from its Parquet footer (no row is read)."""
    import pyarrow.parquet as pq

    from profile_core.features import feature_file_meta
    from profile_core.lake import LakeError

    info = feature_file_meta(features) if Path(features).is_file() else None
    if info is None:
        raise LakeError("lake.not_features", path=features)
    footer = pq.ParquetFile(features).metadata
    return {"rows": footer.num_rows, "columns": footer.num_columns, "as_of": info.get("as_of")}


@st.cache_resource(show_spinner=False, max_entries=2)
def cards(lake: str, features: str, bundle: str, sha: str):
    """``lake.LakeCards`` of the lake with the bundle (the reference sample read and scored once, shared by all
    sessions; ``sha`` — the bundle's weights hash — keys the cache)."""
    from profile_core.bundle import require_inputs
    from profile_core.lake import LakeCards
    from ui import cache

    model = cache.bundle(bundle, sha)
    built = LakeCards(lake, features, model)
    require_inputs(model, built.reference)  # a model made for other data: refused here, said on the page
    return built


@st.cache_data(show_spinner=False, max_entries=16)
def sample_ids(lake: str, rm_id: str | None, n: int = SAMPLE_IDS, seed: int = SAMPLE_SEED) -> list[str]:
    """Up to ``n`` customer IDs of the lake (an RM: only their own), a seeded reservoir sample over the
    customers table's ``customer_id`` and ``rm_id`` columns (DuckDB streams them; memory is the sample's)."""
    from profile_core.lake import connect, partition_files
    from profile_core.sql import quote_literal

    scan = f"read_parquet({quote_literal(partition_files(lake, 'customers'))}, hive_partitioning = false)"
    where, params = ("WHERE CAST(rm_id AS VARCHAR) = ?", [rm_id]) if rm_id is not None else ("", None)
    con = connect("256MB", threads=1)
    try:
        rows = con.sql(f"SELECT CAST(customer_id AS VARCHAR) FROM (SELECT customer_id FROM {scan} {where}) "
                       f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})", params=params).fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


GLOBAL_SAMPLE = 500  # customers of the reference sample whose SHAP values the global views use
GLOBAL_SEED = 0


@st.cache_resource(show_spinner=False, max_entries=2)
def sample_explanation(lake: str, features: str, bundle: str, sha: str, n: int = GLOBAL_SAMPLE,
                       seed: int = GLOBAL_SEED):
    """Attribute-level SHAP of every head for a seeded draw of ``n`` customers of the cards' reference sample
    (itself a seeded sample of the lake): the global views without reading anything more of the lake."""
    import numpy as np

    from profile_core.explain import to_attributes

    lake_cards = cards(lake, features, bundle, sha)
    reference = lake_cards.reference
    rows = np.sort(np.random.default_rng(seed).choice(len(reference), min(n, len(reference)), replace=False))
    sample = reference.iloc[rows].set_index(reference["customer_id"].astype("str").to_numpy()[rows])
    return to_attributes(lake_cards.explainer.explain(sample), lake_cards.explainer.preprocessor, sample)


def _sha(path: Path) -> str:
    from profile_core.bundle import read_manifest

    return str(read_manifest(path).get("weights_sha256", ""))


def open_cards():
    """The active lake's ``LakeCards``, or None after saying on the page why it cannot be opened (no feature
    file set, not a lake, no model, a model made for other data)."""
    from ui import model_view

    lake, features, bundle = lake_path(), features_path(), bundle_path()
    if features is None:
        st.error(tr("lake_app.no_features", lake=str(lake)))
        return None
    if not (bundle / "manifest.json").is_file():
        st.error(tr("lake_app.no_bundle", path=str(bundle)))
        return None
    try:
        meta(str(lake))
        feature_summary(str(features))
        with st.spinner(tr("lake_app.opening")):
            return cards(str(lake), str(features), str(bundle), _sha(bundle))
    except Exception as exc:  # noqa: BLE001 — a lake or model problem: one sentence, never a traceback
        st.error(tr("lake_app.open_failed", detail=model_view.error_text(exc)))
        return None


# ------------------------------------------------------------------ pages


def banner() -> None:
    """One line on every lake page: which data set, how large, that it is read-only."""
    try:
        info = meta(str(lake_path()))
    except Exception:  # noqa: BLE001 — the page says what is wrong
        return
    st.caption(tr("lake_app.banner", name=name(), customers=f"{int(info['n_customers']):,}",
                  partitions=f"{int(info['partitions']):,}"), help=tr("lake_app.banner_help"))


def sidebar_names() -> tuple[str, str]:
    """(data set, model) as the sidebar shows them on a lake."""
    return tr("lake_app.sidebar_dataset", name=name()), bundle_path().name


def unavailable(area: str) -> bool:
    """On a lake, say that the page ``area`` (cohorts, monitoring) needs the whole portfolio and
    which command does its work out of core; True then (the page stops). False without a lake."""
    if not active():
        return False
    banner()
    st.info(tr(f"lake_app.unavailable.{area}"), icon=":material/database_off:")
    st.caption(tr("lake_app.cli_hint", lake=str(lake_path()), features=str(features_path() or "features.parquet"),
                  bundle=str(bundle_path())))
    return True


def _lookup(search_key: str, sample_key: str) -> str | None:
    """The customer to show: a typed ID, else one picked from the sample, else the one shown last; a deep link
    ``?id=`` sets it. Only IDs are offered: nothing is read about a customer before their card is asked for."""
    wanted = st.query_params.get("id")
    if wanted:
        st.session_state[card.SELECTED] = str(wanted).strip()
        del st.query_params["id"]
    rm = state.rm_id() if state.role() == "rm" else None
    try:
        ids = sample_ids(str(lake_path()), rm)
    except Exception:  # noqa: BLE001 — no sample: the search box still works
        ids = []
    left, right = st.columns([2, 3])

    def typed() -> None:
        value = str(st.session_state.get(search_key) or "").strip()
        if value:
            st.session_state[card.SELECTED] = value

    def picked() -> None:
        value = st.session_state.get(sample_key)
        if value:
            st.session_state[card.SELECTED] = value
            st.session_state[search_key] = ""

    left.text_input(tr("lake_app.search"), key=search_key, placeholder=ids[0] if ids else "C000001",
                    help=tr("lake_app.search_help"), on_change=typed)
    if ids:
        current = st.session_state.get(card.SELECTED)
        st.session_state[sample_key] = current if current in ids else None
        right.selectbox(tr("lake_app.sample", n=f"{len(ids):,}"), ids, key=sample_key, index=None,
                        placeholder=tr("lake_app.sample_hint"), on_change=picked)
    return st.session_state.get(card.SELECTED) or (ids[0] if ids else None)


_SHOWN: set[str] = set()  # names of the lake's customers whose rows this process has read (log redaction)


def _redact(context) -> None:
    """Keep the names of the customers read so far out of the logs (``audit.RedactingFilter``; on a workspace
    data set the router gives it every name, which on a lake would mean reading the whole customers table)."""
    _redact_names(context.customers)


def _redact_names(customers: pd.DataFrame) -> None:
    """:func:`_redact` for the names in a frame of customers (its ``name`` column, if any)."""
    from profile_core.audit import install_log_redaction

    names = customers["name"].dropna().astype("str") if "name" in customers.columns else []
    new = set(names) - _SHOWN
    if new:
        _SHOWN.update(new)
        install_log_redaction().set_names(sorted(_SHOWN), key=f"lake:{len(_SHOWN)}")  # the newest set holds all


def _not_found(customer_id: str) -> None:
    # the same sentence for an unknown ID and another RM's customer: the page never confirms who exists
    st.warning(tr("lake_app.not_found", customer=customer_id, lake=name()))


def customers_page() -> None:
    """The panorama card of one lake customer, read by key: the same card as on a workspace data set
    (``ui.card.render``), masked for the role, audited as ``view_card``."""
    banner()
    lake_cards = open_cards()
    if lake_cards is None:
        return
    customer_id = _lookup(SEARCH, SAMPLE_SELECT)
    if customer_id is None:
        st.info(tr("lake_app.no_customer"))
        return
    try:
        context = lake_cards.context(customer_id)  # this customer's rows, by key
        _redact(context)
        profile = context.card(str(customer_id), policy=state.policy(), lang=state.lang())
    except (KeyError, AccessDenied):
        _not_found(customer_id)
        return
    cid = profile.customer_id
    st.session_state[card.SELECTED] = cid
    if not card.record_view(cid):  # nothing about a customer is shown unaudited
        st.error(tr("customers.audit_failed"))
        return
    card.render(profile, specs=getattr(lake_cards.explainer, "tasks", None), has_model=True)
    st.caption(tr("lake_app.card_caption", n=f"{len(lake_cards.reference):,}"))
    # what-if and recourse: the in-memory card's panels on this customer's context (their feature row first, the
    # reference sample as the population) and the lake's own model; similar customers within the sample
    st.caption(tr("lake_card.whatif_population", n=f"{len(lake_cards.reference):,}"))
    card.what_if_panel(profile, context, bundle=lake_cards.bundle)
    card.recourse_panel(profile, context, bundle=lake_cards.bundle)
    similar_panel(profile, lake_cards, context.features.loc[[cid]])

    def report() -> str:  # the card as shown (masked for this role), built only when downloaded
        from profile_core.report import customer_report

        return customer_report(profile)

    audit.report_button(report, cid, key=f"lake-report-{cid}", file_name=f"{cid}.html")


SIMILAR_K = "lake-similar-k-selectbox"


def similar_panel(profile, lake_cards, row: pd.DataFrame) -> None:
    """The card's similar customers on a lake: the nearest customers of the reference sample in the model's shared
    representation (``LakeCards.similar``; the customer's own ``row`` embedded when the sample lacks them), in
    this role's scope, names read by key for those shown and masked for the role; the page says the neighbours
    come from the sample. Audited (``view_similar``) before anything is shown."""
    from profile_core.similar import DEFAULT_K
    from ui import model_view
    from ui.similar import K_OPTIONS, show

    cid, policy = profile.customer_id, state.policy()
    st.subheader(tr("similar.title"))
    k = st.selectbox(tr("similar.k"), K_OPTIONS, index=K_OPTIONS.index(DEFAULT_K), key=f"{SIMILAR_K}-{cid}")
    try:
        with st.spinner(tr("lake_card.similar_indexing", n=f"{len(lake_cards.reference):,}")):
            found = lake_cards.similar(cid, policy, k=k, row=row)  # the sample is embedded on the first search
    except Exception as exc:  # noqa: BLE001 — a model that cannot embed these rows: say so, keep the card
        st.warning(tr("similar.failed", detail=model_view.error_text(exc)))
        return

    def named(rows: pd.DataFrame) -> pd.DataFrame:
        names = lake_cards.customer_names(rows["customer_id"].tolist())  # only those shown, by key
        _redact_names(names)
        return lake_cards.with_names(rows, names, policy)

    note = tr("lake_card.similar_sample", n=f"{len(lake_cards.reference):,}",
              total=f"{int(lake_cards.meta['n_customers']):,}", seed=lake_cards.seed)
    show(found, lake_cards.bundle.tasks, cid, k, table_key=f"lake-similar-table-{cid}", note=note, named=named)


def explanations_page() -> None:
    """One lake customer's explanation (the waterfall per head and the heads side by side) against the
    reference sample's background; the global views need a portfolio sample: the CLI computes them."""
    from ui import explain_view

    banner()
    lake_cards = open_cards()
    if lake_cards is None:
        return
    lang, explainer = state.lang(), lake_cards.explainer
    specs = explainer.tasks
    customer_id = _lookup(EXPLAIN_SEARCH, EXPLAIN_SAMPLE)
    if customer_id is None:
        st.info(tr("lake_app.no_customer"))
        return
    task = st.selectbox(tr("explanations.task"), list(specs), key=explain_view.TASK_SELECT,
                        format_func=lambda k: card.task_label(k, specs, lang))
    try:
        context = lake_cards.context(customer_id)
        _redact(context)
        state.policy().check(context.customers.loc[str(customer_id)])
    except (KeyError, AccessDenied):
        _not_found(customer_id)
        return
    if not card.record_view(str(customer_id)):
        st.error(tr("customers.audit_failed"))
        return
    st.caption(tr("explanations.method", method=tr(f"explain.method.{explainer.method}"),
                  background=len(explainer.background_ids), seed=0))
    explain_view.local_section(explainer, context, str(customer_id), task, specs, lang)

    n = min(GLOBAL_SAMPLE, len(lake_cards.reference))
    with st.spinner(tr("explanations.computing", n=f"{n:,}")):
        expl = sample_explanation(str(lake_path()), str(features_path()), str(bundle_path()), _sha(bundle_path()))
    reference = lake_cards.reference
    ids = reference["customer_id"].astype("str")
    if state.role() == "rm":  # per-customer points only for the RM's own customers, as on a workspace data set
        ids = ids[(reference["rm_id"].astype("str") == str(state.rm_id())).to_numpy()] \
            if "rm_id" in reference.columns else ids.iloc[:0]
        st.caption(tr("explanations.sample_rm", n=f"{n:,}", mine=f"{len(expl.customer_ids.intersection(ids)):,}"))
    st.caption(tr("lake_app.global_sample", n=f"{n:,}", total=f"{int(lake_cards.meta['n_customers']):,}",
                  seed=GLOBAL_SEED))
    explain_view.global_section(expl, specs, pd.Index(ids), lang)


def portfolio_page() -> None:
    """The portfolio as its seeded reference sample shows it (the 10,000 customers every card is compared with,
    already read and scored): estimated KPIs, each head's distribution, grades by group, observed default rate
    by grade — said to be a sample. An RM's own book is not estimated from a sample: the page says so."""
    from profile_core import charts, views

    banner()
    if state.role() == "rm":
        st.info(tr("lake_app.unavailable.portfolio"), icon=":material/database_off:")
        st.caption(tr("lake_app.cli_hint", lake=str(lake_path()), features=str(features_path()),
                      bundle=str(bundle_path())))
        return
    lake_cards = open_cards()
    if lake_cards is None:
        return
    lang, tasks = state.lang(), lake_cards.bundle.tasks
    scored = views.portfolio_frame(lake_cards.reference_predictions, lake_cards.reference, tasks)
    total = int(lake_cards.meta["n_customers"])
    st.info(tr("lake_app.portfolio_sample", n=f"{len(scored):,}", total=f"{total:,}"), icon=":material/science:")
    kpis = views.portfolio_kpis(scored, tasks, lang)
    for column, item in zip(st.columns(len(kpis)), kpis, strict=True):
        column.metric(item.label, f"{total:,}" if item.key == "customers" else item.value,
                      help=None if item.key == "customers" else tr("lake_app.estimate_help", n=f"{len(scored):,}"))
    dists = [(c, tr("portfolio.score") if c == "score" else tr("portfolio.pd"))
             for c in ("score", "pd") if scored[c].notna().any()]
    for column, (col, title) in zip(st.columns(max(len(dists), 1)), dists, strict=False):
        with column:
            widgets.chart(charts.plot_histogram(scored, column=col, by="grade" if col == "score" else None,
                                                title=tr("portfolio.head_dist", task=title), x_title=title,
                                                lang=lang, color="#C0392B" if col == "pd" else None),
                          key=f"lake-portfolio-hist-{col}")
    st.subheader(tr("portfolio.grades"))
    left, right = st.columns([1, 2])
    with left:
        widgets.chart(charts.plot_grade_counts(scored, title=tr("portfolio.grade_counts"), lang=lang),
                      key="lake-portfolio-grades")
    groups = [c for c in views.GROUP_COLUMNS if c in scored.columns]
    with right:
        if groups:
            by = st.selectbox(tr("portfolio.group_by"), groups, key="lake-portfolio-group-by",
                              format_func=state.labeller("portfolio.groups."))
            widgets.chart(charts.plot_grade_counts(scored, by=by, x_title=tr(f"portfolio.groups.{by}"),
                                                   title=tr("portfolio.grade_by", group=tr(f"portfolio.groups.{by}")),
                                                   lang=lang), key="lake-portfolio-grade-by")
    if views.OBSERVED in scored.columns and scored["pd"].notna().any():
        st.subheader(tr("portfolio.default_by_grade"))
        table = charts.default_rate_table(scored, target=views.OBSERVED, pd_column="pd")
        widgets.chart(charts.plot_default_rate_by_grade(table, lang=lang), key="lake-portfolio-default-rate")
    st.caption(tr("lake_app.cli_hint", lake=str(lake_path()), features=str(features_path()),
                  bundle=str(bundle_path())))


def data_page() -> None:
    """The lake as described by its ``_lake.json`` and the feature file's footer; no upload (read-only)."""
    banner()
    lake = lake_path()
    try:
        info = meta(str(lake))
    except Exception as exc:  # noqa: BLE001
        from ui import model_view

        st.error(tr("lake_app.open_failed", detail=model_view.error_text(exc)))
        return
    st.info(tr("lake_app.read_only", lake=str(lake)), icon=":material/lock:")
    rows = info.get("rows") or {}
    tables = [t for t in info.get("tables", []) if t in rows]
    for column, table in zip(st.columns(max(len(tables), 1)), tables, strict=False):
        column.metric(tr(f"data.table.{table}"), f"{int(rows[table]):,}")
    facts = pd.DataFrame({"item": [tr("lake_app.fact.customers"), tr("lake_app.fact.partitions"),
                                   tr("lake_app.fact.end"), tr("lake_app.fact.months")],
                          "value": [f"{int(info['n_customers']):,}", f"{int(info['partitions']):,}",
                                    str(info.get("end", "—")), str(info.get("months", "—"))]})
    features = features_path()
    if features is not None:
        try:
            summary = feature_summary(str(features))
            facts.loc[len(facts)] = [tr("lake_app.fact.features"),
                                     tr("lake_app.fact.features_value", rows=f"{summary['rows']:,}",
                                        columns=summary["columns"], as_of=str(summary["as_of"] or "—"))]
        except Exception as exc:  # noqa: BLE001
            from ui import model_view

            st.warning(model_view.error_text(exc))
    else:
        st.warning(tr("lake_app.no_features", lake=str(lake)))
    facts.loc[len(facts)] = [tr("lake_app.fact.bundle"), bundle_path().name]
    st.dataframe(facts.rename(columns={"item": tr("lake_app.fact.item"), "value": tr("lake_app.fact.value")}),
                 hide_index=True, key="lake-facts")
    st.caption(tr("lake_app.unavailable.upload"))


def model_page() -> None:
    """The model the lake's cards use (its manifest); training in the app needs the portfolio in memory."""
    from profile_core.bundle import read_manifest

    banner()
    bundle = bundle_path()
    st.info(tr("lake_app.unavailable.training"), icon=":material/database_off:")
    st.caption(tr("lake_app.cli_hint", lake=str(lake_path()), features=str(features_path() or "features.parquet"),
                  bundle=str(bundle)))
    if not (bundle / "manifest.json").is_file():
        st.error(tr("lake_app.no_bundle", path=str(bundle)))
        return
    manifest = read_manifest(bundle)
    lang = state.lang()
    tasks = ", ".join(str(t.get(lang) or t.get("name", "")) for t in manifest.get("tasks", []) if isinstance(t, dict))
    st.markdown(f"**{tr('model.manifest.name')}**: `{bundle.name}`  \n**{tr('model.manifest.tasks')}**: {tasks}")
