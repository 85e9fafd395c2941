"""Database steps of the async hot path: run a sync function on a shared, bounded pool of threads,
then give its connection back.

A streamed call stays open for as long as the model writes, but touches the database only twice
(hold, settle). With the psycopg pool configured, each step returns its connection to the pool as
soon as it is done, so a worker holding a thousand open streams needs a handful of connections,
not a thousand. Without a pool (SQLite, or DB_POOL_MAX_SIZE=0) a step's connection is closed when
`CONN_MAX_AGE` says so, as Django does at the end of a request.

The steps run on one `ThreadPoolExecutor` per process (`GATEWAY_DB_THREADS`, sized to the DB pool
so a step never waits for a connection): Django's ASGI handler would otherwise start a thread per
request for them and join it at the end. When a sync caller is blocked on the call (WSGI, or
Django's test client, through `async_to_sync`), its own thread is idle and owns the request's
connection and transaction, so the step runs there instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import connection

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    """The process's pool of DB-step threads (created on first use, so after a server's fork)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=settings.GATEWAY_DB_THREADS, thread_name_prefix="gateway-db"
                )
    return _executor


def connection_release(*, pooled_thread: bool = False) -> None:
    """Hand this thread's connection back: to the psycopg pool, or (on a pool thread, where no
    request's end closes it) closed once `CONN_MAX_AGE` has passed or it broke. Never inside a
    transaction."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if getattr(connection, "pool", None) is not None:
        connection.close()
    elif pooled_thread:
        connection.close_if_unusable_or_obsolete()


def db_step(func: Callable[P, R], *, pooled_thread: bool = False) -> Callable[P, R]:
    """The sync function, releasing its connection when it returns or raises."""

    @functools.wraps(func)
    def step(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        finally:
            connection_release(pooled_thread=pooled_thread)

    return step


def _caller_thread_waits() -> bool:
    # asgiref sets this while a sync thread is blocked in async_to_sync on the current coroutine.
    return getattr(AsyncToSync.executors, "current", None) is not None


def run_db_step(func: Callable[P, R]):
    """`await run_db_step(f)(...)`: `f` on the shared DB-step threads, its connection released after."""
    if _caller_thread_waits():
        return sync_to_async(db_step(func))
    if settings.GATEWAY_DB_THREADS <= 0:
        # asgiref's one shared thread: no request's end closes its connection there (the API faces
        # run without Django's handler and its signals), so the step releases it as a pooled one does.
        return sync_to_async(db_step(func, pooled_thread=True))
    return functools.partial(_on_db_thread, db_step(func, pooled_thread=True))


async def _on_db_thread(step: Callable[..., R], *args, **kwargs) -> R:
    # The executor directly, in a copy of the caller's context (its request id for the logs): asgiref's
    # sync_to_async does the same with several times the Python per hop, and a call makes two or three.
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        db_executor(), functools.partial(context.run, step, *args, **kwargs)
    )
