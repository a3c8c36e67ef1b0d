"""Who may see which customer, and masking of direct identifiers (name, ID number, phone, counterparty).

Roles: ``rm`` sees only the customers assigned to them (``rm_id``), identities in full; ``analyst`` and
``auditor`` see every customer, identities masked; ``admin`` sees every customer, masked unless the policy
is built with ``reveal=True``. The profile card builder takes a ``Policy``, so the rule holds wherever a
card is made, not only in the pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from profile_core.i18n import t

Role = Literal["rm", "analyst", "auditor", "admin"]
ROLES: tuple[str, ...] = ("rm", "analyst", "auditor", "admin")
STAR = "*"


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).strip()


def mask_name(name: Any) -> str:
    """Keep the first character (the surname): ``张三丰`` → ``张**``, ``John Smith`` → ``J*********``."""
    text = _text(name)
    return text[:1] + STAR * (len(text) - 1) if text else ""


def _keep_ends(text: str, head: int, tail: int) -> str:
    if len(text) <= head + tail:
        return STAR * len(text)
    return text[:head] + STAR * (len(text) - head - tail) + text[len(text) - tail:]


def mask_id_number(value: Any) -> str:
    """First 3 and last 4 characters: ``110105199001011234`` → ``110***********1234`` (short ones: all stars)."""
    return _keep_ends(re.sub(r"\s", "", _text(value)), 3, 4)


def mask_phone(value: Any) -> str:
    """First 3 and last 4 digits: ``13812345678`` → ``138****5678``; spaces and dashes are dropped."""
    return _keep_ends(re.sub(r"[\s\-()]", "", _text(value)), 3, 4)


def mask_counterparty(value: Any) -> str:
    """A person-like short name keeps its first character (``李四`` → ``李*``); a longer name (a company)
    keeps two characters at each end (``北京某某科技有限公司`` → ``北京******公司``)."""
    text = _text(value)
    if len(text) <= 4:
        return mask_name(text)
    return _keep_ends(text, 2, 2)


#: The customer's own identifiers → their masks: shown in full only where the policy allows.
IDENTITY_MASKS: dict[str, Callable[[Any], str]] = {"name": mask_name, "id_number": mask_id_number,
                                                   "phone": mask_phone}
#: Third parties' identifiers: always masked (an RM's own customer does not make the counterparty theirs).
THIRD_PARTY_MASKS: dict[str, Callable[[Any], str]] = {"counterparty": mask_counterparty}


class AccessDenied(PermissionError):
    """The policy does not allow seeing this customer; ``message(lang)`` is the sentence for people."""

    def __init__(self, customer_id: str, role: str) -> None:
        self.customer_id, self.role = customer_id, role
        super().__init__(t("privacy.denied", "en", customer=customer_id, role=role))

    def message(self, lang: str = "zh") -> str:
        return t("privacy.denied", lang, customer=self.customer_id, role=t(f"privacy.role.{self.role}", lang))


@dataclass(frozen=True)
class Policy:
    role: Role
    rm_id: str | None = None  # required for 'rm'
    reveal: bool = False  # 'admin' only: show identities in full

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; known: {', '.join(ROLES)}")
        if self.role == "rm" and not self.rm_id:
            raise ValueError("a relationship-manager policy needs the manager's rm_id")
        if self.reveal and self.role != "admin":
            raise ValueError("only an admin policy may reveal identities")

    def _owner_is_me(self, owner: Any) -> bool:
        return self.role == "rm" and _text(owner) == _text(self.rm_id)

    def can_see(self, customer_row: Mapping[str, Any] | pd.Series) -> bool:
        """An RM sees only their own customers; every other role sees all."""
        return self.role != "rm" or self._owner_is_me(customer_row.get("rm_id"))

    def sees_identity(self, customer_row: Mapping[str, Any] | pd.Series) -> bool:
        return (self.role == "admin" and self.reveal) or self._owner_is_me(customer_row.get("rm_id"))

    def check(self, customer_row: Mapping[str, Any] | pd.Series) -> None:
        if not self.can_see(customer_row):
            raise AccessDenied(_text(customer_row.get("customer_id")), self.role)

    def mask_identity(self, customer_row: Mapping[str, Any] | pd.Series) -> dict[str, Any]:
        """The row as a dict with its personal fields masked unless this policy may see them in full."""
        row = dict(customer_row)
        if not self.sees_identity(customer_row):
            for col, mask in IDENTITY_MASKS.items():
                if col in row:
                    row[col] = mask(row[col])
        return row


def mask_frame(frame: pd.DataFrame, policy: Policy, *, owners: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with only the rows ``policy`` may see; the customer's identifiers masked where it
    may not see them in full, counterparties always masked.

    Rows are matched to their RM by an ``rm_id`` column or ``owners`` (customer_id → rm_id); for an RM a row
    with neither is not their own, so it is left out.
    """
    if "rm_id" in frame.columns:
        owner = frame["rm_id"]
    elif owners is not None and "customer_id" in frame.columns:
        owner = frame["customer_id"].map(owners.get)
    else:
        owner = pd.Series(None, index=frame.index, dtype=object)
    out = frame.loc[owner.map(_text) == _text(policy.rm_id)] if policy.role == "rm" else frame
    out = out.copy()
    reveal = policy.role == "rm" or policy.reveal
    masks = THIRD_PARTY_MASKS if reveal else IDENTITY_MASKS | THIRD_PARTY_MASKS
    for col, mask in masks.items():
        if col in out.columns:
            out[col] = out[col].map(mask).astype("str")
    return out
