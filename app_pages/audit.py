"""审计日志 · Audit log: the chain check, the entries filtered by user, action and date range, an export; for an
admin also the users and what each role may do. Open to roles with ``view_audit`` (auditor, admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from profile_core.audit import ACTIONS
from profile_core.auth import PERMISSIONS, Forbidden, UsersFileError, allowed, role_table
from ui import audit, auth, state, widgets
from ui.state import tr

USER_SELECT = "audit-user-selectbox"
ACTION_SELECT = "audit-action-multiselect"
DATES = "audit-dates-date-input"
SEEN = "audit-page-recorded"
REPAIR_BUTTON = "audit-repair-button"

widgets.page_header("audit.title", "audit.caption")
lang, policy = state.lang(), state.policy()
log = audit.audit_log()

if not st.session_state.get(SEEN):  # one entry per session, not per rerun; written before the chain check, so
    st.session_state[SEEN] = audit.record("view_audit", log.path.name)  # the "intact" count includes it
chain = audit.chain_report()  # file, head file and the anchor in the workspace database
(st.success if chain.ok else st.error)(chain.message(lang), icon=":material/verified:" if chain.ok else
                                       ":material/gpp_bad:")
if not chain.ok and allowed(policy, "repair_audit"):  # auditors only: quarantine the damaged tail, resume
    st.caption(tr("audit.repair.caption"))
    if st.button(tr("audit.repair.button"), key=REPAIR_BUTTON, icon=":material/build:"):
        result = audit.repair(auth.current_user())
        st.success(tr("audit.repair.done", file=log.path.name, kept=result.kept, quarantined=result.quarantined,
                      quarantine=result.quarantine_file.name if result.quarantine_file else "-",
                      problem=result.problem))
        chain = audit.chain_report()

entries = log.entries()
users = sorted({str(e.get("user")) for e in entries})
today = datetime.now(UTC).date()
f1, f2, f3 = st.columns([1, 2, 2])
user = f1.selectbox(tr("audit.filter.user"), ["", *users], key=USER_SELECT,
                    format_func=lambda u: u or "—")
actions = f2.multiselect(tr("audit.filter.action"), list(ACTIONS), key=ACTION_SELECT,
                         format_func=state.labeller("audit.action."))
dates = f3.date_input(tr("audit.filter.dates"), value=(today - timedelta(days=30), today), key=DATES)
since, until = (dates if isinstance(dates, tuple | list) and len(dates) == 2 else (None, None))

try:
    frame = log.query(policy, user=user or None, action=actions or None, since=since, until=until)
except Forbidden as e:
    st.error(e.message(lang))
    st.stop()

st.caption(tr("audit.count", count=f"{len(frame):,}"))
if frame.empty:
    st.info(tr("audit.empty"))
else:
    shown = frame.assign(time=frame["time"].dt.strftime("%Y-%m-%d %H:%M:%S"), hash=frame["hash"].str[:12],
                         action=frame["action"].map(lambda a: tr(f"audit.action.{a}")))
    shown = shown.drop(columns=["prev_hash"])
    st.dataframe(shown.rename(columns={c: tr(f"audit.col.{c}") for c in shown.columns}), hide_index=True,
                 key="audit-entries-table")
    audit.export_button(frame.drop(columns=["prev_hash"]), "audit_log", key="audit-export-button",
                        file_name="audit_log.csv")

if allowed(policy, "manage_users"):
    st.subheader(tr("audit.users"))
    st.caption(tr("audit.users_caption", file=str(auth.users_path())))
    try:
        config = auth.users()
        rows = [{tr("auth.col.user"): u.username, tr("auth.col.role"): tr(f"app.roles.{u.role}"),
                 tr("auth.col.rm_id"): u.rm_id or "", tr("audit.col.demo"): u.demo} for u in config.users.values()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="audit-users-table")
    except UsersFileError as e:  # a broken users file: say so here too
        st.error(e.message(lang))
st.subheader(tr("audit.roles"))
st.dataframe(pd.DataFrame(role_table(lang, PERMISSIONS)).rename(
    columns={"role": tr("auth.col.role"), "actions": tr("audit.col.actions")}), hide_index=True,
    key="audit-roles-table")
