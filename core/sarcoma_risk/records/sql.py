"""The SQL both database backends share: tables, statements, revisions, audit log and API tokens.

SQLite (:mod:`~sarcoma_risk.records.sqlite`) and PostgreSQL (:mod:`~sarcoma_risk.records.postgres`)
hold the same tables and run the same statements, written here once with ``?`` placeholders (each
backend's :meth:`SqlStore._sql` adapts them). What differs is how a database is opened, how writers
are kept apart (SQLite: one writer at a time, ``BEGIN IMMEDIATE``; PostgreSQL: the section's row,
or for a section written the first time its case's row, is locked ``FOR UPDATE``) and how errors
read; those are the hooks a backend provides.

A store object holds one connection and is not thread-safe: use it from one thread at a time (the
server lends each of its stores to one request at a time).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
from typing import Any, Iterator, Mapping

from sarcoma_risk.errors import CaseNotFound, InvalidInput, StaleRevision, StoreError
from sarcoma_risk.provenance import utc_now
from sarcoma_risk.records.accounts import (
    Account,
    Role,
    check_expires_days,
    check_role,
    check_user_name,
    new_token,
    token_sha256,
    utc_in,
)
from sarcoma_risk.records.base import (
    Actor,
    CaseStore,
    Change,
    check_expected_revision,
    check_limit,
    check_mode,
    check_section,
    stale_message,
)
from sarcoma_risk.records.schema import CaseRecord, canonical_json, validate_case_id, validate_section

_RECORD_SQL = ("SELECT c.case_id, c.created_utc, s.section, s.revision, s.content, s.updated_utc "
               "FROM cases AS c LEFT JOIN sections AS s ON s.case_id = c.case_id")
_TOKEN_COLUMNS = "name, role, created_utc, created_by, expires_utc, revoked_utc, revoked_by"


class SqlStore(CaseStore):
    """A case store in a SQL database; see :mod:`sarcoma_risk.records.base` for the guarantees.

    Subclasses connect (:meth:`open`), and provide the hooks below: the database's error classes,
    how a transaction starts, how a section is locked for writing, placeholders, and the migrations.
    """

    #: The database driver's error base class(es), turned into :class:`StoreError` by :meth:`_explain`.
    _db_errors: tuple[type[BaseException], ...] = ()
    #: The statement that starts a write transaction.
    _begin_sql = "BEGIN"

    def __init__(self, mode: str = "a", *, actor: Actor | None = None) -> None:
        self.mode = check_mode(mode)
        #: Who writes are recorded as; the server sets it to the authenticated user for each request.
        self.actor = actor or Actor()
        self._conn: Any = None
        self._depth = 0  # nesting of transaction(): 0 outside, 1 in a transaction, >1 in savepoints

    # ---- hooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    def _explain(self, exc: BaseException) -> StoreError:
        """The database's error as a :class:`StoreError` (or subclass) that says what to do."""

    @abc.abstractmethod
    def _migrations(self) -> dict[int, tuple[str, ...]]:
        """Version -> statements bringing the schema from version-1 to version; add, never edit."""

    @abc.abstractmethod
    def _in_transaction(self) -> bool:
        """Whether the connection has an open transaction (to roll back after an error)."""

    def _sql(self, statement: str) -> str:
        """``statement`` with the ``?`` placeholders the driver expects."""
        return statement

    def _create_version_table(self) -> None:
        self._execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_utc TEXT NOT NULL)")

    def _lock_migrations(self) -> None:
        """Keep two processes from migrating at once (a no-op where the transaction already does)."""

    @abc.abstractmethod
    def _has_table(self, name: str) -> bool:
        """Whether the store's schema holds a table ``name``."""

    # ---- connection --------------------------------------------------------------------------

    @property
    def conn(self) -> Any:
        """The open database connection (for tests and maintenance; use the methods to read and write)."""
        if self._conn is None:
            raise StoreError(f"{self.location}: the store is not open (use it in a 'with' block)")
        return self._conn

    @property
    def healthy(self) -> bool:
        """Whether the connection is open and usable (a server reopens a store that is not)."""
        return self._conn is not None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*self._db_errors):  # a connection that already broke closes anyway
                self._conn.close()
            self._conn = None
            self._depth = 0

    def _execute_raw(self, statement: str, params: tuple | list) -> Any:
        # Without parameters none are passed, so the driver reads the statement as written.
        return self.conn.execute(self._sql(statement), params) if params else self.conn.execute(statement)

    def _execute(self, statement: str, params: tuple | list = ()) -> Any:
        """Run one statement (database errors leave as :class:`StoreError`); returns the cursor."""
        try:
            return self._execute_raw(statement, params)
        except self._db_errors as exc:
            raise self._explain(exc) from None

    def _rows(self, statement: str, params: tuple | list = ()) -> list[Any]:
        try:
            return self._execute_raw(statement, params).fetchall()
        except self._db_errors as exc:
            raise self._explain(exc) from None

    def _row(self, statement: str, params: tuple | list = ()) -> Any:
        rows = self._rows(statement, params)
        return rows[0] if rows else None

    # ---- schema ------------------------------------------------------------------------------

    def schema_version(self) -> int:
        if not self._has_table("schema_version"):
            return 0
        row = self._row("SELECT MAX(version) AS version FROM schema_version")
        return int(row["version"] or 0)

    def _migrate(self) -> None:
        migrations = self._migrations()
        latest = max(migrations)
        version = self.schema_version()
        if version > latest:
            raise StoreError(f"{self.location}: store schema version {version} is newer than this SarcomaRisk "
                             f"supports ({latest}); upgrade SarcomaRisk")
        if version == latest:
            return
        if self.mode == "r":
            raise StoreError(f"{self.location}: store schema version {version} must be migrated to {latest} "
                             "before it can be read; open it once with a command that writes (any import)")
        with self.transaction():
            self._lock_migrations()
            version = self.schema_version()  # another process may have migrated meanwhile
            if version == 0:
                self._create_version_table()
            for target in range(version + 1, latest + 1):
                for statement in migrations[target]:
                    self._execute(statement)
                self._execute("INSERT INTO schema_version VALUES (?, ?)", (target, utc_now()))

    # ---- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._refuse_if_read_only()
        if self._depth:
            yield from self._savepoint()
            return
        self._execute(self._begin_sql)
        self._depth = 1
        try:
            yield
        except BaseException as exc:
            self._depth = 0
            self._rollback()
            if isinstance(exc, self._db_errors):
                error = self._explain(exc)
                raise type(error)(f"{error}; nothing was written") from None
            raise
        self._depth = 0
        try:
            self.conn.execute("COMMIT")
        except self._db_errors as exc:
            self._rollback()
            error = self._explain(exc)
            raise type(error)(f"{error}; the commit failed and nothing was written") from None

    def _savepoint(self) -> Iterator[None]:
        name = f"nested_{self._depth}"
        self._execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException as exc:
            self._depth -= 1
            with contextlib.suppress(*self._db_errors):  # the outer transaction's ROLLBACK still undoes it
                self.conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.conn.execute(f"RELEASE SAVEPOINT {name}")
            if isinstance(exc, self._db_errors):
                raise self._explain(exc) from None
            raise
        self._depth -= 1
        self._execute(f"RELEASE SAVEPOINT {name}")

    def _rollback(self) -> None:
        if self._conn is not None and self._in_transaction():
            # If ROLLBACK itself fails the connection is unusable; the database discards the
            # uncommitted writes when it closes, and the caller sees the error that caused the rollback.
            with contextlib.suppress(*self._db_errors):
                self._conn.execute("ROLLBACK")

    # ---- reading -----------------------------------------------------------------------------

    def case_ids(self) -> list[str]:
        return [r["case_id"] for r in self._rows("SELECT case_id FROM cases ORDER BY case_id")]

    def exists(self, case_id: str) -> bool:
        validate_case_id(case_id)
        return self._row("SELECT 1 AS found FROM cases WHERE case_id = ?", (case_id,)) is not None

    @staticmethod
    def _assemble(rows: list[Any]) -> list[CaseRecord]:
        records: dict[str, CaseRecord] = {}
        for row in rows:
            record = records.get(row["case_id"])
            if record is None:
                record = records[row["case_id"]] = CaseRecord(
                    row["case_id"], created_utc=row["created_utc"], updated_utc=row["created_utc"])
            if row["section"] is not None:
                setattr(record, row["section"], json.loads(row["content"]))
                record.revisions[row["section"]] = row["revision"]
                record.updated_utc = max(record.updated_utc or "", row["updated_utc"])
        return list(records.values())

    def get(self, case_id: str) -> CaseRecord:
        validate_case_id(case_id)
        rows = self._rows(_RECORD_SQL + " WHERE c.case_id = ?", (case_id,))  # one statement: one snapshot
        if not rows:
            raise CaseNotFound(f"case {case_id!r} is not in the store {self.location}")
        return self._assemble(rows)[0]

    def records(self) -> Iterator[CaseRecord]:
        return iter(self._assemble(self._rows(_RECORD_SQL + " ORDER BY c.case_id, s.section")))

    def history(self, case_id: str | None = None, section: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        if case_id is not None:
            where.append("case_id = ?")
            args.append(validate_case_id(case_id))
        if section is not None:
            where.append("section = ?")
            args.append(check_section(section))
        statement = ('SELECT id, at_utc, "user", host, case_id, section, action, revision, old_sha256, new_sha256 '
                     "FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC")
        if check_limit(limit) is not None:
            statement += " LIMIT ?"
            args.append(limit)
        return [dict(r) for r in self._rows(statement, args)][::-1]

    def read_section(self, case_id: str, section: str) -> tuple[dict[str, Any] | None, int]:
        validate_case_id(case_id)
        row = self._row("SELECT revision, content FROM sections WHERE case_id = ? AND section = ?",
                        (case_id, check_section(section)))
        return (json.loads(row["content"]), row["revision"]) if row else (None, 0)

    # ---- writing -----------------------------------------------------------------------------

    def _audit(self, case_id: str, section: str | None, action: str, revision: int | None,
               old: str | None, new: str | None) -> None:
        self._execute(
            'INSERT INTO audit (at_utc, "user", host, case_id, section, action, revision, old_sha256, new_sha256) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), self.actor.user, self.actor.host, case_id, section, action, revision, old, new))

    def _insert_case(self, case_id: str) -> bool:
        cursor = self._execute("INSERT INTO cases (case_id, created_utc) VALUES (?, ?) ON CONFLICT (case_id) DO NOTHING",
                               (case_id, utc_now()))
        created = cursor.rowcount == 1
        if created:
            self._audit(case_id, None, "create-case", None, None, None)
        return created

    def ensure_case(self, case_id: str) -> bool:
        validate_case_id(case_id)
        with self.transaction():
            return self._insert_case(case_id)

    def put_section(self, case_id: str, section: str, content: Mapping[str, Any], *,
                    expected_revision: int | None = None) -> int:
        validate_case_id(case_id)
        content = validate_section(section, content)
        check_expected_revision(expected_revision)
        with self.transaction():
            current = self._lock_section(case_id, section)
            revision = current["revision"] if current else 0
            if expected_revision is not None and expected_revision != revision:
                raise StaleRevision(stale_message(case_id, section, expected_revision, revision))
            return self._write_section(case_id, section, content, current)

    def update_section(self, case_id: str, section: str, change: Change) -> int:
        # The case is locked before the read, so no other writer can interleave: change runs once.
        validate_case_id(case_id)
        check_section(section)
        with self.transaction():
            current = self._lock_section(case_id, section)
            content = validate_section(section, change(json.loads(current["content"]) if current else None))
            return self._write_section(case_id, section, content, current)

    def _lock_section(self, case_id: str, section: str) -> Any:
        """Create the case if needed, keep other writers of it out until the transaction ends, and
        return the section's row (revision, sha256, content), None when it has none. The default
        suits a database whose write transaction already excludes every other writer (SQLite)."""
        self._insert_case(case_id)
        return self._row("SELECT revision, sha256, content FROM sections WHERE case_id = ? AND section = ?",
                         (case_id, section))

    def _write_section(self, case_id: str, section: str, content: dict[str, Any], current: Any) -> int:
        """Store ``content`` as the next revision after ``current`` (the locked row) and log it."""
        revision = current["revision"] + 1 if current else 1
        text = canonical_json(content)
        new_sha = hashlib.sha256(text.encode()).hexdigest()  # content_sha256, from the text already made
        self._execute(
            "INSERT INTO sections (case_id, section, revision, content, sha256, updated_utc) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, section) DO UPDATE SET "
            "revision = excluded.revision, content = excluded.content, sha256 = excluded.sha256, "
            "updated_utc = excluded.updated_utc",
            (case_id, section, revision, text, new_sha, utc_now()))
        self._audit(case_id, section, "update" if current else "create", revision,
                    current["sha256"] if current else None, new_sha)
        return revision

    # ---- users -------------------------------------------------------------------------------

    def add_user(self, name: str, role: Role | str, *, expires_days: int = 365) -> str:
        check_user_name(name)
        role = check_role(role)
        check_expires_days(expires_days)
        token = new_token()
        now = utc_now()
        with self.transaction():
            active = self._row(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE name = ? AND revoked_utc IS NULL "
                               "AND expires_utc > ?", (name, now))
            if active is not None:
                raise InvalidInput(f"user {name!r} already has a valid token (role {active['role']}, expires "
                                   f"{active['expires_utc']}); revoke it first ('sarcoma-risk users revoke {name}') "
                                   "to issue a new one")
            self._execute(f"INSERT INTO api_tokens (token_sha256, {_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                          (token_sha256(token), name, role.value, now, self.actor.user, utc_in(expires_days)))
        return token

    def users(self, *, include_past: bool = False) -> list[Account]:
        if include_past:
            rows = self._rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens ORDER BY name, created_utc, id")
        else:
            rows = self._rows(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE revoked_utc IS NULL AND expires_utc > ? "
                              "ORDER BY name, created_utc, id", (utc_now(),))
        return [Account.from_row(r) for r in rows]

    def revoke_user(self, name: str) -> int:
        check_user_name(name)
        with self.transaction():
            cursor = self._execute("UPDATE api_tokens SET revoked_utc = ?, revoked_by = ? "
                                   "WHERE name = ? AND revoked_utc IS NULL", (utc_now(), self.actor.user, name))
            return cursor.rowcount

    def account_for_token(self, token: str) -> Account | None:
        """The account a token was issued to (valid, expired or revoked: see ``Account.status``), or None."""
        row = self._row(f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_sha256 = ?", (token_sha256(token),))
        return Account.from_row(row) if row is not None else None
