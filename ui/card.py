"""The customer panorama in the app: picking a customer (search and filters over what the role may see) and
drawing a ``profile.ProfileCard``. Layout only: every number, sentence and mask comes from ``profile_core``.

Widget and session keys of the customers page are here (kebab-case constants, as in ``ui.keys``); the
chosen customer lives in the plain session key :data:`SELECTED`, shared with the explanations page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from profile_core import charts, views
from profile_core.features import feature_info
from profile_core.schema import CATEGORIES, RISK_LEVELS, display_name
from ui import state, widgets
from ui.keys import PagePath
from ui.state import tr

# ------------------------------------------------------------------ keys
SELECTED = "selected-customer"  # session state: the customer the customers and explanations pages show
SEARCH = "customers-search-text-input"
GRADE_FILTER = "customers-grade-multiselect"
RM_FILTER = "customers-rm-multiselect"
TAG_FILTER = "customers-tag-multiselect"
CUSTOMER_SELECT = "customers-customer-selectbox"
EXPLAIN_BUTTON = "customers-explain-button"

TONE_STYLE = {  # tag chip: text colour, background
    "good": ("#1B5E20", "#E8F5E9"), "neutral": ("#1F4E79", "#EAF0F7"),
    "warn": ("#8A4B00", "#FFF3E0"), "bad": ("#B71C1C", "#FFEBEE"),
}


# ------------------------------------------------------------------ picking a customer


def filter_customers(frame: pd.DataFrame, query: str = "", *, grades: Sequence[str] = (),
                     rms: Sequence[str] = (), tags: Sequence[str] = (), lang: str = "zh") -> pd.DataFrame:
    """Rows whose ID or (as shown: masked unless the role sees it in full) name contains ``query``, whose
    grade is one of ``grades``, RM one of ``rms``, and that carry every tag of ``tags`` (when given)."""
    keep = pd.Series(True, index=frame.index)
    query = (query or "").strip().lower()
    if query:
        hit = frame["customer_id"].str.lower().str.contains(query, regex=False)
        if "name" in frame.columns:
            hit |= frame["name"].astype("str").str.lower().str.contains(query, regex=False)
        keep &= hit
    if grades and "grade" in frame.columns:
        keep &= frame["grade"].isin(list(grades))
    if rms and "rm_id" in frame.columns:
        keep &= frame["rm_id"].astype("str").isin(list(rms))
    column = f"tags_{lang}"
    if tags and column in frame.columns:
        wanted = set(tags)
        keep &= frame[column].map(lambda have: isinstance(have, tuple) and wanted <= set(have))
    return frame[keep]


def option_labels(frame: pd.DataFrame) -> dict[str, str]:
    """customer_id → "ID · name · city · grade" (as ``frame`` shows them), for the customer selectbox."""
    label = frame["customer_id"].astype("str")
    for col in ("name", "city", "grade"):
        if col in frame.columns:
            part = frame[col].astype("string").fillna("")
            label = label.str.cat(part.where(part == "", " · " + part))
    return dict(zip(frame["customer_id"], label, strict=True))


def select_customer(frame: pd.DataFrame, *, key: str, label: str) -> str | None:
    """A selectbox over ``frame``'s customers that follows and sets :data:`SELECTED` (the first customer when
    the chosen one is filtered out); the chosen customer_id, or None when ``frame`` is empty."""
    options = frame["customer_id"].tolist()
    if not options:
        return None
    current = st.session_state.get(SELECTED)
    if current not in options:
        current = options[0]
    st.session_state[SELECTED] = current
    if st.session_state.get(key) != current:  # widget state may be gone after a page switch
        st.session_state[key] = current
    labels = option_labels(frame)
    st.selectbox(label, options, key=key, format_func=lambda cid: labels.get(cid, cid),
                 on_change=lambda: st.session_state.__setitem__(SELECTED, st.session_state[key]))
    return current


def picker(frame: pd.DataFrame, *, with_model: bool) -> str | None:
    """Search box, grade / RM / tag filters and the customer selectbox; the chosen customer_id."""
    lang = state.lang()
    search_col, grade_col, rm_col, tag_col = st.columns([3, 2, 2, 3])
    query = search_col.text_input(tr("customers.search"), key=SEARCH, placeholder=tr("customers.search_hint"),
                                  help=tr("customers.search_help"))
    grade_options = [g for g in RISK_LEVELS if "grade" in frame.columns and (frame["grade"] == g).any()]
    grades = grade_col.multiselect(tr("customers.filter_grade"), grade_options, key=GRADE_FILTER,
                                   disabled=not with_model, placeholder=tr("customers.filter_all"))
    rms: list[str] = []
    if state.role() != "rm" and "rm_id" in frame.columns:
        rms = rm_col.multiselect(tr("customers.filter_rm"), sorted(frame["rm_id"].dropna().astype("str").unique()),
                                 key=RM_FILTER, placeholder=tr("customers.filter_all"))
    tag_column = f"tags_{lang}"
    tag_options = sorted({t for have in frame.get(tag_column, pd.Series(dtype=object)).dropna() for t in have})
    chosen_tags = [t for t in st.session_state.get(TAG_FILTER, []) if t in tag_options]
    st.session_state[TAG_FILTER] = chosen_tags  # after a language switch the old texts are no options
    tags = tag_col.multiselect(tr("customers.filter_tags"), tag_options, key=TAG_FILTER,
                               placeholder=tr("customers.filter_all"))
    found = filter_customers(frame, query, grades=grades, rms=rms, tags=tags, lang=lang)
    if found.empty:
        st.info(tr("customers.none_found"))
        return None
    return select_customer(found, key=CUSTOMER_SELECT,
                           label=tr("customers.pick", n=f"{len(found):,}", total=f"{len(frame):,}"))


def fragment_rerun() -> bool:
    """True when this run reruns only a fragment (the router in ``app.py``, with its sign-in checks, did not
    run). Streamlit has no public API for this; unknown → True (checking twice is harmless)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return ctx is None or bool(ctx.fragment_ids_this_run)
    except Exception:  # noqa: BLE001 — internal API moved: assume the worst
        return True


