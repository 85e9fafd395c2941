"""Billing's dashboard pages (login required): the ledger and top-ups. They parse the request,
call billing's selectors and render."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .credits import (
    TOPUP_MAX_CENTS,
    TOPUP_MIN_CENTS,
    credits_display,
    credits_per_usd,
    format_cents,
    topup_cents_to_micro,
    topup_markup_percent,
)
from .selectors import balance_display_get, topup_for_checkout_get, transactions_page

TRANSACTIONS_PER_PAGE = 25
TOPUP_PRESETS_USD = (10, 25, 50, 100)


@require_GET
@login_required
def transactions(request):
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        before = None
    rows = transactions_page(user=request.user, before_id=before, limit=TRANSACTIONS_PER_PAGE)
    has_older = len(rows) > TRANSACTIONS_PER_PAGE
    rows = rows[:TRANSACTIONS_PER_PAGE]
    return render(
        request,
        "billing/transactions.html",
        {
            "balance": balance_display_get(user=request.user),
            "entries": rows,
            "older": rows[-1].id if has_older and rows else None,
            "is_first_page": before is None,
        },
    )


@require_GET
@login_required
def topup(request):
    presets = [
        {"usd": usd, "credits": credits_display(topup_cents_to_micro(usd * 100)).split(".")[0]}
        for usd in TOPUP_PRESETS_USD
    ]
    return render(
        request,
        "billing/topup.html",
        {
            "balance": balance_display_get(user=request.user),
            "presets": presets,
            "min_usd": format_cents(TOPUP_MIN_CENTS),
            "max_usd": format_cents(TOPUP_MAX_CENTS),
            "min_cents": TOPUP_MIN_CENTS,
            "max_cents": TOPUP_MAX_CENTS,
            "rate": _rate(),
        },
    )


@require_GET
@login_required
def topup_done(request, outcome: str):
    # Stripe returns with the Checkout Session id: the page names that payment, credited or not.
    session_id = request.GET.get("session_id", "")[:255] if outcome == "success" else ""
    topup = topup_for_checkout_get(user=request.user, session_id=session_id)
    return render(
        request,
        "billing/topup_done.html",
        {
            "outcome": outcome,
            "session_id": session_id,
            "topup": topup,
            "balance": balance_display_get(user=request.user),
            # The rate the top-up was credited at (older top-ups: today's settings).
            "rate": _rate(
                rate=getattr(topup, "credits_per_usd", None),
                markup=getattr(topup, "markup_percent", None),
            ),
        },
    )


def _rate(*, rate: int | None = None, markup: Decimal | None = None) -> dict:
    """The credit rate and the top-up markup as the pages state them: the settings, or what a
    top-up was credited at."""
    rate = rate or credits_per_usd()
    markup = topup_markup_percent() if markup is None else Decimal(markup)
    hundred = topup_cents_to_micro(10_000, rate=rate, markup_percent=markup)
    return {
        "credits_per_usd": rate,
        "markup_percent": f"{markup.normalize():f}",
        "factor": f"{(1 + markup / 100).normalize():f}",
        "hundred_buys": credits_display(hundred).split(".")[0],
    }
