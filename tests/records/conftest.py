"""One store location per backend, so one suite checks that every backend behaves the same.

``backend`` is parametrized: a SQLite file, a PostgreSQL database, and a case-record server (run in
a thread of the test process) over each of them. The server's tests authenticate as an admin
through ``SARCOMA_RISK_TOKEN``, as a user's tools would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import CaseStore, open_store
from sarcoma_risk.records.location import StoreKind, StoreLocation

BACKENDS = ("sqlite", "postgresql", "http+sqlite", "http+postgresql")


def content(section: str, **values) -> dict:
    """A valid section with ``values`` over small defaults."""
    defaults = {"clinical": {"values": {"age_years": 60.0}}, "radiology": {"score": 0.5},
                "pathology": {"slides": []}, "fusion": {"risk": 0.1, "group": "low", "model": "clinical"}}
    prov = Provenance("unit-test", "1.0", None, parameters={"n": 1}).to_dict()
    return {**defaults[section], **values, "provenance": prov}


@dataclass
class Backend:
    """Where a test's store lives: ``location`` for open_store; ``database`` is what holds the rows."""

    name: str
    location: str
    database: str  # the SQLite path or PostgreSQL URL (behind the server for http)
    token: str | None = None

    def open(self, mode: str = "a") -> CaseStore:
        return open_store(self.location, mode)

    @property
    def remote(self) -> bool:
        return self.name.startswith("http")

    def dump(self) -> str:
        """Every row of every table, read without writing: equal dumps mean nothing was written."""
        where = StoreLocation.parse(self.database)
        if where.kind is StoreKind.SQLITE:
            if not Path(where.target).exists():
                return ""
            conn = sqlite3.connect(f"{Path(where.target).resolve().as_uri()}?mode=ro", uri=True)
            try:
                return "\n".join(conn.iterdump())
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(where.target, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE "
                                                 "table_schema = current_schema() ORDER BY table_name")]
            return "\n".join(f"{t}: {json.dumps(conn.execute(f'SELECT * FROM {t} ORDER BY 1').fetchall(), default=str)}"
                             for t in tables)

    @contextlib.contextmanager
    def sql(self) -> Iterator:
        """A raw connection to the database (for tampering tests)."""
        where = StoreLocation.parse(self.database)
        if where.kind is StoreKind.SQLITE:
            conn = sqlite3.connect(where.target, isolation_level=None)
            try:
                yield conn
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(where.target, autocommit=True) as conn:
            yield conn


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, monkeypatch) -> Iterator[Backend]:
    kind = request.param
    database = request.getfixturevalue("postgres_url") if kind.endswith("postgresql") else str(tmp_path / "cases.sqlite")
    if not kind.startswith("http"):
        yield Backend(kind, database, database)
        return
    from serverutil import server_in_thread

    with open_store(database, "a") as store:
        token = store.add_user("admin.test", "admin")
    monkeypatch.setenv("SARCOMA_RISK_TOKEN", token)
    with server_in_thread(database) as url:
        yield Backend(kind, url, database, token)
