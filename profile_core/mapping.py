"""Former home of the mapping step; kept so that ``from profile_core.mapping import …`` keeps working.
The code lives in :mod:`profile_core.ingest.mapping` (model, proposals, applying, saved mappings) and
:mod:`profile_core.ingest.editing` (helpers for the mapping step's widgets)."""

from __future__ import annotations

from .ingest.editing import *  # noqa: F403
from .ingest.mapping import *  # noqa: F403
