"""Celery tasks of monitoring: thin wrappers over services."""

from celery import shared_task


@shared_task(name="monitoring.ping")
def ping() -> str:
    """Round-trip check for a worker (used by the worker test and by operators)."""
    return "pong"
