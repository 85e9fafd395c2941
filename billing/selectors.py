"""Billing reads: balances and the caller's ledger."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import CreditAccount, LedgerEntry

TRANSACTIONS_MAX_LIMIT = 100


def balance_get(*, user) -> dict:
    """{"balance", "held", "available"} in micro-credits; zeros for a user who never had an account."""
    row = CreditAccount.objects.filter(user=user).values("balance", "held").first()
    balance, held = (row["balance"], row["held"]) if row else (0, 0)
    return {"balance": balance, "held": held, "available": balance - held}


def transactions_list(*, user, limit: int = 10) -> QuerySet[LedgerEntry]:
    """The user's ledger entries, newest first."""
    limit = max(1, min(limit, TRANSACTIONS_MAX_LIMIT))
    return LedgerEntry.objects.filter(account__user=user).order_by("-id")[:limit]


def transactions_page(*, user, before_id: int | None = None, limit: int = 25) -> list[LedgerEntry]:
    """One page of the user's ledger, newest first, starting below `before_id` (keyset paging on the
    (account, -id) index, so deep pages cost the same as the first). Fetches one extra row so the
    caller can tell whether an older page exists."""
    limit = max(1, min(limit, TRANSACTIONS_MAX_LIMIT))
    entries = LedgerEntry.objects.filter(account__user=user)
    if before_id is not None:
        entries = entries.filter(id__lt=before_id)
    return list(entries.order_by("-id")[: limit + 1])


def usage_hold_get(*, user, request_id: str) -> dict | None:
    """How a call's hold went, for the call's page: {amount, state, charged, released, excess,
    created_at, closed_at, expires_at} in micro-credits; None when the call placed no hold."""
    from .models import CreditHold

    hold = (
        CreditHold.objects.filter(account__user=user, request_id=request_id, purpose=CreditHold.Purpose.USAGE)
        .values("amount", "state", "charged", "excess", "created_at", "closed_at", "expires_at")
        .first()
    )
    if hold is None:
        return None
    closed = hold["state"] != CreditHold.State.HELD
    hold["released"] = hold["amount"] - hold["charged"] if closed else 0
    return hold


def hold_charged_get(*, hold_id: int) -> int:
    """Micro-credits a hold's settle charged (0 while open, released or expired, or when it is gone)."""
    from .models import CreditHold

    return CreditHold.objects.filter(pk=hold_id).values_list("charged", flat=True).first() or 0


def balance_display_get(*, user) -> dict:
    """The balance as the pages show it: {"balance", "held", "available"} as statement figures
    ("1,000.00"), "usd" / "balance_usd" the available credits' / the balance's worth at cost
    ("$1.00"), and "micro" the raw micro-credits."""
    from .credits import credits_display, credits_usd_display

    balance = balance_get(user=user)
    return {name: credits_display(value) for name, value in balance.items()} | {
        "usd": credits_usd_display(balance["available"]),
        "balance_usd": credits_usd_display(balance["balance"]),
        "micro": balance,
    }


def topup_for_checkout_get(*, user, session_id: str):
    """The caller's top-up credited for a Checkout Session; None while Stripe has not confirmed it
    (or when the session is not the caller's: both read as "not credited to you yet")."""
    from .models import TopUp

    if not session_id:
        return None
    return TopUp.objects.filter(user=user, checkout_session_id=session_id).first()


def topups_sold_get(*, since, until=None) -> dict:
    """What top-ups sold from `since`: {"count", "credits" (micro-credits), "paid_cents",
    "refunded_cents"}; top-ups are few beside usage rows, so no index is needed."""
    from django.db.models import Count, Sum

    from .models import TopUp

    rows = TopUp.objects.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    totals = rows.aggregate(
        count=Count("id"),
        credits=Sum("credits"),
        paid_cents=Sum("amount_cents"),
        refunded_cents=Sum("amount_refunded_cents"),
    )
    return {name: int(value or 0) for name, value in totals.items()}
