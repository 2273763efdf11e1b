"""A fixed set of open stores, each lent to one request (or one open transaction) at a time.

A store holds one database connection and is used by one thread at a time; the pool is how the
server's request threads share a few of them. A store whose connection broke (the database was
restarted, the network dropped) is closed when it comes back and opened again when next lent, so
the server recovers by itself once the database is back.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from typing import Callable, Iterator

from sarcoma_risk.errors import InvalidInput, StoreError, StoreUnavailable
from sarcoma_risk.records.sql import SqlStore

log = logging.getLogger(__name__)


class StorePool:
    """``size`` stores made by ``factory`` (unopened), lent with :meth:`lend` or :meth:`take`/:meth:`give_back`."""

    def __init__(self, factory: Callable[[], SqlStore], size: int, *, wait_s: float = 30.0) -> None:
        if size < 1:
            raise InvalidInput(f"pool size: {size} must be at least 1")
        self.size = size
        self.wait_s = wait_s
        self._idle: queue.LifoQueue[SqlStore] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(factory())

    def take(self) -> SqlStore:
        """An open store, kept until :meth:`give_back`; :class:`StoreUnavailable` when none frees up
        within ``wait_s`` or the database cannot be reached."""
        try:
            store = self._idle.get(timeout=self.wait_s)
        except queue.Empty:
            raise StoreUnavailable(f"the server is busy: all {self.size} database connections stayed in use for "
                                   f"{self.wait_s:g} s; try again") from None
        try:
            if not store.healthy:
                store.close()
                store.open()
        except BaseException:
            store.close()
            self._idle.put(store)
            raise
        return store

    def give_back(self, store: SqlStore) -> None:
        if not store.healthy:
            log.warning("database connection of %s lost; it is reopened on next use", store.location)
            store.close()
        self._idle.put(store)

    @contextlib.contextmanager
    def lend(self) -> Iterator[SqlStore]:
        """An open store for the length of the block."""
        store = self.take()
        try:
            yield store
        except StoreUnavailable:
            store.close()  # the connection may be half-broken; open a fresh one next time
            raise
        finally:
            self.give_back(store)

    def close(self) -> None:
        """Close every idle store (at shutdown)."""
        while True:
            try:
                store = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(StoreError):
                store.close()
