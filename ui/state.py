"""Where things live (paths from the environment) and what this session has chosen (language, role,
active dataset and bundle). Read-only helpers over ``st.session_state``; keys come from ``ui.keys``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from profile_core.i18n import DEFAULT_LANG, LANGS
from profile_core.i18n import t as _t
from profile_core.settings import Settings
from profile_core.settings import current as current_settings
from ui import keys

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("rm", "analyst", "auditor", "admin")
DEFAULT_ROLE = "analyst"  # sees the whole portfolio, identities masked


# ------------------------------------------------------------------ paths (profile_core.settings)


def settings() -> Settings:
    """The ``PROFILE_*`` settings (``profile_core.settings.current``: the CLI and the API read the same)."""
    return current_settings()


def _rooted(path: Path) -> Path:
    """A relative setting is relative to the project root (where ``make app`` runs), whatever the cwd."""
    return path if path.is_absolute() else ROOT / path


def workspace_path() -> Path:
    """The DuckDB workspace file: ``$PROFILE_WORKSPACE`` or ``workspace.duckdb`` in the project root."""
    return _rooted(settings().workspace)


def models_dir() -> Path:
    """Where bundles are saved and listed: ``$PROFILE_MODELS`` or ``models/``."""
    return _rooted(settings().models)


def demo_data_dir() -> Path:
    """The demo portfolio files: ``$PROFILE_DEMO_DATA`` or ``data/demo``."""
    return _rooted(settings().demo_data)


def demo_bundle_dir() -> Path:
    """The shipped demo bundle: ``$PROFILE_DEMO_BUNDLE`` or ``models/demo``."""
    return _rooted(settings().demo_bundle)


# ------------------------------------------------------------------ session choices


def lang() -> str:
    value = st.session_state.get(keys.LANG, DEFAULT_LANG)
    return value if value in LANGS else DEFAULT_LANG


def tr(key: str, /, **values) -> str:
    """The catalogue message ``key`` in this session's language."""
    return _t(key, lang(), **values)


def labeller(prefix: str):
    """``format_func`` for widgets: value → message ``prefix + value`` in the language of *this* run
    (format functions may be called outside the script run, where session state is unavailable)."""
    current = lang()
    return lambda value: _t(f"{prefix}{value}", current)


def set_lang(value: str) -> None:
    st.session_state[keys.LANG] = value if value in LANGS else DEFAULT_LANG


def set_role(value: str) -> None:
    st.session_state[keys.ROLE] = value if value in ROLES else DEFAULT_ROLE


def _user():
    """The signed-in ``profile_core.auth.User`` (``ui.auth``), or None."""
    from profile_core.auth import User

    user = st.session_state.get("auth-user")  # ui.auth.USER (not imported: ui.auth imports this module)
    return user if isinstance(user, User) else None


def role() -> str:
    """The signed-in user's role; without a user, the old session choice (pages never run signed out)."""
    user = _user()
    if user is not None:
        return user.role
    value = st.session_state.get(keys.ROLE, DEFAULT_ROLE)
    return value if value in ROLES else DEFAULT_ROLE


def rm_id() -> str | None:
    """The signed-in relationship manager's own ``rm_id`` (fixed by the users file, not chosen)."""
    user = _user()
    if user is not None:
        return user.rm_id if user.role == "rm" else None
    return st.session_state.get(keys.RM_ID)


def set_rm_id(value: str | None) -> None:
    st.session_state[keys.RM_ID] = value


def reveal() -> bool:
    return role() == "admin" and bool(st.session_state.get(keys.REVEAL, False))


def set_reveal(value: bool) -> None:
    st.session_state[keys.REVEAL] = bool(value)


def policy():
    """The ``privacy.Policy`` of the signed-in user (``profile_core.auth.policy_for``): an RM bound to their own
    ``rm_id``; an admin reveals identities only with the (audited) reveal switch on. Signed out: a policy that
    sees no customer."""
    from profile_core.auth import policy_for
    from profile_core.privacy import Policy

    user = _user()
    if user is not None:
        return policy_for(user, reveal=reveal())
    return Policy("rm", rm_id="\u2014")  # nobody's manager: no customer at all


def active_dataset() -> str | None:
    return st.session_state.get(keys.DATASET)


def set_active_dataset(name: str | None) -> None:
    """This session's data set, remembered for the signed-in user (their next session, after F5 too, opens it)."""
    changed = st.session_state.get(keys.DATASET) != name
    st.session_state[keys.DATASET] = name
    user = _user()
    if changed and name and user is not None:
        from ui import cache

        with cache.workspace() as ws:
            ws.set_user_pref(user.username, "dataset", name)


def active_bundle() -> Path | None:
    """The model every user sees for the active data set: its champion in the workspace registry
    (``Workspace.champion``), else — for demo data without a champion — the shipped demo bundle, else None.
    Not a per-session choice: another user's champion change shows on this session's next run."""
    name = active_dataset()
    if not name:
        return None
    from profile_core.store import is_demo_dataset
    from ui import cache

    with cache.workspace() as ws:
        if not ws.has_dataset(name):
            return None
        champion = ws.champion(name)
        if champion is not None:
            return Path(champion["bundle_path"])
        demo = is_demo_dataset(ws, name)
    bundle = demo_bundle_dir()
    return bundle if demo and (bundle / "manifest.json").is_file() else None


def set_active_bundle(path: str | Path | None) -> None:
    """"Set as current model": make ``path`` the champion of the active data set for everyone (persisted,
    audited, checked against the user's role and the demo rules in ``profile_core.store``). ``None`` does
    nothing (a champion is replaced, never cleared, from a page)."""
    name = active_dataset()
    if not path or not name:
        return
    from ui import cache

    with cache.workspace() as ws:
        ws.set_champion(name, path, _user())


def register_model(path: str | Path) -> None:
    """Record a saved bundle in the workspace's model registry as trained on the active data set by this
    session's user (it does not become the champion)."""
    name = active_dataset()
    if not path or not name:
        return
    from ui import cache

    with cache.workspace() as ws:
        ws.register_model(path, dataset=name, user=_user())


def flash(kind: str, text: str) -> None:
    """A message to show once at the top of the next run (survives ``st.rerun``)."""
    st.session_state[keys.FLASH] = (kind, text)


def pop_flash() -> tuple[str, str] | None:
    return st.session_state.pop(keys.FLASH, None)
