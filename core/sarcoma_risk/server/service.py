"""What every route needs: the server's settings, its stores, who is asking, and what they may do.

Each request is authenticated against the store's token table, remembered for at most
``AUTH_CACHE_S`` seconds (so a token revoked in the database is refused at the latest that much
later; expiry is checked on every request), and runs its store work in one worker thread, on a
store lent by the pool or, inside a transaction, on that transaction's store. The audit log records the authenticated user and the client's address
(as uvicorn reports it, so behind a reverse proxy with ``--proxy-headers`` the real client).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from sarcoma_risk.errors import AuthenticationRequired, InvalidInput, PermissionDenied
from sarcoma_risk.provenance import utc_now
from sarcoma_risk.records.accounts import (
    WRITABLE_SECTIONS,
    Account,
    Role,
    may_export,
    may_manage_users,
    may_write,
    token_sha256,
)
from sarcoma_risk.records.base import Actor
from sarcoma_risk.records.location import StoreKind, StoreLocation
from sarcoma_risk.records.remote import TRANSACTION_HEADER
from sarcoma_risk.records.sql import SqlStore
from sarcoma_risk.records.sqlite import SqliteStore
from sarcoma_risk.server.pool import StorePool
from sarcoma_risk.server.transactions import TransactionRegistry

T = TypeVar("T")
#: How long an answer from the token table is reused (a token lookup per request would cost a
#: database round trip each time).
AUTH_CACHE_S = 2.0
#: The cookie of the coordinator's web pages (it holds the API token; HttpOnly, SameSite=Strict).
SESSION_COOKIE = "sarcoma_risk_session"


@dataclass(frozen=True)
class ServerConfig:
    """How ``sarcoma-risk serve`` runs.

    Parameters
    ----------
    store : str
        The store it serves: a SQLite path or a ``postgresql://`` URL (not another server).
    pool_size : int
        Database connections kept open (requests beyond wait for one).
    max_body_bytes : int
        Larger request bodies are refused with 413 before they are read.
    transaction_idle_s : float
        An open transaction without a request for this long is rolled back.
    db_timeout_s : float
        How long a request waits to connect, or for another writer's lock, before a 503.
    weights : path, optional
        The weights folder whose validation cohort the web page's Kaplan-Meier plot shows.
    """

    store: str
    pool_size: int = 8
    max_body_bytes: int = 4 * 1024 * 1024
    transaction_idle_s: float = 30.0
    db_timeout_s: float = 10.0
    weights: Path | None = None

    def location(self) -> StoreLocation:
        where = StoreLocation.parse(self.store)
        if where.kind is StoreKind.HTTP:
            raise InvalidInput(f"--store {where.display}: the server serves a SQLite file or a PostgreSQL database, "
                               "not another server")
        return where

    def new_store(self, mode: str = "r+") -> SqlStore:
        """An unopened store of the served database (``"r+"`` for the pool, ``"a"`` to create it)."""
        where = self.location()
        if where.kind is StoreKind.POSTGRESQL:
            from sarcoma_risk.records.postgres import PostgresStore  # lazy: psycopg only where PostgreSQL is served

            return PostgresStore(where.target, mode, timeout=self.db_timeout_s)
        return SqliteStore(where.target, mode, timeout=self.db_timeout_s)


class Service:
    """The pool, the open transactions and the checks shared by the API and the web pages."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.pool = StorePool(config.new_store, config.pool_size, wait_s=config.db_timeout_s)
        self.transactions = TransactionRegistry(self.pool, idle_s=config.transaction_idle_s)
        self._accounts: dict[str, tuple[float, Account | None]] = {}  # token sha256 -> (looked up, account)
        self._accounts_lock = threading.Lock()

    @staticmethod
    def bearer_token(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def authenticate(self, store: SqlStore, token: str | None) -> Account:
        """The valid account ``token`` belongs to; :class:`AuthenticationRequired` otherwise."""
        if not token:
            raise AuthenticationRequired("no API token: send 'Authorization: Bearer TOKEN' (the token 'sarcoma-risk "
                                         "users add' printed)")
        account = self._account_for(store, token)
        if account is None:
            raise AuthenticationRequired("the API token is not known here; check SARCOMA_RISK_TOKEN or the token file, "
                                         "or ask an administrator for a token")
        status = account.status(utc_now())
        if status == "revoked":
            raise AuthenticationRequired(f"the API token of {account.name} was revoked on {account.revoked_utc}; "
                                         "ask an administrator for a new one")
        if status == "expired":
            raise AuthenticationRequired(f"the API token of {account.name} expired on {account.expires_utc}; "
                                         "ask an administrator for a new one")
        return account

    def _account_for(self, store: SqlStore, token: str) -> Account | None:
        key = token_sha256(token)
        now = time.monotonic()
        with self._accounts_lock:
            cached = self._accounts.get(key)
        if cached is not None and now - cached[0] < AUTH_CACHE_S:
            return cached[1]
        account = store.account_for_token(token)
        with self._accounts_lock:
            if len(self._accounts) > 10_000:  # random tokens tried by someone: forget them all
                self._accounts.clear()
            self._accounts[key] = (now, account)
        return account

    def forget_accounts(self) -> None:
        """Look every token up again (after users were revoked through this server)."""
        with self._accounts_lock:
            self._accounts.clear()

    async def run(self, request: Request, work: Callable[[SqlStore, Account], T], *,
                  allowed: Callable[[Account], None] | None = None, token: str | None = None) -> T:
        """Authenticate, check ``allowed``, then run ``work(store, account)`` in a worker thread.

        The store is the request's transaction's when it names one, else one lent by the pool.
        ``token`` overrides the ``Authorization`` header (the web pages read it from their cookie).
        """
        token = token if token is not None else self.bearer_token(request)
        transaction = request.headers.get(TRANSACTION_HEADER)
        host = request.client.host if request.client else "unknown"

        def in_thread() -> T:
            with self.pool.lend() as store:
                account = self.authenticate(store, token)
                if allowed is not None:
                    allowed(account)
                if transaction is None:
                    store.actor = Actor(account.name, host)
                    return work(store, account)
            with self.transactions.using(transaction, account.name) as txn:
                return work(txn.store, account)

        return await run_in_threadpool(in_thread)


def need_writer_of(section: str) -> Callable[[Account], None]:
    def check(account: Account) -> None:
        if not may_write(account.role, section):
            raise PermissionDenied(f"{account.name} ({account.role.value}) may not write the {section} section; "
                                   f"it is written by {_writers(section)}")
    return check


def _writers(section: str) -> str:
    return " and ".join(r.value for r in Role if section in WRITABLE_SECTIONS[r] and r is not Role.ADMIN) + " (and admin)"


def need_coordinator(account: Account) -> None:
    """Reading every record, the exports and the web pages: coordinators and admins."""
    if not may_export(account.role):
        raise PermissionDenied(f"{account.name} ({account.role.value}) may read cases one by one, not the whole "
                               "cohort; the case list, exports and full history are for coordinators and admins")


def need_admin(account: Account) -> None:
    if not may_manage_users(account.role):
        raise PermissionDenied(f"{account.name} ({account.role.value}) may not manage users; that is for admins")
