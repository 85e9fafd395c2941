"""Monitoring reads: usage stats for the API and the dashboard, recent calls, top spenders.

Stats never scan the usage table: closed days come from `DailyUsage` (one row per
day and group), and only the days after the last closed one are summed from
`UsageRecord` over the indexed `(user, created_at)` range, grouped in the database.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import LATENCY_BUCKETS_MS, DailyUsage, RollupState, UsageReconciliation, UsageRecord

GROUP_FIELDS = ("model", "provider", "task_type")


def usage_aggregate(*, records: QuerySet, by: Iterable[str]) -> list[dict]:
    """Sum usage rows per group in one query: counts, tokens, credits, cost, latency sum and histogram."""
    bucket_counts = {
        f"le_{bound}": Count("id", filter=Q(latency_ms__lte=bound)) for bound in LATENCY_BUCKETS_MS
    }
    rows = (
        records.values(*by)
        .order_by()
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status=UsageRecord.STATUS_ERROR)),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            credits=Sum("credits"),
            cost_usd=Sum("cost_usd"),
            latency_sum_ms=Sum("latency_ms"),
            **bucket_counts,
        )
    )
    out = []
    for row in rows:
        # Cumulative "<= bound" counts become per-bucket counts, plus the overflow bucket.
        cumulative = [row.pop(f"le_{bound}") for bound in LATENCY_BUCKETS_MS]
        histogram = [cumulative[0]] + [cumulative[i] - cumulative[i - 1] for i in range(1, len(cumulative))]
        histogram.append(row["requests"] - cumulative[-1])
        for name in ("prompt_tokens", "completion_tokens", "credits", "latency_sum_ms"):
            row[name] = int(row[name] or 0)
        row["cost_usd"] = Decimal(row["cost_usd"] or 0)
        row["latency_histogram"] = histogram
        out.append(row)
    return out


def rollup_closed_through() -> dt.date | None:
    state = RollupState.objects.filter(name="daily_usage").values_list("closed_through", flat=True).first()
    return state


def _p95_from_histogram(histogram: list[int]) -> int | None:
    total = sum(histogram)
    if not total:
        return None
    threshold = 0.95 * total
    running = 0
    for i, count in enumerate(histogram):
        running += count
        if running >= threshold:
            return LATENCY_BUCKETS_MS[min(i, len(LATENCY_BUCKETS_MS) - 1)]
    return LATENCY_BUCKETS_MS[-1]


class _Totals:
    __slots__ = (
        "completion_tokens",
        "cost_usd",
        "credits",
        "errors",
        "histogram",
        "latency_sum_ms",
        "prompt_tokens",
        "requests",
    )

    def __init__(self):
        self.requests = self.errors = self.prompt_tokens = self.completion_tokens = 0
        self.credits = self.latency_sum_ms = 0
        self.cost_usd = Decimal(0)
        self.histogram = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def add(self, cell: dict) -> None:
        self.requests += cell["requests"]
        self.errors += cell["errors"]
        self.prompt_tokens += cell["prompt_tokens"]
        self.completion_tokens += cell["completion_tokens"]
        self.credits += cell["credits"]
        self.cost_usd += cell["cost_usd"]
        self.latency_sum_ms += cell["latency_sum_ms"]
        for i, count in enumerate(cell["latency_histogram"] or ()):
            self.histogram[i] += count

    def as_dict(self) -> dict:
        from billing.credits import format_credits

        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "credits": format_credits(self.credits),
            "credits_micro": self.credits,
            "cost_usd": str(self.cost_usd.normalize()) if self.cost_usd else "0",
            "avg_latency_ms": round(self.latency_sum_ms / self.requests) if self.requests else None,
            "p95_latency_ms": _p95_from_histogram(self.histogram),
        }


def usage_cells(*, user_id: int, since: dt.date, now: dt.datetime | None = None) -> list[dict]:
    """Usage per (day, model, provider, task type) from `since` to now: closed days from the
    rollups, later days summed from the usage rows. Two or three queries whatever the volume."""
    now = now or timezone.now()
    closed = rollup_closed_through()
    cells: list[dict] = []
    raw_from = since
    if closed and closed >= since:
        rollups = DailyUsage.objects.filter(user_id=user_id, day__gte=since, day__lte=closed).values(
            "day",
            *GROUP_FIELDS,
            "requests",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "credits",
            "cost_usd",
            "latency_sum_ms",
            "latency_histogram",
        )
        cells.extend(rollups)
        raw_from = closed + dt.timedelta(days=1)
    start = dt.datetime.combine(raw_from, dt.time.min, tzinfo=dt.UTC)
    if start <= now:
        records = UsageRecord.objects.filter(user_id=user_id, created_at__gte=start, created_at__lte=now)
        for row in usage_aggregate(
            records=records.annotate(day=TruncDate("created_at")), by=("day", *GROUP_FIELDS)
        ):
            cells.append(row)
    return cells


class LLMMonitoringService:
    """Usage statistics for one user (DESIGN.md "Python API")."""

    def get_comprehensive_stats(self, user_id: int, days: int = 30) -> dict:
        """{overview, by_provider, by_model, by_task_type, daily} over the last `days` UTC days,
        today included. Credits are decimal strings; `credits_micro` carries the integer."""
        if not isinstance(days, int) or days < 1:
            raise ValueError("days must be a positive integer")
        today = timezone.now().astimezone(dt.UTC).date()
        since = today - dt.timedelta(days=days - 1)
        cells = usage_cells(user_id=user_id, since=since)

        overview = _Totals()
        groups: dict[str, dict[str, _Totals]] = {name: defaultdict(_Totals) for name in GROUP_FIELDS}
        daily: dict[dt.date, _Totals] = defaultdict(_Totals)
        for cell in cells:
            overview.add(cell)
            for name in GROUP_FIELDS:
                groups[name][cell[name]].add(cell)
            daily[cell["day"]].add(cell)

        def ranked(name: str) -> list[dict]:
            items = sorted(groups[name].items(), key=lambda kv: (-kv[1].credits, -kv[1].requests, kv[0]))
            return [{name: key, **totals.as_dict()} for key, totals in items]

        series = []
        for offset in range(days):
            day = since + dt.timedelta(days=offset)
            totals = daily.get(day) or _Totals()
            d = totals.as_dict()
            series.append(
                {
                    "date": day.isoformat(),
                    "requests": d["requests"],
                    "errors": d["errors"],
                    "total_tokens": d["total_tokens"],
                    "credits": d["credits"],
                    "credits_micro": d["credits_micro"],
                }
            )
        return {
            "user_id": user_id,
            "days": days,
            "since": since.isoformat(),
            "overview": overview.as_dict(),
            "by_provider": ranked("provider"),
            "by_model": ranked("model"),
            "by_task_type": ranked("task_type"),
            "daily": series,
        }


def usage_recent_list(*, user_id: int, limit: int = 10) -> list[UsageRecord]:
    """The user's newest calls (index range on (user, created_at))."""
    return list(UsageRecord.objects.filter(user_id=user_id).order_by("-created_at")[:limit])


