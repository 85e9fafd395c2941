"""Monitoring writes: usage records of gateway calls, daily rollups, probes, health snapshots.

`ProviderHealthMonitor` (monitoring/health.py) is re-exported here: the gateway
pipeline imports both from this module.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from .health import ProviderHealthMonitor
from .models import UsageRecord

logger = logging.getLogger(__name__)

__all__ = ["ProviderHealthMonitor", "usage_record_create"]

_ATTEMPT_FIELDS = ("model", "provider", "status", "error_class", "latency_ms", "reason")
_STATUSES = {UsageRecord.STATUS_OK, UsageRecord.STATUS_ERROR, UsageRecord.STATUS_CANCELLED}


def usage_record_create(
    *,
    user_id: int,
    api_key_id: int | None,
    request_id: str,
    model: str,
    provider: str,
    task_type: str,
    route: str,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal,
    credits: int,
    hold: int,
    latency_ms: int,
    ttft_ms: int | None,
    attempts: list[dict],
    status: str,
    error_class: str = "",
    stream: bool = False,
    usage_estimated: bool = False,
) -> UsageRecord:
    """Record one gateway call. `credits` and `hold` are micro-credits. A second call with the same
    `request_id` returns the first row unchanged, so a retried pipeline step never counts a call twice."""
    if status not in _STATUSES:
        raise ValueError(f"unknown usage status {status!r}")
    if not isinstance(credits, int) or not isinstance(hold, int):
        raise TypeError("credits and hold are integer micro-credits")
    if not isinstance(cost_usd, Decimal):
        raise TypeError("cost_usd is a Decimal")
    clean_attempts = [{k: a.get(k) for k in _ATTEMPT_FIELDS if k in a} for a in attempts or []]
    record, created = UsageRecord.objects.get_or_create(
        request_id=request_id,
        defaults={
            "user_id": user_id,
            "api_key_id": api_key_id,
            "model": model or "",
            "provider": provider or "",
            "task_type": task_type or "",
            "route": (route or "")[:100],
            "prompt_tokens": max(0, int(prompt_tokens)),
            "completion_tokens": max(0, int(completion_tokens)),
            "cost_usd": cost_usd,
            "credits": credits,
            "hold": hold,
            "latency_ms": max(0, int(latency_ms)),
            "ttft_ms": None if ttft_ms is None else max(0, int(ttft_ms)),
            "attempts": clean_attempts,
            "status": status,
            "error_class": (error_class or "")[:100],
            "stream": stream,
            "usage_estimated": usage_estimated,
        },
    )
    if not created:
        logger.info("usage record %s already exists; kept the first", request_id)
    return record
