"""Every ``PROFILE_*`` setting, read in one place (pydantic-settings) and shared by the app, the CLI and the API.

============================  ==========================  ===================================================
variable                      default                     meaning
============================  ==========================  ===================================================
``PROFILE_WORKSPACE``         ``workspace.duckdb``        the embedded DuckDB workspace
``PROFILE_MODELS``            ``models``                  where bundles are saved and listed
``PROFILE_DEMO_DATA``         ``data/demo``               the demo portfolio files
``PROFILE_DEMO_BUNDLE``       ``models/demo``             the shipped demo bundle
``PROFILE_DEMO``              ``1``                       ``0`` / ``false`` / ``no`` / ``off``: no demo accounts,
                                                          no demo data generated or loaded
``PROFILE_USERS``             ``config/users.yaml``       users with bcrypt password hashes
``PROFILE_AUTOLOGIN``         (empty)                     a demo account signed in without a password (tests)
``PROFILE_SESSION_MINUTES``   ``30``                      idle timeout of a sign-in
``PROFILE_AUDIT``             ``<workspace>.audit.jsonl`` the hash-chained audit log
``PROFILE_MAX_UPLOAD_MB``     ``200``                     the largest file the app accepts (also Streamlit's
                                                          ``server.maxUploadSize``)
``PROFILE_LAKE``              (empty)                     the app shows this partitioned data set (issue 19,
                                                          ``profile_core.lake``), read-only, one card at a time
``PROFILE_LAKE_FEATURES``     (empty)                     the lake's feature table (``features --data LAKE``)
``PROFILE_LAKE_BUNDLE``       the demo bundle             the model the lake's cards use
============================  ==========================  ===================================================

Relative paths are relative to the working directory (``make app`` and the CLI run in the project root).
:func:`current` returns the settings of the present environment, built once per distinct set of ``PROFILE_*``
variables (a test that changes one gets fresh settings; nothing else re-reads the environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "PROFILE_"
_OFF = {"0", "false", "no", "off"}


class Settings(BaseSettings):
    """The settings (field ``x`` ← ``$PROFILE_X``); frozen."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True, case_sensitive=False)

    workspace: Path = Path("workspace.duckdb")
    models: Path = Path("models")
    demo_data: Path = Path("data/demo")
    demo_bundle: Path = Path("models/demo")
    demo: bool = True
    users: Path = Path("config/users.yaml")
    autologin: str = ""
    session_minutes: float = 30.0
    audit: Path | None = None
    max_upload_mb: int = 200
    lake: Path | None = None
    lake_features: Path | None = None
    lake_bundle: Path | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # :func:`current` is the one reader of the environment

    @field_validator("demo", mode="before")
    @classmethod
    def _flag(cls, value: object) -> bool:
        if isinstance(value, str):
            return value.strip().lower() not in _OFF
        return bool(value)

    @field_validator("session_minutes", mode="before")
    @classmethod
    def _minutes(cls, value: object) -> float:
        try:
            return max(1.0, float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return 30.0

    @field_validator("lake", "lake_features", "lake_bundle", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # PROFILE_LAKE= means no lake

    @field_validator("workspace", "models", "demo_data", "demo_bundle", "users", "audit", "lake", "lake_features",
                     "lake_bundle", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def audit_path(self) -> Path:
        """``$PROFILE_AUDIT``, else ``<workspace>.audit.jsonl``."""
        return self.audit or Path(f"{self.workspace}.audit.jsonl")

    @property
    def session_timeout_s(self) -> float:
        return self.session_minutes * 60.0


@lru_cache(maxsize=8)
def _build(items: tuple[tuple[str, str], ...]) -> Settings:
    return Settings(**{k[len(PREFIX):].lower(): v for k, v in items if k[len(PREFIX):].lower() in Settings.model_fields})


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    return _build(tuple(sorted((k.upper(), v) for k, v in env.items() if k.upper().startswith(PREFIX))))
