"""模型 · Model: train a multi-task model in the background with live curves, compare it with single-task
baselines, save it as a bundle; or load a saved / the demo bundle."""

from __future__ import annotations

import streamlit as st

from ui import cache, lake, model_view, registry, training, widgets
from ui.state import tr

widgets.page_header("model.title", "model.caption")
if lake.active():  # a read-only lake: the model its cards use; training from the CLI
    lake.model_page()
    st.stop()
train_tab, bundle_tab = st.tabs([tr("model.tab_train"), tr("model.tab_bundles")])

with bundle_tab:
    registry.models_panel()
    model_view.bundles_section()

with train_tab:
    job = training.current_job()
    frame = model_view.features_or_error() if widgets.need_data() else None
    if frame is not None:
        with st.expander(tr("model.settings"), expanded=job is None):
            model_view.training_form(frame, cache.active_feature_fingerprint(), running=bool(job and job.running))
    if job is not None:
        model_view.live_panel(job)
        if job.finished:
            model_view.results(job)
            if st.button(tr("model.clear"), key="model-clear-job-button"):
                training.clear_job()
                st.rerun()
