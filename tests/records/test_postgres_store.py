"""What only the PostgreSQL backend has: schemas shared with other programs, migrations under a lock,
read-only enforced by the database, case locks with a time limit, byte-order case ids whatever the
locale, and a database that goes away and comes back."""

from __future__ import annotations

import threading

import pytest

from records.conftest import content
from sarcoma_risk.errors import ReadOnlyStore, StoreError, StoreUnavailable

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed; install the server extra")
from sarcoma_risk.records import postgres as postgres_module  # noqa: E402  (needs psycopg)
from sarcoma_risk.records.postgres import PostgresStore  # noqa: E402


def rows(url: str, statement: str) -> list[tuple]:
    """The rows ``statement`` returns (none for a statement that returns no rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description is not None else []


def test_a_schema_holding_another_programs_tables_is_refused_and_left_unchanged(postgres_url):
    rows(postgres_url, "CREATE TABLE patients (name TEXT)")
    for mode in ("r", "r+", "a", "x"):
        with pytest.raises(StoreError, match=r"other tables \(patients\) and no case store; it was left unchanged"):
            PostgresStore(postgres_url, mode).open()
    assert [r[0] for r in rows(postgres_url, "SELECT table_name FROM information_schema.tables WHERE "
                                             "table_schema = 'public'")] == ["patients"]


def test_reading_modes_need_an_existing_store_and_exclusive_mode_refuses_one(postgres_url):
    for mode in ("r", "r+"):
        with pytest.raises(StoreError, match="no case store in this database yet"):
            PostgresStore(postgres_url, mode).open()
    with PostgresStore(postgres_url, "x") as store:
        assert store.schema_version() == postgres_module.LATEST_VERSION
    with pytest.raises(StoreError, match="already holds a case store"):
        PostgresStore(postgres_url, "x").open()


def test_read_mode_is_enforced_by_the_database_itself(postgres_url):
    with PostgresStore(postgres_url, "a") as store:
        store.put_section("STS-0001", "clinical", content("clinical"))
    with PostgresStore(postgres_url, "r") as store:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            store.conn.execute("INSERT INTO cases VALUES ('STS-0002', 'now')")
        with pytest.raises(ReadOnlyStore):
            store.ensure_case("STS-0002")
    assert rows(postgres_url, "SELECT case_id FROM cases") == [("STS-0001",)]


def test_case_ids_sort_byte_by_byte_even_in_a_database_with_a_natural_language_collation(postgres_cluster):
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE collated TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
    try:
        ids = ["STS_a", "STS-b", "STS-B", "sts-a", "STS-a", "STS1"]
        with PostgresStore(postgres_cluster.url("collated"), "a") as store:
            for case_id in ids:
                store.ensure_case(case_id)
            assert store.case_ids() == sorted(ids) == [r.case_id for r in store.records()]
    finally:
        with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE collated WITH (FORCE)")


def test_an_older_store_is_migrated_in_place_and_a_failing_migration_changes_nothing(postgres_url, monkeypatch):
    with PostgresStore(postgres_url, "a") as store:
        store.put_section("STS-0001", "radiology", content("radiology", score=0.2))
    current = postgres_module.LATEST_VERSION
    broken = {**postgres_module.MIGRATIONS, current + 1: ("ALTER TABLE cases ADD COLUMN site_code TEXT", "NOT SQL")}
    monkeypatch.setattr(postgres_module, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match="syntax error"):
        PostgresStore(postgres_url, "r+").open()
    assert rows(postgres_url, "SELECT MAX(version) FROM schema_version") == [(current,)]
    assert "site_code" not in [r[0] for r in rows(postgres_url, "SELECT column_name FROM information_schema.columns "
                                                                "WHERE table_name = 'cases'")]
    newer = {**postgres_module.MIGRATIONS, current + 1: ("ALTER TABLE cases ADD COLUMN site_code TEXT",)}
    monkeypatch.setattr(postgres_module, "MIGRATIONS", newer)
    with pytest.raises(StoreError, match=f"must be migrated to {current + 1}"):
        PostgresStore(postgres_url, "r").open()
    with PostgresStore(postgres_url, "r+") as store:
        assert store.schema_version() == current + 1
        assert store.get("STS-0001").radiology["score"] == 0.2
    monkeypatch.setattr(postgres_module, "MIGRATIONS", {k: v for k, v in newer.items() if k <= current})
    with pytest.raises(StoreError, match=f"version {current + 1} is newer than this SarcomaRisk supports"):
        PostgresStore(postgres_url, "r").open()


def test_two_processes_opening_a_new_database_at_once_migrate_it_once(postgres_url):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            with PostgresStore(postgres_url, "a"):
                pass
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert rows(postgres_url, "SELECT version FROM schema_version ORDER BY version") == [
        (v,) for v in range(1, postgres_module.LATEST_VERSION + 1)]


def test_a_case_locked_by_another_writer_longer_than_the_timeout_is_unavailable_not_a_hang(postgres_url):
    with PostgresStore(postgres_url, "a") as holder, PostgresStore(postgres_url, "a", timeout=1) as waiter:
        holder.ensure_case("STS-0001")
        with holder.transaction():
            holder.put_section("STS-0001", "radiology", content("radiology"))
            with pytest.raises(StoreUnavailable, match="kept the case locked for more than 1 s; nothing was written"):
                waiter.put_section("STS-0001", "pathology", content("pathology"))
            waiter.put_section("STS-0002", "pathology", content("pathology"))  # another case is not locked
        assert waiter.put_section("STS-0001", "pathology", content("pathology")) == 1


def test_a_database_that_goes_away_is_unavailable_and_the_store_reconnects_when_it_is_back(postgres_cluster, postgres_url):
    with PostgresStore(postgres_url, "a", timeout=5) as store:
        store.put_section("STS-0001", "clinical", content("clinical"))
        postgres_cluster.stop()
        try:
            with pytest.raises(StoreUnavailable, match="cannot be reached.*nothing was written"):
                store.put_section("STS-0001", "radiology", content("radiology"))
            assert not store.healthy
            with pytest.raises(StoreUnavailable):
                store.open()
        finally:
            postgres_cluster.start()
        store.open()  # a broken connection is replaced
        assert store.put_section("STS-0001", "radiology", content("radiology")) == 1
        assert store.get("STS-0001").revisions == {"clinical": 1, "radiology": 1}
