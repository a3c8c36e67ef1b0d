"""Signing in: the login page, the signed-in user of this session, demo mode, sign-out and idle timeout.

The user lives in ``st.session_state`` (server side, never in a cookie): a page reload starts a new session
and asks again. Every run re-checks the user against the users file (a removed user or changed role or
password ends the session), the demo rules (a demo account is signed out as soon as demo mode is off or the
workspace holds non-demo data) and the idle timeout (``$PROFILE_SESSION_MINUTES``, default 30).

Environment: ``PROFILE_USERS`` (users file, default ``config/users.yaml``), ``PROFILE_DEMO`` (``0`` turns demo
accounts off), ``PROFILE_AUTOLOGIN`` (a demo account name or role signed in without a password — for tests
and screenshots; honoured only while demo accounts are allowed, never for a non-demo account).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import streamlit as st

from profile_core import auth as core
from profile_core.auth import AuthError, User, UsersConfig, UsersFileError
from ui import state
from ui.state import tr

log = logging.getLogger(__name__)

USER = "auth-user"  # session: the signed-in profile_core.auth.User
TOKEN = "auth-token"  # session: this sign-in's token (profile_core.store sessions), also in the URL as ?sid=
TOUCHED = "auth-token-touched"  # session: time.time() the token's last_seen was last written
SID = "sid"  # query parameter carrying the session token, so a reload (F5) resumes the sign-in
LAST_SEEN = "auth-last-seen"  # session: time.time() of the last run
NOTICE = "auth-notice"  # session: a message key shown once on the login page (signed out, expired, …)
LOGIN_FORM = "auth-login-form"
LOGIN_USER = "auth-login-username-text-input"
LOGIN_PASSWORD = "auth-login-password-text-input"
LOGIN_SUBMIT = "auth-login-submit-button"
LOGOUT_BUTTON = "auth-logout-button"


def users_path() -> Path:
    path = state.settings().users
    return path if path.is_absolute() else state.ROOT / path


@st.cache_resource(show_spinner=False, max_entries=4)
def _config(path: str, mtime_ns: int) -> UsersConfig:  # mtime keys the cache: an edited file is re-read
    return core.load_users(path)


def users() -> UsersConfig:
    """The users file, checked (``UsersFileError`` when it is missing or wrong)."""
    path = users_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise UsersFileError(path, e.strerror or "missing") from e
    return _config(str(path), mtime)


@st.cache_resource(show_spinner=False)
def throttle() -> core.LoginThrottle:
    return core.LoginThrottle()


def demo_allowed() -> bool:
    """Demo accounts may be used now: demo mode on and every dataset in the workspace is demo data."""
    if not core.demo_mode_enabled():
        return False
    from ui import cache

    try:
        with cache.workspace() as ws:
            return core.workspace_is_demo(ws)
    except Exception:  # noqa: BLE001 - an unreadable workspace is not known to be demo data
        log.exception("reading the workspace for the demo check failed")
        return False


def current_user() -> User | None:
    user = st.session_state.get(USER)
    return user if isinstance(user, User) else None


def timeout_s() -> float:
    return state.settings().session_timeout_s


def _browser() -> str:
    """What a session token is bound to: a hash of the browser's user agent (a copied URL does not sign in
    another browser)."""
    import hashlib

    try:
        agent = str(st.context.headers.get("User-Agent") or "")
    except Exception:  # noqa: BLE001 - no request context (bare runs, tests)
        agent = ""
    return hashlib.sha256(agent.encode("utf-8")).hexdigest()[:32]


def _sign_in(user: User, method: str) -> None:
    from ui import audit, cache

    st.session_state[USER] = user
    st.session_state[LAST_SEEN] = time.time()
    try:
        with cache.workspace() as ws:
            if method != "resume":
                st.session_state[TOKEN] = ws.create_session(user.username, _browser())
            lang = ws.user_pref(user.username, "lang")
        if lang:
            state.set_lang(lang)  # the language this user chose last time
    except Exception:  # noqa: BLE001 - signing in must not depend on the workspace being writable
        log.exception("storing the sign-in session failed")
    _show_token()
    st.session_state[TOUCHED] = time.time()
    audit.record("login", user.username, user=user, method=method, demo=user.demo)


def _show_token() -> None:
    """Keep ``?sid=`` in the address bar (a page switch drops query parameters), so F5 resumes the sign-in."""
    token = st.session_state.get(TOKEN)
    if token and st.query_params.get(SID) != token:
        st.query_params[SID] = token


def _resume() -> User | None:
    """The user of the ``?sid=`` session token when it is live (not revoked, same browser, within the idle
    timeout) and the user still exists unchanged; None otherwise."""
    token = st.query_params.get(SID)
    if not token:
        return None
    from ui import cache

    try:
        with cache.workspace() as ws:
            username = ws.resume_session(token, _browser(), idle_s=timeout_s())
        user = users().get(username) if username else None
    except Exception:  # noqa: BLE001 - an unreadable workspace or users file: sign in again
        log.exception("resuming a sign-in session failed")
        user = None
    if user is None:
        del st.query_params[SID]
        return None
    if user.demo and not demo_allowed():
        return None
    st.session_state[TOKEN] = token
    _sign_in(user, "resume")
    return user


def save_lang(lang: str) -> None:
    """Remember ``lang`` for the signed-in user (their next sign-in, in any browser, opens in it)."""
    user = current_user()
    if user is None:
        return
    from ui import cache

    try:
        with cache.workspace() as ws:
            ws.set_user_pref(user.username, "lang", lang)
    except Exception:  # noqa: BLE001 - a preference is not worth an error on screen
        log.exception("saving the language preference failed")


def sign_out(notice: str | None = None, action: str = "logout") -> None:
    """End this session's sign-in (recorded as ``action``); keeps only the language choice."""
    from ui import audit, keys

    user = current_user()
    if user is not None:
        audit.record(action, user.username, user=user, reason=notice or "")
    token = st.session_state.get(TOKEN)
    if token:
        from ui import cache

        try:
            with cache.workspace() as ws:
                ws.revoke_session(token)
        except Exception:  # noqa: BLE001
            log.exception("revoking the sign-in session failed")
    if SID in st.query_params:
        del st.query_params[SID]
    lang = st.session_state.get(keys.LANG)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    if lang:
        st.session_state[keys.LANG] = lang
    if notice:
        st.session_state[NOTICE] = notice


