"""The gateway's DB steps (gateway.db): queued per event loop, run by a bounded number of jobs."""

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway import db
from gateway.db import run_db_step

caller = contextvars.ContextVar("caller", default="")


@pytest.fixture
def executor(monkeypatch):
    """A pool of its own, larger than the jobs allowed, so that only the queue can bound them; steps
    count as stuck only after 10 s unless a test says otherwise."""
    pool = ThreadPoolExecutor(max_workers=8)
    monkeypatch.setattr(db, "_executor", pool)
    monkeypatch.setattr(db, "_STUCK_SECONDS", 10.0)
    yield pool
    pool.shutdown(wait=True)


async def test_steps_run_at_most_jobs_at_once_in_arrival_order_each_in_its_callers_context(
    settings, executor
):
    settings.GATEWAY_DB_THREADS = 2
    gate, lock = threading.Event(), threading.Lock()
    running, peak, seen = [0], [0], []

    def step(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            seen.append((n, caller.get()))
        gate.wait(5)
        with lock:
            running[0] -= 1
        if n == 3:
            raise ValueError("step 3 failed")
        return n * 10

    async def call(n):
        caller.set(f"request-{n}")
        return await run_db_step(step)(n)

    calls = [asyncio.ensure_future(call(n)) for n in range(6)]
    await asyncio.sleep(0.2)
    assert (peak[0], len(seen)) == (2, 2)  # the other four wait in the queue, not on threads
    gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], ValueError) and str(results[3]) == "step 3 failed"
    assert peak[0] == 2
    assert sorted(seen) == [(n, f"request-{n}") for n in range(6)]
    assert [n for n, _ in seen][2:] == [2, 3, 4, 5]


async def test_a_step_whose_caller_gave_up_before_it_started_never_runs(settings, executor):
    settings.GATEWAY_DB_THREADS = 1
    gate, ran = threading.Event(), []

    def first():
        gate.wait(5)
        return "first"

    first_call = asyncio.ensure_future(run_db_step(first)())
    await asyncio.sleep(0.05)
    late_call = asyncio.ensure_future(run_db_step(ran.append)("late"))
    await asyncio.sleep(0.05)
    late_call.cancel()  # e.g. its client disconnected while the step waited: no hold is placed
    gate.set()
    assert await first_call == "first"
    with pytest.raises(asyncio.CancelledError):
        await late_call
    assert await run_db_step(ran.append)("next") is None  # the queue still runs what comes after
    assert ran == ["next"]


async def test_a_batch_borrows_one_connection_and_a_failed_step_gives_its_own_back(
    settings, executor, monkeypatch
):
    from django.db import connection

    settings.GATEWAY_DB_THREADS = 1
    released = []

    def release(**kwargs):
        released.append(kwargs)
        connection.errors_occurred = False  # what the next connect does

    monkeypatch.setattr(db, "connection_release", release)
    gate = threading.Event()

    def broken():
        raise RuntimeError("connection broke")

    def journaled():
        connection.errors_occurred = True  # a settle that caught an outage and journaled itself
        return "journaled"

    first = asyncio.ensure_future(run_db_step(gate.wait)(5))
    await asyncio.sleep(0.05)
    batch = [
        asyncio.ensure_future(run_db_step(str)(1)),
        asyncio.ensure_future(run_db_step(broken)()),
        asyncio.ensure_future(run_db_step(journaled)()),
        asyncio.ensure_future(run_db_step(str)(3)),
    ]
    await asyncio.sleep(0.05)
    gate.set()
    assert await first is True
    results = await asyncio.gather(*batch, return_exceptions=True)
    assert results[0] == "1" and isinstance(results[1], RuntimeError) and results[2:] == ["journaled", "3"]
    # The first batch (one step), then the second: after its failed step, after the one that met a
    # database error, and at its end.
    assert released == [{"pooled_thread": True}] * 4


async def test_a_settle_runs_even_when_its_caller_is_cancelled_before_it_starts(settings, executor):
    settings.GATEWAY_DB_THREADS = 1
    gate, ran = threading.Event(), []
    first = asyncio.ensure_future(run_db_step(gate.wait)(5))
    await asyncio.sleep(0.05)
    settle = asyncio.ensure_future(run_db_step(ran.append, must_run=True)("settle"))
    await asyncio.sleep(0.05)
    settle.cancel()  # a shutdown cancels every task left
    gate.set()
    await first
    assert await run_db_step(ran.append)("next") is None
    assert ran == ["settle", "next"]


async def test_settles_go_before_the_steps_already_waiting(settings, executor):
    settings.GATEWAY_DB_THREADS = 1
    gate, ran = threading.Event(), []
    first = asyncio.ensure_future(run_db_step(gate.wait)(5))
    await asyncio.sleep(0.05)
    steps = [
        asyncio.ensure_future(run_db_step(ran.append)("open 1")),
        asyncio.ensure_future(run_db_step(ran.append, must_run=True)("settle")),
        asyncio.ensure_future(run_db_step(ran.append)("open 2")),
    ]
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(first, *steps)
    assert ran == ["settle", "open 1", "open 2"]


async def test_stuck_steps_get_another_job_and_finished_results_do_not_wait_for_them(
    settings, executor, monkeypatch
):
    settings.GATEWAY_DB_THREADS = 1
    monkeypatch.setattr(db, "_STUCK_SECONDS", 0.05)
    gate = threading.Event()
    slow = asyncio.ensure_future(run_db_step(gate.wait)(5))  # a database that does not answer
    await asyncio.sleep(0.01)
    quick = [asyncio.ensure_future(run_db_step(str)(n)) for n in range(3)]
    # Another job takes them after about 50 ms, while the first is still stuck.
    done, _ = await asyncio.wait(quick, timeout=2)
    assert len(done) == 3 and not slow.done()
    assert [task.result() for task in quick] == ["0", "1", "2"]
    gate.set()
    assert await slow is True

    # In one batch: the result of a quick step is handed back before a slow step after it ends.
    gate.clear()
    blocker = asyncio.ensure_future(run_db_step(gate.wait)(5))
    await asyncio.sleep(0.01)
    second_gate = threading.Event()
    quick_first = asyncio.ensure_future(run_db_step(str)("before"))
    slow_after = asyncio.ensure_future(run_db_step(second_gate.wait)(5))
    gate.set()
    await blocker
    assert await asyncio.wait_for(quick_first, timeout=1) == "before"
    assert not slow_after.done()
    second_gate.set()
    assert await slow_after is True


async def test_a_result_whose_caller_went_away_meanwhile_goes_to_on_dropped(settings, executor):
    settings.GATEWAY_DB_THREADS = 1
    started, gate, dropped = threading.Event(), threading.Event(), []

    def opens(name):
        started.set()
        gate.wait(5)
        return name

    gone = asyncio.ensure_future(run_db_step(opens, on_dropped=dropped.append)("hold 1"))
    await asyncio.to_thread(started.wait, 5)
    gone.cancel()  # the client disconnected while its hold was being placed
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await gone
    kept = await run_db_step(opens, on_dropped=dropped.append)("hold 2")
    assert (kept, dropped) == ("hold 2", ["hold 1"])  # only the result nobody received
