"""S5 of the benchmarks as a test: database round trips of one billed, non-streaming call.

The call goes through the production ASGI application (`smartspec.asgi.application`, the lean
API-key handler included) with the key, the catalog and the account id already cached. Every SQL
statement and every COMMIT sent by any thread's connection is counted, on the request path and, apart,
in the usage row written after the answer; a change that adds a round trip to either fails here.
"""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from monitoring import health
from tests.gateway.conftest import OPENROUTER_HOST, balance, json_response, openrouter_completion

# On the request path, PostgreSQL: hold and settle are one statement each. SQLite (in-process, so
# these are statements rather than network trips) runs the ORM transactions: BEGIN IMMEDIATE+UPDATE+
# INSERT+COMMIT, BEGIN IMMEDIATE+SELECT+UPDATE+INSERT+UPDATE+COMMIT.
MAX_ROUND_TRIPS = {"postgresql": 2, "sqlite": 10}
# After the answer (gateway.aftercall): the usage row, one INSERT and its COMMIT (SQLite: and BEGIN), shared by every call
# queued meanwhile.
MAX_DEFERRED_ROUND_TRIPS = {"postgresql": 2, "sqlite": 3}
BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


class RoundTrips:
    """Counts statements (every cursor of every connection, whichever thread holds it) and commits."""

    def __init__(self, monkeypatch):
        self.sql: list[str] = []
        self.commits = 0
        self.on = False
        original_commit = BaseDatabaseWrapper.commit
        original_execute = CursorWrapper._execute_with_wrappers

        def commit(wrapper):
            if self.on:
                self.commits += 1
            return original_commit(wrapper)

        def execute(cursor, sql, params, many, executor):
            if self.on:
                self.sql.append(sql)
            return original_execute(cursor, sql, params, many, executor)

        monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)
        # The DB-step threads keep their connections between calls: count at the cursor, not at connect.
        monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", execute)

    @property
    def total(self) -> int:
        return len(self.sql) + self.commits


@pytest.fixture
def round_trips(monkeypatch):
    return RoundTrips(monkeypatch)


@pytest.mark.django_db(transaction=True)
async def test_billed_call_round_trips(providers, funded_user, api_key, settings, round_trips, monkeypatch):
    from asgiref.sync import sync_to_async

    from gateway import aftercall
    from smartspec.asgi import application

    settings.CATALOG_CACHE_SECONDS = 300
    settings.GATEWAY_DEFER_RECORDS = True
    # The deferred writer waits until the answer is in, so the two counts cannot mix.
    answered = threading.Event()
    write = aftercall._records_write

    def write_after_answer(batch):
        assert answered.wait(timeout=10)
        write(batch)

    monkeypatch.setattr(aftercall, "_records_write", write_after_answer)
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    transport = httpx.ASGITransport(app=application)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answered.set()
        warm = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert warm.status_code == 200, warm.text
        assert await sync_to_async(aftercall.call_records_flush)()
        answered.clear()
        round_trips.on = True
        response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        round_trips.on = False
    path_sql, path_total = list(round_trips.sql), round_trips.total

    round_trips.sql, round_trips.commits = [], 0
    round_trips.on = True
    answered.set()
    assert await sync_to_async(aftercall.call_records_flush)()
    round_trips.on = False

    assert response.status_code == 200, response.text
    # The second call was billed: OpenRouter's usage.cost of $0.000125 is 0.125 credits each call.
    assert b'"credits":0.125000' in response.content
    assert (await sync_to_async(balance)(funded_user))["balance"] == 100_000_000 - 2 * 125_000
    sql = "\n".join(path_sql)
    assert "credithold" in sql and "ledgerentry" in sql and "usagerecord" not in sql, sql
    assert "gateway_apikey" not in sql and "gateway_modelcatalogentry" not in sql, sql
    assert path_total <= MAX_ROUND_TRIPS[default_connection.vendor], sql
    # The deferred write happened, after the answer, as one row of the call.
    deferred = "\n".join(round_trips.sql)
    assert "usagerecord" in deferred and "credithold" not in deferred, deferred
    assert round_trips.total <= MAX_DEFERRED_ROUND_TRIPS[default_connection.vendor], deferred
    rows = await sync_to_async(usage_rows)()
    assert [(r.credits, r.status) for r in rows] == [(125_000, "ok"), (125_000, "ok")]


