"""The SQLite file store: what only a file has (modes on files and folders, WAL, foreign and damaged files,
migrations, exports through a temporary file). What every backend does is in test_store_contract.py."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from records.conftest import content
from sarcoma_risk.errors import InvalidInput, OutputError, ReadOnlyStore, StoreError
from sarcoma_risk.records import export as export_module
from sarcoma_risk.records import open_store
from sarcoma_risk.records import sqlite as store_module
from sarcoma_risk.records.sqlite import APPLICATION_ID, SqliteStore


def dump(path: Path) -> str:
    """Every table's content, read without writing: equal dumps mean nothing was written."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def file_state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "cases.sqlite"


@pytest.fixture
def filled(store_path: Path) -> Path:
    """A store with two cases: STS-0001 (clinical r1, radiology r2) and STS-0002 (clinical r1)."""
    with SqliteStore(store_path, "a") as store:
        store.put_section("STS-0001", "clinical", content("clinical"))
        store.put_section("STS-0001", "radiology", content("radiology", score=0.1))
        store.put_section("STS-0001", "radiology", content("radiology", score=0.2))
        store.put_section("STS-0002", "clinical", content("clinical", values={"age_years": 45.0}))
    return store_path


# ---- modes -----------------------------------------------------------------------------------


def test_read_mode_writes_nothing_and_refuses_writes(filled):
    before_state, before_dump = file_state(filled), dump(filled)
    with SqliteStore(filled, "r") as store:
        assert store.case_ids() == ["STS-0001", "STS-0002"]
        list(store.records())
        store.history()
        with pytest.raises(ReadOnlyStore, match="read-only"):
            store.put_section("STS-0003", "clinical", content("clinical"))
        with pytest.raises(ReadOnlyStore):
            store.ensure_case("STS-0003")
    assert file_state(filled) == before_state  # same bytes, same modification time
    wal = Path(f"{filled}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # no page was logged for the database either
    assert dump(filled) == before_dump


def test_read_mode_reads_commits_left_in_the_wal_without_checkpointing_them(filled, tmp_path):
    # Copy the files while a writer still holds the store: the copy looks like a store whose writer
    # crashed, with committed pages in the -wal file only. Reading must not move them into the database.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with SqliteStore(filled, "r+") as writer:
        writer.put_section("STS-0003", "radiology", content("radiology", score=3.0))
        for suffix in ("", "-wal"):
            Path(f"{crashed / filled.name}{suffix}").write_bytes(Path(f"{filled}{suffix}").read_bytes())
    copy = crashed / filled.name
    wal = Path(f"{copy}-wal")
    assert wal.stat().st_size > 0
    before_db, before_wal = file_state(copy), file_state(wal)
    with SqliteStore(copy, "r") as store:
        assert store.get("STS-0003").radiology["score"] == 3.0
    assert file_state(copy) == before_db
    assert file_state(wal) == before_wal


def test_writable_modes_keep_the_store_in_wal_mode_with_its_application_id(filled):
    conn = sqlite3.connect(filled)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_reading_modes_do_not_create_a_missing_store(store_path, mode):
    with pytest.raises(StoreError, match="no case store here yet"):
        SqliteStore(store_path, mode).open()
    assert not store_path.exists()


def test_exclusive_mode_creates_a_store_but_never_opens_an_existing_file(filled, tmp_path):
    with SqliteStore(tmp_path / "new.sqlite", "x") as store:
        assert store.case_ids() == []
    with pytest.raises(StoreError, match="already exists"):
        SqliteStore(filled, "x").open()


def test_a_folder_given_as_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        SqliteStore(tmp_path, "a").open()


def test_an_unknown_mode_is_refused(store_path):
    with pytest.raises(InvalidInput, match="'w' is not one of r, r\\+, a, x"):
        SqliteStore(store_path, "w")


def test_open_store_without_a_path_uses_SARCOMA_RISK_STORE(tmp_path, monkeypatch):
    monkeypatch.setenv("SARCOMA_RISK_STORE", str(tmp_path / "env" / "cases.sqlite"))
    with open_store(mode="a") as store:
        store.ensure_case("STS-0001")
    assert (tmp_path / "env" / "cases.sqlite").is_file()


# ---- bad files and places -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r", "r+", "a"])
def test_a_file_that_is_not_sqlite_is_refused_and_left_unchanged(tmp_path, mode):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"case notes, not a database\n" * 200)
    before = file_state(path)
    with pytest.raises(StoreError, match="not a SQLite database; it was left unchanged"):
        SqliteStore(path, mode).open()
    assert file_state(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


@pytest.mark.parametrize("mode", ["r", "a"])
def test_another_programs_sqlite_database_is_refused_and_left_unchanged(tmp_path, mode):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE patients (name TEXT)")
    conn.execute("INSERT INTO patients VALUES ('not ours')")
    conn.commit()
    conn.close()
    before = file_state(path)
    with pytest.raises(StoreError, match=r"not a SarcomaRisk case store \(tables: patients\)"):
        SqliteStore(path, mode).open()
    assert file_state(path) == before


def test_a_damaged_store_gives_a_store_error_not_a_sqlite_traceback(filled):
    data = bytearray(filled.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[page:len(data)] = os.urandom(len(data) - page)  # keep the header page, scramble the rest
    filled.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="cases.sqlite"):
        with SqliteStore(filled, "r") as store:
            list(store.records())


def test_a_store_under_a_regular_file_is_refused_and_nothing_is_created(tmp_path):
    blocker = tmp_path / "plain.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(StoreError, match="cannot create the folder"):
        SqliteStore(blocker / "cases.sqlite", "a").open()
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where nobody (not even root) can create files")
def test_a_store_in_a_folder_where_files_cannot_be_created_is_refused_even_for_root():
    path = Path(f"/proc/sarcoma-risk-{os.getpid()}.sqlite")
    with pytest.raises(StoreError, match="cannot open the store for writing|not writable"):
        SqliteStore(path, "a").open()
    assert not path.exists()


@pytest.fixture
def read_only_folder():
    """A folder holding a store, then made read-only (mode 0555), reachable by an unprivileged user."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="sarcoma-ro-"))
    base.chmod(0o755)  # mkdtemp makes it 0700; 'nobody' must be able to look inside
    folder = base / "archive"
    folder.mkdir()
    with SqliteStore(folder / "cases.sqlite", "a") as store:
        store.put_section("STS-0001", "clinical", content("clinical"))
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(base)


def test_a_store_in_a_read_only_folder_refuses_writes_but_can_still_be_read(read_only_folder, run_unprivileged):
    path = read_only_folder / "cases.sqlite"
    before_state, before_files = file_state(path), sorted(p.name for p in read_only_folder.iterdir())

    def attempt():
        try:
            (read_only_folder / "probe").write_text("x")
        except PermissionError:
            pass
        else:
            return {"writable": True}
        outcome = {"writable": False}
        for mode in ("a", "r+"):
            try:
                with SqliteStore(path, mode) as store:
                    store.put_section("STS-0002", "clinical", content("clinical"))
                outcome[mode] = "written"
            except StoreError as exc:
                outcome[mode] = str(exc)
        try:
            SqliteStore(read_only_folder / "new.sqlite", "a").open()
            outcome["new"] = "created"
        except StoreError as exc:
            outcome["new"] = str(exc)
        with SqliteStore(path, "r") as store:
            outcome["read"] = store.case_ids()
        return outcome

    outcome = run_unprivileged(attempt)
    if outcome["writable"]:
        pytest.skip("this user can write into a chmod-0555 folder (file system ignores modes?); cannot show it here")
    for key in ("a", "r+", "new"):
        assert "not writable" in outcome[key], outcome[key]
    assert outcome["read"] == ["STS-0001"]
    assert file_state(path) == before_state
    assert sorted(p.name for p in read_only_folder.iterdir()) == before_files


# ---- schema versions and migrations ---------------------------------------------------------------


def test_an_empty_version_zero_database_is_migrated_to_the_latest_schema(store_path):
    sqlite3.connect(store_path).close()  # an empty SQLite file: schema version 0
    with pytest.raises(StoreError, match="version 0 must be migrated"):
        SqliteStore(store_path, "r").open()
    assert store_path.stat().st_size == 0
    with SqliteStore(store_path, "r+") as store:
        assert store.schema_version() == store_module.LATEST_VERSION
        store.ensure_case("STS-0001")
    conn = sqlite3.connect(store_path)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    conn.close()
    assert versions == list(range(1, store_module.LATEST_VERSION + 1))


def test_an_older_store_is_migrated_in_place_keeping_its_records(filled, monkeypatch):
    before = dump(filled)
    newer = dict(store_module.MIGRATIONS)
    newer[max(newer) + 1] = ("ALTER TABLE cases ADD COLUMN site_code TEXT",
                             "CREATE INDEX sections_updated ON sections (updated_utc)")
    monkeypatch.setattr(store_module, "MIGRATIONS", newer)
    target = max(newer)
    with pytest.raises(StoreError, match=f"must be migrated to {target}"):
        SqliteStore(filled, "r").open()
    assert dump(filled) == before
    with SqliteStore(filled, "r+") as store:
        assert store.schema_version() == target
        assert store.get("STS-0001").radiology["score"] == 0.2
        columns = [r[1] for r in store.conn.execute("PRAGMA table_info(cases)")]
    assert "site_code" in columns
    with SqliteStore(filled, "r") as store:  # migrated once; reading now works
        assert store.schema_version() == target


def test_a_failing_migration_leaves_the_store_at_its_old_version(filled, monkeypatch):
    before = dump(filled)
    newer = dict(store_module.MIGRATIONS)
    newer[max(newer) + 1] = ("ALTER TABLE cases ADD COLUMN site_code TEXT", "THIS IS NOT SQL")
    monkeypatch.setattr(store_module, "MIGRATIONS", newer)
    with pytest.raises(StoreError, match="syntax error"):
        SqliteStore(filled, "r+").open()
    assert dump(filled) == before


def test_a_store_from_a_newer_sarcoma_risk_is_refused(filled):
    conn = sqlite3.connect(filled)
    conn.execute("INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00Z')")
    conn.commit()
    conn.close()
    for mode in ("r", "a"):
        with pytest.raises(StoreError, match="version 99 is newer than this SarcomaRisk supports"):
            SqliteStore(filled, mode).open()


# ---- export --------------------------------------------------------------------------------------


def test_an_export_into_a_missing_folder_is_refused_and_leaves_no_file(filled, tmp_path):
    with SqliteStore(filled, "r") as store, pytest.raises(OutputError, match="does not exist"):
        store.write_csv(tmp_path / "missing" / "cases.csv")
    assert not (tmp_path / "missing").exists()


def test_a_failed_export_keeps_the_previous_file_and_leaves_no_temporary_file(filled, tmp_path, monkeypatch):
    out = tmp_path / "cases.csv"
    out.write_text("previous export\n")

    def broken(value):
        raise RuntimeError("failed half-way through writing")

    monkeypatch.setattr(export_module, "spreadsheet_safe", broken)
    with SqliteStore(filled, "r") as store, pytest.raises(RuntimeError):
        store.write_csv(out)
    assert out.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if "cases.csv" in p.name) == ["cases.csv"]