def usage_get(*, user_id: int, record_id: int) -> UsageRecord | None:
    return UsageRecord.objects.filter(user_id=user_id, pk=record_id).first()


def top_users_by_spend(*, days: int = 30, limit: int = 10) -> list[dict]:
    """Users who spent the most over the closed rollup days plus the open days' usage rows."""
    from django.contrib.auth import get_user_model

    today = timezone.now().astimezone(dt.UTC).date()
    since = today - dt.timedelta(days=days - 1)
    closed = rollup_closed_through()
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    raw_from = since
    if closed and closed >= since:
        for row in (
            DailyUsage.objects.filter(day__gte=since, day__lte=closed)
            .values("user_id")
            .order_by()
            .annotate(credits=Sum("credits"), requests=Sum("requests"))
        ):
            totals[row["user_id"]][0] += int(row["credits"] or 0)
            totals[row["user_id"]][1] += int(row["requests"] or 0)
        raw_from = closed + dt.timedelta(days=1)
    start = dt.datetime.combine(raw_from, dt.time.min, tzinfo=dt.UTC)
    for row in (
        UsageRecord.objects.filter(created_at__gte=start)
        .values("user_id")
        .order_by()
        .annotate(credits=Sum("credits"), requests=Count("id"))
    ):
        totals[row["user_id"]][0] += int(row["credits"] or 0)
        totals[row["user_id"]][1] += int(row["requests"] or 0)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][0])[:limit]
    names = dict(
        get_user_model().objects.filter(pk__in=[uid for uid, _ in ranked]).values_list("pk", "username")
    )
    from billing.credits import format_credits

    return [
        {
            "user_id": uid,
            "username": names.get(uid, "?"),
            "credits": format_credits(c),
            "credits_micro": c,
            "requests": r,
        }
        for uid, (c, r) in ranked
    ]


