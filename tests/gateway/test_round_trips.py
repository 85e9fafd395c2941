"""S5 of the benchmarks as a test: database round trips of one billed, non-streaming call.

The call goes through the production ASGI application (`smartspec.asgi.application`, the lean
API-key handler included) with the key, the catalog and the account id already cached. Every SQL
statement and every COMMIT sent by any thread's connection is counted; a change that adds a round
trip to the hot path fails here.
"""

from __future__ import annotations

import httpx
import pytest
from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from tests.gateway.conftest import OPENROUTER_HOST, balance, json_response, openrouter_completion

# PostgreSQL: hold, settle and the usage row are one statement each. SQLite (in-process, so these are
# statements rather than network trips) runs the ORM transactions: BEGIN IMMEDIATE+UPDATE+INSERT+
# COMMIT, BEGIN IMMEDIATE+SELECT+UPDATE+INSERT+UPDATE+COMMIT, INSERT.
MAX_ROUND_TRIPS = {"postgresql": 3, "sqlite": 11}
BODY = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}


class RoundTrips:
    """Counts statements (execute wrappers on every connection, whichever thread opens it) and commits."""

    def __init__(self, monkeypatch):
        self.sql: list[str] = []
        self.commits = 0
        self.on = False
        original_commit = BaseDatabaseWrapper.commit

        def commit(wrapper):
            if self.on:
                self.commits += 1
            return original_commit(wrapper)

        monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)

    def _execute(self, execute, sql, params, many, context):
        if self.on:
            self.sql.append(sql)
        return execute(sql, params, many, context)

    def attach(self, sender, connection, **kwargs):
        # A pooled connection taken again fires this once more for the same wrapper object.
        if self._execute not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._execute)

    @property
    def total(self) -> int:
        return len(self.sql) + self.commits


@pytest.fixture
def round_trips(monkeypatch):
    counter = RoundTrips(monkeypatch)
    connection_created.connect(counter.attach)
    yield counter
    connection_created.disconnect(counter.attach)


@pytest.mark.django_db(transaction=True)
async def test_billed_call_round_trips(providers, funded_user, api_key, settings, round_trips):
    from smartspec.asgi import application

    settings.CATALOG_CACHE_SECONDS = 300
    providers.on(OPENROUTER_HOST, lambda req, body: json_response(200, openrouter_completion()))
    transport = httpx.ASGITransport(app=application)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        warm = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        assert warm.status_code == 200, warm.text
        round_trips.on = True
        response = await client.post("/v1/chat/completions", json=BODY, headers=headers)
        round_trips.on = False

    assert response.status_code == 200, response.text
    # The second call was billed: OpenRouter's usage.cost of $0.000125 is 0.125 credits each call.
    assert response.json()["usage"]["credits"] == "0.125000"
    from asgiref.sync import sync_to_async

    assert (await sync_to_async(balance)(funded_user))["balance"] == 100_000_000 - 2 * 125_000
    sql = "\n".join(round_trips.sql)
    assert "credithold" in sql and "ledgerentry" in sql and "usagerecord" in sql
    assert "gateway_apikey" not in sql and "gateway_modelcatalogentry" not in sql, sql
    assert round_trips.total <= MAX_ROUND_TRIPS[default_connection.vendor], sql
