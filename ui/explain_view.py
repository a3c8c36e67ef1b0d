"""Sections of the explanations page: one customer's waterfall and cross-task table, then the global views
(importance per task, beeswarm, dependence) over the cached portfolio sample.

The ``*_frame`` helpers only reshape an attribute-level ``explain.Explanation`` into the frames the pure
``charts.plot_*`` builders take; the ``*_section`` functions draw.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from profile_core import charts
from profile_core.explain import Explanation, global_importance, risk_direction, to_attributes
from profile_core.views import attribute_name, attribute_value, contribution_frame
from ui import widgets
from ui.card import task_label
from ui.state import tr

# ------------------------------------------------------------------ keys
TASK_SELECT = "explanations-task-selectbox"
CUSTOMER_SELECT = "explanations-customer-selectbox"
ATTRIBUTE_SELECT = "explanations-attribute-selectbox"

TOP_WATERFALL, TOP_COMPARE, TOP_IMPORTANCE, TOP_ONLY, TOP_BEESWARM = 10, 8, 15, 10, 12


# ------------------------------------------------------------------ frames


def local_explanation(explainer, features: pd.DataFrame, customer_id: str) -> Explanation:
    """Attribute-level SHAP of every head for one customer (``features``: the feature table indexed by id)."""
    one = features.loc[[customer_id]]
    return to_attributes(explainer.explain(one), explainer.preprocessor, one)


def output_sentence(expl: Explanation, task: str, customer_id: str, specs: dict, lang: str,
                    predictions: pd.DataFrame | None = None) -> str:
    """What the waterfall explains, in words: the predicted value in its units, the logit and probability of a
    binary head, or the logit of a multiclass head's predicted class (its probability from ``predictions``,
    indexed by customer_id, when given)."""
    label, kind = task_label(task, specs, lang), specs[task].kind
    value, base = expl.output(task, customer_id), expl.base(task, customer_id)
    if kind == "regression":
        return tr("explanations.output.value", task=label, value=f"{value:.1f}", base=f"{base:.1f}")
    if kind == "binary":
        prob = 1 / (1 + math.exp(-value))
        return tr("explanations.output.logit", task=label, value=f"{value:.3f}", prob=f"{prob:.2%}",
                  base=f"{base:.3f}")
    cls = str(expl.explained_class[task][expl.customer_ids.get_loc(customer_id)])
    column = f"{task}_prob_{cls}"
    prob = "—"
    if predictions is not None and column in predictions.columns and customer_id in predictions.index:
        prob = f"{float(predictions.at[customer_id, column]):.1%}"
    return tr("explanations.output.class_logit", task=label, cls=cls, value=f"{value:.3f}", base=f"{base:.3f}",
              prob=prob)


def compare_frame(expl: Explanation, customer_id: str, specs: dict, lang: str, top: int = TOP_COMPARE
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, risk): the ``top`` attributes by their largest share of any task's total |SHAP| for this
    customer, with value and one contribution column per task; ``risk`` has the sign towards risk."""
    tasks = list(expl.values)
    contrib = pd.DataFrame({k: expl.values[k].loc[customer_id] for k in tasks})
    share = contrib.abs() / contrib.abs().sum().replace(0, np.nan)
    order = share.max(axis=1).sort_values(ascending=False, kind="stable").index[:top]
    columns, risk = {}, {}
    for k in tasks:
        classes = expl.explained_class.get(k)
        cls = None if classes is None else str(classes[expl.customer_ids.get_loc(customer_id)])
        kind = specs[k].kind
        key = {"regression": "explanations.unit.value", "binary": "explanations.unit.logit"}.get(
            kind, "explanations.unit.class_logit")
        name = tr(key, task=task_label(k, specs, lang), cls=cls or "")
        columns[name] = contrib.loc[order, k].to_numpy()
        risk[name] = contrib.loc[order, k].to_numpy() * risk_direction(specs[k], cls)
    table = pd.DataFrame({tr("explanations.attribute"): [attribute_name(expl, a, lang) for a in order],
                          tr("explanations.value"): [attribute_value(expl, a, customer_id, lang) for a in order],
                          **columns})
    return table, pd.DataFrame(risk)


def importance_frame(gi: pd.DataFrame, tasks: list[str], lang: str) -> pd.DataFrame:
    """attribute (display name), task, importance (share of the task's mean |SHAP|): long, for plot_importance."""
    names = gi["zh" if lang == "zh" else "en"]
    return pd.concat([pd.DataFrame({"attribute": names, "task": k, "importance": gi[k]}) for k in tasks],
                     ignore_index=True)


def only_for(gi: pd.DataFrame, tasks: list[str], lang: str, top: int = TOP_ONLY) -> dict[str, list[str]]:
    """Per task: attributes in its ``top`` by importance that are in no other task's ``top``."""
    names = gi.set_index("attribute")["zh" if lang == "zh" else "en"]
    tops = {k: gi.sort_values(k, ascending=False, kind="stable")["attribute"].head(top).tolist() for k in tasks}
    return {k: [names[a] for a in tops[k] if not any(a in tops[o] for o in tasks if o != k)] for k in tasks}


