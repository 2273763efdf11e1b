"""The SQLite backend: one database file (WAL) holding the case records, for one computer.

Opened like a file::

    with SqliteStore("cases.sqlite", mode="a") as store:
        store.put_section("STS-0001", "clinical", content)

Modes: ``"r"`` reads only (the database file is never written; SQLite may leave empty ``-wal`` and
``-shm`` side files, which the next writer removes; a store in a read-only folder can be read too),
``"r+"`` reads and writes an existing store, ``"a"`` (default) also creates it, ``"x"`` creates and
refuses an existing file. Writable modes refuse a store whose file or folder is read-only.

Every write is one transaction (``BEGIN IMMEDIATE``, so writers take turns and a read-modify-write
is never interleaved): it commits on success and rolls back on any error, so a crash or a killed
process never leaves half a write. The audit log is kept append-only by triggers.

All processes using a store must run on the same computer: SQLite's WAL mode relies on shared
memory and does not work on network file systems (NFS, SMB). For a department whose tools run on
several computers, serve the records from PostgreSQL with ``sarcoma-risk serve``. A connection must
not cross a ``fork``; open the store in the process that uses it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sarcoma_risk.errors import StoreError, StoreUnavailable
from sarcoma_risk.records.accounts import Role
from sarcoma_risk.records.base import Actor
from sarcoma_risk.records.schema import SECTIONS
from sarcoma_risk.records.sql import SqlStore

#: Written into the SQLite header (``PRAGMA application_id``) so a case store is recognisable and a
#: foreign SQLite database is never taken for one. The bytes spell "SRsk".
APPLICATION_ID = 0x5352736B

_SECTION_CHECK = ", ".join(f"'{s}'" for s in SECTIONS)
_ROLE_CHECK = ", ".join(f"'{r.value}'" for r in Role)
#: Schema migrations: version -> statements that bring a store from version-1 to version. A store
#: is migrated in one transaction when a writable mode opens it; add a version, never edit an old
#: one. PostgreSQL's list (records/postgres.py) reaches the same tables at the same versions.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE cases (case_id TEXT PRIMARY KEY, created_utc TEXT NOT NULL)",
        f"""CREATE TABLE sections (
            case_id TEXT NOT NULL REFERENCES cases(case_id),
            section TEXT NOT NULL CHECK (section IN ({_SECTION_CHECK})),
            revision INTEGER NOT NULL CHECK (revision > 0),
            content TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            updated_utc TEXT NOT NULL,
            PRIMARY KEY (case_id, section))""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at_utc TEXT NOT NULL,
            user TEXT NOT NULL,
            host TEXT NOT NULL,
            case_id TEXT NOT NULL,
            section TEXT,
            action TEXT NOT NULL,
            revision INTEGER,
            old_sha256 TEXT,
            new_sha256 TEXT)""",
        "CREATE INDEX audit_case ON audit (case_id, section)",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
    ),
    2: (
        f"""CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            token_sha256 TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
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


