"""Staff views of billing. Everything is read-only except through the services:
credit adjustments and clearing a shortfall are admin actions that call them."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from smartspec.errors import InvalidRequest

from . import services
from .credits import credits_display, credits_to_micro, format_cents, format_credits
from .models import CreditAccount, CreditHold, LedgerEntry, PendingClawback, StripeEvent, TopUp


class ReadOnlyAdmin(admin.ModelAdmin):
    """Money rows change only through the billing services, never by editing them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _credits_column(field: str, label: str):
    @admin.display(description=label, ordering=field)
    def column(self, obj):
        return credits_display(getattr(obj, field))

    return column


class AdjustCreditsForm(forms.Form):
    credits = forms.CharField(help_text="Credits to add; negative to debit (e.g. 100 or -2.5).")
    reason = forms.CharField(max_length=400, widget=forms.TextInput(attrs={"size": 60}))

    def clean_credits(self):
        try:
            amount = credits_to_micro(self.cleaned_data["credits"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc))
        if amount == 0:
            raise forms.ValidationError("Enter a non-zero amount.")
        return amount


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=400, widget=forms.TextInput(attrs={"size": 60}))


class PositiveFilter(admin.SimpleListFilter):
    field = ""

    def lookups(self, request, model_admin):
        return [("yes", "Yes")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(**{f"{self.field}__gt": 0})
        return queryset


class ShortfallFilter(PositiveFilter):
    title, parameter_name, field = "owes credits", "shortfall", "owed"


class ExcessFilter(PositiveFilter):
    title, parameter_name, field = "cost above hold (flagged)", "excess", "excess"


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance_credits", "held_credits", "available_credits", "shortfall", "updated_at")
    list_filter = (ShortfallFilter,)
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    actions = ("adjust_credits", "clear_shortfall")
    balance_credits = _credits_column("balance", "balance")
    held_credits = _credits_column("held", "held")
    shortfall = _credits_column("owed", "owed")

    @admin.display(description="available")
    def available_credits(self, obj):
        return credits_display(obj.available)

    def has_change_permission(self, request, obj=None):
        # Actions need change permission to show; the form fields themselves stay read-only.
        return request.user.has_perm("billing.change_creditaccount")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def _action_page(self, request, queryset, *, form, action, title):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "accounts": queryset.select_related("user"),
            "action": action,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/account_action.html", context)

    @admin.action(description="Adjust credits (a ledger entry with your name and reason)")
    def adjust_credits(self, request, queryset):
        form = AdjustCreditsForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_page(
                request, queryset, form=form, action="adjust_credits", title="Adjust credits"
            )
        for account in queryset.select_related("user"):
            try:
                entry = services.adjustment_create(
                    user=account.user,
                    amount=form.cleaned_data["credits"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except InvalidRequest as exc:
                self.message_user(request, f"{account.user}: {exc.message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{account.user}: {format_credits(entry.amount)} credits recorded.",
                    messages.SUCCESS,
                )
        return None

    @admin.action(description="Clear owed credits (writes them off; allows holds again)")
    def clear_shortfall(self, request, queryset):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_page(
                request, queryset, form=form, action="clear_shortfall", title="Clear owed credits"
            )
        for account in queryset.select_related("user"):
            try:
                services.account_shortfall_clear(
                    user=account.user, actor=request.user, reason=form.cleaned_data["reason"]
                )
            except InvalidRequest as exc:
                self.message_user(request, f"{account.user}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{account.user}: owed credits cleared.", messages.SUCCESS)
        return None


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "account",
        "kind",
        "credits",
        "balance",
        "reference",
        "actor",
        "description",
    )
    list_filter = ("kind",)
    search_fields = ("account__user__username", "reference", "description")
    list_select_related = ("account__user", "actor")
    credits = _credits_column("amount", "credits")
    balance = _credits_column("balance_after", "balance after")


@admin.register(CreditHold)
class CreditHoldAdmin(ReadOnlyAdmin):
    list_display = (
        "request_id",
        "account",
        "purpose",
        "state",
        "amount_credits",
        "charged_credits",
        "flagged",
    )
    list_display += ("created_at", "expires_at", "closed_at")
    list_filter = ("state", "purpose", ExcessFilter)
    search_fields = ("request_id", "account__user__username")
    list_select_related = ("account__user",)
    amount_credits = _credits_column("amount", "amount")
    charged_credits = _credits_column("charged", "charged")
    flagged = _credits_column("excess", "not charged (excess)")


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    # Fits 1,400 px: the Checkout Session id is searchable and on the detail page, not a column.
    list_display = ("created_at", "user", "paid", "credits_granted", "payment_intent_id")
    list_display += ("refunded", "dispute_status", "shortfall", "source")
    list_filter = (ShortfallFilter, "dispute_status", "source")
    search_fields = ("user__username", "payment_intent_id", "checkout_session_id", "dispute_id")
    list_select_related = ("user",)
    credits_granted = _credits_column("credits", "credits")
    shortfall = _credits_column("owed", "owed")

    @admin.display(description="paid", ordering="amount_cents")
    def paid(self, obj):
        return f"${format_cents(obj.amount_cents)}"

    @admin.display(description="refunded", ordering="amount_refunded_cents")
    def refunded(self, obj):
        return f"${format_cents(obj.amount_refunded_cents)}" if obj.amount_refunded_cents else "–"


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "status", "livemode", "received_at", "processed_at", "error")
    list_filter = ("status", "type", "livemode")
    search_fields = ("event_id",)


@admin.register(PendingClawback)
class PendingClawbackAdmin(ReadOnlyAdmin):
    """Refunds and disputes that arrived before their payment; applied when it is credited."""

    list_display = ("received_at", "kind", "payment_intent_id", "amount_cents", "stripe_event_id")
    list_display += ("applied_at",)
    list_filter = ("kind", ("applied_at", admin.EmptyFieldListFilter))
    search_fields = ("payment_intent_id", "stripe_event_id", "charge_id", "dispute_id")
