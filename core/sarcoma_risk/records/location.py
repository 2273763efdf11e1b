"""Where a case store is: a path or a store URL, and the backend that opens it.

Every place that names a store (``--store``, ``SARCOMA_RISK_STORE``, the 3D Slicer module's setting,
the QuPath bridge) takes one of:

- a plain path, or ``sqlite:///relative/path.sqlite`` / ``sqlite:////absolute/path.sqlite`` (the
  SQLAlchemy spelling): a SQLite file on this computer;
- ``postgresql://USER@HOST:PORT/DATABASE`` (or ``postgres://``; libpq's URI, so its query options
  such as ``?sslmode=require`` work, and the password comes from ``~/.pgpass`` or ``PGPASSWORD``
  rather than the URL): a PostgreSQL database;
- ``http://HOST:PORT`` or ``https://HOST:PORT`` (a path prefix is allowed behind a reverse proxy):
  a ``sarcoma-risk serve`` server, with the API token from ``SARCOMA_RISK_TOKEN`` or the per-user
  token file (see :mod:`sarcoma_risk.records.remote`), never from the URL.

The PostgreSQL backend is imported only when a ``postgresql://`` location is opened: its driver
(psycopg) is an optional dependency (the ``server`` extra), absent from a 3D Slicer installation.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.records.base import CaseStore
from sarcoma_risk.records.remote import HttpStore
from sarcoma_risk.records.sqlite import SqliteStore
from sarcoma_risk.records.urls import check_server_url, redact_url
from sarcoma_risk.settings import default_store

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: C:\cases.sqlite is a path
_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql", "http": "http", "https": "http"}


class StoreKind(str, enum.Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    HTTP = "http"


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store location. ``target`` is the SQLite path, the libpq URI or the server's base URL."""

    kind: StoreKind
    target: str

    @classmethod
    def parse(cls, value: "str | Path | StoreLocation") -> "StoreLocation":
        """Read a path or a store URL; raises :class:`InvalidInput` saying what is accepted."""
        if isinstance(value, StoreLocation):
            return value
        if isinstance(value, Path):
            return cls(StoreKind.SQLITE, str(value.expanduser()))
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"store: {value!r} is empty; give a file path, postgresql://HOST/DATABASE or "
                               "https://HOST:PORT")
        text = value.strip()
        match = _URL.match(text)
        if match is None:
            return cls(StoreKind.SQLITE, str(Path(text).expanduser()))
        scheme = match.group(1).lower()
        if scheme not in _SCHEMES:
            raise InvalidInput(f"store: {redact_url(text)!r} has the scheme {scheme!r}; expected a file path, sqlite:///PATH, "
                               "postgresql://HOST/DATABASE, http://HOST:PORT or https://HOST:PORT")
        kind = StoreKind(_SCHEMES[scheme])
        if kind is StoreKind.SQLITE:
            path = text[len(match.group(0)):]
            if not path.startswith("/") or path == "/":
                raise InvalidInput(f"store: {text!r}: expected sqlite:///relative/path.sqlite or "
                                   "sqlite:////absolute/path.sqlite (or just the path)")
            return cls(kind, str(Path(path[1:]).expanduser()))
        if kind is StoreKind.POSTGRESQL:
            if not urlsplit(text).path.strip("/"):
                raise InvalidInput(f"store: {redact_url(text)!r} names no database; expected "
                                   "postgresql://USER@HOST:PORT/DATABASE")
            return cls(kind, text)
        return cls(kind, check_server_url(text))

    @property
    def display(self) -> str:
        """The location for messages and logs: never a password."""
        return redact_url(self.target) if self.kind is StoreKind.POSTGRESQL else self.target

    def __str__(self) -> str:
        return self.display


def open_store(location: "str | Path | StoreLocation | None" = None, mode: str = "a", *,
               timeout: float = 60.0) -> CaseStore:
    """Open the store at ``location`` (a path or a store URL; default: ``$SARCOMA_RISK_STORE``, else
    ``cases.sqlite`` in the per-user data folder), with the backend it names.

    ``timeout`` is how long to wait for another writer (SQLite), the database (PostgreSQL) or the
    server's answer (HTTP), in seconds.
    """
    where = StoreLocation.parse(location if location is not None else default_store())
    if where.kind is StoreKind.SQLITE:
        return SqliteStore(where.target, mode, timeout=timeout).open()
    if where.kind is StoreKind.POSTGRESQL:
        from sarcoma_risk.records.postgres import PostgresStore  # lazy: psycopg (server extra) only where PostgreSQL is used

        return PostgresStore(where.target, mode, timeout=timeout).open()
    return HttpStore(where.target, mode, timeout=timeout).open()
