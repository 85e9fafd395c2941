"""Celery tasks of the gateway: thin wrappers over services."""

from dataclasses import asdict

from celery import shared_task

from .catalog import catalog_direct_models_check, catalog_sync_from_openrouter
from .responses import stored_responses_purge
from .settle_journal import holds_expire_after_replay


@shared_task(name="gateway.catalog_sync")
def catalog_sync() -> dict:
    """Refresh catalog prices, context lengths and lifecycle from OpenRouter's model list."""
    return asdict(catalog_sync_from_openrouter())


@shared_task(name="gateway.holds_expire")
def holds_expire() -> dict:
    """Replay settles journaled during a database outage, then expire the holds nobody will settle."""
    return holds_expire_after_replay()


@shared_task(name="gateway.responses_purge")
def responses_purge() -> int:
    """Delete stored responses past RESPONSES_RETENTION_DAYS."""
    return stored_responses_purge()


@shared_task(name="gateway.catalog_direct_check", ignore_result=False)
def catalog_direct_check() -> dict:
    """Probe the direct providers' model lists and flag catalog models whose direct id is gone."""
    return catalog_direct_models_check()