def gate() -> User | None:
    """The signed-in user after this run's checks, signing in ``$PROFILE_AUTOLOGIN`` when allowed; None when
    the login page must be shown."""
    user = current_user()
    if user is not None:
        try:
            fresh = users().get(user.username)
        except UsersFileError:
            fresh = None
        now = time.time()
        if fresh is None or (fresh.role, fresh.rm_id, fresh.password_hash, fresh.demo) != \
                (user.role, user.rm_id, user.password_hash, user.demo):
            sign_out("auth.changed")
        elif user.demo and not demo_allowed():
            sign_out("auth.demo_refused")
        elif now - float(st.session_state.get(LAST_SEEN, now)) > timeout_s():
            sign_out("auth.expired", action="session_expired")
        else:
            st.session_state[LAST_SEEN] = now
            _show_token()
            if now - float(st.session_state.get(TOUCHED, 0.0)) > 30.0:  # the idle clock of the stored session
                st.session_state[TOUCHED] = now
                from ui import cache

                try:
                    with cache.workspace() as ws:
                        ws.touch_session(st.session_state.get(TOKEN))
                except Exception:  # noqa: BLE001
                    log.exception("touching the sign-in session failed")
            return user
    if not st.session_state.get(NOTICE):
        resumed = _resume()
        if resumed is not None:
            return resumed
    wanted = state.settings().autologin.strip()
    if wanted and not st.session_state.get(NOTICE):  # after a sign-out, show the login page instead
        candidate = _autologin_user(wanted)
        if candidate is not None and demo_allowed():
            _sign_in(candidate, "autologin")
            return candidate
    return None


