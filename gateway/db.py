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
account's). A step alone (one connection at a time) runs at once, as before. Settles go before the
other steps waiting and run even if their caller was cancelled meanwhile (a shutdown); when every
job has been on one step for half a second (a lock wait, a database that does not answer), another
job takes the waiting steps, and what a stuck batch has finished is handed back without waiting for
it. Django's ASGI handler would otherwise start a thread per request for them and join it at the
end. When a sync caller is blocked on the call (WSGI, or Django's test client, through
`async_to_sync`), its own thread is idle and owns the request's connection and transaction, so the
step runs there instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import AsyncToSync, sync_to_async
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _jobs_max() -> int:
    """Jobs one event loop may run at once while its steps are stuck (see `_StepQueue._watch`)."""
    return max(settings.GATEWAY_DB_THREADS, (settings.DB_POOL_MAX_SIZE or 9) - 1)


def db_executor() -> ThreadPoolExecutor:
    """The process's pool of DB-step threads (created on first use, so after a server's fork): one per
    step job, and one for the deferred usage rows' writer (gateway.aftercall)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=_jobs_max() + 1, thread_name_prefix="gateway-db")
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


def run_db_step(
    func: Callable[P, R], *, must_run: bool = False, on_dropped: Callable[[R], None] | None = None
):
    """`await run_db_step(f)(...)`: `f` on the shared DB-step threads, its connection released after.
    A step whose caller is cancelled before it starts is dropped, unless it `must_run` (a settle); one
    that ran for a caller cancelled meanwhile hands its result to `on_dropped`, on the loop (an opened
    call's hold is given back there)."""
    if _caller_thread_waits():
        return sync_to_async(db_step(func))
    if settings.GATEWAY_DB_THREADS <= 0:
        # asgiref's one shared thread: no request's end closes its connection there (the API faces
        # run without Django's handler and its signals), so the step releases it as a pooled one does.
        return sync_to_async(db_step(func, pooled_thread=True))
    return functools.partial(_on_db_thread, must_run, on_dropped, func)  # the job releases the connection


# A job that has been on one step this long counts as stuck (a lock wait, a database that does not
# answer; under full load a step takes a few milliseconds): the steps waiting then get another job, up
# to `_jobs_max()`. While jobs run, the loop looks every `_WATCH_SECONDS`, and hands back what a
# stuck step's batch has finished meanwhile.
_STUCK_SECONDS = 0.5
_WATCH_SECONDS = 0.05


def _deliver(results: list[tuple[asyncio.Future, object, BaseException | None, Callable | None]]) -> None:
    for future, value, error, on_dropped in results:
        if future.done():  # its caller was cancelled meanwhile
            if on_dropped is not None and error is None:
                try:
                    on_dropped(value)
                except Exception:
                    logger.exception("undoing a DB step whose caller went away failed")
            continue
        try:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
        except Exception:  # e.g. a StopIteration, which a future refuses: the others still get theirs
            logger.exception("handing a DB step's result back failed")
            future.set_exception(RuntimeError("the database step failed"))


def _connection_give_back() -> None:
    try:
        connection_release(pooled_thread=True)
    except Exception:  # a broken connection: the pool drops it; the next step borrows another
        logger.warning("giving a database connection back failed", exc_info=True)


class _StepQueue:
    """One event loop's DB steps, run in arrival order (settles first) by `jobs` executor jobs at once,
    more while they are stuck."""

    def __init__(self, loop: asyncio.AbstractEventLoop, jobs: int):
        self._loop = weakref.ref(loop)  # the loop owns this queue (`_step_queues`), not the reverse
        self._jobs = jobs
        self._jobs_max = max(jobs, _jobs_max())
        self._running = 0
        self._urgent: deque = deque()  # steps that must run (settles)
        self._steps: deque = deque()
        self._finished: list = []  # (future, value, error, on_dropped) not handed back yet
        self._busy: dict[int, float] = {}  # a job's thread -> when its current step started
        self._watching = False  # `_watch` is scheduled
        self._lock = threading.Lock()

    def submit(
        self,
        step: Callable[..., R],
        args: tuple,
        kwargs: dict,
        *,
        must_run: bool,
        on_dropped: Callable | None,
    ) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        # A copy of the caller's context (its request id for the logs, its call's metrics labels).
        item = (contextvars.copy_context(), step, args, kwargs, future, must_run, on_dropped)
        waiting = self._urgent if must_run else self._steps
        with self._lock:
            waiting.append(item)
            start = self._running < self._jobs
            self._running += start
            watch = not self._watching
            self._watching = True
        if watch:
            loop.call_later(_WATCH_SECONDS, self._watch)
        if start:
            try:
                self._job_start()
            except BaseException:  # no thread can start (the interpreter is exiting): not queued either
                with self._lock, contextlib.suppress(ValueError):
                    waiting.remove(item)
                raise
        return future

    def _job_start(self) -> None:
        """A job for which `_running` was already counted; uncounted again if no thread can start."""
        try:
            db_executor().submit(self._work)
        except BaseException:
            with self._lock:
                self._running -= 1
            raise

    def _watch(self) -> None:
        """On the loop, while jobs run or steps wait: hand back what stuck batches have finished, and
        if every job has been on its step for `_STUCK_SECONDS`, start one more for the waiting steps,
        so a stuck database does not queue every call (and every settle) behind two."""
        self._deliver_finished()
        now = time.monotonic()
        with self._lock:
            waiting = bool(self._urgent or self._steps)
            stuck = len(self._busy) == self._running and all(
                now - started >= _STUCK_SECONDS for started in self._busy.values()
            )
            start = waiting and (self._running < self._jobs or (stuck and self._running < self._jobs_max))
            self._running += start
            self._watching = waiting or self._running > 0
        if start:
            self._job_start()
        loop = self._loop()
        if self._watching and loop is not None and not loop.is_closed():
            loop.call_later(_WATCH_SECONDS, self._watch)

    def _deliver_finished(self) -> None:
        with self._lock:
            results, self._finished = self._finished, []
        _deliver(results)

    def _hand_back(self) -> None:
        loop = self._loop()
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed in between
                loop.call_soon_threadsafe(self._deliver_finished)

    def _batch_next(self) -> list | None:
        with self._lock:
            if not (self._urgent or self._steps):
                self._running -= 1
                return None
            batch = [*self._urgent, *self._steps]
            self._urgent.clear()
            self._steps.clear()
            return batch

    def _work(self) -> None:
        """On a DB thread: run the steps waiting now, one after the other, on one pooled connection,
        hand their results to the loop together, and again until none is left. One hand-over per
        batch, not per step, measured cheaper (docs/PERFORMANCE.md, round 5)."""
        me = threading.get_ident()
        while (batch := self._batch_next()) is not None:
            try:
                for context, step, args, kwargs, future, must_run, on_dropped in batch:
                    if future.cancelled() and not must_run:
                        continue  # its caller gave up before it started, as an executor's queue does
                    value, error = None, None
                    with self._lock:
                        self._busy[me] = time.monotonic()
                    try:
                        value = context.run(step, *args, **kwargs)
                    except BaseException as exc:  # the caller's to handle, as if it had run in its task
                        error = exc
                    finally:
                        with self._lock:
                            del self._busy[me]
                            self._finished.append((future, value, error, on_dropped))
                    # A step that failed, or caught a database error (a settle journaled in an outage),
                    # gives its connection back, and its batch's results go back before the next step.
                    if error is not None or connection.errors_occurred:
                        _connection_give_back()
                        self._hand_back()
            finally:
                _connection_give_back()
                self._hand_back()


_step_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _StepQueue] = weakref.WeakKeyDictionary()


async def _on_db_thread(
    must_run: bool, on_dropped: Callable | None, step: Callable[..., R], *args, **kwargs
) -> R:
    # The executor directly, not asgiref's sync_to_async (several times the Python per hop, and a call
    # makes two or three).
    loop = asyncio.get_running_loop()
    queue = _step_queues.get(loop)
    if queue is None:
        queue = _step_queues[loop] = _StepQueue(loop, settings.GATEWAY_DB_THREADS)
    return await queue.submit(step, args, kwargs, must_run=must_run, on_dropped=on_dropped)
