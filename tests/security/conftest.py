"""Fixtures for the limits and security suites: the gateway's mocked network and funded callers."""

import pytest

from tests.gateway.conftest import (  # noqa: F401  (fixtures shared with the gateway suite)
    _close_worker_thread_connections,
    catalog,
    demo_only,
    funded_user,
    http,
    live_gateway,
    network,
    providers,
)


@pytest.fixture
def limits_prefix(settings):
    """Counters of one test never meet another's (Redis outlives tests)."""
    import uuid

    settings.LIMITS_KEY_PREFIX = f"test-limits-{uuid.uuid4().hex[:8]}"
    return settings.LIMITS_KEY_PREFIX
