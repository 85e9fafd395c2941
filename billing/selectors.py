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