def usage_credits_sum(*, user_id: int, api_key_id: int, since: dt.datetime) -> int:
    """Micro-credits charged to one key since `since` (index range on (user, created_at))."""
    total = UsageRecord.objects.filter(
        user_id=user_id, created_at__gte=since, api_key_id=api_key_id
    ).aggregate(total=Sum("credits"))["total"]
    return int(total or 0)


# --- Receipts (`GET /v1/generation`, the call page) -------------------------------------------
CHAT_ID_PREFIX = "chatcmpl-"
MAX_GENERATION_ID = 200
# Providers whose own per-call records the reconciliation job can read.
RECONCILED_PROVIDERS = ("openrouter",)


def usage_receipt_find(*, user, generation_id: str) -> UsageRecord | None:
    """The call a client names by the id it was answered with (`chatcmpl-<request id>`, `resp_...`)
    or by its request id: the caller's own calls only, any user's for staff (their own first, then
    the newest). None for anything else, so another user's call looks exactly like no call."""
    if not isinstance(generation_id, str) or not generation_id or len(generation_id) > MAX_GENERATION_ID:
        return None
    if "\x00" in generation_id:  # PostgreSQL refuses NUL in text: no id of ours has one
        return None
    request_ids = {generation_id[:64]}
    if generation_id.startswith(CHAT_ID_PREFIX):
        request_ids.add(generation_id[len(CHAT_ID_PREFIX) :][:64])
    match = Q(request_id__in=request_ids) | Q(response_id=generation_id[:64])
    records = UsageRecord.objects.filter(match).select_related("reconciliation", "user")
    if not getattr(user, "is_staff", False):
        return records.filter(user_id=user.pk).order_by("-created_at").first()
    own = records.filter(user_id=user.pk).order_by("-created_at").first()
    return own or records.order_by("-created_at").first()


def _usd(value: Decimal | None) -> Decimal | None:
    """A USD figure without the column's trailing zeros (exact, never in exponent form)."""
    return None if value is None else Decimal(f"{Decimal(value).normalize():f}")


def _credits(micro: int) -> Decimal:
    from billing.credits import format_credits

    return Decimal(format_credits(int(micro)))


def reconciliation_view(record: UsageRecord) -> dict:
    """How a call's charge compares with the upstream's own record of it."""
    found = reconciliation_of(record)
    if found is not None:
        return {
            "status": found.status,
            "charged_usd": _usd(found.charged_usd),
            "upstream_total_cost": _usd(found.upstream_total_cost),
            "difference_usd": _usd(found.difference_usd),
            "catalog_drift": found.catalog_drift,
            "checked_at": found.checked_at.isoformat() if found.checked_at else None,
            "tries": found.tries,
        }
    if record.provider in RECONCILED_PROVIDERS and record.upstream_id:
        return {"status": "pending"}
    reason = (
        f"{record.provider} keeps no per-call record to reconcile against"
        if record.provider
        else "no provider answered"
    )
    return {"status": "unavailable", "reason": reason}


