"""Billing fixtures: funding accounts through the real services and running code in parallel threads."""

import threading

import pytest
from django.db import connection

from billing.credits import MICRO_PER_CREDIT
from tests.support import subprocess_database_url  # noqa: F401  (re-exported)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(username="staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def fund(staff_user):
    """fund(user, credits) grants whole credits through the staff adjustment service."""
    from billing.services import adjustment_create

    def _fund(user, credits):
        return adjustment_create(
            user=user, amount=credits * MICRO_PER_CREDIT, actor=staff_user, reason="test funds"
        )

    return _fund


def run_concurrently(func, count: int) -> list:
    """Run func(i) in `count` threads released at once; each thread's result or exception, in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i):
        try:
            barrier.wait()
            results[i] = func(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.fixture
def stripe_settings(settings):
    from tests.billing.stripe_shapes import WEBHOOK_SECRET

    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_SECRET_KEY = "sk_test_suite_key"
    return settings


@pytest.fixture
def deliver(stripe_settings):
    """deliver(event) posts a correctly signed webhook and returns the response."""
    from django.test import Client

    from tests.billing.stripe_shapes import body, sign

    client = Client()

    def _deliver(evt, *, signature=None, raw=None):
        payload = raw if raw is not None else body(evt)
        header = signature if signature is not None else sign(payload)
        extra = {"HTTP_STRIPE_SIGNATURE": header} if header else {}
        return client.post(
            "/api/billing/stripe/webhook", data=payload, content_type="application/json", **extra
        )

    return _deliver
