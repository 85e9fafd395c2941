"""Database steps of the async hot path: run a sync function in a thread, then give its connection back.

A streamed call stays open for as long as the model writes, but touches the database only twice
(hold, settle). With the psycopg pool configured, each step returns its connection to the pool as
soon as it is done, so a worker holding a thousand open streams needs a handful of connections,
not a thousand. Without a pool (SQLite, or DB_POOL_MAX_SIZE=0) nothing changes: the connection is
closed at the end of the request as Django always does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

P = ParamSpec("P")
R = TypeVar("R")


def connection_release() -> None:
    """Hand this thread's pooled connection back to the pool (never inside a transaction)."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if getattr(connection, "pool", None) is not None:
        connection.close()


def db_step(func: Callable[P, R]) -> Callable[P, R]:
    """The sync function, releasing its pooled connection when it returns or raises."""

    @functools.wraps(func)
    def step(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            connection_release()

    return step


def run_db_step(func: Callable[P, R]):
    """`await run_db_step(f)(...)`: `f` in the request's worker thread, its connection released after."""
    return sync_to_async(db_step(func))