def record_view(customer_id: str) -> bool:
    """The one place the customer pages report that a customer's data is shown (``ui.audit.record_view``,
    which skips reruns of the same card); False when the audit log could not be written."""
    from ui import audit

    return audit.record_view(customer_id)


# ------------------------------------------------------------------ the card


def _chip(text: str, fg: str, bg: str, *, bold: bool = False, size: str = "0.85rem") -> str:
    weight = "font-weight:600;" if bold else ""
    return (f'<span style="display:inline-block;margin:0 6px 6px 0;padding:2px 10px;border-radius:12px;'
            f'color:{fg};background:{bg};font-size:{size};{weight}">{html.escape(str(text))}</span>')


def grade_badge(grade: str | None, *, size: str = "0.95rem") -> str:
    """HTML of a grade badge in the chart colours (A green … E red)."""
    if not grade:
        return _chip("—", "#455A64", "#ECEFF1", size=size)
    return _chip(tr("card.grade_badge", grade=grade), "#FFFFFF", charts.grade_color(grade), bold=True, size=size)


def task_label(task: str, specs: dict | None, lang: str) -> str:
    spec = (specs or {}).get(task)
    return spec.display(lang) if spec is not None else task  # the label as the data names it


def _fmt(value, pattern: str) -> str:
    return "—" if value is None or pd.isna(value) else pattern.format(value)


def header(card) -> None:
    ident, lang = card.identity, card.lang
    name = ident.get("name") or "—"
    st.subheader(f"{name} · {card.customer_id}", anchor=False)
    facts = [str(ident[k]) for k in ("gender",) if ident.get(k)]
    if ident.get("age") is not None and not pd.isna(ident.get("age")):
        facts.append(tr("card.age", age=int(ident["age"])))
    facts += [str(ident[k]) for k in ("city", "occupation") if ident.get(k)]
    if ident.get("rm_id"):
        facts.append(tr("card.rm", rm=ident["rm_id"]))
    if ident.get("tenure_months") is not None:
        facts.append(tr("card.tenure", months=ident["tenure_months"], since=ident.get("open_date") or "—"))
    facts.append(tr("card.as_of", date=card.as_of))
    st.caption(" · ".join(facts))
    if card.tags:
        st.markdown("".join(_chip(tag.text(lang), *TONE_STYLE.get(tag.tone, TONE_STYLE["neutral"]))
                            for tag in card.tags), unsafe_allow_html=True)


