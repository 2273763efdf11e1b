"""The PostgreSQL backend: the case records of a department in one database (psycopg 3).

The tables, statements and guarantees are those of the SQLite store (records/sql.py); what
differs:

- writers of different cases or sections never wait for each other: a write locks its section's
  row (or, for a section written for the first time, its case's row) with ``SELECT ... FOR UPDATE``
  until it commits, so a read-modify-write is never interleaved, and two writers of one section
  take turns;
- the audit log is kept append-only by triggers that refuse ``UPDATE``, ``DELETE`` and ``TRUNCATE``
  (the tables' owner could still drop them, as with SQLite's file owner: for the strongest
  guarantee, let the server connect as a role that does not own the tables);
- mode "r" sets ``default_transaction_read_only``, so the database itself refuses any write;
- the tables live in the connection's current schema (``search_path``), in a database of their
  own or beside others: a schema holding other tables but no case store is refused untouched;
- a database that cannot be reached, or a lock held longer than ``timeout``, is a
  :class:`~sarcoma_risk.errors.StoreUnavailable` (the server answers 503); a broken connection is
  opened again by :meth:`PostgresStore.open`.

Case ids and user names compare and sort byte by byte (``COLLATE "C"``), as in SQLite, whatever the
database's locale.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from sarcoma_risk.errors import ReadOnlyStore, StoreError, StoreUnavailable
from sarcoma_risk.records.accounts import Role
from sarcoma_risk.records.base import Actor
from sarcoma_risk.records.schema import SECTIONS
from sarcoma_risk.records.sql import SqlStore
from sarcoma_risk.records.urls import redact_url

_SECTION_CHECK = ", ".join(f"'{s}'" for s in SECTIONS)
_ROLE_CHECK = ", ".join(f"'{r.value}'" for r in Role)
#: Taken (per transaction) while migrating, so two processes never migrate one database at once.
_MIGRATION_LOCK = 0x5352736B
#: Schema migrations, as in records/sqlite.py: the same tables at the same versions, in PostgreSQL's
#: words. Add a version, never edit an old one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        'CREATE TABLE cases (case_id TEXT COLLATE "C" PRIMARY KEY, created_utc TEXT NOT NULL)',
        f"""CREATE TABLE sections (
            case_id TEXT COLLATE "C" NOT NULL REFERENCES cases(case_id),
            section TEXT COLLATE "C" NOT NULL CHECK (section IN ({_SECTION_CHECK})),
            revision INTEGER NOT NULL CHECK (revision > 0),
            content TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            PRIMARY KEY (case_id, section))""",
        """CREATE TABLE audit (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at_utc TEXT NOT NULL,
            "user" TEXT NOT NULL,
            host TEXT NOT NULL,
            case_id TEXT COLLATE "C" NOT NULL,
            section TEXT COLLATE "C",
            action TEXT NOT NULL,
            revision INTEGER,
            old_sha256 TEXT,
            new_sha256 TEXT)""",
        "CREATE INDEX audit_case ON audit (case_id, section)",
        """CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$""",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    ),
    2: (
        f"""CREATE TABLE api_tokens (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            token_sha256 TEXT NOT NULL UNIQUE,
            name TEXT COLLATE "C" NOT NULL,
            role TEXT NOT NULL CHECK (role IN ({_ROLE_CHECK})),
            created_utc TEXT NOT NULL,
            created_by TEXT NOT NULL,
            expires_utc TEXT NOT NULL,
            revoked_utc TEXT,
            revoked_by TEXT)""",
        "CREATE INDEX api_tokens_name ON api_tokens (name)",
    ),
}
LATEST_VERSION = max(MIGRATIONS)


class PostgresStore(SqlStore):
    """A case store in a PostgreSQL database. See the module docstring.

    Parameters
    ----------
    url : str
        A libpq connection URI, ``postgresql://USER@HOST:PORT/DATABASE`` (passwords best come from
        ``~/.pgpass`` or ``PGPASSWORD``, not the URL).
    mode : {"r", "r+", "a", "x"}
        ``"r"`` reads only; ``"r+"`` needs an existing store; ``"a"`` creates or migrates one;
        ``"x"`` creates one and refuses a database that already holds one.
    timeout : float
        Seconds to wait to connect, and for another writer's lock on a case, before giving up.
    actor : Actor, optional
        Who the audit log records as the writer (default: the login and computer name).
    """

    _db_errors = (psycopg.Error,)

    def __init__(self, url: str, mode: str = "a", *, timeout: float = 60.0, actor: Actor | None = None) -> None:
        super().__init__(mode, actor=actor)
        self.url = url
        self.location = redact_url(url)
        self.timeout = timeout

    def open(self) -> "PostgresStore":
        """Connect, check the schema is a case store (or empty), create or migrate it (writable modes)."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self
        self.close()
        try:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                         connect_timeout=max(1, round(self.timeout)))
        except psycopg.Error as exc:
            raise self._explain(exc) from None
        try:
            # Statements run in autocommit mode unless transaction() sent BEGIN; a lock held by
            # another writer for longer than timeout ends the wait with an error instead of a hang.
            self._execute(f"SET lock_timeout = {max(1, round(self.timeout * 1000))}")
            if self.mode == "r":
                self._execute("SET default_transaction_read_only = on")
            self._check_identity()
            self._migrate()
        except BaseException:
            self.close()
            raise
        return self

    def _check_identity(self) -> None:
        tables = [r["table_name"] for r in self._rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")]
        if tables and "schema_version" not in tables:
            listed = ", ".join(tables[:8])
            raise StoreError(f"{self.location}: the database schema holds other tables ({listed}) and no case store; "
                             "it was left unchanged. Use a database of its own (createdb sarcoma_risk)")
        if not tables and self.mode in ("r", "r+"):
            raise StoreError(f"{self.location}: no case store in this database yet; open it once in a writable mode "
                             "(e.g. 'sarcoma-risk users add' or 'sarcoma-risk serve' create one)")
        if tables and self.mode == "x":
            raise StoreError(f"{self.location}: this database already holds a case store; refusing to create one over it")

    @property
    def healthy(self) -> bool:
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    # ---- hooks of SqlStore -------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _lock_section(self, case_id: str, section: str) -> Any:
        # Lock the section's own row: once another writer's lock is released, FOR UPDATE returns
        # the row as that writer committed it (a join would return the other table as it was when
        # the statement started, the stale revision). A section not written yet is created under
        # its case's lock, and read again after it, in a statement that sees every commit so far.
        row_sql = "SELECT revision, sha256, content FROM sections WHERE case_id = ? AND section = ? FOR UPDATE"
        row = self._row(row_sql, (case_id, section))
        if row is not None:
            return row
        self._insert_case(case_id)  # waits for a concurrent creator of the case, then does nothing
        self._execute("SELECT case_id FROM cases WHERE case_id = ? FOR UPDATE", (case_id,))
        return self._row(row_sql, (case_id, section))

    def _lock_migrations(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _migrations(self) -> dict[int, tuple[str, ...]]:
        return MIGRATIONS

    def _in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def _has_table(self, name: str) -> bool:
        return self._row("SELECT 1 AS found FROM information_schema.tables WHERE table_schema = current_schema() "
                         "AND table_name = ?", (name,)) is not None

    def _explain(self, exc: BaseException) -> StoreError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreUnavailable(f"{self.location}: another writer kept the case locked for more than "
                                    f"{self.timeout:g} s; nothing was written, try again")
        if isinstance(exc, (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)):
            return StoreUnavailable(f"{self.location}: two writers got in each other's way (PostgreSQL: {text}); "
                                    "nothing was written, try again")
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return ReadOnlyStore(f"{self.location}: opened read-only (mode 'r'); nothing was written")
        if isinstance(exc, (psycopg.OperationalError, pg_errors.AdminShutdown, pg_errors.CannotConnectNow)) or (
                self._conn is not None and (self._conn.broken or self._conn.closed)):
            return StoreUnavailable(f"{self.location}: the PostgreSQL server cannot be reached (PostgreSQL: {text}); "
                                    "nothing was written. Check that it runs and accepts connections, then try again")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreError(f"{self.location}: the database user may not do this (PostgreSQL: {text}); ask the "
                              "database's owner for the privileges")
        return StoreError(f"{self.location}: the case store cannot be used (PostgreSQL: {text})")

