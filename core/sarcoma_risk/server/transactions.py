"""Transactions that span several requests: a store kept for one client until it commits or goes quiet.

A client opens one (``POST /api/v1/transactions``), sends its reads and writes with the id in the
``SarcomaRisk-Transaction`` header, then commits (``POST .../commit``) or rolls back (``DELETE``).
The server keeps a store from the pool for it and runs the store's own ``transaction()`` on it, so
the guarantees are exactly the database backend's: all or nothing, savepoints for a transaction
opened inside another (its id names the outer one), the case locks of PostgreSQL, the single
writer of SQLite.

A client that crashes or loses its network leaves a transaction open: once it has been idle for
``idle_s`` seconds a background thread rolls it back and returns its store, so nothing it wrote is
kept and the locks it held are freed. Only the user who opened a transaction may use it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ContextManager, Iterator

from sarcoma_risk.errors import PermissionDenied, SarcomaRiskError, StoreError, StoreUnavailable
from sarcoma_risk.records.base import Actor
from sarcoma_risk.records.sql import SqlStore
from sarcoma_risk.server.pool import StorePool

log = logging.getLogger(__name__)


class _RolledBack(Exception):
    """Thrown into a store's transaction() to make it roll back."""


class TransactionClosed(StoreError):
    """The transaction was committed, rolled back, or rolled back after going idle (HTTP 409)."""


@dataclass
class _Open:
    """One client's transaction: its store, the user, and the levels opened (outermost first)."""

    store: SqlStore
    user: str
    levels: list[tuple[str, ContextManager[None]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)


class TransactionRegistry:
    """The open transactions of one server.

    Parameters
    ----------
    pool : StorePool
        Where stores come from; at most ``max_open`` of them are kept by transactions at once, so
        plain requests always find one.
    idle_s : float
        A transaction not used for this long is rolled back.
    """

    def __init__(self, pool: StorePool, *, idle_s: float = 30.0, max_open: int | None = None) -> None:
        self.pool = pool
        self.idle_s = idle_s
        self.max_open = max_open if max_open is not None else max(1, pool.size // 2)
        self._open: dict[str, _Open] = {}  # every level's id -> its transaction
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # ---- lifetime ----------------------------------------------------------------------------

    def start(self) -> None:
        self._reaper = threading.Thread(target=self._reap_forever, name="transaction-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        """Roll back every open transaction (at shutdown)."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        with self._guard:
            roots = {id(t): t for t in self._open.values()}.values()
        for txn in roots:
            with txn.lock:
                self._abandon(txn)

    def _reap_forever(self) -> None:
        while not self._stop.wait(min(1.0, self.idle_s / 4)):
            now = time.monotonic()
            with self._guard:
                idle = {id(t): t for t in self._open.values() if now - t.last_used > self.idle_s}.values()
            for txn in idle:
                if txn.lock.acquire(blocking=False):  # one in use by a request is not idle after all
                    try:
                        if txn.levels and time.monotonic() - txn.last_used > self.idle_s:
                            log.warning("transaction of %s idle for %.0f s: rolled back", txn.user, self.idle_s)
                            self._abandon(txn)
                    finally:
                        txn.lock.release()

    # ---- the client's verbs ------------------------------------------------------------------

    def begin(self, user: str, host: str, parent: str | None = None) -> str:
        """Open a transaction for ``user`` (a savepoint inside ``parent`` when given); returns its id."""
        if parent is not None:
            with self.using(parent, user) as txn:
                return self._push(txn)
        with self._guard:
            roots = len({id(t) for t in self._open.values()})
        if roots >= self.max_open:
            raise StoreUnavailable(f"the server holds {roots} open transactions, its limit; try again shortly")
        store = self.pool.take()
        store.actor = Actor(user, host)
        txn = _Open(store, user)
        with txn.lock:
            try:
                return self._push(txn)
            except BaseException:
                self.pool.give_back(store)
                raise

    def commit(self, transaction: str, user: str) -> None:
        """Commit the innermost level ``transaction`` (release its savepoint, or commit the whole)."""
        with self.using(transaction, user) as txn:
            name, context = txn.levels.pop()
            self._forget(name)
            try:
                context.__exit__(None, None, None)
            except BaseException:
                # A failed commit rolled its level back; the client is told, and what remains of the
                # transaction is rolled back too rather than kept in an unknown state.
                self._unwind_all(txn)
                self.pool.give_back(txn.store)
                raise
            if not txn.levels:
                self.pool.give_back(txn.store)

    def rollback(self, transaction: str, user: str) -> None:
        """Roll back ``transaction`` and every level opened inside it."""
        with self.using(transaction, user, innermost=False) as txn:
            while txn.levels:
                name, context = txn.levels.pop()
                self._forget(name)
                self._unwind(context)
                if name == transaction:
                    break
            if not txn.levels:
                self.pool.give_back(txn.store)

    @contextlib.contextmanager
    def using(self, transaction: str, user: str, *, innermost: bool = True) -> Iterator[_Open]:
        """The transaction ``transaction`` names, held for one request."""
        with self._guard:
            txn = self._open.get(transaction)
        if txn is None:
            raise TransactionClosed(f"transaction {transaction!r} is not open (committed, rolled back, or rolled back "
                                    f"after {self.idle_s:g} s without a request); nothing of it was written unless "
                                    "it was committed")
        if txn.user != user:
            raise PermissionDenied(f"transaction {transaction!r} belongs to another user")
        with txn.lock:
            if transaction not in {name for name, _ in txn.levels}:  # closed while we waited
                raise TransactionClosed(f"transaction {transaction!r} is not open any more")
            if innermost and txn.levels[-1][0] != transaction:
                raise TransactionClosed(f"transaction {transaction!r} has a savepoint open inside it "
                                        f"({txn.levels[-1][0]!r}); commit or roll that back first")
            txn.last_used = time.monotonic()
            try:
                yield txn
            finally:
                txn.last_used = time.monotonic()

    # ---- internals ---------------------------------------------------------------------------

    def _push(self, txn: _Open) -> str:
        context = txn.store.transaction()
        context.__enter__()
        name = secrets.token_urlsafe(12)
        txn.levels.append((name, context))
        with self._guard:
            self._open[name] = txn
        return name

    def _forget(self, name: str) -> None:
        with self._guard:
            self._open.pop(name, None)

    @staticmethod
    def _unwind(context: ContextManager[Any]) -> None:
        """Leave a store transaction() by rolling it back."""
        with contextlib.suppress(_RolledBack, SarcomaRiskError):
            context.__exit__(_RolledBack, _RolledBack(), None)

    def _unwind_all(self, txn: _Open) -> None:
        while txn.levels:
            name, context = txn.levels.pop()
            self._forget(name)
            self._unwind(context)

    def _abandon(self, txn: _Open) -> None:
        """Roll back every level of ``txn`` and return its store (the caller holds ``txn.lock``)."""
        if txn.levels:
            self._unwind_all(txn)
            self.pool.give_back(txn.store)
