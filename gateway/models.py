"""Gateway data: API keys, the model catalog and the routing matrix."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    """A user's API key, stored only as a keyed hash beside its visible prefix."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, help_text="The visible start of the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Limits (gateway.limits); empty means no limit. New keys start from the KEY_DEFAULT_* settings.
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Calls per minute; empty: no limit."
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens per minute, counted at each call's worst case (prompt + max_tokens) until it "
        "ends; empty: no limit.",
    )
    credits_per_day = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Micro-credits (1 credit = 1,000,000) this key may spend per UTC day; empty: no cap.",
    )
    credits_per_month = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Micro-credits this key may spend per UTC calendar month; empty: no cap.",
    )
    # Ceilings staff set (admin): the limit that applies is the lower of the key's own and its
    # ceiling, so the key's owner can lower a limit but never raise or clear one staff set.
    ceiling_requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Staff ceiling on calls per minute; empty: none."
    )
    ceiling_tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Staff ceiling on tokens per minute; empty: none."
    )
    ceiling_credits_per_day = models.BigIntegerField(
        null=True, blank=True, help_text="Staff ceiling in micro-credits per UTC day; empty: none."
    )
    ceiling_credits_per_month = models.BigIntegerField(
        null=True, blank=True, help_text="Staff ceiling in micro-credits per UTC month; empty: none."
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credits_per_day__gte=0) | models.Q(credits_per_day__isnull=True),
                name="apikey_credits_per_day_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(credits_per_month__gte=0) | models.Q(credits_per_month__isnull=True),
                name="apikey_credits_per_month_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(ceiling_credits_per_day__gte=0)
                | models.Q(ceiling_credits_per_day__isnull=True),
                name="apikey_ceiling_credits_per_day_gte_0",
            ),
            models.CheckConstraint(
                condition=models.Q(ceiling_credits_per_month__gte=0)
                | models.Q(ceiling_credits_per_month__isnull=True),
                name="apikey_ceiling_credits_per_month_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def limit(self, name: str) -> int | None:
        """The limit that applies: the lower of the key's own `name` and the staff ceiling on it."""
        values = [v for v in (getattr(self, name), getattr(self, f"ceiling_{name}")) if v is not None]
        return min(values) if values else None


class ModelCatalogEntry(models.Model):
    """One model the gateway can route to, with its price and who serves it."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DEPRECATED = "deprecated"
        RETIRED = "retired"

    # OpenRouter's naming, `vendor/model`, is the one id clients use everywhere.
    id = models.CharField(primary_key=True, max_length=200, help_text="vendor/model, e.g. openai/gpt-4o")
    display_name = models.CharField(max_length=200, blank=True)

    class Mode(models.TextChoices):
        CHAT = "chat"
        EMBEDDING = "embedding"

    mode = models.CharField(
        max_length=16,
        choices=Mode.choices,
        default=Mode.CHAT,
        help_text="chat: chat completions and responses; embedding: /v1/embeddings (input tokens only).",
    )
    context_length = models.PositiveIntegerField(default=0)
    # USD per token; 18 decimal places keep sub-nano prices of cheap models exact.
    prompt_price = models.DecimalField(max_digits=30, decimal_places=18, default=0)
    completion_price = models.DecimalField(max_digits=30, decimal_places=18, default=0)
    # The other usage components, in OpenRouter's names; empty means "priced as the plain token"
    # (a cache read or write as a prompt token, reasoning as a completion token).
    input_cache_read_price = models.DecimalField(
        max_digits=30, decimal_places=18, null=True, blank=True, help_text="USD per cached prompt token read."
    )
    input_cache_write_price = models.DecimalField(
        max_digits=30,
        decimal_places=18,
        null=True,
        blank=True,
        help_text="USD per prompt token written to the cache (Anthropic's 5-minute write).",
    )
    input_cache_write_1h_price = models.DecimalField(
        max_digits=30,
        decimal_places=18,
        null=True,
        blank=True,
        help_text="USD per prompt token written to the 1-hour cache; empty: the 5-minute write price.",
    )
    internal_reasoning_price = models.DecimalField(
        max_digits=30,
        decimal_places=18,
        null=True,
        blank=True,
        help_text="USD per reasoning token, when it differs from the completion price.",
    )
    request_price = models.DecimalField(
        max_digits=30, decimal_places=18, default=0, help_text="USD per call."
    )
    image_price = models.DecimalField(
        max_digits=30, decimal_places=18, default=0, help_text="USD per input image."
    )
    providers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Provider name -> that provider\'s model name, e.g. {"openrouter": "openai/gpt-4o", '
        '"openai": "gpt-4o"}.',
    )
    zdr = models.BooleanField(
        default=False,
        help_text="Can be served with zero data retention (through OpenRouter's ZDR endpoints).",
    )
    is_active = models.BooleanField(
        default=True, help_text="Staff switch: off takes the model out of routing."
    )
    # The upstream lifecycle (gateway.catalog): retired models are never deleted (usage rows and
    # receipts name them); routing sends an automatic choice on one to its successor.
    status = models.CharField(
        max_length=16,
        choices=Status.choices,
        default=Status.ACTIVE,
        help_text="active; deprecated (still served until its shutdown date); retired (no longer served).",
    )
    shutdown_date = models.DateField(
        null=True,
        blank=True,
        help_text="When the upstream shuts the model down (announced for a deprecated model, past for a "
        "retired one).",
    )
    successor = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="predecessors",
        help_text="The model that replaces this one once it is retired.",
    )
    review_note = models.CharField(
        max_length=300,
        blank=True,
        help_text="Why staff should look at this model (an upstream said it does not serve it); clear it "
        "once handled.",
    )
    review_flagged_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last price sync from OpenRouter.")
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(
        default=timezone.now, help_text="When the model was released (OpenRouter's `created`) or added here."
    )

    class Meta:
        ordering = ["id"]
        verbose_name = "catalog model"
        verbose_name_plural = "model catalog"

    def __str__(self) -> str:
        return self.id


class ModelAlias(models.Model):
    """Another name of a catalog model, e.g. Anthropic's own `claude-sonnet-4-5-20250929` for
    `anthropic/claude-sonnet-4.5` (what Claude Code and Anthropic's SDKs send). Resolved wherever a
    model id is given; seeded, derived by the catalog sync, and editable by staff."""

    class Source(models.TextChoices):
        SEED = "seed"
        SYNC = "sync"
        STAFF = "staff"

    alias = models.CharField(
        primary_key=True, max_length=200, help_text="The other name, e.g. claude-sonnet-4-5."
    )
    model = models.ForeignKey(ModelCatalogEntry, on_delete=models.CASCADE, related_name="aliases")
    source = models.CharField(
        max_length=8,
        choices=Source.choices,
        default=Source.STAFF,
        help_text="seed / sync add aliases; the sync never changes one staff set.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["alias"]
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"

    def __str__(self) -> str:
        return f"{self.alias} -> {self.model_id}"


class RoutingRule(models.Model):
    """One cell of the task_type x budget_priority matrix used when a request names no model."""

    class TaskType(models.TextChoices):
        CODE_GENERATION = "code_generation"
        ANALYSIS = "analysis"
        PLANNING = "planning"
        SIMPLE = "simple"
        DECISION = "decision"

    class BudgetPriority(models.TextChoices):
        QUALITY = "quality"
        SPEED = "speed"
        COST = "cost"
        BALANCED = "balanced"

    task_type = models.CharField(max_length=32, choices=TaskType.choices)
    budget_priority = models.CharField(max_length=16, choices=BudgetPriority.choices)
    model = models.ForeignKey(ModelCatalogEntry, on_delete=models.PROTECT, related_name="routing_rules")
    origin = models.CharField(
        max_length=200,
        blank=True,
        help_text="The integration guide's original choice for this cell; the model is its current "
        "successor.",
    )

    class Meta:
        ordering = ["task_type", "budget_priority"]
        constraints = [
            models.UniqueConstraint(fields=["task_type", "budget_priority"], name="routing_rule_unique_cell"),
        ]

    def __str__(self) -> str:
        return f"{self.task_type}/{self.budget_priority} -> {self.model_id}"


class StoredResponse(models.Model):
    """A `POST /v1/responses` answer kept for its owner (`store: true`), until it expires."""

    id = models.CharField(primary_key=True, max_length=64, help_text="resp_ + 32 hex")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stored_responses"
    )
    body = models.JSONField(help_text="The response object as answered (money as decimal strings).")
    messages = models.JSONField(help_text="The conversation so far, for previous_response_id.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
