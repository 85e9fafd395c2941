"""Admin for monitoring: usage records, daily rollups and health snapshots, all read-only records."""

from django.contrib import admin

from billing.credits import credits_display, usd_display

from .models import DailyUsage, ProviderHealthSnapshot, RollupState, UsageReconciliation, UsageRecord


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: staff read them, nobody edits them."""

    show_full_result_count = False  # no COUNT(*) over a large table on every page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "model",
        "provider",
        "task_type",
        "status",
        "total_tokens",
        "credits_display",
        "latency_ms",
    )
    list_filter = (
        ("user", admin.RelatedOnlyFieldListFilter),
        "model",
        "provider",
        "status",
        "task_type",
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("request_id", "user__username", "model")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    # The detail page shows credits and dollars, not the stored micro-credits.
    readonly_fields = [
        {"credits": "credits_display", "hold": "hold_display", "cost_usd": "cost_display"}.get(f.name, f.name)
        for f in UsageRecord._meta.fields
    ]
    fields = readonly_fields

    @admin.display(description="credits", ordering="credits")
    def credits_display(self, obj):
        return credits_display(obj.credits)

    @admin.display(description="hold (credits)")
    def hold_display(self, obj):
        return credits_display(obj.hold)

    @admin.display(description="cost at provider")
    def cost_display(self, obj):
        return usd_display(obj.cost_usd)


@admin.register(UsageReconciliation)
class UsageReconciliationAdmin(ReadOnlyAdmin):
    """Each OpenRouter call's charge against OpenRouter's own record (the reconciliation job)."""

    list_display = (
        "checked_at",
        "usage",
        "status",
        "charged_usd",
        "upstream_total_cost",
        "difference_usd",
        "catalog_drift",
        "tries",
    )
    list_filter = ("status", "catalog_drift", ("checked_at", admin.DateFieldListFilter))
    search_fields = ("usage__request_id", "usage__upstream_id", "usage__model")
    list_select_related = ("usage",)
    readonly_fields = [f.name for f in UsageReconciliation._meta.fields]


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ("day", "user", "model", "provider", "task_type", "requests", "errors", "credits_display")
    list_filter = (
        ("day", admin.DateFieldListFilter),
        "provider",
        "task_type",
        ("user", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("user__username", "model")
    list_select_related = ("user",)
    readonly_fields = [
        {"credits": "credits_display", "cost_usd": "cost_display"}.get(f.name, f.name)
        for f in DailyUsage._meta.fields
    ]
    fields = readonly_fields

    @admin.display(description="credits", ordering="credits")
    def credits_display(self, obj):
        return credits_display(obj.credits)

    @admin.display(description="cost at provider")
    def cost_display(self, obj):
        return usd_display(obj.cost_usd)


@admin.register(ProviderHealthSnapshot)
class ProviderHealthSnapshotAdmin(ReadOnlyAdmin):
    list_display = (
        "provider",
        "model",
        "healthy",
        "success_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "throughput_tps",
        "requests",
        "probe_ok",
        "last_error",
        "last_probe_at",
    )
    list_filter = ("provider", "healthy", "probe_ok")
    readonly_fields = [f.name for f in ProviderHealthSnapshot._meta.fields]


@admin.register(RollupState)
class RollupStateAdmin(ReadOnlyAdmin):
    list_display = ("name", "closed_through", "updated_at")
    readonly_fields = ("name", "closed_through", "updated_at")
