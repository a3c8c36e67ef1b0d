"""The card's similar-customers section: the k customers nearest to the one shown in the model's shared
representation (``profile_core.similar``), within what this session's role may see, with their predictions
and observed outcomes. The embeddings are built once per (data set fingerprint, model weights sha)."""

from __future__ import annotations

import streamlit as st

from ui import audit, cache, state
from ui.state import tr

K_SELECT = "customers-similar-k-selectbox"
K_OPTIONS = (5, 10, 20)


@st.cache_resource(show_spinner=False, max_entries=4)
def similar_index(path: str, name: str, fingerprint: str, bundle_path: str, sha: str):
    """``similar.SimilarIndex`` of the data set under the bundle: every customer embedded once."""
    from profile_core.similar import build_index

    tables = cache.tables(path, name, fingerprint)
    return build_index(cache.bundle(bundle_path, sha), cache.feature_table(path, name, fingerprint),
                       cache.predictions(path, name, fingerprint, bundle_path, sha),
                       customers=tables.get("customers"))


def active_index():
    keys_ = cache._active_keys()
    return similar_index(*keys_) if keys_ else None


def panel(card) -> None:
    """The section under the card: a table of the nearest customers and, per binary head with labels, how many
    of them had the outcome. Audited (``view_similar``) before anything is shown."""
    from profile_core.similar import DEFAULT_K

    cid = card.customer_id
    st.subheader(tr("similar.title"))
    try:
        index = active_index()
    except Exception as exc:  # noqa: BLE001 — a model that does not fit the data: say so, keep the card
        from ui import model_view

        st.warning(tr("similar.failed", detail=model_view.error_text(exc)))
        return
    if index is None:
        return
    k = st.selectbox(tr("similar.k"), K_OPTIONS, index=K_OPTIONS.index(DEFAULT_K), key=f"{K_SELECT}-{cid}")
    found = index.neighbours(cid, state.policy(), k=k)  # the card was allowed: the customer is in scope
    show(found, index.tasks, cid, k, table_key=f"customers-similar-table-{cid}")


def show(found, tasks, cid: str, k: int, *, table_key: str, note: str = "", named=None) -> None:
    """The neighbours ``found`` under customer ``cid``'s card: captions (``note`` after the standard one), then,
    once the view is audited (``view_similar``), the outcome lines and the table. ``named(found)`` adds the
    neighbours' names just before they are shown (a lake reads them by key for these rows only)."""
    from profile_core.similar import neighbours_table, outcome_summary

    lang = state.lang()
    st.caption(tr("similar.caption", k=k))
    if note:
        st.caption(note)
    if found.empty:
        st.info(tr("similar.none"))
        return
    if not audit.record("view_similar", cid, k=int(k), shown=len(found)):
        st.error(tr("customers.audit_failed"))
        return
    if named is not None:
        found = named(found)
    for line in outcome_summary(found, tasks, lang):
        st.markdown(line)
    st.dataframe(neighbours_table(found, tasks, lang), hide_index=True, key=table_key)
