"""Monitoring data: one row per gateway call, the daily rollups the charts read,
and a persisted snapshot of provider health for staff."""

from django.conf import settings
from django.db import models
from django.utils import timezone

# Upper bounds (ms) of the latency histogram kept per rollup row; p95 over any
# number of days is read from the merged histogram instead of the raw rows.
LATENCY_BUCKETS_MS = (100, 250, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 30000, 60000)


class UsageRecord(models.Model):
    """One gateway call as it was routed, answered and charged. Never edited."""

    STATUS_OK = "ok"
    STATUS_ERROR = "error"
    STATUS_CANCELLED = "cancelled"
    STATUS_CHOICES = [(STATUS_OK, "ok"), (STATUS_ERROR, "error"), (STATUS_CANCELLED, "cancelled")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, help_text="Unique per user: callers choose their own.")
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    task_type = models.CharField(max_length=50, blank=True)
    route = models.CharField(
        max_length=100, blank=True, help_text='"explicit", "matrix:<task>/<priority>", "auto"'
    )
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    credits = models.BigIntegerField(default=0, help_text="Micro-credits charged.")
    hold = models.BigIntegerField(default=0, help_text="Micro-credits held before the call.")
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    error_class = models.CharField(max_length=100, blank=True)
    stream = models.BooleanField(default=False)
    usage_estimated = models.BooleanField(default=False)
    usage_capped = models.BooleanField(
        default=False,
        help_text="The upstream claimed or sent more than the call's bounds (max_tokens, the hold); "
        "what was billed was cut to them.",
    )
    uncharged = models.BigIntegerField(
        default=0, help_text="Micro-credits of cost beyond the hold, not charged: the operator's loss."
    )
    # The receipt: who answered by the upstream's own names, the usage parts and the price per part.
    response_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The face's id of the answer (resp_...) when not chatcmpl-<request id>.",
    )
    upstream_id = models.CharField(
        max_length=200, blank=True, help_text="The upstream's id of the answer (OpenRouter's generation id)."
    )
    provider_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="Who served the call as the upstream names it (OpenRouter: 'OpenAI').",
    )
    finish_reason = models.CharField(max_length=40, blank=True)
    cached_tokens = models.PositiveIntegerField(default=0, help_text="Of prompt_tokens: read from the cache.")
    cache_write_5m_tokens = models.PositiveIntegerField(
        default=0, help_text="Of prompt_tokens: written to the cache (5-minute or unstated TTL)."
    )
    cache_write_1h_tokens = models.PositiveIntegerField(
        default=0, help_text="Of prompt_tokens: written to the 1-hour cache."
    )
    reasoning_tokens = models.PositiveIntegerField(default=0, help_text="Of completion_tokens: reasoning.")
    cost_lines = models.JSONField(
        default=list,
        blank=True,
        help_text="The price applied per component: [{component, quantity, unit_price, usd}], USD strings.",
    )
    computed_cost_usd = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="Our figure: tokens x catalog prices.",
    )
    upstream_cost_usd = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="The upstream's own figure in its answer (OpenRouter's usage.cost): what was billed.",
    )
    cost_source = models.CharField(max_length=10, blank=True, help_text='"upstream" or "catalog".')
    cache_discount_usd = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        default=0,
        help_text="What the prompt cache saved against plain prompt tokens (negative for dear writes).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # X-Request-ID is the caller's: two users' identical ids are two calls.
            models.UniqueConstraint(fields=["user", "request_id"], name="usage_user_request_uniq"),
        ]
        indexes = [
            # The dashboard and stats read one user's range; the rollup job reads one day's range.
            models.Index(fields=["user", "created_at"], name="usage_user_created"),
            models.Index(fields=["created_at"], name="usage_created"),
            # Reconciliation reads one provider's recent calls.
            models.Index(fields=["provider", "created_at"], name="usage_provider_created"),
            # The receipt is found by the face's response id too.
            models.Index(
                fields=["user", "response_id"],
                name="usage_user_response",
                condition=~models.Q(response_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageReconciliation(models.Model):
    """One call's charge checked against the upstream's own record of it (OpenRouter's generation)."""

    PENDING = "pending"
    MATCHED = "matched"
    DRIFT = "drift"
    UNAVAILABLE = "unavailable"
    STATUS_CHOICES = [(s, s) for s in (PENDING, MATCHED, DRIFT, UNAVAILABLE)]

    usage = models.OneToOneField(UsageRecord, on_delete=models.CASCADE, related_name="reconciliation")
    status = models.CharField(max_length=12, choices=STATUS_CHOICES, default=PENDING)
    charged_usd = models.DecimalField(
        max_digits=20, decimal_places=10, default=0, help_text="What we charged, in USD at cost."
    )
    upstream_total_cost = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, help_text="OpenRouter's total_cost."
    )
    difference_usd = models.DecimalField(
        max_digits=20, decimal_places=10, default=0, help_text="upstream_total_cost - charged_usd."
    )
    catalog_drift = models.BooleanField(
        default=False, help_text="Our catalog figure differs from OpenRouter's beyond the tolerance."
    )
    upstream_model = models.CharField(max_length=200, blank=True)
    upstream_provider = models.CharField(max_length=100, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "next_check_at"], name="reconciliation_due")]

    def __str__(self) -> str:
        return f"{self.usage_id} {self.status}"


class DailyUsage(models.Model):
    """Usage summed per UTC day, user, model, provider and task type, for charts and stats."""

    day = models.DateField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    task_type = models.CharField(max_length=50, blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    credits = models.BigIntegerField(default=0, help_text="Micro-credits charged.")
    cost_usd = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    latency_sum_ms = models.BigIntegerField(default=0)
    # Counts per LATENCY_BUCKETS_MS bound, plus one overflow bucket.
    latency_histogram = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "model", "provider", "task_type"], name="daily_usage_unique_group"
            ),
        ]
        indexes = [models.Index(fields=["user", "day"], name="daily_usage_user_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.user_id} {self.model}"


class RollupState(models.Model):
    """Which UTC days are final in DailyUsage; later days are read from UsageRecord."""

    name = models.CharField(max_length=50, unique=True, default="daily_usage")
    closed_through = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.closed_through}"


class ProviderHealthSnapshot(models.Model):
    """The last health figures of a provider (model blank) or provider+model, saved by the probe job
    so staff can read them in admin; the live figures are in the health store."""

    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200, blank=True)
    healthy = models.BooleanField(default=True)
    success_rate = models.FloatField(null=True, blank=True)
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    throughput_tps = models.FloatField(null=True, blank=True)
    requests = models.PositiveIntegerField(default=0)
    probe_ok = models.BooleanField(null=True)
    last_error = models.CharField(max_length=200, blank=True)
    last_probe_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="provider_health_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.model}".strip()
