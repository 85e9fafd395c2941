"""Celery tasks of monitoring: thin wrappers over services (schedules in settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from . import services


@shared_task(name="monitoring.ping")
def ping() -> str:
    """Round-trip check for a worker (used by the worker test and by operators)."""
    return "pong"


@shared_task(name="monitoring.probe_providers", ignore_result=False)
def probe_providers() -> dict:
    """Cheap list-models probe of every configured provider."""
    return services.providers_probe_all()


@shared_task(name="monitoring.rollup_daily_usage", ignore_result=False)
def rollup_daily_usage() -> dict:
    """Fold usage rows into DailyUsage and close the days that are over."""
    return services.daily_usage_rollup()


@shared_task(name="monitoring.reconcile_usage", ignore_result=False)
def reconcile_usage() -> dict:
    """Recent OpenRouter calls against OpenRouter's own generation records."""
    from .reconciliation import usage_reconcile

    return usage_reconcile()