def usage_rows():
    from monitoring.models import UsageRecord

    return list(UsageRecord.objects.order_by("id"))


@pytest.mark.django_db(transaction=True)
async def test_billed_call_reads_the_cache_once(providers, funded_user, api_key, settings, monkeypatch):
    """The key and the route's catalog entries in one MGET; the account id is known to the process;
    provider health is written after the answer. Besides, the route reads its providers' circuit
    breakers once (the health store: the cache here, its own Redis client when Redis is configured)."""
    from asgiref.sync import sync_to_async
    from django.core.cache import caches

    from gateway import aftercall
    from smartspec.asgi import application

    settings.CATALOG_CACHE_SECONDS = 300
    settings.GATEWAY_DEFER_RECORDS = True
    answered = threading.Event()
    write = aftercall._records_write

    def write_after_answer(batch):
        # Health on the local-memory cache goes through the same backend: keep it out of the count.
        assert answered.wait(timeout=10)
        write(batch)

    monkeypatch.setattr(aftercall, "_records_write", write_after_answer)
    backend = type(caches["default"])
    reads: list[tuple[str, list[str]]] = []
    nested = threading.local()
    counting = False
    for name in ("get", "get_many", "has_key", "get_many_and_hashes"):
        original = getattr(backend, name, None)
        if original is None:
            continue

        def spy(self, key, *args, _name=name, _original=original, **kwargs):
            # One entry per call from the gateway (local memory's get_many calls its own get).
            outer = not getattr(nested, "active", False)
            if counting and outer:
                keys = [key] if _name in ("get", "has_key") else list(key) + [h for a in args for h in a]
                reads.append((_name, keys))
            nested.active = True
            try:
                return _original(self, key, *args, **kwargs)
            finally:
                nested.active = not outer

        monkeypatch.setattr(backend, name, spy)
    # Round trips of the health store's own Redis client (when Redis is configured), once it exists.
    store_reads: list[str] = []

    def store_spy(client):
        for name in ("hgetall", "pipeline", "execute_command"):
            original = getattr(client, name)

            def spy(*args, _name=name, _original=original, **kwargs):
                if counting:
                    store_reads.append(_name)
                return _original(*args, **kwargs)

            monkeypatch.setattr(client, name, spy)

    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    transport = httpx.ASGITransport(app=application)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answered.set()
        warm = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert await sync_to_async(aftercall.call_records_flush)()
        answered.clear()
        if settings.REDIS_URL:
            store_spy(health._redis_clients[settings.REDIS_URL])
        counting = True
        response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        counting = False
    answered.set()
    assert await sync_to_async(aftercall.call_records_flush)()

    assert warm.status_code == 200 and response.status_code == 200, response.text
    (name, keys), *others = reads
    assert keys[0].startswith("apikey:") and keys[1] == "catalog:v4:openai/gpt-4o", reads
    if settings.REDIS_URL:
        # The breakers' states (of every configured provider, the route's among them) are read in the
        # key's round trip (one pipeline), and nothing else.
        configured = ["openrouter", "zai", "openai", "anthropic", "google", "groq"]
        assert name == "get_many_and_hashes", reads
        assert keys[2:] == [f"{settings.HEALTH_KEY_PREFIX}:s:{p}|" for p in configured], reads
        assert others == [] and store_reads == [], (reads, store_reads)
        return
    assert name == "get_many" and len(keys) == 2, reads
    # At most the one read of the breakers' states, and nothing else.
    assert len(others) <= 1, reads
    assert all(k.startswith(settings.HEALTH_KEY_PREFIX) for _, keys in others for k in keys), reads
