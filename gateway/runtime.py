"""What a serving process does when it starts and when it stops (the ASGI lifespan, smartspec.asgi).

Start: replay any settle journaled on this host during a database outage, and, in a deployment with
no Celery beat (the embedded default: `CELERY_TASK_ALWAYS_EAGER`), run the hold-expiry job in-process
every `HOLD_EXPIRY_INTERVAL_SECONDS`, so abandoned holds come back in every deployment.

Stop: every call the process started is finished before it exits. The server stops taking requests
and waits for open ones (uvicorn's `--timeout-graceful-shutdown`), then cancels what is left; here each
stream still open is closed (billing what it produced, releasing the rest) and every settle under way
is awaited, up to `SHUTDOWN_SETTLE_SECONDS`; then the deferred usage rows are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from django.conf import settings

from smartspec import metrics

from .aftercall import call_records_flush
from .db import run_db_step
from .service import calls_drain
from .settle_journal import (
    holds_expire_after_replay,
    replayer_start,
    settle_journal_pending,
    settle_journal_wait,
)
from .transport import transport_close

logger = logging.getLogger(__name__)

_expiry: asyncio.Task | None = None


async def _expiry_loop() -> None:
    while True:
        try:
            await run_db_step(holds_expire_after_replay)()
        except Exception:  # the database may be down: the next round tries again
            logger.warning("hold expiry failed; retrying in %s s", settings.HOLD_EXPIRY_INTERVAL_SECONDS)
        await asyncio.sleep(settings.HOLD_EXPIRY_INTERVAL_SECONDS)


def collector_tune() -> None:
    """Python's cyclic garbage collector, set for a server: what is loaded at start-up (modules,
    settings, the catalog's code) is frozen out of every collection, and the youngest generation is
    collected after `GC_GEN0_THRESHOLD` allocations instead of Python's 700, each older one after 50
    collections of the one below instead of 10 (cyclic garbage that outlives a call waits longer). At
    64 connections the collector's time per call fell from 56 to 0.6 µs (docs/PERFORMANCE.md, round 5)."""
    threshold = settings.GC_GEN0_THRESHOLD
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, 50, 50)


async def process_started() -> None:
    global _expiry
    collector_tune()
    if settle_journal_pending():
        replayer_start()
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.HOLD_EXPIRY_INTERVAL_SECONDS > 0:
        _expiry = asyncio.ensure_future(_expiry_loop())


async def process_stopping() -> None:
    global _expiry
    if _expiry is not None:
        _expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _expiry
        _expiry = None
    unfinished = await calls_drain(timeout=settings.SHUTDOWN_SETTLE_SECONDS)
    # Settles journaled during an outage stay on disk for the next start if the database is not back.
    await asyncio.to_thread(settle_journal_wait, 1.0)
    if not await asyncio.to_thread(call_records_flush, timeout=5.0):
        logger.error("usage rows were still being written at shutdown")
    await transport_close()
    metrics.process_exit()
    if unfinished:
        logger.error("shutdown left %s calls unsettled; their holds expire", unfinished)


async def lifespan(scope, receive, send) -> None:
    """The ASGI lifespan protocol, for the server that runs the project."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await process_started()
            except Exception as exc:
                logger.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            try:
                await process_stopping()
            finally:
                await send({"type": "lifespan.shutdown.complete"})
            return
