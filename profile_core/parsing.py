"""Former home of the value parsers; kept so that ``from profile_core import parsing`` keeps working.
The code lives in :mod:`profile_core.ingest.parsers`."""

from __future__ import annotations

from .ingest.parsers import *  # noqa: F403
