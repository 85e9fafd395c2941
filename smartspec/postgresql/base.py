"""Django's PostgreSQL backend, with a pooled connection checked without a round trip.

`CONN_HEALTH_CHECKS` gives Django's psycopg pool `ConnectionPool.check_connection`, an empty query
sent to the server every time a connection is borrowed: the gateway borrows one for each of its
database steps, so every call paid two or three extra round trips for it. A connection that the
server has closed (a restart, an idle timeout, a terminated backend) has its socket readable (the
server's farewell, or the end of the stream), and one whose libpq status is bad is known without
asking: only those are checked with the empty query, which then fails and makes the pool replace
the connection, as before.
"""

from __future__ import annotations

import contextlib
import select

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg import pq
from psycopg_pool import ConnectionPool


def connection_check(conn) -> None:
    """The pool's check: quiet for a sound idle connection, the full check for a doubtful one."""
    pgconn = conn.pgconn
    doubtful = conn.closed or pgconn.status != pq.ConnStatus.OK
    if not doubtful:
        # poll(), not select(): a busy worker's sockets go past select()'s limit of 1024.
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        doubtful = bool(poller.poll(0))
    if doubtful:
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's, with the pool's check above, and a borrow from the pool without the work that only a
    new connection needs (the gateway borrows one for each of its database steps, three per call):
    Django reads the pool through a property that re-checks its options (six times per borrow),
    builds the connection parameters that only the pool's creation uses, and sets autocommit on a
    pooled connection that has it already (a generator run in psycopg)."""

    @property
    def pool(self):
        pool = self._connection_pools.get(self.alias)
        if pool is None:
            pool = super().pool
            if pool is not None and self.settings_dict["CONN_HEALTH_CHECKS"]:
                # Django passes its check when it builds the pool (before it is opened); ours replaces it.
                pool._check = connection_check
        return pool

    def get_connection_params(self):
        if self.alias in self._connection_pools:
            # `connect()` passes them to `get_new_connection`, which takes a pooled connection instead.
            return {}
        return super().get_connection_params()

    def _set_autocommit(self, autocommit):
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)


class _PreparingCursor(psycopg.Cursor):
    """Server-side binding, each statement prepared on its connection at its first run."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        try:
            return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)
        except psycopg.Error:
            # A statement prepared by a run that failed (a reused request id's hold) stays on the
            # server while psycopg forgets its name and prepares it anew next time: drop them all,
            # so failures repeated on purpose cannot pile statements up in the server's memory.
            # (Inside a transaction its rollback does the same: psycopg deallocates on ROLLBACK.)
            if self.connection.info.transaction_status == pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    psycopg.Cursor(self.connection).execute("DEALLOCATE ALL", prepare=False)
            raise


def prepared_cursor(connection):
    """A cursor (Django's wrapper: errors, execute wrappers, query logging) whose statements are
    prepared once per pooled connection and then only executed: PostgreSQL parses and plans the
    settle's statement in more time than it runs it. `DB_PREPARED_STATEMENTS=false` (e.g. behind a
    pooler in transaction mode) gives Django's own cursor instead."""
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return connection.cursor()
    connection.ensure_connection()
    return connection._prepare_cursor(_PreparingCursor(connection.connection))
