"""Fixtures of the monitoring tests: health monitors on each store, and a usage-record factory."""

import uuid
from decimal import Decimal

import pytest


class Clock:
    """A settable clock so window tests need no sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return Clock()


def _monitor(settings, clock, store_kind):
    from monitoring.health import ProviderHealthMonitor, _CacheStore, _RedisStore

    settings.HEALTH_KEY_PREFIX = f"test-health-{uuid.uuid4().hex[:8]}"
    settings.HEALTH_WINDOW_SECONDS = 600
    settings.HEALTH_WINDOW_SIZE = 50
    settings.HEALTH_DOWN_AFTER = 3
    settings.HEALTH_UP_AFTER = 2
    settings.HEALTH_MIN_SAMPLES = 5
    if store_kind == "redis":
        store = _RedisStore(settings.HEALTH_KEY_PREFIX, settings.REDIS_URL)
    else:
        store = _CacheStore(settings.HEALTH_KEY_PREFIX)
    return ProviderHealthMonitor(store=store, now=clock)


@pytest.fixture(params=["cache", pytest.param("redis", marks=pytest.mark.redis)])
def monitor(request, settings, clock):
    """The same behaviour is asserted on the cache store and on the shared Redis store."""
    m = _monitor(settings, clock, request.param)
    yield m
    m.clear()


@pytest.fixture
def make_usage():
    """Create a usage record through the service with sensible defaults."""
    from monitoring.services import usage_record_create

    def make(user, **overrides):
        fields = {
            "user_id": user.pk,
            "api_key_id": None,
            "request_id": uuid.uuid4().hex,
            "model": "openai/gpt-4o",
            "provider": "openrouter",
            "task_type": "analysis",
            "route": "explicit",
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "cost_usd": Decimal("0.00075"),
            "credits": 750_000,
            "hold": 2_000_000,
            "latency_ms": 800,
            "ttft_ms": None,
            "attempts": [
                {
                    "model": "openai/gpt-4o",
                    "provider": "openrouter",
                    "status": "ok",
                    "error_class": "",
                    "latency_ms": 800,
                    "reason": "",
                }
            ],
            "status": "ok",
        }
        created_at = overrides.pop("created_at", None)
        fields.update(overrides)
        record = usage_record_create(**fields)
        if created_at is not None:
            type(record).objects.filter(pk=record.pk).update(created_at=created_at)
            record.refresh_from_db()
        return record

    return make


# The gateway's fixtures (mocked network with real upstream shapes, seeded catalog, demo-only setup)
# drive real calls through /api/llm/chat in the end-to-end monitoring tests.
from tests.gateway.conftest import catalog, demo_only, funded_user, http, network, providers  # noqa: E402, F401
