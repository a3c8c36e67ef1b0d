"""Users, passwords and what each role may do.

Users live in a YAML file (``config/users.yaml``; the app reads ``$PROFILE_USERS``) holding **bcrypt hashes
only** — a ``password`` key in plain text is refused::

    demo_password: demo-2024          # shown on the login screen, demo mode only
    users:
      rm01: {name: 演示客户经理, role: rm, rm_id: RM001, demo: true, password_hash: "$2b$12$..."}

Make a hash with ``python -m profile_core.auth`` (asks for the password, prints the hash).

Roles and their rules (enforced here and in the functions that take a ``privacy.Policy``, not only by hiding
widgets): see :data:`PERMISSIONS`. Which customers a role sees and how identities are masked is
:mod:`profile_core.privacy`; :func:`policy_for` turns a user into that policy.

Demo accounts (``demo: true``) are accepted only in demo mode (``$PROFILE_DEMO`` not ``0``) **and** only while
every dataset in the workspace is demo data (:func:`dataset_is_demo`): the seeded synthetic portfolio (marked
in the workspace metadata by the demo loader, :func:`mark_demo`), or files a demo account uploaded (tagged by
the app; anyone holding the public demo password sees them). A file name never makes data demo data.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .i18n import MessageError, t
from .privacy import ROLES, Policy

#: What each role may do. ``view_customers``: customer cards, lists and the portfolio (rows filtered and
#: masked by ``privacy.Policy``); ``view_monitoring``: model monitoring and the model card (aggregates only);
#: ``view_audit``: the audit log; ``reveal``: an admin may show identities in full (every switch is audited).
#: ``score``: the API's scoring and explanation endpoints (analysts and admins: they run models on raw
#: attributes); ``repair_audit``: quarantine a damaged audit-log tail (auditors only — the person who
#: checks the log is the one who may restart it, never an admin who also runs the system).
PERMISSIONS: dict[str, frozenset[str]] = {
    "rm": frozenset({"view_customers", "export"}),
    "analyst": frozenset({"view_customers", "view_monitoring", "load_data", "train", "activate_bundle", "export",
                          "score"}),
    "auditor": frozenset({"view_monitoring", "view_audit", "export", "repair_audit"}),
    "admin": frozenset({"view_customers", "view_monitoring", "view_audit", "load_data", "train", "activate_bundle",
                        "export", "manage_users", "reveal", "score"}),
}
ACTIONS: frozenset[str] = frozenset().union(*PERMISSIONS.values())
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BCRYPT = re.compile(r"\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}")
#: Checked when the user name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = b"$2b$12$C6UzMDM.H6dfI/f/IKcEeO5c3GHsw1l6bDzNtqzcE2jkwJpQYl8mO"


class Forbidden(PermissionError):
    """The policy's role may not do ``action``; ``message(lang)`` is the sentence for people."""

    def __init__(self, action: str, role: str) -> None:
        self.action, self.role = action, role
        super().__init__(t("auth.forbidden", "en", action=t(f"auth.action.{action}", "en"), role=role))

    def message(self, lang: str = "zh") -> str:
        return t("auth.forbidden", lang, action=t(f"auth.action.{self.action}", lang),
                 role=t(f"privacy.role.{self.role}", lang))


class AuthError(MessageError):
    """A refused login (``key``: a message in trust.toml); the message never says whether the name exists."""


class UsersFileError(ValueError):
    """The users file is missing or malformed; the message names the file and the entry."""

    def __init__(self, path: str | Path, detail: str) -> None:
        self.path, self.detail = str(path), detail
        super().__init__(f"{path}: {detail}")

    def message(self, lang: str = "zh") -> str:
        return t("auth.users_file_bad", lang, file=self.path, detail=self.detail)


# ------------------------------------------------------------------ permissions


def allowed(policy: Policy, action: str) -> bool:
    """True when ``policy``'s role may do ``action`` (one of :data:`ACTIONS`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
    return action in PERMISSIONS.get(policy.role, frozenset())


def require(policy: Policy | None, action: str) -> None:
    """Raise :class:`Forbidden` unless ``policy`` may do ``action``. ``None`` is refused too: code acting for a
    person must pass that person's policy."""
    if policy is None:
        raise Forbidden(action, "none")
    if not allowed(policy, action):
        raise Forbidden(action, policy.role)


