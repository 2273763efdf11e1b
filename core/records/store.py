"""The case store: SQLite (WAL) holding one record per case, with revisions and an audit log.

Opened like a file::

    with CaseStore("cases.sqlite", mode="a") as store:
        store.put_section("STS-0001", "clinical", content)

Modes: ``"r"`` reads only (the database file is not changed), ``"r+"`` reads and writes an existing
store, ``"a"`` (default) also creates it, ``"x"`` creates and refuses an existing one.

Every write is one transaction (``BEGIN IMMEDIATE``): it commits on success and rolls back on any
error, so a crash or a killed process never leaves half a write. Sections are updated one at a time
with a revision number: writers of different sections never lose each other's updates, and a write
that names the revision it read is refused with :class:`StaleRevision` when someone else wrote in
between. :meth:`CaseStore.update_section` reads, changes and writes a section inside one
transaction, for merges that are safe. Each write appends to an audit log (who, when, which section,
sha256 of the old and new content) that triggers keep append-only.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sarcoma_risk.errors import CaseNotFound, InvalidInput, ReadOnlyStore, StaleRevision, StoreError
from sarcoma_risk.provenance import current_user, utc_now
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

_SECTION_CHECK = ", ".join(f"'{s}'" for s in SECTIONS)
#: Schema migrations: version -> statements that bring a store from version-1 to version.
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


class CaseStore:
    """A SQLite case store. See the module docstring for modes and guarantees.

    Parameters
    ----------
    path : path
        The database file.
    mode : {"r", "r+", "a", "x"}
        As for files; ``"r"`` never changes the database.
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
        self._depth = 0  # nesting of transaction()

    # ---- opening -----------------------------------------------------------------------------

    def open(self) -> "CaseStore":
        exists = self.path.exists()
        if self.mode in ("r", "r+") and not exists:
            raise StoreError(f"{self.path}: no case store here (use mode 'a' to create one, or check --store)")
        if self.mode == "x" and exists:
            raise StoreError(f"{self.path}: a file already exists here; refusing to create a new store over it")
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder; the store is a file such as {self.path / 'cases.sqlite'}")
        if not exists:
            folder = self.path.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create folder {folder} ({exc.strerror}); "
                                 "choose a writable place with --store or SARCOMA_RISK_STORE") from None
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StoreError(f"{self.path}: folder {folder} is not writable; "
                                 "choose a writable place with --store or SARCOMA_RISK_STORE")
        try:
            if self.mode == "r":
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=self.timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if self.mode != "r":
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            self._conn = conn
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path}: not a usable SarcomaRisk case store ({exc})") from None
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "CaseStore":
        return self.open() if self._conn is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is not open (use it in a 'with' block)")
        return self._conn

    def schema_version(self) -> int:
        has_table = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if not has_table:
            return 0
        row = self.conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > LATEST_VERSION:
            raise StoreError(f"{self.path}: store schema version {version} is newer than this SarcomaRisk "
                             f"supports ({LATEST_VERSION}); upgrade SarcomaRisk")
        if version == LATEST_VERSION:
            return
        if self.mode == "r":
            raise StoreError(f"{self.path}: store schema version {version} needs migration to {LATEST_VERSION}; "
                             "open it once in a writable mode")
        with self.transaction():
            version = self.schema_version()  # another process may have migrated meanwhile
            if version == 0:
                self.conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_utc TEXT NOT NULL)")
            for target in range(version + 1, LATEST_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    self.conn.execute(statement)
                self.conn.execute("INSERT INTO schema_version VALUES (?, ?)", (target, utc_now()))

    # ---- transactions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one. Commits on success, else rolls back."""
        if self.mode == "r":
            raise ReadOnlyStore(f"{self.path}: opened read-only (mode 'r'); nothing was written")
        conn = self.conn
        if self._depth:
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: cannot start a write ({exc}); is the folder writable, "
                             "or is another program holding the store?") from None
        self._depth = 1
        try:
            yield conn
        except BaseException:
            self._depth = 0
            conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: commit failed ({exc}); nothing was written") from None

    # ---- reading -----------------------------------------------------------------------------

    def case_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT case_id FROM cases ORDER BY case_id")]

    def exists(self, case_id: str) -> bool:
        validate_case_id(case_id)
        return self.conn.execute("SELECT 1 FROM cases WHERE case_id = ?", (case_id,)).fetchone() is not None

    def get(self, case_id: str) -> CaseRecord:
        """The whole record; raises :class:`CaseNotFound` for an unknown id."""
        validate_case_id(case_id)
        row = self.conn.execute("SELECT created_utc FROM cases WHERE case_id = ?", (case_id,)).fetchone()
        if row is None:
            raise CaseNotFound(f"case {case_id!r} is not in the store {self.path}")
        record = CaseRecord(case_id, created_utc=row["created_utc"], updated_utc=row["created_utc"])
        for sec in self.conn.execute(
                "SELECT section, revision, content, updated_utc FROM sections WHERE case_id = ?", (case_id,)):
            setattr(record, sec["section"], json.loads(sec["content"]))
            record.revisions[sec["section"]] = sec["revision"]
            record.updated_utc = max(record.updated_utc or "", sec["updated_utc"])
        return record

    def records(self) -> Iterator[CaseRecord]:
        for case_id in self.case_ids():
            yield self.get(case_id)

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
            sql += " LIMIT ?"
            args.append(int(limit))
        return [dict(r) for r in self.conn.execute(sql, args)][::-1]

    # ---- writing -----------------------------------------------------------------------------

    def _audit(self, case_id: str, section: str | None, action: str, revision: int | None,
               old: str | None, new: str | None) -> None:
        self.conn.execute(
            "INSERT INTO audit (at_utc, user, host, case_id, section, action, revision, old_sha256, new_sha256) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), current_user(), socket.gethostname(), case_id, section, action, revision, old, new))

    def ensure_case(self, case_id: str) -> bool:
        """Create an empty record for ``case_id`` if it has none; True when it was created."""
        validate_case_id(case_id)
        with self.transaction() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO cases (case_id, created_utc) VALUES (?, ?)", (case_id, utc_now()))
            if cur.rowcount:
                self._audit(case_id, None, "create-case", None, None, None)
            return bool(cur.rowcount)

    def put_section(self, case_id: str, section: str, content: Mapping[str, Any], *,
                    expected_revision: int | None = None) -> int:
        """Write one section (creating the case if needed); returns the new revision.

        ``expected_revision`` is the revision the caller read (0 = "the section must not exist yet").
        When the stored revision differs, the write is refused with :class:`StaleRevision`. ``None``
        replaces whatever is stored, for a fresh result that does not build on the old one (the
        old content's hash stays in the audit log).
        """
        validate_case_id(case_id)
        content = validate_section(section, content)
        with self.transaction() as conn:
            self.ensure_case(case_id)
            row = conn.execute("SELECT revision, sha256 FROM sections WHERE case_id = ? AND section = ?",
                               (case_id, section)).fetchone()
            current, old_sha = (row["revision"], row["sha256"]) if row else (0, None)
            if expected_revision is not None and expected_revision != current:
                raise StaleRevision(
                    f"case {case_id}, section {section}: you read revision {expected_revision} but the store "
                    f"now holds revision {current} (changed by someone else); reload the case and try again")
            text = canonical_json(content)
            new_sha = content_sha256(content)
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
        it for merges such as adding one slide to the pathology section.
        """
        validate_case_id(case_id)
        with self.transaction() as conn:
            row = conn.execute("SELECT revision, content FROM sections WHERE case_id = ? AND section = ?",
                               (case_id, section)).fetchone()
            current = json.loads(row["content"]) if row else None
            return self.put_section(case_id, section, change(current), expected_revision=row["revision"] if row else 0)

    # ---- export ------------------------------------------------------------------------------

    def export_rows(self) -> list[dict[str, Any]]:
        """One flat row per case (see :func:`flatten_record`)."""
        return [flatten_record(r) for r in self.records()]

    def write_csv(self, path: str | Path) -> int:
        """All cases as CSV, one row per case; missing values are empty cells. Returns the row count."""
        rows = self.export_rows()
        columns = ["case_id"]
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        order = {s: i for i, s in enumerate(SECTIONS)}
        columns = ["case_id"] + sorted(columns[1:], key=lambda c: (order.get(c.split(".")[0], 99), c))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def write_json(self, path: str | Path) -> int:
        """All cases as a JSON list of full records. Returns the count."""
        records = [r.to_dict() for r in self.records()]
        Path(path).write_text(json.dumps(records, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        return len(records)


def open_store(path: str | Path | None = None, mode: str = "a") -> CaseStore:
    """Open the store at ``path``, or at the default location (see :mod:`sarcoma_risk.settings`)."""
    from sarcoma_risk.settings import default_store_path

    return CaseStore(path if path is not None else default_store_path(), mode).open()
