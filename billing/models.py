"""Billing data: credit accounts, the append-only ledger, holds, Stripe top-ups and events.

Amounts are micro-credits (BigIntegerField) or, for Stripe, cents. The account's
`balance` and `held` are caches written in the same transaction as the ledger
entry or hold that changes them; `ledger_reconcile` proves them against the rows.
"""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q

from .credits import credits_display


class CreditAccount(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_account"
    )
    balance = models.BigIntegerField(default=0, help_text="Micro-credits; always the sum of the ledger.")
    held = models.BigIntegerField(default=0, help_text="Micro-credits reserved by open holds.")
    owed = models.BigIntegerField(
        default=0,
        help_text="Micro-credits a refund or lost dispute could not take at once (spent, or held by "
        "calls in flight). Collected as holds resolve and from later top-ups; while above zero the "
        "account cannot place holds; staff may clear it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="billing_account_balance_gte_0"),
            models.CheckConstraint(condition=Q(held__gte=0), name="billing_account_held_gte_0"),
            models.CheckConstraint(condition=Q(owed__gte=0), name="billing_account_owed_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({credits_display(self.balance)} credits)"

    @property
    def available(self) -> int:
        return self.balance - self.held


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        TOPUP = "topup", "Top-up"
        USAGE = "usage", "Usage"
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Dispute"
        ADJUSTMENT = "adjustment", "Staff adjustment"
        HOLD_EXPIRY = "hold_expiry", "Hold expired"
        OWED_COLLECTED = "owed_collected", "Owed credits collected"
        SHORTFALL_CLEARED = "shortfall_cleared", "Shortfall cleared"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.BigIntegerField(help_text="Signed micro-credits.")
    balance_after = models.BigIntegerField()
    reference = models.CharField(max_length=255, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    hold = models.OneToOneField(
        "CreditHold", on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entry"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            # Per account: a reference is the caller's own request id for usage, and two callers
            # may pick the same one (top-ups stay unique through TopUp's own Stripe ids).
            models.UniqueConstraint(
                fields=["account", "kind", "reference"],
                condition=~Q(reference=""),
                name="billing_entry_account_kind_reference_uniq",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="billing_entry_balance_after_gte_0"
            ),
        ]
        indexes = [models.Index(fields=["account", "-id"], name="billing_entry_account_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {credits_display(self.amount)} ({self.reference or '-'})"


class CreditHold(models.Model):
    class State(models.TextChoices):
        HELD = "held", "Held"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    class Purpose(models.TextChoices):
        USAGE = "usage", "Usage"
        DISPUTE = "dispute", "Dispute"

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="holds")
    request_id = models.CharField(max_length=255, help_text="Unique per account, not globally.")
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.USAGE)
    amount = models.BigIntegerField(help_text="Micro-credits reserved.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.HELD)
    charged = models.BigIntegerField(default=0, help_text="Micro-credits charged at settlement.")
    excess = models.BigIntegerField(
        default=0, help_text="Real cost above the hold (never charged; flagged as the operator's loss)."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty for dispute holds.")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="billing_hold_amount_gte_0"),
            models.CheckConstraint(condition=Q(charged__gte=0), name="billing_hold_charged_gte_0"),
            # Never above the hold: what the hold could not cover is `excess`, the operator's loss.
            models.CheckConstraint(
                condition=Q(charged__lte=F("amount")), name="billing_hold_charged_lte_amount"
            ),
            # Request ids belong to their caller: another account may reuse the same X-Request-ID.
            models.UniqueConstraint(
                fields=["account", "request_id"], name="billing_hold_account_request_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(state="held"), name="billing_hold_open_expiry"),
        ]

    def __str__(self) -> str:
        return f"hold {self.request_id} {credits_display(self.amount)} {self.state}"


class TopUp(models.Model):
    """One Stripe payment, keyed by its PaymentIntent and/or Checkout Session id."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="topups")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="topups")
    payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    amount_cents = models.BigIntegerField()
    credits = models.BigIntegerField(help_text="Micro-credits granted.")
    amount_refunded_cents = models.BigIntegerField(
        default=0, help_text="Stripe's cumulative amount_refunded."
    )
    clawed_back = models.BigIntegerField(
        default=0, help_text="Micro-credits debited for refunds and disputes."
    )
    owed = models.BigIntegerField(
        default=0, help_text="Micro-credits its clawbacks could not take at once (owed by the account)."
    )
    dispute_id = models.CharField(max_length=255, blank=True, default="")
    dispute_status = models.CharField(max_length=40, blank=True, default="")
    source = models.CharField(max_length=60, help_text="The event type or API that first credited it.")
    # The rate it was credited at (the settings may change later; its receipt keeps what applied).
    credits_per_usd = models.PositiveIntegerField(null=True, blank=True, help_text="CREDITS_PER_USD then.")
    markup_percent = models.DecimalField(
        max_digits=7, decimal_places=3, null=True, blank=True, help_text="TOPUP_MARKUP_PERCENT then."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "top-up"
        constraints = [
            models.CheckConstraint(
                condition=Q(payment_intent_id__isnull=False) | Q(checkout_session_id__isnull=False),
                name="billing_topup_has_stripe_id",
            ),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="billing_topup_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"top-up {self.payment_intent_id or self.checkout_session_id}"


class PendingClawback(models.Model):
    """A refund or dispute that arrived before its payment was credited (e.g. the payment's event
    failed during an outage and is retried after support refunded it). Applied, in arrival order, in
    the transaction that credits the payment, so the outcome is the natural order's."""

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund"
        DISPUTE_OPEN = "dispute_open", "Dispute opened"
        DISPUTE_CLOSE = "dispute_close", "Dispute closed"

    payment_intent_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    stripe_event_id = models.CharField(max_length=255, blank=True, default="")
    charge_id = models.CharField(max_length=255, blank=True, default="")
    dispute_id = models.CharField(max_length=255, blank=True, default="")
    dispute_status = models.CharField(max_length=40, blank=True, default="")
    amount_cents = models.BigIntegerField(
        help_text="Refunds: Stripe's cumulative amount_refunded; disputes: the disputed amount."
    )
    received_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["payment_intent_id"],
                condition=Q(applied_at__isnull=True),
                name="billing_pending_clawback_open",
            ),
        ]

    def __str__(self) -> str:
        return f"pending {self.kind} for {self.payment_intent_id}"


class StripeEvent(models.Model):
    class Status(models.TextChoices):
        PROCESSED = "processed", "Processed"
        PENDING = "pending", "Pending its payment"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    livemode = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