def kpis(card) -> None:
    """The headline tiles by task role (``views.headline_items``): points, PD and grade from a pd task, the
    credit score from a score task, and every other head by its own name — never an empty tile."""


    items = views.headline_items(card.outputs, card.lang, marketing=False)  # marketing heads: their own panel
    if not items:
        st.caption(tr("card.no_predictions"))
        return
    for start in range(0, len(items), 4):
        row = items[start:start + 4]
        for column, item in zip(st.columns(4), row, strict=False):
            if item.grade is not None:
                with column.container(border=True, height="stretch"):
                    st.markdown(f"<div style='font-size:0.875rem;margin-bottom:4px'>{html.escape(item.label)}</div>"
                                f"{grade_badge(item.grade, size='1.6rem')}", unsafe_allow_html=True)
                    st.caption(item.help)
            else:
                column.metric(item.label, item.value, border=True, height="stretch", help=item.help or None,
                              delta=item.note or None, delta_color="off", delta_arrow="off")


def warnings(card) -> None:
    for warning in card.warnings:
        st.warning(warning.text, icon=":material/compare_arrows:")


def risk_panel(card, specs: dict | None) -> None:
    out, lang = card.outputs, card.lang
    with st.container(border=True):
        st.markdown(f"**{tr('card.risk_panel')}**")
        left, right = st.columns([2, 3], gap="large")
        with left:
            if out.points is not None:
                fig = charts.plot_score_gauge(out.points, grade=out.pd_grade, title=tr("card.gauge_title"), lang=lang)
                widgets.chart(fig, key="customers-gauge")
                st.markdown(tr("card.pd_line", pd=_fmt(out.pd, "{:.2%}"), grade=out.pd_grade or "—")
                            + " " + grade_badge(out.grade), unsafe_allow_html=True)
            elif out.credit_score is not None:
                fig = charts.plot_score_gauge(out.credit_score, bands=None,
                                              title=out.titles.get("score") or tr("card.kpi.score"), lang=lang)
                widgets.chart(fig, key="customers-gauge")
            else:  # no pd or score task: each head by its own name
                from profile_core.views import task_value_text

                for head in out.tasks:
                    st.markdown(f"**{html.escape(head.title)}**: {html.escape(task_value_text(head, lang))}")
            if out.risk_probs:
                probs = " · ".join(f"{k} {v:.0%}" for k, v in out.risk_probs.items())
                st.caption(tr("card.level_probs", probs=probs))
        with right:
            if not card.reasons:
                st.caption(tr("card.no_reasons"))
                return
            tasks = [k for k in card.reasons if not _marketing_head(k, specs)]  # marketing heads: their own panel
            if not tasks:
                st.caption(tr("card.no_reasons"))
                return
            for tab, task in zip(st.tabs([task_label(k, specs, lang) for k in tasks]), tasks, strict=True):
                codes = card.reasons[task]
                with tab:
                    up, down = st.columns(2)
                    role = specs[task].role if specs and task in specs else "pd"
                    headings = views.reason_headings(role, lang)
                    up.markdown(f"**:red[{headings['up']}]**")
                    up.markdown("\n".join(f"- :red[▲] {r.sentence}" for r in codes.up) or tr("card.none"))
                    down.markdown(f"**:green[{headings['down']}]**")
                    down.markdown("\n".join(f"- :green[▼] {r.sentence}" for r in codes.down) or tr("card.none"))


def _marketing_head(task: str, specs: dict | None) -> bool:
    spec = (specs or {}).get(task)
    return spec is not None and spec.role in ("propensity", "churn")


TONE_BOX = {"good": st.success, "bad": st.error, "warn": st.warning, "neutral": st.info}


def marketing_panel(card, specs: dict | None) -> None:
    """The marketing side (精准营销): each propensity / churn head with its rank in the portfolio and its reasons,
    the next best product (下一步推荐产品, suppressed above the risk cut-off) and the retention alert — every
    sentence from ``views.marketing_items``."""
    items = views.marketing_items(card.outputs, card.lang)
    if not items:
        return
    heads = [i for i in items if i.key.startswith("task:")]
    with st.container(border=True, key="customers-marketing"):
        st.markdown(f"**{tr('marketing.panel')}**")
        for item in items:
            if item.key in ("next_best", "retention"):
                icon = ":material/campaign:" if item.key == "next_best" else ":material/notification_important:"
                TONE_BOX.get(item.tone, st.info)(f"**{item.label}** · {item.help}", icon=icon)
        for column, item in zip(st.columns(max(len(heads), 1)), heads, strict=False):
            task = item.key.removeprefix("task:")
            with column:
                st.metric(item.label, item.value, border=True, delta=item.note or None, delta_color="off",
                          delta_arrow="off", help=item.help)
                codes = card.reasons.get(task)
                if codes is not None:
                    headings = views.reason_headings(specs[task].role if specs and task in specs else "generic",
                                                     card.lang)
                    st.markdown(f"**:red[{headings['up']}]**")
                    st.markdown("\n".join(f"- :red[▲] {r.sentence}" for r in codes.up[:3]) or tr("card.none"))
                    st.markdown(f"**:green[{headings['down']}]**")
                    st.markdown("\n".join(f"- :green[▼] {r.sentence}" for r in codes.down[:3]) or tr("card.none"))