class SqliteStore(SqlStore):
    """A case store in one SQLite file. See the module docstring for modes and guarantees.

    Parameters
    ----------
    path : path
        The database file.
    mode : {"r", "r+", "a", "x"}
        As for files; ``"r"`` never writes the database.
    timeout : float
        Seconds to wait for another writer's transaction before giving up.
    actor : Actor, optional
        Who the audit log records as the writer (default: the login and computer name).
    """

    _db_errors = (sqlite3.Error,)
    # IMMEDIATE takes the write lock at once, so what a transaction reads stays true until it commits.
    _begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, path: str | Path, mode: str = "a", *, timeout: float = 60.0, actor: Actor | None = None) -> None:
        super().__init__(mode, actor=actor)
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.timeout = timeout

    # ---- opening -----------------------------------------------------------------------------

    def open(self) -> "SqliteStore":
        """Connect, check that the file is a case store, and migrate it (writable modes only)."""
        if self._conn is not None:
            return self
        try:
            exists = self.path.exists()
            is_dir = self.path.is_dir()
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot look at this path ({exc.strerror})") from None
        if is_dir:
            raise StoreError(f"{self.path}: is a folder; the store is a file such as {self.path / 'cases.sqlite'}")
        if self.mode in ("r", "r+") and not exists:
            raise StoreError(f"{self.path}: no case store here yet (the first import creates one, e.g. "
                             "'sarcoma-risk clinical import FILE.csv'); check --store or SARCOMA_RISK_STORE")
        if self.mode == "x" and exists:
            raise StoreError(f"{self.path}: a file already exists here; refusing to create a new store over it")
        if self.mode != "r":
            self._check_writable(exists)
        try:
            self._conn = self._connect()
            try:
                self._check_identity()
            except sqlite3.OperationalError:
                if not self._archived():
                    raise
                self.close()
                self._conn = self._connect(immutable=True)
                self._check_identity()
            if self.mode != "r":
                self._use_wal()
            self._migrate()
        except sqlite3.Error as exc:
            self.close()
            raise self._explain(exc) from None
        except BaseException:
            self.close()
            raise
        return self

    def _check_writable(self, exists: bool) -> None:
        # os.access answers for the real user; it cannot see every cause (root ignores modes), so
        # SQLite's own refusal is translated by _explain as well.
        folder = self.path.parent
        hint = "choose a writable place with --store or SARCOMA_RISK_STORE"
        if not exists:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create the folder {folder} ({exc.strerror}); {hint}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(f"{self.path}: the folder {folder} is not writable (SQLite creates "
                             f"{self.path.name}-wal and {self.path.name}-shm beside the store); {hint}, "
                             "or open the store read-only")
        if exists and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"{self.path}: the store file is read-only for you; ask its owner for write "
                             "access, or open it read-only")

    def _archived(self) -> bool:
        """A store in a folder we cannot write, with no writer connected (no ``-wal`` file).

        SQLite cannot read a WAL database there the usual way (it needs to create the ``-shm``
        file), so mode "r" reads it as immutable: no locks, no side files. That is safe while nobody
        writes; someone else allowed to write there would create the ``-wal`` file first, and a read
        overlapping their first checkpoint could fail (as a :class:`StoreError`), never write.
        """
        return (self.mode == "r" and not os.access(self.path.parent, os.W_OK | os.X_OK)
                and not Path(f"{self.path}-wal").exists())

    def _connect(self, *, immutable: bool = False) -> sqlite3.Connection:
        # URI modes: "ro" never writes, "rw" never creates a missing file, "rwc" may create it.
        uri_mode = {"r": "ro", "r+": "rw", "a": "rwc", "x": "rwc"}[self.mode]
        # check_same_thread=False: the server lends a store to one request thread at a time, and a
        # store is never used by two threads at once (see records/sql.py).
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={uri_mode}{'&immutable=1' if immutable else ''}",
                               uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _check_identity(self) -> None:
        """Refuse a SQLite database that belongs to some other program (before anything is written)."""
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        tables = [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if app_id not in (0, APPLICATION_ID) or (tables and "schema_version" not in tables):
            listed = ", ".join(tables[:8]) or "none"
            raise StoreError(f"{self.path}: this SQLite database is not a SarcomaRisk case store (tables: "
                             f"{listed}); it was left unchanged. Point --store at a case store or a new file")

    def _use_wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: SQLite could not switch the store to WAL mode (got {mode!r}); "
                                 "the file system lacks shared-memory support (a network share?). Keep the "
                                 "store on a local disk")
        # FULL: a commit reaches the disk before it returns, so an acknowledged write survives a power cut.
        self.conn.execute("PRAGMA synchronous = FULL")

    # ---- hooks of SqlStore -------------------------------------------------------------------

    def _explain(self, exc: BaseException) -> StoreError:
        text = str(exc)
        if "not a database" in text:
            return StoreError(f"{self.path}: not a SarcomaRisk case store: the file is not a SQLite database; "
                              "it was left unchanged")
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return StoreError(
                f"{self.path}: cannot open the store for {'reading' if self.mode == 'r' else 'writing'} "
                f"(SQLite: {text}); the folder must exist and, for writing, allow creating "
                f"{self.path.name}-wal and {self.path.name}-shm; choose another place with --store or "
                "SARCOMA_RISK_STORE")
        if "locked" in text or "busy" in text:
            return StoreUnavailable(f"{self.path}: another program kept the store locked for more than "
                                    f"{self.timeout:g} s (SQLite: {text}); nothing was written, try again")
        return StoreError(f"{self.path}: the case store cannot be used (SQLite: {text})")

    def _migrations(self) -> dict[int, tuple[str, ...]]:
        return MIGRATIONS

    def _in_transaction(self) -> bool:
        return self.conn.in_transaction

    def _has_table(self, name: str) -> bool:
        return self._row("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def _create_version_table(self) -> None:
        super()._create_version_table()
        self._execute(f"PRAGMA application_id = {APPLICATION_ID}")
