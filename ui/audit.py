"""Writing the audit log from the app: ``record(action, target, **details)`` with the signed-in user.

``record_view(customer_id)`` is what a page calls when it shows a customer's card: one ``view_card`` entry per
customer and session (repeated reruns showing the same card within 10 minutes are not new views).

The log is ``$PROFILE_AUDIT`` or ``<workspace file>.audit.jsonl`` (see :mod:`profile_core.audit`). A failure
to write is logged (without personal data) and reported as ``False``; callers that must not show anything
unaudited can refuse on ``False``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import streamlit as st

from profile_core.audit import AuditLog
from ui import state

log = logging.getLogger(__name__)
LAST_VIEW = "audit-last-view"  # session: (customer_id, monotonic time) of the last recorded card view
SEEN = "audit-seen"  # session: what the router last saw (active bundle, training job, load) for change records
VIEW_REPEAT_S = 600.0


def log_path() -> Path:
    return state.settings().audit or Path(str(state.workspace_path()) + ".audit.jsonl")  # $PROFILE_AUDIT


@st.cache_resource(show_spinner=False)
def _log(path: str, workspace: str) -> AuditLog:
    """The log at ``path``, its head anchored in the app's workspace database (through the shared connection,
    so appends and loads never fight over the DuckDB file lock)."""
    from functools import partial

    from profile_core.audit import WorkspaceAnchor
    from ui import cache

    return AuditLog(path, anchor=WorkspaceAnchor(partial(cache.workspace, workspace)))


def audit_log() -> AuditLog:
    return _log(str(log_path()), str(state.workspace_path()))


def chain_report():
    """``profile_core.audit.verify_chain`` of this app's log, against its head file and workspace anchor."""
    from profile_core.audit import verify_chain

    log_ = audit_log()
    return verify_chain(log_.path, anchor=log_._anchor)


def repair(user) -> object:
    """Quarantine the damaged tail of this app's log and resume (``profile_core.audit.repair_log``; auditors
    only — ``auth.Forbidden`` otherwise); returns its ``RepairResult``."""
    from profile_core.audit import repair_log

    log_ = audit_log()
    return repair_log(log_.path, state.policy(), user.username, anchor=log_._anchor)


def record(action: str, target: str = "", *, user=None, **details) -> bool:
    """Append ``action`` on ``target`` for ``user`` (default: the signed-in user); True when written. When the
    log fails its integrity check, says so (and how an auditor repairs it) besides returning False."""
    from profile_core.audit import AuditIntegrityError
    from ui import auth

    user = user or auth.current_user()
    name, role = (user.username, user.role) if user is not None else ("(anonymous)", "none")
    try:
        audit_log().append(name, role, action, str(target or ""), details)
    except AuditIntegrityError as exc:  # appends stay refused until an auditor repairs the log: say how
        log.error("audit log refused the write: %s (%s)", exc.values.get("problem"), action)
        try:
            st.error(exc.message(state.lang()), icon=":material/gpp_bad:")
        except Exception:  # noqa: BLE001 - no page to show it on (e.g. another thread)
            pass
        return False
    except Exception as exc:  # noqa: BLE001 - the page decides what to do; never a traceback for people
        log.error("audit log write failed: %s (%s)", type(exc).__name__, action)
        return False
    return True


def record_view(customer_id: str) -> bool:
    """Record that this session's user sees the card of ``customer_id`` (once per customer per 10 minutes)."""
    now = time.monotonic()
    last = st.session_state.get(LAST_VIEW)
    if last and last[0] == str(customer_id) and now - last[1] < VIEW_REPEAT_S:
        return True
    ok = record("view_card", str(customer_id))
    if ok:
        st.session_state[LAST_VIEW] = (str(customer_id), now)
    return ok


def watch_session() -> None:
    """Called by the router on every run: records model actions the pages made since the last run — a new
    active bundle (``activate_bundle``) and a new training job (``train``) — so they are audited whichever
    page made them."""
    from ui import keys

    seen = st.session_state.setdefault(SEEN, {})  # champion changes are audited by the registry (model_champion)
    job = st.session_state.get(keys.JOB)
    job_id = getattr(job, "id", None)
    if job_id is not None and seen.get("job") != job_id:
        record("train", str(state.active_dataset() or ""), job=str(job_id))
    seen["job"] = job_id


def export_payload(frame, policy, user, target: str, *, owners=None, log: AuditLog | None = None) -> bytes:
    """The masked, formula-safe CSV of ``frame`` for ``policy`` (``profile_core.exports``), recorded as an
    ``export`` of ``target`` by ``user`` in ``log`` (default: this app's). Runs when the file is requested
    (deferred download) on another thread: it takes everything it needs as arguments, never from the session;
    no audit entry, no file."""
    from profile_core.exports import export_frame

    safe = export_frame(frame, policy, owners=owners)
    (log or audit_log()).append(user.username, user.role, "export", target,
                                {"rows": len(safe), "columns": safe.shape[1]})
    return safe.to_csv(index=False).encode("utf-8-sig")


def export_button(frame, target: str, *, key: str, file_name: str, owners=None) -> None:
    """A download button for ``frame`` as this session's role may export it (masked like the screen, formulas
    neutralised); the export is audited when the file is generated. Nothing for a role without ``export``."""
    from profile_core.auth import allowed
    from ui import auth

    user, policy, log = auth.current_user(), state.policy(), audit_log()
    if user is None or not allowed(policy, "export"):
        return
    st.download_button(state.tr("export.button"), data=lambda: export_payload(frame, policy, user, target,
                                                                              owners=owners, log=log),
                       file_name=file_name, mime="text/csv", key=key, on_click="ignore",
                       help=state.tr("export.help"), icon=":material/download:")


def record_load(outcome, uploaded: int = 0) -> None:
    """Audit a data load from the data page (``ui.loading.LoadOutcome``) and, when a demo account loaded it,
    tag the dataset as demo data (``profile_core.auth.dataset_is_demo``) — done while the caller holds the
    workspace lock, so no other session sees the untagged dataset."""
    from ui import auth, cache

    user = auth.current_user()
    if outcome.ok and user is not None and user.demo:
        with cache.workspace() as ws:
            ws.update_meta(outcome.dataset, {"demo": True, "loaded_by": user.username})
    report = outcome.report
    record("load_data", outcome.dataset, ok=bool(outcome.ok), files=len(outcome.files), version=outcome.version,
           errors=len(report.errors) if report is not None else 0, source="upload" if uploaded else "demo")


def report_button(make_html, target: str, *, key: str, file_name: str) -> None:
    """A download button for a self-contained HTML report (``profile_core.report``), built only when the user
    asks for it and audited as an ``export``; nothing for a role without ``export``. ``make_html`` renders
    what the screen shows (already masked for this role) and takes no arguments."""
    from profile_core.auth import allowed
    from ui import auth

    user, policy, log = auth.current_user(), state.policy(), audit_log()
    if user is None or not allowed(policy, "export"):
        return

    def payload() -> bytes:  # runs on another thread when the file is requested: no session access here
        log.append(user.username, user.role, "export", target, {"format": "html"})
        return make_html().encode("utf-8")

    st.download_button(state.tr("export.report_button"), data=payload, file_name=file_name, mime="text/html",
                       key=key, on_click="ignore", help=state.tr("export.report_help"),
                       icon=":material/description:")