def attributes(card) -> None:
    table = card.attributes
    if table.empty:
        return
    st.markdown(f"**{tr('card.attributes')}**")
    cats = [c for c in CATEGORIES if (table["category"] == c).any()]
    config = {"name": st.column_config.TextColumn(tr("card.attr.name"), width="large"),
              "value": st.column_config.TextColumn(tr("card.attr.value"), width="medium"),
              "percentile": st.column_config.ProgressColumn(tr("card.attr.percentile"), help=tr("card.attr.pct_help"),
                                                            min_value=0, max_value=100, format="%.0f",
                                                            width="medium")}
    for tab, cat in zip(st.tabs([CATEGORIES[c][0 if card.lang == "zh" else 1] for c in cats]), cats, strict=True):
        with tab:
            part = table.loc[table["category"] == cat, ["name", "value", "percentile"]]
            st.dataframe(part, hide_index=True, column_config=config, key=f"customers-attributes-{cat}")


def activity(card) -> None:
    """Monthly flows and the login heat map, each only when the data set has the events behind it."""
    lang = card.lang
    if not (card.has_transactions or card.has_behaviors):
        return
    left, right = st.columns(2) if card.has_transactions and card.has_behaviors else (st.container(),) * 2
    if card.has_transactions:
        _flows(card, left, lang)
    if card.has_behaviors:
        _logins(card, right, lang)


def _flows(card, place, lang: str) -> None:
    with place:
        fig = charts.plot_monthly_flows(card.monthly_flows, title=tr("card.flows"), lang=lang)
        fig.update_xaxes(title_text="", tickangle=-45)  # months need no axis title; keeps the legend clear
        widgets.chart(fig, key="customers-flows")


def _logins(card, place, lang: str) -> None:
    with place:
        heat = card.login_heatmap.stack().rename("count").reset_index()
        fig = charts.plot_login_heatmap(heat, title=tr("card.logins"), lang=lang)
        fig.update_traces(colorbar_title_side="right")
        widgets.chart(fig, key="customers-logins")


def recent(card) -> None:
    if not card.has_transactions:
        return
    frame = card.recent_transactions.copy()
    st.markdown(f"**{tr('card.recent')}**")
    if frame.empty:
        st.caption(tr("card.no_transactions"))
        return
    if "direction" in frame.columns:
        frame["direction"] = frame["direction"].map(
            lambda d: tr("card.direction.in") if str(d).strip().lower() == "in"
            else tr("card.direction.out") if str(d).strip().lower() == "out" else d)
    config = {c: st.column_config.Column(display_name(c, card.lang)) for c in frame.columns}
    if "txn_time" in frame.columns:
        config["txn_time"] = st.column_config.DatetimeColumn(display_name("txn_time", card.lang),
                                                             format="YYYY-MM-DD HH:mm")
    if "amount" in frame.columns:
        config["amount"] = st.column_config.NumberColumn(display_name("amount", card.lang), format="%.2f")
    st.dataframe(frame, hide_index=True, column_config=config, key="customers-recent")


def render(card, *, specs: dict | None = None, has_model: bool = True) -> None:
    """The whole card: header and tags, KPI tiles, heads-disagree warnings, risk panel with reason codes,
    activity charts, the attribute table by category, recent transactions and the 模型辅助，人工决策 notice."""
    header(card)
    if has_model:
        kpis(card)
        warnings(card)
        risk_panel(card, specs)
        marketing_panel(card, specs)
        if st.button(tr("card.explain_button"), key=EXPLAIN_BUTTON, icon=":material/insights:"):
            st.switch_page(PagePath.EXPLANATIONS)
    else:
        warnings(card)
    activity(card)
    attributes(card)
    recent(card)
    st.info(card.notice, icon=":material/gavel:")


WHATIF_PICK = "customers-whatif-pick"
WHATIF_BUTTON = "customers-whatif-button"
WHATIF_TOP = 12  # attributes offered first: the customer's strongest reasons across heads


