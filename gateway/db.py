"""Database steps of the async hot path: run a sync function on a shared, bounded pool of threads,
then give its connection back.

A streamed call stays open for as long as the model writes, but touches the database only twice
(hold, settle). With the psycopg pool configured, each batch of steps (below) returns its connection
to the pool as soon as it is done, and a step that failed returns its own at once, so a worker
holding a thousand open streams needs a handful of connections, not a thousand. Without a pool
(SQLite, or DB_POOL_MAX_SIZE=0) a step's connection is closed when `CONN_MAX_AGE` says so, as Django
does at the end of a request.

The steps of an event loop wait in one queue, in arrival order, and at most `GATEWAY_DB_THREADS`
jobs on the process's `ThreadPoolExecutor` run them: a job takes every step waiting, runs them one
after the other, hands their results back to the loop together, and starts again until the queue
is empty. Under load a job runs batch after batch with no thread woken per step, and PostgreSQL
sees a few statements at once instead of one per open call, all waiting for the same hot rows (an
account's). A step alone (one connection at a time) runs at once, as before. Django's ASGI
handler would otherwise start a thread per request for them and join it at the end. When a sync
caller is blocked on the call (WSGI, or Django's test client, through `async_to_sync`), its own
thread is idle and owns the request's connection and transaction, so the step runs there instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import weakref
from collections import deque
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
    """The process's pool of DB-step threads (created on first use, so after a server's fork): one per
    step job, and one for the deferred usage rows' writer (gateway.aftercall)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=settings.GATEWAY_DB_THREADS + 1, thread_name_prefix="gateway-db"
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
    return functools.partial(_on_db_thread, func)  # the queue's job releases the connection


def _deliver(results: list[tuple[asyncio.Future, object, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():  # its caller was cancelled meanwhile
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class _StepQueue:
    """One event loop's DB steps, run in arrival order by at most `jobs` executor jobs at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, jobs: int):
        self._loop = weakref.ref(loop)  # the loop owns this queue (`_step_queues`), not the reverse
        self._jobs = jobs
        self._running = 0
        self._steps: deque = deque()
        self._lock = threading.Lock()

    def submit(self, step: Callable[..., R], args: tuple, kwargs: dict) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        # A copy of the caller's context (its request id for the logs, its call's metrics labels).
        item = (contextvars.copy_context(), step, args, kwargs, future)
        with self._lock:
            self._steps.append(item)
            start = self._running < self._jobs
            self._running += start
        if start:
            try:
                db_executor().submit(self._work)
            except BaseException:
                with self._lock:
                    self._running -= 1
                raise
        return future

    def _work(self) -> None:
        """On a DB thread: run the steps waiting now, one after the other, hand their results to the
        loop at once, and again until none is left. One hand-over per batch, not per step, measured
        cheaper: a batch's first result waits for the batch (docs/PERFORMANCE.md, round 5)."""
        while True:
            with self._lock:
                if not self._steps:
                    self._running -= 1
                    return
                batch = list(self._steps)
                self._steps.clear()
            results = []
            for context, step, args, kwargs, future in batch:
                if future.cancelled():  # its caller gave up before it started, as an executor's queue does
                    continue
                value, error = None, None
                try:
                    value = context.run(step, *args, **kwargs)
                except BaseException as exc:  # the caller's to handle, as if the step had run in its task
                    error = exc
                    connection_release(pooled_thread=True)  # the next step borrows a checked one
                results.append((future, value, error))
            # One borrow of a pooled connection for the batch, not one per step.
            connection_release(pooled_thread=True)
            loop = self._loop()
            if results and loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_deliver, results)
                except RuntimeError:  # closed in between
                    pass


_step_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _StepQueue] = weakref.WeakKeyDictionary()


async def _on_db_thread(step: Callable[..., R], *args, **kwargs) -> R:
    # The executor directly, not asgiref's sync_to_async (several times the Python per hop, and a call
    # makes two or three).
    loop = asyncio.get_running_loop()
    queue = _step_queues.get(loop)
    if queue is None:
        queue = _step_queues[loop] = _StepQueue(loop, settings.GATEWAY_DB_THREADS)
    return await queue.submit(step, args, kwargs)
