"""Shared fixtures. Tests marked `postgres`/`redis` need the real services: without
them they are skipped on a laptop, and fail under `SMARTSPEC_REQUIRE_SERVICES=1` (CI)."""

import os

import pytest
from django.conf import settings


def _have_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def _have_redis() -> bool:
    return bool(settings.REDIS_URL)


def pytest_runtest_setup(item):
    required = os.environ.get("SMARTSPEC_REQUIRE_SERVICES") == "1"
    for marker, present, var in (
        ("postgres", _have_postgres, "DATABASE_URL (PostgreSQL)"),
        ("redis", _have_redis, "REDIS_URL"),
    ):
        if item.get_closest_marker(marker) and not present():
            if required:
                pytest.fail(f"{var} is required for this test and is not configured", pytrace=False)
            pytest.skip(f"needs {var}")


@pytest.fixture(autouse=True)
def _own_login_throttle(settings):
    """Failed sign-ins of one test never lock out another's (the counters live in Redis)."""
    import uuid

    settings.LOGIN_THROTTLE_KEY_PREFIX = f"test-login-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


@pytest.fixture
def api_key(user):
    from gateway.keys import api_key_create

    _, raw = api_key_create(user=user, name="test")
    return raw


@pytest.fixture
def api_client(api_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


_DB_FIXTURES = (
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
)


@pytest.fixture(autouse=True)
def _ledger_invariant(request):
    """After every test that used the database: balance == sum(entries) for every account, and no
    credit hold left open (opt out with `@pytest.mark.allow_open_holds`)."""
    uses_db = request.node.get_closest_marker("django_db") or any(
        f in request.fixturenames for f in _DB_FIXTURES
    )
    if uses_db:
        # Requested from here so the check runs before the test's database is rolled back or flushed.
        request.getfixturevalue("_django_db_helper")
    yield
    if not uses_db:
        return
    from billing.models import CreditAccount, CreditHold
    from billing.services import ledger_reconcile

    if not CreditAccount.objects.exists():
        return
    assert ledger_reconcile() == [], "ledger invariant broken: balance != sum(entries) or held != open holds"
    if not request.node.get_closest_marker("allow_open_holds"):
        open_holds = list(
            CreditHold.objects.filter(state=CreditHold.State.HELD).values_list("request_id", flat=True)
        )
        assert open_holds == [], f"credit holds left open: {open_holds}"


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup):
    """Close PostgreSQL's connection pool before the test database is dropped (its idle
    connections would keep the database in use)."""
    yield
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if getattr(conn, "pool", None) is not None:
            conn.close_pool()
