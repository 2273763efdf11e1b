"""What every case store offers, whatever holds the records: a SQLite file, PostgreSQL or a server.

A store opens like a file (``mode`` "r", "r+", "a" or "x"; a context manager) and behaves the same on
every backend:

- one record per pseudonymous case id, in four sections, each with its own revision number;
- a write that names the revision it read is refused with :class:`StaleRevision` when someone else
  wrote in between, and changes nothing;
- :meth:`CaseStore.update_section` reads, changes and writes one section without losing a
  concurrent update (its ``change`` function may run more than once when another writer got in
  first, so it must only compute the new content from the current one);
- :meth:`CaseStore.transaction` makes the writes inside it happen all together or not at all; one
  opened inside another is a savepoint whose error undoes only its own writes;
- every write appends to an audit log (who, where, when, which section, sha256 of the old and new
  content) that nothing can change or delete;
- mode "r" never writes;
- records export as CSV (one row per case) and JSON (full records).

The backends differ in where the work happens (:mod:`~sarcoma_risk.records.sqlite`,
:mod:`~sarcoma_risk.records.postgres`, :mod:`~sarcoma_risk.records.remote`), and in who the audit
log names: the local login for the database backends, the authenticated user for the server.
"""

from __future__ import annotations

import abc
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Mapping

from sarcoma_risk.errors import InvalidInput, ReadOnlyStore
from sarcoma_risk.provenance import current_user
from sarcoma_risk.records.accounts import Account, Role
from sarcoma_risk.records.export import write_csv, write_json
from sarcoma_risk.records.schema import SECTIONS, CaseRecord, flatten_record

MODES = ("r", "r+", "a", "x")

#: What a section's ``change`` function gets (the current content, None when absent) and returns.
Change = Callable[[dict[str, Any] | None], Mapping[str, Any]]


