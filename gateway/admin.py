from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from smartspec.errors import InvalidRequest

from .catalog import catalog_alias_cache_clear, catalog_cache_clear, catalog_callable, catalog_review_clear
from .forms import PER_MILLION_PRICES, ApiKeyLimitsForm, CatalogPricesForm, per_million
from .keys import api_keys_revoke
from .models import ApiKey, ModelAlias, ModelCatalogEntry, RoutingRule
from .routing import BUDGET_PRIORITIES, routing_matrix_get, routing_matrix_update
from .tasks import catalog_sync


class ApiKeyAdminForm(ApiKeyLimitsForm):
    """Staff edit the key's own limits and the ceilings its owner cannot pass (in credits)."""

    enforce_ceilings = False
    credit_fields = (*ApiKeyLimitsForm.credit_fields, "ceiling_credits_per_day", "ceiling_credits_per_month")
    ceiling_credits_per_day_credits = forms.DecimalField(
        label="Ceiling: credits per day",
        required=False,
        min_value=0,
        max_digits=18,
        decimal_places=6,
        help_text="The most the owner may set (or leave unset) per UTC day; empty: no ceiling.",
    )
    ceiling_credits_per_month_credits = forms.DecimalField(
        label="Ceiling: credits per month",
        required=False,
        min_value=0,
        max_digits=18,
        decimal_places=6,
        help_text="The most the owner may set per UTC calendar month; empty: no ceiling.",
    )

    class Meta(ApiKeyLimitsForm.Meta):
        fields = (
            "name",
            *ApiKeyLimitsForm.Meta.fields,
            "ceiling_requests_per_minute",
            "ceiling_tokens_per_minute",
        )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = (
        "prefix",
        "name",
        "user",
        "requests_per_minute",
        "tokens_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = (
        "user",
        "name",
        "prefix",
        "requests_per_minute",
        "tokens_per_minute",
        "credits_per_day_credits",
        "credits_per_month_credits",
        "ceiling_requests_per_minute",
        "ceiling_tokens_per_minute",
        "ceiling_credits_per_day_credits",
        "ceiling_credits_per_month_credits",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ("revoke",)

    def has_add_permission(self, request):
        # Keys are created where they can be shown once: the dashboard or `issue_api_key`.
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = api_keys_revoke(keys=queryset)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(ModelCatalogEntry)
class ModelCatalogEntryAdmin(admin.ModelAdmin):
    form = CatalogPricesForm
    list_display = (
        "id",
        "display_name",
        "prompt_per_m",
        "completion_per_m",
        "cache_read_per_m",
        "cache_write_per_m",
        "context_length",
        "zdr",
        "is_active",
        "status",
        "shutdown_date",
        "successor",
        "needs_review",
    )
    list_filter = ("is_active", "status", "zdr")
    list_editable = ("is_active",)
    search_fields = ("id", "display_name")
    readonly_fields = ("synced_at", "updated_at", "review_flagged_at")
    autocomplete_fields = ("successor",)
    fields = (
        "id",
        "display_name",
        "context_length",
        *(f"{name}_per_m" for name, _, _ in PER_MILLION_PRICES),
        "request_price",
        "image_price",
        "providers",
        "zdr",
        "is_active",
        "status",
        "shutdown_date",
        "successor",
        "review_note",
        "review_flagged_at",
        "synced_at",
        "updated_at",
    )
    actions = ("sync_from_openrouter", "review_clear")

    @admin.display(description="Review", boolean=True, ordering="review_flagged_at")
    def needs_review(self, obj):
        return obj.review_flagged_at is not None

    @admin.action(description="Clear the review flag of selected models")
    def review_clear(self, request, queryset):
        count = catalog_review_clear(model_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Cleared the review flag of {count} model(s).", messages.SUCCESS)

    @admin.display(description="Prompt $/1M", ordering="prompt_price")
    def prompt_per_m(self, obj):
        return per_million(obj.prompt_price)

    @admin.display(description="Completion $/1M", ordering="completion_price")
    def completion_per_m(self, obj):
        return per_million(obj.completion_price)

    @admin.display(description="Cache read $/1M")
    def cache_read_per_m(self, obj):
        return per_million(obj.input_cache_read_price) if obj.input_cache_read_price is not None else "-"

    @admin.display(description="Cache write $/1M")
    def cache_write_per_m(self, obj):
        return per_million(obj.input_cache_write_price) if obj.input_cache_write_price is not None else "-"

    # Routing reads the catalog through a cache: every staff change drops the models it touched.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog_cache_clear(model_ids=[obj.pk])

    def delete_model(self, request, obj):
        model_id = obj.pk
        super().delete_model(request, obj)
        catalog_cache_clear(model_ids=[model_id])

    def delete_queryset(self, request, queryset):
        model_ids = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        catalog_cache_clear(model_ids=model_ids)

    @admin.action(description="Sync prices from OpenRouter now")
    def sync_from_openrouter(self, request, queryset):
        report = catalog_sync.delay().get(timeout=120)
        self.message_user(
            request,
            f"Catalog sync: {report['created']} added, {report['updated']} updated, "
            f"{report['skipped']} skipped, {report['retired']} retired, {report['reactivated']} reactivated, "
            f"{report.get('aliases', 0)} aliases added.",
            messages.SUCCESS,
        )


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    """Other names of catalog models (Anthropic's ids for Claude models): staff add, point elsewhere
    or remove them; an alias staff saved is theirs (`source` staff), which the sync never changes."""

    list_display = ("alias", "model", "source", "updated_at")
    list_filter = ("source",)
    search_fields = ("alias", "model__id")
    autocomplete_fields = ("model",)
    fields = ("alias", "model", "source", "updated_at")
    readonly_fields = ("source", "updated_at")

    def save_model(self, request, obj, form, change):
        obj.source = ModelAlias.Source.STAFF
        super().save_model(request, obj, form, change)
        catalog_alias_cache_clear(aliases=[obj.pk])

    def delete_model(self, request, obj):
        alias = obj.pk
        super().delete_model(request, obj)
        catalog_alias_cache_clear(aliases=[alias])

    def delete_queryset(self, request, queryset):
        aliases = list(queryset.values_list("pk", flat=True))
        super().delete_queryset(request, queryset)
        catalog_alias_cache_clear(aliases=aliases)


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    """The matrix as one task x priority grid (the changelist); a single cell still has its change form."""

    list_display = ("task_type", "budget_priority", "model", "origin")
    autocomplete_fields = ("model",)
    readonly_fields = ("origin",)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            cells = {
                tuple(name[len("cell:") :].split("/", 1)): value.strip()
                for name, value in request.POST.items()
                if name.startswith("cell:") and "/" in name
            }
            try:
                changed = routing_matrix_update(cells=cells)
            except InvalidRequest as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Routing matrix saved: {', '.join(changed)} changed." if changed else "Nothing changed.",
                    messages.SUCCESS,
                )
                return redirect(request.path)
        rows = routing_matrix_get()
        choices = sorted({m.id for m in catalog_callable()} | {c["model"] for r in rows for c in r["cells"]})
        context = {
            **self.admin_site.each_context(request),
            "title": "Routing matrix (task type x budget priority)",
            "opts": self.model._meta,
            "rows": rows,
            "priorities": BUDGET_PRIORITIES,
            "choices": choices,
            "can_change": self.has_change_permission(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/gateway/routingrule/grid.html", context)
