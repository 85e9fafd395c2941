"""Monitoring's dashboard pages (login required): the usage dashboard, one call's page and staff
health. They parse the request, call monitoring's selectors (and billing's for the balance and
ledger), and render."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from billing.credits import credits_per_usd
from billing.selectors import balance_display_get, transactions_list, usage_hold_get

from .selectors import (
    LLMMonitoringService,
    reconciliation_totals,
    top_users_by_spend,
    usage_get,
    usage_receipt,
    usage_recent_list,
)
from .services import ProviderHealthMonitor

CHART_DAYS = 30
FAILED_BEFORE_PROVIDER = "failed before a provider"


@require_GET
@login_required
def dashboard(request):
    # Stripe Checkout returns here (billing's success/cancel URLs); show the matching page.
    outcome = request.GET.get("topup")
    if outcome in ("success", "cancelled"):
        target = reverse("topup-success" if outcome == "success" else "topup-cancel")
        session_id = request.GET.get("session_id", "")
        if outcome == "success" and session_id:
            target += "?" + urlencode({"session_id": session_id[:255]})
        return redirect(target)
    stats = LLMMonitoringService().get_comprehensive_stats(request.user.pk, CHART_DAYS)
    # Spend by model lists only models that cost something; calls that never reached a provider
    # (no model or provider recorded) are one named group instead of a "-" bar.
    spending = [g for g in stats["by_model"] if g["credits_micro"] > 0]
    charts = {
        "daily": {
            "labels": [d["date"][5:] for d in stats["daily"]],
            "credits": [d["credits"] for d in stats["daily"]],
            "requests": [d["requests"] for d in stats["daily"]],
        },
        "by_model": {
            "labels": [g["model"] for g in spending],
            "credits": [g["credits"] for g in spending],
            "requests": [g["requests"] for g in spending],
        },
        "by_provider": {
            "labels": [g["provider"] or FAILED_BEFORE_PROVIDER for g in stats["by_provider"]],
            "credits": [g["credits"] for g in stats["by_provider"]],
            "requests": [g["requests"] for g in stats["by_provider"]],
        },
    }
    return render(
        request,
        "monitoring/index.html",
        {
            "balance": balance_display_get(user=request.user),
            "stats": stats,
            "charts": charts,
            "chart_days": CHART_DAYS,
            "spending_models": spending,
            "transactions": transactions_list(user=request.user, limit=8),
            "calls": usage_recent_list(user_id=request.user.pk, limit=10),
        },
    )


@require_GET
@login_required
def call_detail(request, record_id: int):
    record = usage_get(user_id=request.user.pk, record_id=record_id)
    if record is None:
        raise Http404("No such call.")
    # The catalog price comes from the gateway's template tag (gateway_catalog), not an import.
    attempts = _attempts_shown(record)
    return render(
        request,
        "monitoring/call.html",
        {
            "call": record,
            "attempts": attempts,
            "failure": _failure_named(record, attempts),
            "cost_usd": f"{record.cost_usd.normalize():f}",
            "hold": usage_hold_get(user=request.user, request_id=record.request_id),
            # The same receipt `GET /v1/generation` answers, with each line's price per 1M tokens.
            "receipt": usage_receipt(record=record),
            "credits_per_usd": credits_per_usd(),
            "lines": _lines_shown(record),
        },
    )


PER_UNIT_COMPONENTS = ("request", "image")
COMPONENT_NAMES = {
    "prompt": "prompt",
    "input_cache_read": "cache read",
    "input_cache_write": "cache write (5 min)",
    "input_cache_write_1h": "cache write (1 h)",
    "completion": "completion",
    "internal_reasoning": "reasoning",
    "request": "per call",
    "image": "input image",
}


def _lines_shown(record) -> list[dict]:
    """The price applied per component as the page shows it: tokens priced per 1M, calls and images
    per unit (as admin edits them)."""
    from decimal import Decimal

    shown = []
    for line in record.cost_lines or ():
        unit = Decimal(str(line.get("unit_price") or 0))
        per_unit = line.get("component") in PER_UNIT_COMPONENTS
        price = unit if per_unit else unit * 1_000_000
        shown.append(
            {
                "component": COMPONENT_NAMES.get(line.get("component"), line.get("component")),
                "quantity": line.get("quantity") or 0,
                "price": f"{price.normalize():f}",
                "per": "each" if per_unit else "per 1M",
                "usd": Decimal(str(line.get("usd") or 0)),
            }
        )
    return shown


def _attempts_shown(record) -> list[dict]:
    """The recorded attempts as the page shows them: the attempt that was streaming when the client
    went away says "cancelled", as the call does (it answered, but not to the end)."""
    attempts = [dict(a) for a in record.attempts or ()]
    if record.status == record.STATUS_CANCELLED:
        answering = [a for a in attempts if a.get("status") == "ok"]
        if answering:
            answering[-1]["status"] = "cancelled"
    return attempts


def _failure_named(record, attempts: list[dict]) -> str:
    """What failed, in words, for a call that did not answer ("" for one that did)."""
    if record.status == record.STATUS_OK:
        return ""
    if record.status == record.STATUS_CANCELLED:
        where = f" while {record.provider} was answering" if record.provider else " before an answer"
        return f"Cancelled by the client{where}."
    tried = [a for a in attempts if a.get("provider") and a.get("status") == "error"]
    if not tried:
        reasons = "; ".join(dict.fromkeys(a["reason"] for a in attempts if a.get("reason")))
        detail = reasons or record.error_class or "refused before routing"
        return f"Failed before a provider: {detail}."
    names = ", ".join(f"{a['provider']} ({a.get('error_class') or 'error'})" for a in tried)
    return f"Every attempt failed: {names}."


@require_GET
@staff_member_required
def staff(request):
    health = ProviderHealthMonitor().get_all_provider_health()
    return render(
        request,
        "monitoring/staff.html",
        {
            "providers": [row for row in health if row["model"] is None],
            "models": [row for row in health if row["model"] is not None],
            "top_users": top_users_by_spend(days=CHART_DAYS, limit=10),
            "days": CHART_DAYS,
            "money": reconciliation_totals(days=CHART_DAYS),
        },
    )