def what_if_panel(card, context, bundle=None) -> None:
    """Change a few of this customer's attributes and see every head move (``profile_core.whatif``); audited,
    never written to the data. ``bundle``: the model of ``context`` (default: the active data set's)."""
    from profile_core.whatif import editable_attributes, heads_frame, input_bounds, what_if
    from ui import audit, cache

    bundle = bundle if bundle is not None else cache.active_bundle()
    if bundle is None or context.explainer is None:
        return
    lang, cid = card.lang, card.customer_id
    reasons = [r.attribute for rc in card.reasons.values() for r in rc.up + rc.down]
    editable = editable_attributes(bundle)
    order = list(dict.fromkeys([a for a in reasons if a in editable] + editable))
    names = {a: feature_info(a).zh if lang == "zh" else feature_info(a).en for a in order}
    with st.expander(tr("whatif.title"), icon=":material/tune:"):
        st.caption(tr("whatif.caption"))
        picked = st.multiselect(tr("whatif.pick"), order, default=order[:2], max_selections=4,
                                format_func=names.get, key=f"{WHATIF_PICK}-{cid}")
        row = context.features.loc[[cid]]
        changes = {}
        for column, attribute in zip(st.columns(max(len(picked), 1)), picked, strict=False):
            now = row[attribute].iloc[0]
            if attribute in bundle.preprocessor.numeric:
                start = float(now) if now is not None and pd.notna(now) else 0.0
                low, high = input_bounds(attribute)  # no share above 100 %, no negative count
                low = None if low is None else min(low, start)  # a recorded value outside stays as it is
                high = None if high is None else max(high, start)
                changes[attribute] = column.number_input(names[attribute], value=start, min_value=low,
                                                         max_value=high, key=f"whatif-{cid}-{attribute}")
            else:
                options = list(bundle.preprocessor.categories.get(attribute, [])) or [str(now)]
                current = str(now) if str(now) in options else options[0]
                changes[attribute] = column.selectbox(names[attribute], options, index=options.index(current),
                                                      key=f"whatif-{cid}-{attribute}")
        if not picked or not st.button(tr("whatif.run"), key=f"{WHATIF_BUTTON}-{cid}", icon=":material/science:"):
            return
        if not audit.record("what_if", cid, attributes=sorted(changes)):
            return
        result = what_if(bundle, row, changes, explainer=context.explainer, population=context.features, lang=lang)
        st.dataframe(heads_frame(result, lang), hide_index=True, key=f"whatif-table-{cid}")
        st.markdown(f"**{tr('whatif.reasons_after')}**")
        titles = {t_.name: t_.display(lang) for t_ in bundle.tasks}
        for task, codes in result.reasons_after.items():
            st.markdown(f"*{html.escape(titles.get(task, task))}*: " + " · ".join(r.sentence for r in codes.up[:3]))


def recourse_panel(card, context, bundle=None) -> None:
    """The smallest change of one to three actionable attributes that reaches a better grade
    (``whatif.recourse``), with its effect on every head; audited like a what-if. ``bundle``: as in
    :func:`what_if_panel`."""
    from profile_core.scorecard import GRADES
    from profile_core.tasks import role_task
    from profile_core.whatif import heads_frame, recourse, recourse_sentence, recourse_side_effects
    from ui import audit, cache

    bundle = bundle if bundle is not None else cache.active_bundle()
    grade = card.outputs.pd_grade
    if bundle is None or role_task(bundle.tasks, "pd") is None or grade in (None, GRADES[0]):
        return
    lang, cid = card.lang, card.customer_id
    with st.expander(tr("whatif.recourse_title"), icon=":material/route:"):
        better = GRADES[: GRADES.index(grade)]
        target = st.selectbox(tr("whatif.recourse_target"), better, index=len(better) - 1,
                              key=f"recourse-target-{cid}")
        if not st.button(tr("whatif.recourse_run"), key=f"recourse-button-{cid}", icon=":material/route:"):
            return
        if not audit.record("what_if", cid, recourse=target):
            return
        result = recourse(bundle, context.features.loc[[cid]], context.features, target_grade=target)
        st.markdown(recourse_sentence(result, bundle, lang))
        side = recourse_side_effects(result, bundle, lang)
        if side:
            st.caption(f"{tr('whatif.side_effects')} {('；' if lang == 'zh' else '; ').join(side)}")
        if result.found:
            from profile_core.whatif import WhatIf

            shown = WhatIf(cid, {k: v for k, v in result.changes.items()}, result.heads, result.scorecard)
            st.dataframe(heads_frame(shown, lang), hide_index=True, key=f"recourse-table-{cid}")
