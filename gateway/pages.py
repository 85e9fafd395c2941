"""The gateway's dashboard pages (login required): API keys and the playground. They parse the
request, call the gateway's key services and catalog, and render. (views.py holds the API faces.)"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.credits import credits_display
from billing.selectors import balance_display_get
from smartspec.errors import NotFound

from .catalog import catalog_list
from .forms import ApiKeyCreateForm, ApiKeyLimitsForm
from .keys import api_key_create, api_key_get, api_key_revoke
from .models import RoutingRule


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def api_keys(request):
    new_key, status = None, 200
    if request.method == "POST":
        form = ApiKeyCreateForm(request.POST)
        if form.is_valid():
            _, new_key = api_key_create(user=request.user, name=form.cleaned_data["name"])
            # Rendered straight into this response and nowhere else: the key is shown once.
        else:
            status = 400
            messages.error(request, "The key was not created: " + " ".join(form.errors.get("name", [])))
    keys = [
        {
            "key": key,
            "limits": ApiKeyLimitsForm(instance=key, auto_id=f"id_{key.pk}_%s"),
            "summary": _limits_summary(key),
        }
        for key in request.user.api_keys.order_by("-created_at")
    ]
    return render(request, "gateway/keys.html", {"keys": keys, "new_key": new_key}, status=status)


def _per_million(price) -> str:
    """A USD-per-token price as USD per 1M tokens: 0.00000015 -> "0.15"."""
    return f"{(Decimal(price) * 1_000_000).normalize():f}"


def _limits_summary(key) -> str:
    """The limits that apply to the key (its own, or the staff ceiling when lower), in one line:
    "60 requests/min · 100.00 credits/day"; "no limits"."""
    parts = []
    if (rpm := key.limit("requests_per_minute")) is not None:
        parts.append(f"{rpm:,} requests/min")
    if (tpm := key.limit("tokens_per_minute")) is not None:
        parts.append(f"{tpm:,} tokens/min")
    if (per_day := key.limit("credits_per_day")) is not None:
        parts.append(f"{credits_display(per_day)} credits/day")
    if (per_month := key.limit("credits_per_month")) is not None:
        parts.append(f"{credits_display(per_month)} credits/month")
    return " · ".join(parts) or "no limits"


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
        "gateway/playground.html",
        {
            "balance": balance_display_get(user=request.user),
            "models": [
                {
                    "id": m.id,
                    "prompt_per_m": _per_million(m.prompt_price),
                    "completion_per_m": _per_million(m.completion_price),
                }
                for m in sorted(catalog_list(), key=lambda m: m.id)
            ],
            "max_output_tokens": settings.MAX_OUTPUT_TOKENS,
            "task_types": RoutingRule.TaskType.choices,
            "budget_priorities": RoutingRule.BudgetPriority.choices,
        },
    )
