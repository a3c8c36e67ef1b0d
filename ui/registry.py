"""The workspace registries on screen: where an upload goes (a new data set, or explicitly a new version of one),
the data-set table (default, rename, delete with confirmation) and the model table (champion, archive).

Every change goes through ``profile_core.store.Workspace`` for the signed-in user (role, demo rules and audit
are enforced there); this module only draws and reports the outcome in the session's language."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import streamlit as st

from profile_core.auth import allowed
from profile_core.store import RegistryError, check_name
from ui import auth, cache, keys, state
from ui.state import tr

TARGET_MODE = "registry-upload-mode-radio"
TARGET_NAME = "registry-upload-name-text-input"
TARGET_VERSION_OF = "registry-upload-version-of-selectbox"
MANAGE = "registry-manage-toggle"
DS_SELECT = "registry-dataset-selectbox"
DS_DEFAULT = "registry-dataset-default-button"
DS_RENAME = "registry-dataset-rename-text-input"
DS_RENAME_BUTTON = "registry-dataset-rename-button"
DS_CONFIRM = "registry-dataset-delete-confirm-text-input"
DS_DELETE = "registry-dataset-delete-button"
MODEL_SELECT = "registry-model-selectbox"
MODEL_CHAMPION = "registry-model-champion-button"
MODEL_ARCHIVE = "registry-model-archive-button"


def _error(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message(state.lang())) if callable(message) else tr("common.unexpected_error", detail=str(exc)[:300])


def _run(change, success: str) -> None:
    """Run one registry change; flash ``success`` and rerun, or show why it was refused."""
    try:
        change()
    except (RegistryError, PermissionError, KeyError, ValueError) as exc:
        st.error(_error(exc))
        return
    state.flash("success", success)
    st.rerun()


# ------------------------------------------------------------------ upload target


def upload_target() -> str | None:
    """Where the upload goes: a new data set named by the user (never an existing one), or — chosen
    explicitly — a new version of an existing data set. Returns the name, or None (with the reason shown)
    when the upload must not start. Records the intent for ``ui.cache.workspace`` (``keys.NEW_VERSION_OF``)."""
    names = cache.datasets()["name"].tolist()
    modes = ["new", "version"] if names else ["new"]
    mode = st.radio(tr("registry.upload.mode"), modes, key=TARGET_MODE, horizontal=True,
                    format_func=state.labeller("registry.upload.target."))
    if mode == "version":
        active = state.active_dataset()
        name = st.selectbox(tr("registry.upload.version_of"), names, key=TARGET_VERSION_OF,
                            index=names.index(active) if active in names else 0)
        st.session_state[keys.NEW_VERSION_OF] = name
        return name
    st.session_state[keys.NEW_VERSION_OF] = None
    last = st.session_state.get(keys.LAST_LOAD)
    if last is not None and last.ok and str(st.session_state.get(TARGET_NAME, "")).strip().lower() == last.dataset:
        st.session_state[TARGET_NAME] = ""  # loaded: the next upload needs a name of its own
    raw = st.text_input(tr("registry.upload.name"), value="", key=TARGET_NAME, max_chars=64,
                        placeholder=f"upload_{datetime.now():%Y%m%d}", help=tr("data.upload.dataset_help"))
    raw = raw.strip()
    if not raw:
        st.caption(tr("registry.upload.name_needed"))
        return None
    try:
        name = check_name(raw)
    except ValueError:
        st.error(tr("data.bad_dataset_name", name=raw))
        return None
    if name in names:
        st.error(tr("registry.exists", dataset=name))
        return None
    return name


def demo_upload_refused() -> bool:
    """True (with the reason on screen) when the signed-in user is a demo account: demo accounts load only the
    demo portfolio (``profile_core.store.check_demo_use``)."""
    user = auth.current_user()
    if user is not None and user.demo:
        st.info(tr("registry.demo_upload"))
        return True
    return False


# ------------------------------------------------------------------ data sets


def _dataset_frame() -> tuple[pd.DataFrame, str | None]:
    with cache.workspace() as ws:
        frame = ws.list_datasets()
        default = ws.default_dataset()
        champions = {n: (ws.champion(n) or {}).get("name", "") for n in frame["name"]}
    rows = []
    for _, r in frame.iterrows():
        counts = json.loads(r["row_counts"])
        rows.append({tr("registry.col.name"): r["name"], tr("registry.col.version"): int(r["version"]),
                     tr("registry.col.loaded"): str(r["loaded_at"])[:16],
                     tr("registry.col.customers"): f"{int(counts.get('customers', 0)):,}",
                     tr("registry.col.source"): str(r["source"])[:60],
                     tr("registry.col.champion"): champions.get(r["name"]) or "—",
                     tr("registry.col.default"): "✓" if r["name"] == default else ""})
    return pd.DataFrame(rows), default


def datasets_panel() -> None:
    """The data sets of the workspace; admins and analysts set the default, rename and delete them."""
    st.subheader(tr("registry.datasets"))
    table, default = _dataset_frame()
    if table.empty:
        st.info(tr("common.no_data"))
        return
    st.dataframe(table, hide_index=True, key="registry-datasets-table")
    if default is None:
        st.caption(tr("registry.no_default"))
    user = auth.current_user()
    if user is None or not allowed(state.policy(), "load_data"):
        return
    names = table[tr("registry.col.name")].tolist()
    active = state.active_dataset()
    if not st.toggle(tr("registry.manage"), key=MANAGE):  # a toggle, not an expander: it stays open over reruns
        return
    with st.container(border=True):
        pick = st.selectbox(tr("registry.pick"), names, key=DS_SELECT,
                            index=names.index(active) if active in names else 0)
        c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
        if c1.button(tr("registry.set_default"), key=DS_DEFAULT, disabled=pick == default, width="stretch"):
            _run(lambda: _with_ws(lambda ws: ws.set_default_dataset(pick, user=user)),
                 tr("registry.default_set", dataset=pick))
        new = c2.text_input(tr("registry.rename_to"), key=DS_RENAME, max_chars=64)
        if c2.button(tr("registry.rename"), key=DS_RENAME_BUTTON, disabled=not new.strip(), width="stretch"):
            def rename() -> None:
                _with_ws(lambda ws: ws.rename_dataset(pick, new.strip(), user=user))
                if state.active_dataset() == pick:
                    state.set_active_dataset(check_name(new.strip()))
            _run(rename, tr("registry.renamed", old=pick, new=new.strip()))
        confirm = c3.text_input(tr("registry.confirm_label", dataset=pick), key=DS_CONFIRM, max_chars=64)
        if c3.button(tr("registry.delete"), key=DS_DELETE, type="primary", disabled=not confirm.strip(),
                     width="stretch"):
            _run(lambda: _with_ws(lambda ws: ws.delete_dataset(pick, user=user, confirm=confirm.strip())),
                 tr("registry.deleted", dataset=pick))


def _with_ws(action) -> None:
    with cache.workspace() as ws:
        action(ws)


def rm_assignment_notice() -> None:
    """For a relationship manager: say so when the active data set assigns no customers to managers."""
    if state.role() != "rm":
        return
    customers = cache.active_tables().get("customers")
    if customers is not None and "rm_id" not in customers.columns:
        st.warning(tr("registry.no_rm_column", dataset=state.active_dataset()))


# ------------------------------------------------------------------ models


def _metric_text(metrics: dict) -> str:
    """``default AUC 0.812 · credit_score RMSE 35.5`` — the first metric of each task, readable."""
    parts = []
    for task, values in (metrics or {}).items():
        for metric in ("auc", "rmse", "accuracy", "r2", "macro_f1"):
            if metric in values and values[metric] is not None:
                parts.append(f"{task} {tr('registry.metric.' + metric)} {float(values[metric]):,.3f}")
                break
    return " · ".join(parts) or "—"


def models_panel() -> None:
    """Models registered for the active data set (newest first): held-out metrics, who trained them and when,
    the champion everyone uses; analysts and admins choose the champion or archive a model."""
    name = state.active_dataset()
    st.subheader(tr("registry.models", dataset=name or "—"))
    if not name:
        st.info(tr("common.no_data"))
        return
    with cache.workspace() as ws:
        models = ws.models(name)
        champion = ws.champion(name)
    if champion is not None:
        st.caption(tr("registry.champion_line", name=champion.get("name", ""), by=champion["set_by"],
                      at=str(champion["set_at"])[:16]))
    else:
        st.caption(tr("registry.no_champion"))
    if models.empty:
        st.info(tr("registry.no_models"))
        return
    table = pd.DataFrame({
        tr("registry.col.model"): models["name"], tr("registry.col.arch"): models["arch"],
        tr("registry.col.metrics"): models["metrics"].map(_metric_text),
        tr("registry.col.trained_by"): models["trained_by"],
        tr("registry.col.trained_at"): models["trained_at"].astype(str).str[:16],
        tr("registry.col.sha"): models["sha256"].astype(str).str[:12],
        tr("registry.col.champion"): models["champion"].map(lambda v: "★" if v else ""),
    })
    st.dataframe(table, hide_index=True, key="registry-models-table")
    user = auth.current_user()
    if user is None or not allowed(state.policy(), "activate_bundle"):
        return
    paths = models["path"].tolist()
    labels = dict(zip(paths, models["name"], strict=True))
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    pick = c1.selectbox(tr("registry.pick_model"), paths, format_func=labels.get, key=MODEL_SELECT)
    is_champion = champion is not None and champion["bundle_path"] == pick
    if c2.button(tr("registry.make_champion"), key=MODEL_CHAMPION, disabled=is_champion, type="primary",
                 width="stretch"):
        _run(lambda: _with_ws(lambda ws: ws.set_champion(name, pick, user)),
             tr("registry.champion_set", name=labels[pick], dataset=name))
    if c3.button(tr("registry.archive"), key=MODEL_ARCHIVE, disabled=is_champion, width="stretch"):
        _run(lambda: _with_ws(lambda ws: ws.archive_model(pick, user=user)), tr("registry.archived_ok",
                                                                                name=labels[pick]))
