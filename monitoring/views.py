"""Monitoring's dashboard pages (login required): the usage dashboard, one call's page and staff
health. They parse the request, call monitoring's selectors (and billing's for the balance and
ledger), and render."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from billing.selectors import balance_display_get, transactions_list, usage_hold_get

from .selectors import LLMMonitoringService, top_users_by_spend, usage_get, usage_recent_list
from .services import ProviderHealthMonitor

CHART_DAYS = 30


@require_GET
@login_required
def dashboard(request):
    # Stripe Checkout returns here (billing's success/cancel URLs); show the matching page.
    outcome = request.GET.get("topup")
    if outcome in ("success", "cancelled"):
        return redirect("topup-success" if outcome == "success" else "topup-cancel")
    stats = LLMMonitoringService().get_comprehensive_stats(request.user.pk, CHART_DAYS)
    charts = {
        "daily": {
            "labels": [d["date"][5:] for d in stats["daily"]],
            "credits": [d["credits"] for d in stats["daily"]],
            "requests": [d["requests"] for d in stats["daily"]],
        },
        "by_model": {
            "labels": [g["model"] or "-" for g in stats["by_model"]],
            "credits": [g["credits"] for g in stats["by_model"]],
            "requests": [g["requests"] for g in stats["by_model"]],
        },
        "by_provider": {
            "labels": [g["provider"] or "-" for g in stats["by_provider"]],
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
    return render(
        request,
        "monitoring/call.html",
        {
            "call": record,
            "cost_usd": f"{record.cost_usd.normalize():f}",
            "hold": usage_hold_get(user=request.user, request_id=record.request_id),
        },
    )


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
        },
    )
