"""Streamlit side of the cohorts page: the cohort editor (a saved cohort, or a name and a few filter rows),
saving and deleting with the data set, and the cached SHAP importance per cohort. Every number comes from
``profile_core.cohorts``."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from profile_core import cohorts
from profile_core.cohorts import OPERATORS, Cohort, CohortError
from ui import auth, cache, state
from ui.state import tr

FILTER_ROWS = 3  # filter rows per cohort in the editor (a saved cohort may hold more)
NEW = ""  # the saved-cohort selectbox's "define a new cohort" option


def key(side: str, what: str) -> str:
    """Widget key of side ``a`` / ``b``: ``cohorts-a-name-text-input`` …"""
    return f"cohorts-{side}-{what}"


def saved() -> list[Cohort]:
    name = state.active_dataset()
    with cache.workspace() as ws:
        return cohorts.saved(ws, name) if name and ws.has_dataset(name) else []


def _save(cohort: Cohort) -> None:
    try:
        with cache.workspace() as ws:
            cohorts.save(ws, state.active_dataset(), cohort, user=auth.current_user())
        state.flash("success", tr("cohorts.saved", name=cohort.name))
    except Exception as exc:  # noqa: BLE001 — a refusal for people (permission, busy workspace)
        state.flash("error", exc.message(state.lang()) if hasattr(exc, "message") else str(exc))


def _delete(name: str, side: str) -> None:
    try:
        with cache.workspace() as ws:
            cohorts.delete(ws, state.active_dataset(), name, user=auth.current_user())
        st.session_state[key(side, "saved-selectbox")] = NEW
        state.flash("success", tr("cohorts.deleted", name=name))
    except Exception as exc:  # noqa: BLE001
        state.flash("error", exc.message(state.lang()) if hasattr(exc, "message") else str(exc))


def editor(side: str, columns: list[str], labels: dict[str, str], stored: list[Cohort], *,
           default_name: str, default_rows: list[tuple[str, str, str]] = ()) -> Cohort | None:
    """One side's cohort: a saved one (with a delete button) or a new one from filter rows (with a save
    button). None, after saying why, when the rows do not make a valid cohort."""
    by_name = {c.name: c for c in stored}
    pick = st.selectbox(tr("cohorts.saved_pick"), [NEW, *by_name], key=key(side, "saved-selectbox"),
                        format_func=lambda n: tr("cohorts.new") if n == NEW else n)
    if pick != NEW and pick in by_name:
        cohort = by_name[pick]
        st.caption(cohort.describe() or tr("cohorts.everyone"))
        st.button(tr("cohorts.delete"), key=key(side, "delete-button"), icon=":material/delete:",
                  on_click=_delete, args=(pick, side))
        return cohort
    name = st.text_input(tr("cohorts.name"), value=default_name, key=key(side, "name-text-input"), max_chars=64)
    rows = []
    options = [None, *columns]
    for i in range(FILTER_ROWS):
        col, op, val = st.columns([3, 2, 3])
        d_col, d_op, d_val = default_rows[i] if i < len(default_rows) else (None, "==", "")
        column = col.selectbox(tr("cohorts.column"), options, index=options.index(d_col) if d_col in options else 0,
                               key=key(side, f"column-{i}-selectbox"), label_visibility="collapsed" if i else "visible",
                               format_func=lambda c: tr("cohorts.no_column") if c is None else labels.get(c, c))
        operator = op.selectbox(tr("cohorts.operator"), OPERATORS, index=OPERATORS.index(d_op),
                                key=key(side, f"operator-{i}-selectbox"),
                                label_visibility="collapsed" if i else "visible", help=tr("cohorts.operator_help"))
        values = val.text_input(tr("cohorts.values"), value=d_val, key=key(side, f"values-{i}-text-input"),
                                label_visibility="collapsed" if i else "visible", help=tr("cohorts.values_help"))
        rows.append((column, operator, values))
    try:
        cohort = cohorts.from_rows(name or default_name, rows)
    except CohortError as err:
        st.error(err.message(state.lang()))
        return None
    st.button(tr("cohorts.save"), key=key(side, "save-button"), icon=":material/bookmark_add:", on_click=_save,
              args=(cohort,))
    return cohort


@st.cache_data(show_spinner=False, max_entries=16)
def importance(keys_: tuple, a_ids: tuple[str, ...], b_ids: tuple[str, ...], names: tuple[str, str],
               n: int = cohorts.SHAP_SAMPLE) -> pd.DataFrame:
    """``cohorts.importance`` of the two cohorts under the active model (cached per model, data and ids)."""
    explainer = cache.head_explainer(*keys_)
    return cohorts.importance(explainer, cache.feature_table(*keys_[:3]), {names[0]: a_ids, names[1]: b_ids}, n=n)