# ------------------------------------------------------------------ users


@dataclass(frozen=True)
class User:
    username: str
    role: str
    name: str = ""
    rm_id: str | None = None
    demo: bool = False
    password_hash: str = field(default="", repr=False, compare=False)

    @property
    def label(self) -> str:
        return self.name or self.username


def policy_for(user: User, *, reveal: bool = False) -> Policy:
    """The ``privacy.Policy`` every query for ``user`` must use: an RM is bound to their own ``rm_id``;
    ``reveal`` (identities in full) is honoured for an admin only and ignored otherwise."""
    if user.role == "rm":
        return Policy("rm", rm_id=user.rm_id)
    return Policy(user.role, reveal=bool(reveal) and user.role == "admin")  # type: ignore[arg-type]


@dataclass(frozen=True)
class UsersConfig:
    users: dict[str, User]
    demo_password: str | None = None
    path: str = ""

    def get(self, username: str) -> User | None:
        return self.users.get(username.strip().lower()) if isinstance(username, str) else None

    @property
    def demo_users(self) -> list[User]:
        return [u for u in self.users.values() if u.demo]

    def demo_user(self, name_or_role: str) -> User | None:
        """The demo account named ``name_or_role``, else the first demo account with that role."""
        user = self.get(name_or_role)
        if user is not None and user.demo:
            return user
        return next((u for u in self.demo_users if u.role == name_or_role), None)


def load_users(path: str | Path) -> UsersConfig:
    """Read and check the users file (see the module docstring); :class:`UsersFileError` when it is wrong."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsersFileError(path, e.strerror or type(e).__name__) from e
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UsersFileError(path, f"not valid YAML ({type(e).__name__})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), dict):
        raise UsersFileError(path, "expected a mapping with a 'users' mapping")
    users: dict[str, User] = {}
    for raw_name, entry in doc["users"].items():
        name = str(raw_name).strip().lower()
        if not _USERNAME.fullmatch(name):
            raise UsersFileError(path, f"user {raw_name!r}: names are 1-64 letters, digits, '_', '.', '-'")
        if not isinstance(entry, dict):
            raise UsersFileError(path, f"user {name}: expected a mapping")
        if "password" in entry:
            raise UsersFileError(path, f"user {name}: plain-text 'password' is not allowed, store 'password_hash'")
        role, pw_hash = entry.get("role"), str(entry.get("password_hash") or "")
        if role not in ROLES:
            raise UsersFileError(path, f"user {name}: role must be one of {', '.join(ROLES)}")
        if not _BCRYPT.fullmatch(pw_hash):
            raise UsersFileError(path, f"user {name}: 'password_hash' must be a bcrypt hash")
        rm_id = entry.get("rm_id")
        if role == "rm" and not rm_id:
            raise UsersFileError(path, f"user {name}: a relationship manager needs 'rm_id'")
        if name in users:
            raise UsersFileError(path, f"user {name}: defined twice")
        users[name] = User(name, role, str(entry.get("name") or ""), str(rm_id) if rm_id else None,
                           bool(entry.get("demo", False)), pw_hash)
    demo_pw = doc.get("demo_password")
    return UsersConfig(users, str(demo_pw) if demo_pw is not None else None, str(path))


def hash_password(password: str, rounds: int = 12) -> str:
    import bcrypt

    if not password:
        raise ValueError("empty password")
    if len(password.encode("utf-8")) > 72:
        raise ValueError("bcrypt uses at most 72 bytes of a password: choose a shorter one")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    import bcrypt

    try:  # bcrypt looks at 72 bytes at most; longer inputs are refused instead of silently cut
        raw = password.encode("utf-8")
        return len(raw) <= 72 and bcrypt.checkpw(raw, password_hash.encode("ascii"))
    except (ValueError, UnicodeError):
        return False


def demo_mode_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Demo mode is on unless ``$PROFILE_DEMO`` is ``0`` / ``false`` / ``no`` / ``off``."""
    from profile_core.settings import current

    return current(environ).demo


#: The dataset meta key the demo generator writes (``mark_demo``); its value names the generator.
DEMO_META = "demo"


