"""Billing fixtures: funding accounts through the real services and running code in parallel threads."""

import threading

import pytest
from django.db import connection

from billing.credits import MICRO_PER_CREDIT


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