def reconciliation_of(record: UsageRecord) -> UsageReconciliation | None:
    try:
        return record.reconciliation
    except UsageReconciliation.DoesNotExist:
        return None


def usage_receipt(*, record: UsageRecord) -> dict:
    """One call's receipt: OpenRouter's generation fields where they apply, then ours (the money in
    credits and USD as exact Decimals, the hold, the price per component, route, attempts and the
    reconciliation)."""
    from billing.selectors import usage_hold_get

    hold = usage_hold_get(user=record.user, request_id=record.request_id)
    placed = hold["amount"] if hold else record.hold
    released = hold["released"] if hold else max(0, record.hold - record.credits)
    attempts = list(record.attempts or ())
    winner = next((i for i, a in enumerate(attempts) if a.get("status") == "ok"), None)
    return {
        "id": record.response_id or f"{CHAT_ID_PREFIX}{record.request_id}",
        "request_id": record.request_id,
        "upstream_id": record.upstream_id,
        "model": record.model,
        "provider": record.provider,
        "provider_name": record.provider_name or record.provider,
        "total_cost": _usd(record.cost_usd),
        "cache_discount": _usd(record.cache_discount_usd),
        "tokens_prompt": record.prompt_tokens,
        "tokens_completion": record.completion_tokens,
        "native_tokens_prompt": record.prompt_tokens,
        "native_tokens_completion": record.completion_tokens,
        "native_tokens_cached": record.cached_tokens,
        "native_tokens_cache_write": record.cache_write_5m_tokens + record.cache_write_1h_tokens,
        "native_tokens_cache_write_1h": record.cache_write_1h_tokens,
        "native_tokens_reasoning": record.reasoning_tokens,
        "streamed": record.stream,
        "cancelled": record.status == UsageRecord.STATUS_CANCELLED,
        "status": record.status,
        "error_class": record.error_class,
        "finish_reason": record.finish_reason or None,
        "latency": record.latency_ms,
        "time_to_first_token": record.ttft_ms,
        "created_at": record.created_at.isoformat(),
        "credits_charged": _credits(record.credits),
        "cost_source": record.cost_source,
        "upstream_cost": _usd(record.upstream_cost_usd),
        "computed_cost": _usd(record.computed_cost_usd),
        "usage_estimated": record.usage_estimated,
        "usage_capped": record.usage_capped,
        "uncharged_credits": _credits(record.uncharged),
        "hold": {
            "placed": _credits(placed),
            "released": _credits(released),
            "state": hold["state"] if hold else ("none" if not record.hold else "closed"),
        },
        "pricing": [
            {
                "component": line.get("component"),
                "quantity": line.get("quantity"),
                "unit_price": Decimal(str(line.get("unit_price") or 0)),
                "usd": Decimal(str(line.get("usd") or 0)),
            }
            for line in record.cost_lines or ()
        ],
        "route": record.route,
        "task_type": record.task_type,
        "fallback_used": winner is not None and winner > 0,
        "attempts": attempts,
        "reconciliation": reconciliation_view(record),
    }


def _usage_totals(*, first_day: dt.date, now: dt.datetime) -> dict:
    """Calls, credits and cost over every user from `first_day` on: rollups, then raw rows."""
    totals = {"calls": 0, "credits": 0, "cost_usd": Decimal(0)}
    closed = rollup_closed_through()
    raw_from = first_day
    if closed and closed >= first_day:
        rolled = DailyUsage.objects.filter(day__gte=first_day, day__lte=closed).aggregate(
            calls=Sum("requests"), credits=Sum("credits"), cost_usd=Sum("cost_usd")
        )
        totals = {name: (value or 0) + totals[name] for name, value in rolled.items()}
        raw_from = closed + dt.timedelta(days=1)
    start = dt.datetime.combine(raw_from, dt.time.min, tzinfo=dt.UTC)
    raw = UsageRecord.objects.filter(created_at__gte=start, created_at__lte=now).aggregate(
        calls=Count("id"), credits=Sum("credits"), cost_usd=Sum("cost_usd")
    )
    return {name: (value or 0) + totals[name] for name, value in raw.items()}


