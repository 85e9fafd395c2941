"""Reconciliation: what we charged for each OpenRouter call against OpenRouter's own record of it.

OpenRouter keeps a record of every generation (`GET /api/v1/generation?id=<its response id>`,
answering `{"data": {"id", "total_cost", "model", "provider_name", "tokens_prompt", ...}}`). The
usage row keeps that id (`upstream_id`); this job fetches the record for recent OpenRouter calls and
sets the call's `UsageReconciliation`:

- `matched`: OpenRouter's `total_cost` and the USD worth of the credits we charged agree within the
  tolerance: `RECONCILE_TOLERANCE_PERCENT` (1%) of OpenRouter's figure, and never less than
  `RECONCILE_TOLERANCE_USD` ($0.000001, far above the rounding of a micro-credit).
- `drift`: they differ by more (both figures and the difference are kept).
- `pending`: not checked yet, or OpenRouter could not answer (down, rate limited, not yet recorded).
- `unavailable`: OpenRouter still has no record after `RECONCILE_MAX_TRIES` checks.

Our own catalog figure (`computed_cost_usd`) is compared with OpenRouter's too: a difference beyond
the tolerance marks the row `catalog_drift`, and the staff page lists the models it happens for
(their catalog price is stale).

Bounded: one run at a time (a shared lock), at most `RECONCILE_BATCH` calls per run, at most
`RECONCILE_RATE_PER_SECOND` requests a second, only calls from the last `RECONCILE_MAX_AGE_DAYS`
and at least `RECONCILE_DELAY_SECONDS` old. Idempotent: a decided row is never fetched again and a
run writes one row per call. OpenRouter being down never raises: the run stops, what it did not
reach stays pending and is retried with a back-off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from .models import UsageReconciliation, UsageRecord
from .selectors import reconciliation_of

logger = logging.getLogger(__name__)

OPENROUTER = "openrouter"
LOCK_KEY = "monitoring:reconcile-lock"
LOCK_SECONDS = 300
# Back-off before a pending call is checked again: doubled per try, at most a day.
RETRY_BASE_SECONDS = 300
RETRY_MAX_SECONDS = 24 * 3600


def _tolerance(upstream: Decimal) -> Decimal:
    percent = Decimal(str(settings.RECONCILE_TOLERANCE_PERCENT))
    return max(Decimal(str(settings.RECONCILE_TOLERANCE_USD)), abs(upstream) * percent / 100)


def _charged_usd(record: UsageRecord) -> Decimal:
    """The USD worth of the credits charged, at the current rate."""
    from billing.credits import micro_per_usd

    return Decimal(record.credits) / micro_per_usd()


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and number >= 0 else None


def _openrouter_config():
    from gateway.providers import provider_configs

    return provider_configs().get(OPENROUTER)


class _Down(Exception):
    """OpenRouter cannot answer right now: stop the run, leave the rest pending."""


def _fetch(client: httpx.Client, config, upstream_id: str) -> dict | None:
    """OpenRouter's record of one generation; None when it has none (yet). Raises `_Down`."""
    headers = dict(config.headers)
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    try:
        response = client.get(
            f"{config.base_url.rstrip('/')}/generation",
            params={"id": upstream_id},
            headers=headers,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
        )
    except httpx.HTTPError as exc:
        raise _Down(type(exc).__name__) from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        # 429, 5xx, an auth problem: nothing is concluded about the call.
        raise _Down(f"HTTP {response.status_code}")
    try:
        # Numbers as Decimal, exactly as written (a float would round OpenRouter's figure).
        data = json.loads(response.content, parse_float=Decimal).get("data")
    except (ValueError, RecursionError, AttributeError):
        raise _Down("malformed answer") from None
    if not isinstance(data, dict) or _money(data.get("total_cost")) is None:
        raise _Down("malformed answer")
    return data


def _decide(record: UsageRecord, data: dict) -> dict:
    upstream = _money(data["total_cost"])
    charged = _charged_usd(record)
    tolerance = _tolerance(upstream)
    computed = record.computed_cost_usd
    return {
        "status": (
            UsageReconciliation.MATCHED if abs(upstream - charged) <= tolerance else UsageReconciliation.DRIFT
        ),
        "charged_usd": charged,
        "upstream_total_cost": upstream,
        "difference_usd": upstream - charged,
        "catalog_drift": computed is not None and abs(upstream - computed) > tolerance,
        "upstream_model": str(data.get("model") or "")[:200],
        "upstream_provider": str(data.get("provider_name") or "")[:100],
        "last_error": "",
    }