def beeswarm_frame(expl: Explanation, task: str, ids: pd.Index, lang: str, top: int = TOP_BEESWARM
                   ) -> pd.DataFrame:
    """feature (display name), shap, value: the ``top`` attributes of ``task`` over the customers ``ids``."""
    values = expl.values[task].loc[ids]
    attrs = values.abs().mean().sort_values(ascending=False, kind="stable").index[:top]
    parts = [pd.DataFrame({"feature": attribute_name(expl, a, lang), "shap": values[a].to_numpy(),
                           "value": expl.inputs.loc[ids, a].to_numpy()}) for a in attrs]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["feature", "shap", "value"])


# ------------------------------------------------------------------ sections


def local_section(explainer, context, customer_id: str, task: str, specs: dict, lang: str) -> None:
    """Waterfall of ``task`` for the customer (saying what the output is), then the cross-task table;
    ``context``: the ``profile.CardContext`` (features and predictions indexed by customer_id)."""
    expl = local_explanation(explainer, context.features, customer_id)
    st.subheader(tr("explanations.local"), anchor=False)
    st.markdown(output_sentence(expl, task, customer_id, specs, lang, context.predictions))
    contributions = contribution_frame(expl, task, customer_id, lang)
    fig = charts.plot_waterfall(contributions, base_value=expl.base(task, customer_id), top_n=TOP_WATERFALL,
                                output=expl.output(task, customer_id), task=task, lang=lang,
                                title=tr("explanations.waterfall_title", task=task_label(task, specs, lang)))
    fig.update_yaxes(automargin=True)
    fig.update_xaxes(range=_waterfall_range(contributions["contribution"], expl.base(task, customer_id)))
    classes = expl.explained_class.get(task)
    if risk_direction(specs[task], None if classes is None else str(classes[0])) < 0:
        # a higher output means less risk here (credit score, a good class): keep red = towards risk
        fig.update_traces(increasing_marker_color="#2E7D32", decreasing_marker_color="#C62828")
    widgets.chart(fig, key="explanations-waterfall")
    st.caption(tr("explanations.waterfall_colours"))
    st.markdown(f"**{tr('explanations.compare')}**")
    table, risk = compare_frame(expl, customer_id, specs, lang)
    colours = risk.map(lambda r: "color: #C62828" if r > 0 else "color: #2E7D32" if r < 0 else "")
    styler = table.style.format({c: "{:+.3f}" for c in risk.columns}).apply(
        lambda _: colours.to_numpy(), axis=None, subset=list(risk.columns))
    st.dataframe(styler, hide_index=True, key="explanations-compare")
    st.caption(tr("explanations.compare_help"))


def _waterfall_range(contributions: pd.Series, base: float) -> list[float]:
    """x-range around the running total (base → output), so that contributions are not dwarfed by the
    distance of the base value from zero (the base bar then runs off the left edge)."""
    steps = contributions.reindex(contributions.abs().sort_values(ascending=False).index).to_numpy(dtype=float)
    path = base + np.concatenate([[0.0], np.cumsum(steps)])
    lo, hi = float(path.min()), float(path.max())
    pad = 0.15 * (hi - lo) or 1.0
    return [lo - pad, hi + pad]


def global_section(expl: Explanation, specs: dict, visible_ids: pd.Index, lang: str) -> None:
    """Importance per task side by side (and what matters for one task only), beeswarm per task, dependence
    of a chosen attribute for every task. Per-customer points only for ``visible_ids``."""
    tasks = list(expl.values)
    gi = global_importance(expl)
    st.subheader(tr("explanations.global"), anchor=False)
    fig = charts.plot_importance(importance_frame(gi, tasks, lang), tasks=tasks, top_n=TOP_IMPORTANCE, lang=lang)
    labels = {k: task_label(k, specs, lang) for k in tasks}
    fig.for_each_annotation(lambda a: a.update(text=labels.get(a.text, a.text)))
    fig.update_xaxes(tickformat=".0%", title_text=tr("explanations.importance_axis"))
    fig.update_yaxes(automargin=True)
    widgets.chart(fig, key="explanations-importance")
    for task, names in only_for(gi, tasks, lang).items():
        st.markdown("- " + tr("explanations.only_for", task=labels[task], top=TOP_ONLY,
                              attributes="、".join(names) if lang == "zh" and names else ", ".join(names)
                              or tr("explanations.only_none")))

    ids = expl.customer_ids.intersection(visible_ids, sort=False)
    st.subheader(tr("explanations.beeswarm"), anchor=False)
    for tab, task in zip(st.tabs([labels[k] for k in tasks]), tasks, strict=True):
        with tab:
            fig = charts.plot_beeswarm(beeswarm_frame(expl, task, ids, lang), top_n=TOP_BEESWARM, lang=lang)
            fig.update_yaxes(automargin=True)
            widgets.chart(fig, key=f"explanations-beeswarm-{task}")

    st.subheader(tr("explanations.dependence"), anchor=False)
    order = gi["attribute"].tolist()
    names = dict(zip(gi["attribute"], gi["zh" if lang == "zh" else "en"], strict=True))
    attribute = st.selectbox(tr("explanations.dependence_attribute"), order, key=ATTRIBUTE_SELECT,
                             format_func=lambda a: names.get(a, a))
    from profile_core.explain import dependence

    for col, task in zip(st.columns(len(tasks)), tasks, strict=True):
        frame = dependence(expl, None, task, attribute)
        frame = frame[frame["customer_id"].isin(ids)]
        with col:
            widgets.chart(charts.plot_dependence(frame, feature_name=names.get(attribute, attribute), task=task,
                                                 title=labels[task], lang=lang),
                          key=f"explanations-dependence-{task}")
