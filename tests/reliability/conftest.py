"""Reliability fixtures: a fault-injecting upstream on a real local port, providers pointed at it with
short per-provider timeouts, funded callers, and the ledger figures the tests compare."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.billing.conftest import stripe_settings  # noqa: F401  (Stripe's test secrets)
from tests.gateway.conftest import catalog, grant  # noqa: F401  (the seeded catalog fixture)
from tests.reliability.fake_upstream import FakeUpstream
from tests.support import live_uvicorn as live_gateway  # noqa: F401  (used by the suites here)
from tests.support import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
# Per-provider limits under test: far below the global UPSTREAM_*_TIMEOUT set beside them.
PROVIDER_LIMIT = 0.5


@pytest.fixture
def fake():
    server = FakeUpstream(stall=PROVIDER_LIMIT * 4).start()
    yield server
    server.stop()


@pytest.fixture
def faulty(settings, fake, catalog):  # noqa: F811
    """OpenRouter and OpenAI direct, both served by the fake upstream over the real transport."""
    from gateway import transport

    transport.set_transport_for_tests(None)
    settings.DEBUG = False
    settings.USE_OPENROUTER = True
    settings.OPENROUTER_API_KEY = "sk-or-v1-fault-suite-key"
    settings.OPENROUTER_BASE_URL = fake.url("openrouter", "/api/v1")
    settings.OPENAI_API_KEY = "sk-fault-suite-openai-key"
    settings.OPENAI_BASE_URL = fake.url("openai", "/v1")
    for name in ("ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY", "ZAI_API_KEY", "OLLAMA_BASE_URL"):
        setattr(settings, name, "")
    settings.UPSTREAM_CONNECT_TIMEOUT = 30.0
    settings.UPSTREAM_READ_TIMEOUT = 30.0
    settings.PROVIDER_TIMEOUTS = {
        "openrouter": {"connect": PROVIDER_LIMIT, "read": PROVIDER_LIMIT},
        "openai": {"connect": PROVIDER_LIMIT, "read": PROVIDER_LIMIT},
    }
    settings.HEALTH_KEY_PREFIX = f"test-faults-{uuid.uuid4().hex[:8]}"
    settings.HEALTH_DOWN_AFTER = 3
    settings.HEALTH_UP_AFTER = 2
    settings.CIRCUIT_COOLDOWN_SECONDS = 60.0
    return fake


@pytest.fixture
def funded(user):
    grant(user, 100)
    return user


@pytest.fixture
def ahttp(api_key):
    """Django's async test client with the caller's key: the ASGI views run on the test's loop."""
    from django.test import AsyncClient

    class KeyedClient(AsyncClient):
        async def post(self, path, data, **kwargs):
            kwargs.setdefault("content_type", "application/json")
            return await super().post(path, data, headers={"Authorization": f"Bearer {api_key}"}, **kwargs)

    return KeyedClient()


@pytest.fixture(autouse=True)
async def _close_transport():
    """The real transport pools connections per event loop: close this test's before its loop ends."""
    yield
    from gateway import transport

    await transport.transport_close()


@pytest.fixture(autouse=True)
def _close_worker_thread_connections(request):
    """Async views reach the database from asgiref's worker thread: close its connection after a
    transactional test so PostgreSQL can drop the test database."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction"):
        from asgiref.sync import SyncToAsync
        from django.db import connections

        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


def gateway_env(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    """A subprocess's provider settings: OpenRouter only, served by the fake upstream."""
    return {
        "DATABASE_URL": subprocess_database_url(),
        "DEBUG": "false",
        "OPENROUTER_API_KEY": "sk-or-v1-fault-suite-key",
        "OPENROUTER_BASE_URL": fake.url("openrouter", "/api/v1"),
        "HEALTH_KEY_PREFIX": f"test-live-{uuid.uuid4().hex[:8]}",
        **extra,
    }
