"""数据 · Data: upload the four tables or one flat file, read the validation report, preview the tables."""

from __future__ import annotations

import streamlit as st

from profile_core.auth import allowed, require
from profile_core.ingest import Limits
from profile_core.ingest import editing as ed
from ui import audit, cache, keys, lake, loading, registry, state, widgets
from ui.mapping_step import render_mapping_step
from ui.state import tr

widgets.page_header("data.title", "data.caption")
if lake.active():  # a read-only lake: its description, no upload
    lake.data_page()
    st.stop()


def _load(prepare, store=loading.store_files, uploaded=None) -> bool:
    """One load for a role allowed to load data: the files are read and validated first with no lock held
    (``prepare`` → ``loading.PendingLoad``), then stored and audited (tagged when a demo account made it)
    while the workspace lock is held; True when it succeeded."""
    require(state.policy(), "load_data")
    pending = prepare()  # parsing never holds the workspace lock
    with cache.workspace():  # re-entrant: the store below takes it too; no session sees an untagged dataset
        outcome = store(pending)
        audit.record_load(outcome, uploaded=len(uploaded or []))
    return outcome.ok


def _confirmed_mapping(uploaded):
    """The mapping confirmed in the mapping step for exactly these files (kept across reruns and steps)."""
    held = st.session_state.get(f"{keys.MAPPING_PREFIX}-state-confirmed")
    if held and uploaded and held[0] == ed.upload_signature(loading.upload_pairs(uploaded)):
        return held[1]
    return None


if allowed(state.policy(), "load_data"):
    with st.container(border=True):
        st.subheader(tr("data.upload.header"))
        st.caption(tr("data.upload.help"))
        limits = Limits.from_env()
        st.caption(tr("trust.limits", size=f"{limits.max_file_bytes / 2**20:,.0f} MB", rows=f"{limits.max_rows:,}",
                      columns=f"{limits.max_columns:,}"))
        demo_user = registry.demo_upload_refused()  # demo accounts: the demo portfolio only (store enforces it)
        uploaded = None if demo_user else st.file_uploader(tr("data.upload.label"), type=loading.UPLOAD_TYPES,
                                                           accept_multiple_files=True, key=keys.UPLOAD)
        # one path: upload → (review the mapping) → name the data set → load; a confirmed mapping is kept for
        # these files until they change, and the load button uses it
        if uploaded and st.toggle(tr("data.mapping_toggle"), key=keys.MAPPING_TOGGLE):
            loading.repair_mapping_state(keys.MAPPING_PREFIX)
            mapping = render_mapping_step(uploaded, lang=state.lang(), key_prefix=keys.MAPPING_PREFIX,
                                          store=loading.mapping_store())
            if mapping is not None:
                st.session_state[f"{keys.MAPPING_PREFIX}-state-confirmed"] = (
                    ed.upload_signature(loading.upload_pairs(uploaded)), mapping)
        confirmed = _confirmed_mapping(uploaded)
        if confirmed is not None:
            st.success(tr("mapping.ui.confirmed", labels=", ".join(confirmed.labels()) or "—"))
        bad_rows = st.radio(tr("mapping.ui.bad_rows"), ["refuse", "skip"], horizontal=True,
                            key=f"{keys.MAPPING_PREFIX}-bad-rows",
                            format_func=lambda v: tr(f"mapping.ui.bad_rows_{v}")) if uploaded else None
        name_col, load_col, demo_col = st.columns([2, 1, 1], vertical_alignment="bottom")
        with name_col:
            dataset_name = None if demo_user else registry.upload_target()
        if load_col.button(tr("data.upload.button"), type="primary", key=keys.UPLOAD_BUTTON,
                           disabled=not uploaded or not dataset_name, width="stretch"):
            with st.spinner(tr("data.upload.loading")):
                if _load(lambda: loading.prepare_upload(uploaded, dataset_name, mapping=confirmed,
                                                        bad_rows=bad_rows), uploaded=uploaded):
                    st.rerun()  # the sidebar shows the new active dataset
        if demo_col.button(tr("data.demo_button"), key=keys.DEMO_BUTTON, width="stretch"):
            with st.spinner(tr("app.loading_demo")):
                if _load(loading.prepare_demo, loading.store_demo):
                    st.rerun()
else:
    st.caption(tr("trust.no_load_permission"))

last = st.session_state.get(keys.LAST_LOAD)
if last is not None:
    widgets.validation_report(last)

datasets = cache.datasets()
if datasets.empty:
    st.info(tr("common.no_data"))
    st.stop()

registry.datasets_panel()
names = datasets["name"].tolist()
active = state.active_dataset() if state.active_dataset() in names else names[0]
if st.session_state.get(keys.DATASET_SELECT) != active:  # follow loads made since the last run
    st.session_state[keys.DATASET_SELECT] = active
choice = st.selectbox(tr("data.active_select"), names, key=keys.DATASET_SELECT,
                      on_change=lambda: state.set_active_dataset(st.session_state[keys.DATASET_SELECT]))
meta = datasets.set_index("name").loc[choice]
st.caption(tr("data.dataset_meta", version=int(meta["version"]), loaded=str(meta["loaded_at"])[:19],
              source=str(meta["source"])[:80], kind=tr(f"data.kind.{meta['kind']}"),
              fingerprint=str(meta["fingerprint"])[:12]))

rows = st.number_input(tr("data.preview_rows"), min_value=5, max_value=200, value=10, step=5, key=keys.PREVIEW_ROWS)
visible_tables = cache.masked_tables()  # rows and masks of this role (profile_core.privacy)
widgets.table_previews(visible_tables, rows=int(rows))
if "customers" in visible_tables:  # the customers table as shown: same rows, same masks, formulas neutralised
    audit.export_button(visible_tables["customers"], f"{choice}/customers", key="data-export-customers-button",
                        file_name=f"{choice}_customers.csv")