def _autologin_user(wanted: str) -> User | None:
    """The demo account for ``$PROFILE_AUTOLOGIN``. A test may preset ``keys.ROLE`` (and ``keys.RM_ID``) in
    session state before the first run to pick the demo account of that role (and manager) instead; browsers
    cannot set these keys, and only demo accounts — whose password is public — can be chosen."""
    from ui import keys

    try:
        config = users()
    except UsersFileError:
        return None
    role, rm = st.session_state.get(keys.ROLE), st.session_state.get(keys.RM_ID)
    if role in core.ROLES:
        return next((u for u in config.demo_users if u.role == role and (role != "rm" or not rm or u.rm_id == rm)),
                    None)
    return config.demo_user(wanted)


def _attempt(username: str, password: str) -> str | None:
    """Try to sign in; None on success, else the message key to show."""
    from ui import audit

    username = (username or "").strip().lower()
    gate_, client = throttle(), _client()
    if gate_.locked(username, client):
        audit.record("login_failed", "(locked)", user=_known(username), reason="locked")
        return "auth.locked"
    try:
        user = core.authenticate(users(), username, password, demo_allowed=demo_allowed())
    except AuthError as e:
        gate_.failed(username, client)
        known = _known(username)
        audit.record("login_failed", known.username if known else "(unknown)", user=known, reason=e.key)
        return e.key
    gate_.succeeded(username, client)
    _sign_in(user, "password")
    return None


def _client() -> str:
    """Who is trying, for the login throttle: the client's IP address as Streamlit sees it ("" when unknown)."""
    try:
        return str(st.context.ip_address or "")
    except Exception:  # noqa: BLE001 - no request context (bare runs, tests)
        return ""


def _known(username: str) -> User | None:
    """The configured user ``username`` (for the audit entry of a failed login; unknown names are not
    written down — they are often a password typed into the wrong field)."""
    try:
        return users().get(username)
    except UsersFileError:
        return None


def login_page() -> None:
    """The login page (an ``st.Page`` callable): the form, and in demo mode the demo accounts."""
    st.title(tr("auth.title"))
    notice = st.session_state.pop(NOTICE, None)
    if notice:
        st.info(tr(notice))
    try:
        config = users()
    except UsersFileError as e:
        st.error(e.message(state.lang()))
        return
    demo = demo_allowed()
    if demo and config.demo_users:
        demo_banner()
        rows = [{tr("auth.col.user"): u.username, tr("auth.col.role"): tr(f"app.roles.{u.role}"),
                 tr("auth.col.rm_id"): u.rm_id or ""} for u in config.demo_users]
        st.caption(tr("auth.demo_accounts", password=config.demo_password or "—"))
        st.dataframe(rows, hide_index=True, key="auth-demo-accounts")
    elif core.demo_mode_enabled() and config.demo_users:
        st.caption(tr("auth.demo_off_data"))
    with st.columns([2, 3])[0], st.form(LOGIN_FORM, clear_on_submit=True):
        username = st.text_input(tr("auth.username"), key=LOGIN_USER, max_chars=64)
        password = st.text_input(tr("auth.password"), type="password", key=LOGIN_PASSWORD, max_chars=256)
        submitted = st.form_submit_button(tr("auth.submit"), type="primary", key=LOGIN_SUBMIT)
    if submitted:
        error = _attempt(username, password)
        if error is None:
            st.rerun()
        st.error(tr(error))


def demo_banner() -> None:
    """The on-screen demo notice (a coloured line, not an alert, so page alerts stay meaningful)."""
    st.markdown(f":orange-background[:material/science: **{tr('auth.demo_title')}** · {tr('auth.demo_banner')}]")


def sidebar_user(user: User) -> None:
    """Who is signed in, their role, and the sign-out button (replaces the old role selector)."""
    line = f":material/person: **{user.label}** (`{user.username}`) · {tr(f'app.roles.{user.role}')}"
    if user.role == "rm":
        line += f" · {user.rm_id}"
    st.markdown(line)
    if st.button(tr("auth.logout"), key=LOGOUT_BUTTON, icon=":material/logout:"):
        sign_out("auth.signed_out")
        st.rerun()
