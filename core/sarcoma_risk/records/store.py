"""The case store: SQLite (WAL) holding one record per case, with revisions and an audit log.

Opened like a file::

    with CaseStore("cases.sqlite", mode="a") as store:
        store.put_section("STS-0001", "clinical", content)

Modes: ``"r"`` reads only (the database file is never written; SQLite may leave empty ``-wal`` and
``-shm`` side files, which the next writer removes; a store in a read-only folder can be read too),
``"r+"`` reads and writes an existing store, ``"a"`` (default) also creates it, ``"x"`` creates and
refuses an existing file. Writable modes refuse a store whose file or folder is read-only.

Every write is one transaction (``BEGIN IMMEDIATE``): it commits on success and rolls back on any
error, so a crash or a killed process never leaves half a write. A :meth:`CaseStore.transaction`
opened inside another one is a savepoint: its error undoes only its own writes. Sections are
updated one at a time with a revision number: writers of different sections never lose each other's
updates, and a write that names the revision it read is refused with :class:`StaleRevision` when
someone else wrote in between. :meth:`CaseStore.update_section` reads, changes and writes a section
inside one transaction, for merges that are safe. Each write appends to an audit log (who, when,
which section, sha256 of the old and new content) that triggers keep append-only.

All processes using a store must run on the same computer: SQLite's WAL mode relies on shared
memory and does not work on network file systems (NFS, SMB). A connection must not cross a
``fork``; open the store in the process that uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sarcoma_risk.errors import CaseNotFound, InvalidInput, ReadOnlyStore, StaleRevision, StoreError
from sarcoma_risk.provenance import current_user, utc_now
from sarcoma_risk.records.export import write_csv, write_json
from sarcoma_risk.records.schema import (
    SECTIONS,
    CaseRecord,
    canonical_json,
    content_sha256,
    flatten_record,
    validate_case_id,
    validate_section,
)

MODES = ("r", "r+", "a", "x")
#: Written into the SQLite header (``PRAGMA application_id``) so a case store is recognisable and a
#: foreign SQLite database is never taken for one. The bytes spell "SRsk".
APPLICATION_ID = 0x5352736B

_SECTION_CHECK = ", ".join(f"'{s}'" for s in SECTIONS)
#: Schema migrations: version -> statements that bring a store from version-1 to version. A store
#: is migrated in one transaction when a writable mode opens it; add a version, never edit an old one.
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
}
LATEST_VERSION = max(MIGRATIONS)


def _latest_version() -> int:
    return max(MIGRATIONS)


class CaseStore:
    """A SQLite case store. See the module docstring for modes and guarantees.

    Parameters
    ----------
    path : path
        The database file.
    mode : {"r", "r+", "a", "x"}
        As for files; ``"r"`` never writes the database.
    timeout : float
        Seconds to wait for another writer's transaction before giving up.
    """

    def __init__(self, path: str | Path, mode: str = "a", *, timeout: float = 60.0) -> None:
        if mode not in MODES:
            raise InvalidInput(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        self.path = Path(path).expanduser()
        self.mode = mode
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._depth = 0  # nesting of transaction(): 0 outside, 1 in BEGIN IMMEDIATE, >1 in savepoints

    def __repr__(self) -> str:
        return f"CaseStore({str(self.path)!r}, mode={self.mode!r})"

    # ---- opening -----------------------------------------------------------------------------

    def open(self) -> "CaseStore":
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
            raise StoreError(self._explain(exc)) from None
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
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={uri_mode}{'&immutable=1' if immutable else ''}",
                               uri=True, timeout=self.timeout, isolation_level=None)
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

    def _explain(self, exc: sqlite3.Error) -> str:
        text = str(exc)
        if "not a database" in text:
            return f"{self.path}: not a SarcomaRisk case store: the file is not a SQLite database; it was left unchanged"
        if "unable to open" in text or "readonly" in text or "read-only" in text:
            return (f"{self.path}: cannot open the store for {'reading' if self.mode == 'r' else 'writing'} "
                    f"(SQLite: {text}); the folder must exist and, for writing, allow creating "
                    f"{self.path.name}-wal and {self.path.name}-shm; choose another place with --store or "
                    "SARCOMA_RISK_STORE")
        if "locked" in text or "busy" in text:
            return (f"{self.path}: another program kept the store locked for more than {self.timeout:g} s "
                    f"(SQLite: {text}); nothing was written, try again")
        return f"{self.path}: the case store cannot be used (SQLite: {text})"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._depth = 0

    def __enter__(self) -> "CaseStore":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is not open (use it in a 'with' block)")
        return self._conn

    def schema_version(self) -> int:
        """The store's schema version: 0 for an empty database, else the last migration applied."""
        with self._reading() as conn:
            has_table = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
            if not has_table:
                return 0
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)

    def _migrate(self) -> None:
        latest = _latest_version()
        version = self.schema_version()
        if version > latest:
            raise StoreError(f"{self.path}: store schema version {version} is newer than this SarcomaRisk "
                             f"supports ({latest}); upgrade SarcomaRisk")
        if version == latest:
            return
        if self.mode == "r":
            raise StoreError(f"{self.path}: store schema version {version} must be migrated to {latest} "
                             "before it can be read; open it once with a command that writes (any import)")
        with self.transaction() as conn:
            version = self.schema_version()  # another process may have migrated meanwhile
            if version == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_utc TEXT NOT NULL)")
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for target in range(version + 1, latest + 1):
                for statement in MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (target, utc_now()))

    # ---- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; commits on success, rolls back on any error.

        Inside another transaction it is a savepoint: an error rolls back only what was written
        inside it (the outer transaction goes on if the caller handles the error). SQLite errors
        leave as :class:`StoreError`.
        """
        if self.mode == "r":
            raise ReadOnlyStore(f"{self.path}: opened read-only (mode 'r'); nothing was written")
        conn = self.conn
        if self._depth:
            name = f"nested_{self._depth}"
            try:
                conn.execute(f"SAVEPOINT {name}")
            except sqlite3.Error as exc:
                raise StoreError(self._explain(exc)) from None
            self._depth += 1
            try:
                yield conn
            except BaseException as exc:
                self._depth -= 1
                with contextlib.suppress(sqlite3.Error):  # the outer transaction's ROLLBACK still undoes it
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(self._explain(exc)) from None
                raise
            self._depth -= 1
            try:
                conn.execute(f"RELEASE {name}")
            except sqlite3.Error as exc:
                raise StoreError(self._explain(exc)) from None
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc)) from None
        self._depth = 1
        try:
            yield conn
        except BaseException as exc:
            self._depth = 0
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(self._explain(exc) + "; nothing was written") from None
            raise
        self._depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(self._explain(exc) + "; the commit failed and nothing was written") from None

    def _rollback(self) -> None:
        conn = self.conn
        if conn.in_transaction:
            # If ROLLBACK itself fails the connection is unusable; SQLite discards the uncommitted
            # writes when it closes, and the caller sees the error that caused the rollback.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Run read statements, turning SQLite errors (e.g. a damaged file) into :class:`StoreError`."""
        try:
            yield self.conn
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc)) from None

    # ---- reading -----------------------------------------------------------------------------

    def case_ids(self) -> list[str]:
        with self._reading() as conn:
            return [r[0] for r in conn.execute("SELECT case_id FROM cases ORDER BY case_id")]

    def exists(self, case_id: str) -> bool:
        validate_case_id(case_id)
        with self._reading() as conn:
            return conn.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone() is not None

    _RECORD_SQL = ("SELECT c.case_id, c.created_utc, s.section, s.revision, s.content, s.updated_utc "
                   "FROM cases AS c LEFT JOIN sections AS s ON s.case_id = c.case_id")

    def _assemble(self, rows: list[sqlite3.Row]) -> list[CaseRecord]:
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
        """The whole record; raises :class:`CaseNotFound` for an unknown id."""
        validate_case_id(case_id)
        with self._reading() as conn:  # one statement: one consistent snapshot of the case
            rows = conn.execute(self._RECORD_SQL + " WHERE c.case_id = ?", (case_id,)).fetchall()
        if not rows:
            raise CaseNotFound(f"case {case_id!r} is not in the store {self.path}")
        return self._assemble(rows)[0]

    def records(self) -> Iterator[CaseRecord]:
        """Every record, ordered by case id, read as one consistent snapshot."""
        with self._reading() as conn:
            rows = conn.execute(self._RECORD_SQL + " ORDER BY c.case_id, s.section").fetchall()
        return iter(self._assemble(rows))

    def history(self, case_id: str | None = None, section: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries, oldest first (the newest ``limit`` when given)."""
        where, args = [], []
        if case_id is not None:
            validate_case_id(case_id)
            where.append("case_id = ?")
            args.append(case_id)
        if section is not None:
            if section not in SECTIONS:
                raise InvalidInput(f"section: {section!r} is not one of {', '.join(SECTIONS)}")
            where.append("section = ?")
            args.append(section)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidInput(f"limit: {limit!r} must be a whole number >= 1")
            sql += " LIMIT ?"
            args.append(limit)
        with self._reading() as conn:
            return [dict(r) for r in conn.execute(sql, args)][::-1]

    # ---- writing -----------------------------------------------------------------------------

    def _audit(self, case_id: str, section: str | None, action: str, revision: int | None,
               old: str | None, new: str | None) -> None:
        self.conn.execute(
            "INSERT INTO audit (at_utc, user, host, case_id, section, action, revision, old_sha256, new_sha256) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), current_user(), socket.gethostname(), case_id, section, action, revision, old, new))

    def _insert_case(self, case_id: str) -> bool:
        cur = self.conn.execute("INSERT OR IGNORE INTO cases (case_id, created_utc) VALUES (?, ?)",
                                (case_id, utc_now()))
        if cur.rowcount:
            self._audit(case_id, None, "create-case", None, None, None)
        return bool(cur.rowcount)

    def ensure_case(self, case_id: str) -> bool:
        """Create an empty record for ``case_id`` if it has none; True when it was created."""
        validate_case_id(case_id)
        with self.transaction():
            return self._insert_case(case_id)

    def put_section(self, case_id: str, section: str, content: Mapping[str, Any], *,
                    expected_revision: int | None = None) -> int:
        """Write one section (creating the case if needed); returns the new revision.

        ``expected_revision`` is the revision the caller read (0 = "the section must not exist yet").
        When the stored revision differs, the write is refused with :class:`StaleRevision` and
        nothing changes. ``None`` replaces whatever is stored, for a fresh result that does not build
        on the old one (the old content's hash stays in the audit log).
        """
        validate_case_id(case_id)
        content = validate_section(section, content)
        if expected_revision is not None and (isinstance(expected_revision, bool)
                                              or not isinstance(expected_revision, int) or expected_revision < 0):
            raise InvalidInput(f"expected_revision: {expected_revision!r} must be a whole number >= 0 or None")
        text = canonical_json(content)
        new_sha = content_sha256(content)
        with self.transaction() as conn:
            self._insert_case(case_id)
            row = conn.execute("SELECT revision, sha256 FROM sections WHERE case_id = ? AND section = ?",
                               (case_id, section)).fetchone()
            current, old_sha = (row["revision"], row["sha256"]) if row else (0, None)
            if expected_revision is not None and expected_revision != current:
                raise StaleRevision(
                    f"case {case_id}, section {section}: you read revision {expected_revision} but the store "
                    f"now holds revision {current} (changed by someone else); nothing was written. Reload "
                    "the case and try again")
            revision = current + 1
            conn.execute(
                "INSERT INTO sections (case_id, section, revision, content, sha256, updated_utc) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, section) DO UPDATE SET "
                "revision = excluded.revision, content = excluded.content, sha256 = excluded.sha256, "
                "updated_utc = excluded.updated_utc",
                (case_id, section, revision, text, new_sha, utc_now()))
            self._audit(case_id, section, "update" if current else "create", revision, old_sha, new_sha)
            return revision

    def update_section(self, case_id: str, section: str,
                       change: Callable[[dict[str, Any] | None], Mapping[str, Any]]) -> int:
        """Read, change and write a section in one transaction (no other writer can interleave).

        ``change`` receives the current content (None when absent) and returns the new content; use
        it for merges such as adding one slide to the pathology section. An error raised by
        ``change`` rolls everything back. Returns the new revision.
        """
        validate_case_id(case_id)
        if section not in SECTIONS:
            raise InvalidInput(f"section: {section!r} is not one of {', '.join(SECTIONS)}")
        with self.transaction() as conn:
            row = conn.execute("SELECT revision, content FROM sections WHERE case_id = ? AND section = ?",
                               (case_id, section)).fetchone()
            current = json.loads(row["content"]) if row else None
            return self.put_section(case_id, section, change(current), expected_revision=row["revision"] if row else 0)

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


def open_store(path: str | Path | None = None, mode: str = "a", *, timeout: float = 60.0) -> CaseStore:
    """Open the store at ``path``, or at the default location (see :mod:`sarcoma_risk.settings`)."""
    from sarcoma_risk.settings import default_store_path

    return CaseStore(path if path is not None else default_store_path(), mode, timeout=timeout).open()
