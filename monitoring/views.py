"""Dashboard pages (Django templates, login required): they parse the request, call selectors
and services of monitoring, billing and the gateway, and render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.credits import format_credits, format_usd, topup_cents_to_micro
from billing.selectors import balance_get, transactions_list, transactions_page, usage_hold_get
from gateway.catalog import catalog_list, catalog_models_get
from gateway.forms import ApiKeyLimitsForm
from gateway.keys import api_key_create, api_key_get, api_key_revoke
from gateway.models import RoutingRule
from smartspec.errors import NotFound

from .selectors import LLMMonitoringService, top_users_by_spend, usage_get, usage_recent_list
from .services import ProviderHealthMonitor

CHART_DAYS = 30
TRANSACTIONS_PER_PAGE = 25
TOPUP_PRESETS_USD = (10, 25, 50, 100)
PER_MILLION = 1_000_000


def _balance(user) -> dict:
    balance = balance_get(user=user)
    return {name: format_credits(value) for name, value in balance.items()} | {
        "usd": format_usd(balance["available"])
    }


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
        "dashboard/index.html",
        {
            "balance": _balance(request.user),
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
    catalog = catalog_models_get(model_ids=[record.model]).get(record.model)
    price = None
    if catalog is not None:
        price = {
            "prompt_per_m": f"{(catalog.prompt_price * PER_MILLION).normalize():f}",
            "completion_per_m": f"{(catalog.completion_price * PER_MILLION).normalize():f}",
        }
    return render(
        request,
        "dashboard/call.html",
        {
            "call": record,
            "price": price,
            "cost_usd": f"{record.cost_usd.normalize():f}",
            "hold": usage_hold_get(user=request.user, request_id=record.request_id),
        },
    )


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
        "dashboard/transactions.html",
        {
            "balance": _balance(request.user),
            "entries": rows,
            "older": rows[-1].id if has_older and rows else None,
            "is_first_page": before is None,
        },
    )


@require_GET
@login_required
def topup(request):
    presets = [
        {"usd": usd, "credits": format_credits(topup_cents_to_micro(usd * 100)).split(".")[0]}
        for usd in TOPUP_PRESETS_USD
    ]
    return render(request, "dashboard/topup.html", {"balance": _balance(request.user), "presets": presets})


@require_GET
@login_required
def topup_done(request, outcome: str):
    return render(
        request, "dashboard/topup_done.html", {"outcome": outcome, "balance": _balance(request.user)}
    )


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def api_keys(request):
    new_key = None
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100]
        _, new_key = api_key_create(user=request.user, name=name)
        # Rendered straight into this response and nowhere else: the key is shown once.
    keys = [
        {"key": key, "limits": ApiKeyLimitsForm(instance=key, auto_id=f"id_{key.pk}_%s")}
        for key in request.user.api_keys.order_by("-created_at")
    ]
    return render(request, "dashboard/keys.html", {"keys": keys, "new_key": new_key})


@require_POST
@login_required
def api_key_revoke_view(request, key_id: int):
    try:
        key = api_key_revoke(user=request.user, key_id=key_id)
    except NotFound:
        # Another user's key id answers exactly like one that does not exist.
        raise Http404("No such key.")
    messages.success(request, f"Key {key.prefix}… revoked.")
    return redirect("api-keys")


@require_POST
@login_required
def api_key_limits_view(request, key_id: int):
    try:
        key = api_key_get(user=request.user, key_id=key_id)
    except NotFound:
        raise Http404("No such key.")
    form = ApiKeyLimitsForm(request.POST, instance=key)
    if form.is_valid():
        form.save()
        messages.success(request, f"Limits of {key.prefix}… saved.")
    else:
        errors = "; ".join(f"{form.fields[f].label or f}: {e[0]}" for f, e in form.errors.items())
        messages.error(request, f"Limits not saved: {errors}")
    return redirect("api-keys")


@require_GET
@login_required
def playground(request):
    return render(
        request,
        "dashboard/playground.html",
        {
            "balance": _balance(request.user),
            "models": sorted(m.id for m in catalog_list()),
            "task_types": RoutingRule.TaskType.choices,
            "budget_priorities": RoutingRule.BudgetPriority.choices,
        },
    )


@require_GET
@staff_member_required
def staff(request):
    health = ProviderHealthMonitor().get_all_provider_health()
    return render(
        request,
        "dashboard/staff.html",
        {
            "providers": [row for row in health if row["model"] is None],
            "models": [row for row in health if row["model"] is not None],
            "top_users": top_users_by_spend(days=CHART_DAYS, limit=10),
            "days": CHART_DAYS,
        },
    )
