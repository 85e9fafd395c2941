"""Recovery after a database restart, on a PostgreSQL of the test's own: pooled connections are
checked before use, so the first requests after it comes back succeed (none fails on a dead pooled
connection), and `/readyz` answers within 1 s both during the outage (503) and after it (200)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.reliability.conftest import gateway_env
from tests.reliability.fake_upstream import FakeUpstream
from tests.reliability.private_postgres import private_postgres
from tests.reliability.test_settle_outage import _funded_key
from tests.support import live_uvicorn_process


def _burst(url: str, headers: dict, count: int) -> list[int]:
    """`count` requests at once (each on its own connection to the server)."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: httpx.get(url, headers=headers, timeout=20).status_code, range(count)))


def _timed_get(url: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=10, **kwargs)
    return response, time.monotonic() - started


@pytest.mark.postgres
def test_the_pool_recovers_at_once_and_readyz_answers_within_a_second_either_way():
    fake = FakeUpstream().start()
    try:
        with private_postgres() as pg:
            env = gateway_env(fake, DATABASE_URL=pg.url, DB_POOL_MIN_SIZE="8", DB_POOL_TIMEOUT="5")
            key = _funded_key(env)
            auth = {"Authorization": f"Bearer {key}"}
            with live_uvicorn_process(env) as (base, _pid):
                # Fill the worker's pool with connections that the restart will kill.
                for _ in range(8):
                    assert (
                        httpx.get(f"{base}/api/credits/balance", headers=auth, timeout=10).status_code == 200
                    )
                ready, took = _timed_get(f"{base}/readyz")
                assert ready.status_code == 200 and took < 1.0

                # A restart with no traffic in between: every pooled connection is now dead, and
                # each is found so and replaced before a request uses it.
                pg.stop()
                pg.start()
                assert _burst(f"{base}/api/credits/balance", auth, 25) == [200] * 25

                # An outage with traffic: readyz says so within a second, the API fails closed.
                pg.stop()
                for _ in range(3):
                    ready, took = _timed_get(f"{base}/readyz")
                    assert ready.status_code == 503, ready.text
                    assert ready.json()["checks"]["database"] == "unavailable"
                    assert took < 1.0, took
                # The API fails closed meanwhile: a JSON 503, not a 500.
                down = httpx.get(f"{base}/api/credits/balance", headers=auth, timeout=15)
                assert down.status_code == 503, down.text

                pg.start()
                # Immediately: readyz is ready within a second, and no request fails on a dead
                # pooled connection (each one was checked before use and replaced).
                deadline = time.monotonic() + 2
                while True:
                    ready, took = _timed_get(f"{base}/readyz")
                    assert took < 1.0, took
                    if ready.status_code == 200 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                assert ready.status_code == 200, ready.text
                assert _burst(f"{base}/api/credits/balance", auth, 25) == [200] * 25
    finally:
        fake.stop()
