"""Monitoring writes: usage records of gateway calls, daily rollups, probes, health snapshots.

`ProviderHealthMonitor` (monitoring/health.py) is re-exported here: the gateway
pipeline imports both from this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from decimal import Decimal

import orjson
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from smartspec.postgresql.base import prepared_cursor

from .health import ProviderHealthMonitor
from .models import DailyUsage, ProviderHealthSnapshot, RollupState, UsageRecord
from .selectors import GROUP_FIELDS, usage_aggregate

logger = logging.getLogger(__name__)

__all__ = [
    "ProviderHealthMonitor",
    "daily_usage_aggregate",
    "daily_usage_rollup",
    "provider_health_snapshot_save",
    "providers_probe_all",
    "usage_record_create",
    "usage_records_create",
]

# A day is closed (read from rollups only) once this long past its end, so a call
# that started before midnight and was recorded just after it is not missed.
ROLLUP_GRACE = dt.timedelta(minutes=15)
# At most this many days are rebuilt per run, so a first run on a large table stays bounded.
ROLLUP_MAX_DAYS = 31

_ATTEMPT_FIELDS = ("model", "provider", "status", "error_class", "latency_ms", "reason")
_COST_LINE_FIELDS = ("component", "quantity", "unit_price", "usd")
_STATUSES = {UsageRecord.STATUS_OK, UsageRecord.STATUS_ERROR, UsageRecord.STATUS_CANCELLED}


def _usage_fields(
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
    usage_capped: bool = False,
    uncharged: int = 0,
    response_id: str = "",
    upstream_id: str = "",
    provider_name: str = "",
    finish_reason: str = "",
    cached_tokens: int = 0,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_lines: list[dict] | None = None,
    computed_cost_usd: Decimal | str | None = None,
    upstream_cost_usd: Decimal | str | None = None,
    cost_source: str = "",
    cache_discount_usd: Decimal | str = Decimal(0),
) -> dict:
    """A usage row's columns, checked (money as integers and a Decimal, a known status)."""
    if status not in _STATUSES:
        raise ValueError(f"unknown usage status {status!r}")
    if not isinstance(credits, int) or not isinstance(hold, int):
        raise TypeError("credits and hold are integer micro-credits")
    if not isinstance(cost_usd, Decimal):
        raise TypeError("cost_usd is a Decimal")
    if not request_id:
        raise ValueError("request_id is required")
    clean_attempts = [{k: a.get(k) for k in _ATTEMPT_FIELDS if k in a} for a in attempts or []]
    return {
        "request_id": request_id,
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
        "usage_capped": usage_capped,
        "uncharged": max(0, int(uncharged)),
        "response_id": (response_id or "")[:64],
        "upstream_id": (upstream_id or "")[:200],
        "provider_name": (provider_name or "")[:100],
        "finish_reason": (finish_reason or "")[:40],
        "cached_tokens": max(0, int(cached_tokens)),
        "cache_write_5m_tokens": max(0, int(cache_write_5m_tokens)),
        "cache_write_1h_tokens": max(0, int(cache_write_1h_tokens)),
        "reasoning_tokens": max(0, int(reasoning_tokens)),
        "cost_lines": [{k: line.get(k) for k in _COST_LINE_FIELDS} for line in cost_lines or []],
        # A journaled settle carries these as strings: exact either way.
        "computed_cost_usd": None if computed_cost_usd is None else Decimal(str(computed_cost_usd)),
        "upstream_cost_usd": None if upstream_cost_usd is None else Decimal(str(upstream_cost_usd)),
        "cost_source": (cost_source or "")[:10],
        "cache_discount_usd": Decimal(str(cache_discount_usd or 0)),
    }


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
    usage_capped: bool = False,
    uncharged: int = 0,
    response_id: str = "",
    upstream_id: str = "",
    provider_name: str = "",
    finish_reason: str = "",
    cached_tokens: int = 0,
    cache_write_5m_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_lines: list[dict] | None = None,
    computed_cost_usd: Decimal | str | None = None,
    upstream_cost_usd: Decimal | str | None = None,
    cost_source: str = "",
    cache_discount_usd: Decimal | str = Decimal(0),
) -> UsageRecord:
    """Record one gateway call. `credits` and `hold` are micro-credits. A second call with the same
    `request_id` for the same user returns the first row unchanged, so a retried pipeline step never
    counts a call twice (another user's identical id is another call)."""
    fields = _usage_fields(**locals())
    # Insert first, look up only on a duplicate: one statement on the hot path. Outside a transaction
    # the INSERT is its own; inside one, a savepoint keeps a duplicate from breaking the caller's.
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():
                return UsageRecord.objects.create(**fields)
        return UsageRecord.objects.create(**fields)
    except IntegrityError:
        existing = UsageRecord.objects.filter(
            user_id=fields["user_id"], request_id=fields["request_id"]
        ).first()
        if existing is None:
            raise
        logger.info("usage record %s already exists; kept the first", fields["request_id"])
        return existing


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)  # exact: numeric columns read the digits
    raise TypeError(f"cannot serialise {type(value).__name__}")