def dataset_is_demo(source: Any, meta: Mapping[str, Any] | None) -> bool:
    """Demo data: only what carries the demo marker in the workspace metadata — written by the demo generator's
    load (:func:`mark_demo`) or by the app when a demo account uploaded the data (``meta["demo"] is True``).
    ``source`` (file names, ``"demo"``…) is deliberately ignored: a real file named ``demo`` is real data."""
    del source  # kept in the signature for callers; never decides anything
    return bool((meta or {}).get(DEMO_META) is True)


def mark_demo(ws, dataset: str, generator: str = "profile_core.synth") -> dict:
    """Record in workspace ``ws``'s metadata that ``dataset`` is generated demo data (the demo loader calls
    this right after its load); returns the new meta. A later load of the dataset drops the marker."""
    return ws.update_meta(dataset, {DEMO_META: True, "demo_generator": generator})


def workspace_is_demo(ws) -> bool:
    """True when every dataset in workspace ``ws`` (a ``store.Workspace``) is demo data (also when empty)."""
    for _, row in ws.list_datasets().iterrows():
        if not dataset_is_demo(row["source"], ws.meta(row["name"])):
            return False
    return True


def demo_allowed(environ: Mapping[str, str] | None, workspace_demo: bool) -> bool:
    return demo_mode_enabled(environ) and workspace_demo


def authenticate(config: UsersConfig, username: str, password: str, *, demo_allowed: bool) -> User:
    """The user for ``username`` / ``password``, or :class:`AuthError` (``auth.bad_credentials`` for a wrong
    name or password alike — a wrong name costs one bcrypt check too — or ``auth.demo_refused``)."""
    user = config.get(username or "")
    if user is None:
        verify_password(password or "", _DUMMY_HASH.decode("ascii"))
        raise AuthError("auth.bad_credentials")
    if not verify_password(password or "", user.password_hash):
        raise AuthError("auth.bad_credentials")
    if user.demo and not demo_allowed:
        raise AuthError("auth.demo_refused")
    return user


class LoginThrottle:
    """At most ``max_failures`` failed logins per (user name, client) within ``window_s``; then that pair is
    refused for ``lockout_s``. A client (e.g. an IP address) failing ``max_client_failures`` times in the window
    across any names is refused for every name. Keyed by client, so nobody can lock an account for everyone
    else; bounded to ``max_keys`` entries (the oldest dropped first), so failed names cannot fill memory. The app
    keeps one per process; it holds only names, client addresses and times."""

    def __init__(self, max_failures: int = 5, window_s: float = 900.0, lockout_s: float = 300.0, *,
                 max_client_failures: int = 50, max_keys: int = 10_000) -> None:
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self.max_client_failures, self.max_keys = max_client_failures, max_keys
        self._failures: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str, client: str | None) -> tuple[str, str]:
        return str(username or "").strip().lower()[:64], str(client or "")[:64]

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        return [x for x in self._failures.get(key, ()) if now - x < self.window_s][-self.max_client_failures:]

    def _wait(self, times: list[float], limit: int, now: float) -> float:
        return 0.0 if len(times) < limit else max(0.0, times[-1] + self.lockout_s - now)

    def locked(self, username: str, client: str | None = "", now: float | None = None) -> float:
        """Seconds until ``username`` may try again from ``client`` (0 when it may)."""
        now = time.time() if now is None else now
        user_key = self._key(username, client)
        with self._lock:
            pair = self._wait(self._recent(user_key, now), self.max_failures, now)
            whole = self._wait(self._recent(("", user_key[1]), now), self.max_client_failures, now)
        return max(pair, whole)

    def failed(self, username: str, client: str | None = "", now: float | None = None) -> None:
        now = time.time() if now is None else now
        user_key = self._key(username, client)
        with self._lock:
            for key in {user_key, ("", user_key[1])}:  # the pair, and the client across every name
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str | None = "") -> None:
        with self._lock:
            self._failures.pop(self._key(username, client), None)

    def __len__(self) -> int:
        return len(self._failures)


def role_table(lang: str = "zh", roles: Iterable[str] = ROLES) -> list[dict[str, str]]:
    """One row per role: the actions it may do (for documentation pages)."""
    return [{"role": t(f"privacy.role.{r}", lang),
             "actions": ", ".join(t(f"auth.action.{a}", lang) for a in sorted(PERMISSIONS[r]))} for r in roles]


def main() -> None:  # pragma: no cover - interactive
    import getpass

    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ")
    print(hash_password(first))


if __name__ == "__main__":  # pragma: no cover
    main()