@dataclass(frozen=True)
class Actor:
    """Who a write is recorded as in the audit log: a user name and the computer it came from."""

    user: str = field(default_factory=current_user)
    host: str = field(default_factory=socket.gethostname)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InvalidInput(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    return mode


def check_section(section: str) -> str:
    if section not in SECTIONS:
        raise InvalidInput(f"section: {section!r} is not one of {', '.join(SECTIONS)}")
    return section


def check_expected_revision(expected_revision: object) -> int | None:
    if expected_revision is not None and (isinstance(expected_revision, bool)
                                          or not isinstance(expected_revision, int) or expected_revision < 0):
        raise InvalidInput(f"expected_revision: {expected_revision!r} must be a whole number >= 0 or None")
    return expected_revision


def check_limit(limit: object) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInput(f"limit: {limit!r} must be a whole number >= 1")
    return limit


def stale_message(case_id: str, section: str, expected: int, current: int) -> str:
    return (f"case {case_id}, section {section}: you read revision {expected} but the store now holds "
            f"revision {current} (changed by someone else); nothing was written. Reload the case and try again")


class CaseStore(abc.ABC):
    """The case store interface; see the module docstring for what every backend guarantees.

    Open one with :func:`sarcoma_risk.records.open_store` (which picks the backend from a path or a
    store URL), or with a backend's own class.
    """

    #: Where the store is, for messages: a path or a URL without password or token.
    location: str
    mode: str

    # ---- opening -----------------------------------------------------------------------------

    @abc.abstractmethod
    def open(self) -> "CaseStore":
        """Connect (and, in writable modes, create or migrate the store); returns self."""

    @abc.abstractmethod
    def close(self) -> None:
        """Disconnect; uncommitted writes are discarded."""

    def __enter__(self) -> "CaseStore":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r}, mode={self.mode!r})"

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The store's schema version: 0 for an empty database, else the last migration applied."""

    def _refuse_if_read_only(self) -> None:
        if self.mode == "r":
            raise ReadOnlyStore(f"{self.location}: opened read-only (mode 'r'); nothing was written")

    # ---- transactions ------------------------------------------------------------------------

    @abc.abstractmethod
    def transaction(self) -> ContextManager[None]:
        """The writes inside happen together or not at all (commit on success, roll back on error).

        Inside another transaction it is a savepoint: an error rolls back only what was written
        inside it. Store errors leave as :class:`~sarcoma_risk.errors.StoreError`.
        """

    # ---- reading -----------------------------------------------------------------------------

    @abc.abstractmethod
    def case_ids(self) -> list[str]:
        """Every case id, sorted."""

    @abc.abstractmethod
    def exists(self, case_id: str) -> bool:
        """Whether the store holds a record for ``case_id``."""

    @abc.abstractmethod
    def get(self, case_id: str) -> CaseRecord:
        """The whole record, read as one snapshot; raises :class:`CaseNotFound` for an unknown id."""

    @abc.abstractmethod
    def records(self) -> Iterator[CaseRecord]:
        """Every record, ordered by case id, read as one consistent snapshot."""

    @abc.abstractmethod
    def history(self, case_id: str | None = None, section: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, oldest first (the newest ``limit`` when given).

        Each entry: ``id``, ``at_utc``, ``user``, ``host``, ``case_id``, ``section``, ``action``
        (create-case, create, update), ``revision``, ``old_sha256``, ``new_sha256``.
        """

    @abc.abstractmethod
    def read_section(self, case_id: str, section: str) -> tuple[dict[str, Any] | None, int]:
        """One section's content (None when absent) and its revision (0 when absent)."""

    # ---- writing -----------------------------------------------------------------------------

    @abc.abstractmethod
    def ensure_case(self, case_id: str) -> bool:
        """Create an empty record for ``case_id`` if it has none; True when it was created."""

    @abc.abstractmethod
    def put_section(self, case_id: str, section: str, content: Mapping[str, Any], *,
                    expected_revision: int | None = None) -> int:
        """Write one section (creating the case if needed); returns the new revision.

        ``expected_revision`` is the revision the caller read (0 = "the section must not exist
        yet"). When the stored revision differs, the write is refused with :class:`StaleRevision`
        and nothing changes. ``None`` replaces whatever is stored, for a fresh result that does not
        build on the old one (the old content's hash stays in the audit log).
        """

    @abc.abstractmethod
    def update_section(self, case_id: str, section: str, change: Change) -> int:
        """Read, change and write a section without losing a concurrent update; returns the new revision.

        ``change`` receives the current content (None when absent) and returns the new content; use
        it for merges such as adding one slide to the pathology section. It may be called more than
        once (when another writer changed the section meanwhile), so it must not have side effects.
        An error raised by ``change`` rolls everything back.
        """

    # ---- users (the server's API tokens) -----------------------------------------------------

    @abc.abstractmethod
    def add_user(self, name: str, role: Role | str, *, expires_days: int = 365) -> str:
        """Give ``name`` a new API token with ``role``; returns the token, which is stored only hashed."""

    @abc.abstractmethod
    def users(self, *, include_past: bool = False) -> list[Account]:
        """The users with a token that is still valid (with ``include_past``: every token issued)."""

    @abc.abstractmethod
    def revoke_user(self, name: str) -> int:
        """Revoke the tokens of ``name`` that are not revoked yet; returns how many were revoked."""

    # ---- export ------------------------------------------------------------------------------

    def export_rows(self) -> list[dict[str, Any]]:
        """One flat row per case (see :func:`~sarcoma_risk.records.schema.flatten_record`)."""
        return [flatten_record(r) for r in self.records()]

    def write_csv(self, path: str | Path) -> int:
        """All cases as CSV, one row per case (see :func:`~sarcoma_risk.records.export.write_csv`)."""
        return write_csv(self.export_rows(), path)

    def write_json(self, path: str | Path) -> int:
        """All cases as a JSON list of full records. Returns the count."""
        return write_json([r.to_dict() for r in self.records()], path)

