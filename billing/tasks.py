"""Periodic billing jobs (scheduled in settings.CELERY_BEAT_SCHEDULE); each calls one service."""

from celery import shared_task

from . import services


@shared_task(name="billing.holds_expire")
def holds_expire_task() -> int:
    return services.holds_expire()


@shared_task(name="billing.ledger_reconcile")
def ledger_reconcile_task() -> int:
    """The number of accounts whose balance disagrees with their ledger (each one is logged as an error)."""
    return len(services.ledger_reconcile())