def reconciliation_totals(*, days: int = 30, now: dt.datetime | None = None) -> dict:
    """The period's money, for staff: credits sold (top-ups), credits charged, upstream cost as we
    recorded it and as OpenRouter reports it, the drift, and the margin the top-up markup leaves.

    Margin = what the charged credits were sold for (credits charged / CREDITS_PER_USD x (1 + markup))
    minus their upstream cost (OpenRouter's figure where a call is reconciled, ours elsewhere). Sums
    over the last `days` UTC days, today included: closed days from the daily rollups, later ones
    from the usage rows (an indexed range), reconciliation rows through their calls."""
    from billing.credits import credits_per_usd, micro_per_usd, topup_markup_percent
    from billing.selectors import topups_sold_get

    now = now or timezone.now()
    first_day = now.astimezone(dt.UTC).date() - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first_day, dt.time.min, tzinfo=dt.UTC)
    usage = _usage_totals(first_day=first_day, now=now)
    checked = UsageReconciliation.objects.filter(usage__created_at__gte=since, usage__created_at__lte=now)
    decided = checked.filter(status__in=(UsageReconciliation.MATCHED, UsageReconciliation.DRIFT))
    per_status = dict(checked.values_list("status").annotate(n=Count("id")).order_by())
    openrouter = decided.aggregate(
        upstream=Sum("upstream_total_cost"), recorded=Sum("usage__cost_usd"), charged=Sum("charged_usd")
    )
    drift = checked.filter(status=UsageReconciliation.DRIFT).aggregate(
        n=Count("id"), usd=Sum("difference_usd")
    )
    credits_charged = int(usage["credits"] or 0)
    recorded_cost = Decimal(usage["cost_usd"] or 0)
    upstream_reported = Decimal(openrouter["upstream"] or 0)
    # Upstream cost: OpenRouter's figure for the reconciled calls, ours for the rest.
    best_cost = recorded_cost - Decimal(openrouter["recorded"] or 0) + upstream_reported
    markup = topup_markup_percent()
    sold_for = Decimal(credits_charged) / micro_per_usd() * (1 + markup / 100)
    drifted_models = list(
        checked.filter(catalog_drift=True)
        .values("usage__model")
        .annotate(
            calls=Count("id"), upstream=Sum("upstream_total_cost"), computed=Sum("usage__computed_cost_usd")
        )
        .order_by("-calls", "usage__model")[:20]
    )
    return {
        "days": days,
        "since": since,
        "credits_per_usd": credits_per_usd(),
        "markup_percent": markup,
        "sold": topups_sold_get(since=since, until=now),
        "calls": int(usage["calls"] or 0),
        "credits_charged": credits_charged,
        "upstream_cost_recorded": recorded_cost,
        "upstream_cost_openrouter": upstream_reported,
        "reconciled_calls": decided.count(),
        "by_status": {
            status: int(per_status.get(status, 0))
            for status in (
                UsageReconciliation.MATCHED,
                UsageReconciliation.DRIFT,
                UsageReconciliation.PENDING,
                UsageReconciliation.UNAVAILABLE,
            )
        },
        "drift_calls": int(drift["n"] or 0),
        "drift_usd": Decimal(drift["usd"] or 0),
        "charged_sold_for_usd": sold_for,
        "margin_usd": sold_for - best_cost,
        "catalog_drift_models": [
            {
                "model": row["usage__model"],
                "calls": row["calls"],
                "upstream_usd": Decimal(row["upstream"] or 0),
                "computed_usd": Decimal(row["computed"] or 0),
            }
            for row in drifted_models
        ],
    }