def _backoff(tries: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, tries - 1)))


def usage_reconcile(
    *,
    since: dt.datetime | None = None,
    now: dt.datetime | None = None,
    batch: int | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Check up to `batch` recent OpenRouter calls against OpenRouter's generation records.
    Returns {"checked", "matched", "drift", "pending", "unavailable", "stopped", "skipped",
    "catalog_drift_models"}; never raises for OpenRouter's sake."""
    result = {
        "checked": 0,
        UsageReconciliation.MATCHED: 0,
        UsageReconciliation.DRIFT: 0,
        UsageReconciliation.PENDING: 0,
        UsageReconciliation.UNAVAILABLE: 0,
        "stopped": "",
        "skipped": "",
        "catalog_drift_models": [],
    }
    config = _openrouter_config()
    if config is None:
        result["skipped"] = "OpenRouter is not configured"
        return result
    if not cache.add(LOCK_KEY, "1", timeout=LOCK_SECONDS):
        result["skipped"] = "another run is under way"
        return result
    try:
        _run(
            config=config, since=since, now=now, batch=batch, transport=transport, sleep=sleep, result=result
        )
    finally:
        cache.delete(LOCK_KEY)
    return result


def _due(*, since: dt.datetime, until: dt.datetime, now: dt.datetime, batch: int) -> list[UsageRecord]:
    return list(
        UsageRecord.objects.filter(provider=OPENROUTER, created_at__gte=since, created_at__lte=until)
        .exclude(upstream_id="")
        .filter(
            Q(reconciliation__isnull=True)
            | Q(reconciliation__status=UsageReconciliation.PENDING, reconciliation__next_check_at__lte=now)
        )
        .select_related("reconciliation")
        .order_by("created_at")[:batch]
    )


def _run(*, config, since, now, batch, transport, sleep, result: dict) -> None:
    now = now or timezone.now()
    since = since or now - dt.timedelta(days=settings.RECONCILE_MAX_AGE_DAYS)
    until = now - dt.timedelta(seconds=settings.RECONCILE_DELAY_SECONDS)
    batch = max(1, min(batch or settings.RECONCILE_BATCH, settings.RECONCILE_BATCH))
    interval = 1 / settings.RECONCILE_RATE_PER_SECOND if settings.RECONCILE_RATE_PER_SECOND > 0 else 0
    drifted: set[str] = set()
    last_request = None
    with httpx.Client(transport=transport, follow_redirects=False) as client:
        for record in _due(since=since, until=until, now=now, batch=batch):
            existing = reconciliation_of(record)
            tries = (existing.tries if existing else 0) + 1
            if last_request is not None and interval:
                wait = interval - (time.monotonic() - last_request)
                if wait > 0:
                    sleep(wait)
            last_request = time.monotonic()
            fields: dict[str, Any] = {"tries": tries, "checked_at": now}
            try:
                data = _fetch(client, config, record.upstream_id)
            except _Down as exc:
                fields |= {"status": UsageReconciliation.PENDING, "last_error": str(exc)[:200]}
                fields["next_check_at"] = now + _backoff(tries)
                fields["charged_usd"] = _charged_usd(record)
                _save(record, fields)
                result[UsageReconciliation.PENDING] += 1
                result["stopped"] = f"OpenRouter unavailable ({exc}); the rest stays pending"
                logger.warning("reconciliation stopped: OpenRouter unavailable (%s)", exc)
                break
            if data is None:
                gone = tries >= settings.RECONCILE_MAX_TRIES
                status = UsageReconciliation.UNAVAILABLE if gone else UsageReconciliation.PENDING
                fields |= {"status": status, "last_error": "OpenRouter has no record of it"}
                fields["next_check_at"] = now + _backoff(tries)
                fields["charged_usd"] = _charged_usd(record)
            else:
                fields |= _decide(record, data)
                if fields["catalog_drift"]:
                    drifted.add(record.model)
            _save(record, fields)
            result["checked"] += 1
            result[fields["status"]] += 1
    result["catalog_drift_models"] = sorted(drifted)
    if drifted:
        logger.warning("catalog price drift against OpenRouter's records: %s", ", ".join(sorted(drifted)))


def _save(record: UsageRecord, fields: dict) -> None:
    # One row per call (OneToOne): a rerun, or a second worker, updates it instead of adding one.
    UsageReconciliation.objects.update_or_create(usage=record, defaults=fields)