@functools.cache
def _usage_insert_sql() -> str:
    table = UsageRecord._meta.db_table
    columns = ", ".join(
        connection.ops.quote_name(field.column)
        for field in UsageRecord._meta.concrete_fields
        if not field.primary_key
    )
    # Names from the model's own metadata; the rows go as the one parameter.
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table}, %s::json) ON CONFLICT DO NOTHING"
    )


def usage_records_create(*, records: list[dict]) -> int:
    """Record many gateway calls in one INSERT (each dict as for `usage_record_create`); a request id
    already recorded keeps its first row. Returns how many rows were given. A record that fails its
    checks raises before anything is written."""
    now = timezone.now()
    fields = [{**_usage_fields(**record), "created_at": now} for record in records]
    if not fields:
        return 0
    if connection.vendor == "postgresql":
        # The rows travel as one JSON array that PostgreSQL turns into rows itself: the ORM's
        # bulk_create spent more of a call's CPU building and binding its parameters than the
        # rest of the call's database work together (docs/PERFORMANCE.md, the per-stage table).
        payload = orjson.dumps(fields, default=_json_default).decode()
        with prepared_cursor(connection) as cursor:
            cursor.execute(_usage_insert_sql(), [payload])
    else:
        UsageRecord.objects.bulk_create([UsageRecord(**row) for row in fields], ignore_conflicts=True)
    return len(fields)


def daily_usage_aggregate(*, day: dt.date) -> int:
    """Rebuild one UTC day's DailyUsage rows from its usage rows (an indexed range); returns the rows
    written. Idempotent: running it twice gives the same rows."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    records = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=start + dt.timedelta(days=1))
    groups = usage_aggregate(records=records, by=("user_id", *GROUP_FIELDS))
    rows = [DailyUsage(day=day, **group) for group in groups]
    with transaction.atomic():
        DailyUsage.objects.filter(day=day).delete()
        DailyUsage.objects.bulk_create(rows)
    return len(rows)


def daily_usage_rollup(*, now: dt.datetime | None = None) -> dict:
    """Aggregate every day after the last closed one up to today, and close the days that are over.
    Returns {"days": [...iso dates rebuilt], "rows": n, "closed_through": iso date | None}."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    today = now.date()
    state, _ = RollupState.objects.get_or_create(name="daily_usage")
    if state.closed_through:
        first = state.closed_through + dt.timedelta(days=1)
    else:
        oldest = UsageRecord.objects.order_by("created_at").values_list("created_at", flat=True).first()
        if oldest is None:
            return {"days": [], "rows": 0, "closed_through": None}
        first = oldest.astimezone(dt.UTC).date()
    days, rows, closed = [], 0, state.closed_through
    day = first
    while day <= today and len(days) < ROLLUP_MAX_DAYS:
        rows += daily_usage_aggregate(day=day)
        days.append(day.isoformat())
        day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        if now >= day_end + ROLLUP_GRACE and (closed is None or day == closed + dt.timedelta(days=1)):
            closed = day
        day += dt.timedelta(days=1)
    if closed != state.closed_through:
        RollupState.objects.filter(pk=state.pk).update(closed_through=closed, updated_at=now)
    return {"days": days, "rows": rows, "closed_through": closed.isoformat() if closed else None}


def _as_time(ts: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC) if ts else None


def provider_health_snapshot_save(*, monitor: ProviderHealthMonitor | None = None) -> int:
    """Copy the live health figures into ProviderHealthSnapshot rows for admin; returns rows saved."""
    monitor = monitor or ProviderHealthMonitor()
    rows = monitor.get_all_provider_health()
    for row in rows:
        ProviderHealthSnapshot.objects.update_or_create(
            provider=row["provider"],
            model=row["model"] or "",
            defaults={
                "healthy": row["healthy"],
                "success_rate": row["success_rate"],
                "latency_p50_ms": row["latency_p50_ms"],
                "latency_p95_ms": row["latency_p95_ms"],
                "throughput_tps": row["throughput_tps"],
                "requests": row["requests"],
                "probe_ok": row["probe_ok"],
                "last_error": row["last_error"][:200],
                "last_probe_at": _as_time(row["last_probe_at"]),
            },
        )
    return len(rows)


# One probe round at a time across every worker and host (the lock lives in the shared cache).
PROBE_LOCK_KEY = "monitoring:probe-lock"
PROBE_LOCK_SECONDS = 50


def providers_probe_all(
    *, configs=None, transport=None, monitor: ProviderHealthMonitor | None = None, with_models: bool = False
) -> dict:
    """Probe every configured provider once (list-models, never a generation), then save a health
    snapshot. Skipped when another worker holds the probe lock. Returns {"probed": [...], "skipped": bool};
    `with_models` keeps each provider's listed model ids (`models`) in its result."""
    if not cache.add(PROBE_LOCK_KEY, "1", timeout=PROBE_LOCK_SECONDS):
        return {"probed": [], "skipped": True}
    try:
        from .probes import providers_probe

        if configs is None:
            from gateway.providers import provider_configs

            configs = list(provider_configs().values())
        monitor = monitor or ProviderHealthMonitor()
        results = providers_probe(configs=configs, transport=transport, monitor=monitor)
        provider_health_snapshot_save(monitor=monitor)
        if not with_models:
            for result in results:
                result.pop("models", None)  # the per-minute task's result stays small
        return {"probed": results, "skipped": False}
    finally:
        cache.delete(PROBE_LOCK_KEY)
