"""The billing beat jobs run by a real Celery worker on Redis against the PostgreSQL test database."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from billing import selectors, services
from billing.credits import MICRO_PER_CREDIT
from billing.models import CreditHold
from tests.billing.conftest import subprocess_database_url

C = MICRO_PER_CREDIT
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_worker_expires_a_crashed_calls_hold_and_reconciles(user, fund):
    from smartspec.celery import app

    fund(user, 10)
    hold = services.hold_place(user=user, amount=4 * C, request_id="req-crashed")
    CreditHold.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="smartspec.settings_test",
        CELERY_TASK_ALWAYS_EAGER="false",
        DATABASE_URL=subprocess_database_url(),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "smartspec", "worker", "--pool=solo", "--loglevel=WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"billingtest-{os.getpid()}@%h"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        app.conf.task_always_eager = False
        assert app.send_task("billing.holds_expire").get(timeout=60) == 1
        assert app.send_task("billing.ledger_reconcile").get(timeout=60) == 0
    finally:
        app.conf.task_always_eager = True
        worker.terminate()
        worker.wait(timeout=30)

    hold.refresh_from_db()
    assert hold.state == "expired"
    assert selectors.balance_get(user=user) == {"balance": 10 * C, "held": 0, "available": 10 * C}
