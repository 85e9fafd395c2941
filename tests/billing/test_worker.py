"""The billing beat jobs run by a real Celery worker on Redis against the PostgreSQL test database."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditHold
from tests.support import celery_worker, subprocess_database_url

C = MICRO_PER_CREDIT
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_worker_expires_a_crashed_calls_hold_and_reconciles(user, fund):
    fund(user, 10)
    hold = services.hold_place(user=user, amount=4 * C, request_id="req-crashed")
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    with celery_worker("billingtest", {"DATABASE_URL": subprocess_database_url()}) as app:
        assert app.send_task("billing.holds_expire").get(timeout=60) == 1
        assert app.send_task("billing.ledger_reconcile").get(timeout=60) == 0

    hold.refresh_from_db()
    assert hold.state == "expired"
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}
