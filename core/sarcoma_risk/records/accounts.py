"""Users of the case-record server: roles, what each role may do, and API tokens.

A token is 32 random bytes from :mod:`secrets` (256 bits), URL-safe base64 after a ``srk_`` prefix
(the prefix lets secret scanners and people recognise one). The store keeps only its sha256: a
random token of that strength needs no slow password hash, and a stolen copy of the database gives
no usable token. A token is shown once, when it is made.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput

TOKEN_PREFIX = "srk_"
#: Staff logins, not patient data: lower-case letters, digits, '.', '_' and '-'.
USER_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_EXPIRES_DAYS = 5 * 365


class Role(str, enum.Enum):
    """What a user does in the department; it decides which sections they may write."""

    RADIOLOGIST = "radiologist"
    PATHOLOGIST = "pathologist"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


#: The sections each role may write. Every role may read every record (a radiologist sees whether
#: the clinical data and the slide score are in); only coordinators and admins export the cohort.
WRITABLE_SECTIONS: dict[Role, frozenset[str]] = {
    Role.RADIOLOGIST: frozenset({"radiology"}),
    Role.PATHOLOGIST: frozenset({"pathology"}),
    Role.COORDINATOR: frozenset({"clinical", "fusion"}),
    Role.ADMIN: frozenset({"clinical", "radiology", "pathology", "fusion"}),
}


def check_role(role: Role | str) -> Role:
    return check_choice(role, Role, "role")


def may_write(role: Role, section: str) -> bool:
    return section in WRITABLE_SECTIONS[role]


def may_export(role: Role) -> bool:
    """The cohort pages, the exports and the whole audit log: coordinators and admins."""
    return role in (Role.COORDINATOR, Role.ADMIN)


def may_manage_users(role: Role) -> bool:
    return role is Role.ADMIN


def check_user_name(name: object) -> str:
    if not isinstance(name, str) or not USER_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(f"user name: {name!r} is not valid; expected 1-64 lower-case letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit (a staff login such as j.smith)")
    return name


def check_expires_days(days: object) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_EXPIRES_DAYS:
        raise InvalidInput(f"expires_days: {days!r} must be a whole number of days from 1 to {MAX_EXPIRES_DAYS}")
    return days


def new_token() -> str:
    """A fresh API token (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """How a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def utc_in(days: int) -> str:
    """The UTC time ``days`` from now, in the store's timestamp format."""
    moment = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=days)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Account:
    """One issued token: whose it is, its role, and when it was made, expires or was revoked."""

    name: str
    role: Role
    created_utc: str
    created_by: str
    expires_utc: str
    revoked_utc: str | None = None
    revoked_by: str | None = None

    def status(self, now_utc: str) -> str:
        """"active", "expired" or "revoked" at ``now_utc`` (ISO strings in one format compare as times)."""
        if self.revoked_utc is not None:
            return "revoked"
        return "expired" if self.expires_utc <= now_utc else "active"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "role": self.role.value}

    @classmethod
    def from_row(cls, row: Any) -> "Account":
        """From a database row (a mapping with the ``api_tokens`` columns) or the server's JSON."""
        return cls(name=row["name"], role=Role(row["role"]), created_utc=row["created_utc"],
                   created_by=row["created_by"], expires_utc=row["expires_utc"],
                   revoked_utc=row["revoked_utc"], revoked_by=row["revoked_by"])
