"""Exports that follow the screen's rules: the same rows and masks as the role sees, no spreadsheet formulas.

``export_csv(frame, policy)`` → UTF-8 (with BOM, so Excel reads Chinese) CSV bytes:

* needs the ``export`` permission (``auth.require``);
* rows and identities through ``privacy.mask_frame`` — an RM gets only their own customers (matched by an
  ``rm_id`` column or ``owners``), names / ID numbers / phones masked unless the policy shows them in full,
  counterparties always masked;
* formula injection neutralised: every text cell *and header* starting with ``=`` ``+`` ``-`` ``@``, a tab or a
  carriage return gets a leading apostrophe (OWASP "CSV injection"), so Excel / WPS show it as text.
  Numbers stay numbers (``-5`` in a numeric column is a number, not a formula).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .auth import require
from .privacy import Policy, mask_frame

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe; other values as is."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`neutralise` applied to its text cells and its headers."""
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_string_dtype(s) or s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).map(neutralise, na_action="ignore")
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def export_frame(frame: pd.DataFrame, policy: Policy, *, owners: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """What ``policy`` may export of ``frame``: its rows and masks (``privacy.mask_frame``), formulas
    neutralised. ``auth.Forbidden`` without the ``export`` permission."""
    require(policy, "export")
    return safe_frame(mask_frame(frame, policy, owners=owners))


def export_csv(frame: pd.DataFrame, policy: Policy, *, owners: Mapping[str, Any] | None = None) -> bytes:
    """:func:`export_frame` as CSV bytes (UTF-8 with BOM, no index)."""
    return export_frame(frame, policy, owners=owners).to_csv(index=False).encode("utf-8-sig")
